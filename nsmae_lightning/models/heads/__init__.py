"""Task heads on the fused BEV embedding."""

from nsmae_lightning.models.heads.detection import CenterPointHead, DetectionHeadConfig, TaskGroup
from nsmae_lightning.models.heads.segmentation import SegmentationHead, SegmentationHeadConfig

__all__ = ["CenterPointHead", "DetectionHeadConfig", "SegmentationHead", "SegmentationHeadConfig", "TaskGroup"]
