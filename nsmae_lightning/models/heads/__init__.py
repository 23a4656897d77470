"""Task heads on the fused BEV embedding."""

from nsmae_lightning.models.heads.detection import CenterPointHead, DetectionHeadConfig, TaskGroup

__all__ = ["CenterPointHead", "DetectionHeadConfig", "TaskGroup"]
