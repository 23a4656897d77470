"""LightningModules: pretraining and the fine-tuning tasks that reuse its embedding."""

from nsmae_lightning.tasks.base import BaseTask
from nsmae_lightning.tasks.detection import DetectionTask
from nsmae_lightning.tasks.pretrain import PretrainTask
from nsmae_lightning.tasks.segmentation import SegmentationTask

__all__ = ["BaseTask", "DetectionTask", "PretrainTask", "SegmentationTask"]
