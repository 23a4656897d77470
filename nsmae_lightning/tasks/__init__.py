"""LightningModules: pretraining and the fine-tuning tasks that reuse its embedding."""

from nsmae_lightning.tasks.base import BaseTask
from nsmae_lightning.tasks.pretrain import PretrainTask

__all__ = ["BaseTask", "PretrainTask"]
