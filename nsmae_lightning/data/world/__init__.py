"""Procedural driving world written in genuine nuScenes and KITTI formats (``nsmae world``)."""

from nsmae_lightning.data.world.config import WorldConfig
from nsmae_lightning.data.world.kitti_writer import write_kitti
from nsmae_lightning.data.world.nuscenes_writer import write_nuscenes
from nsmae_lightning.data.world.preview import write_preview

__all__ = ["WorldConfig", "write_kitti", "write_nuscenes", "write_preview"]
