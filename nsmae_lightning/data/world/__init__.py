"""Procedural driving world written in genuine nuScenes and KITTI formats (``nsmae world``)."""

from nsmae_lightning.data.world.config import WorldConfig
from nsmae_lightning.data.world.nuscenes_writer import write_nuscenes

__all__ = ["WorldConfig", "write_nuscenes"]
