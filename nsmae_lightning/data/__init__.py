"""Data pipeline: nuScenes and KITTI DataModules producing the batch contract of docs/conventions.md."""

from nsmae_lightning.data.collate import collate_batch
from nsmae_lightning.data.kitti import KittiDataModule
from nsmae_lightning.data.nuscenes import NuScenesDataModule

__all__ = ["KittiDataModule", "NuScenesDataModule", "collate_batch"]
