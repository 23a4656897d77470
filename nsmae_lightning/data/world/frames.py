"""Sensor readings of a scene at a timestamp, shared by the nuScenes and KITTI writers.

Each reading draws its noise from a generator seeded by (world seed, scene,
channel, timestamp), so both writers get byte-identical LiDAR scans and images
of the same moment whatever order they render in.
"""

from __future__ import annotations

import numpy as np

from nsmae_lightning.data.world.config import WorldConfig
from nsmae_lightning.data.world.rig import lidar_to_ego
from nsmae_lightning.data.world.scene import LocationWorld, ScenePlan, WorldObject, frame_primitives
from nsmae_lightning.data.world.sensors import CameraImage, lidar_scan, render_camera


def _frame_rng(cfg: WorldConfig, plan: ScenePlan, channel: str, time: float) -> np.random.Generator:
    """Noise generator of one reading."""
    channel_code = int.from_bytes(channel.encode("utf-8")[:8].ljust(8, b"_"), "little") % (2**31)
    return np.random.default_rng([cfg.seed, 3, plan.index, channel_code, plan.timestamp(time) % (2**62)])


def lidar_at(plan: ScenePlan, world: LocationWorld, cfg: WorldConfig, time: float) -> tuple[np.ndarray, np.ndarray]:
    """LiDAR revolution at ``time`` (s after the first keyframe).

    Returns:
        points (N, 5) float32 in the LiDAR frame (nuScenes layout) and the 4x4 LiDAR -> global transform.
    """
    lidar2global = plan.ego2global(time) @ lidar_to_ego()
    prims = frame_primitives(plan, world, time, lidar2global[:2, 3])
    points = lidar_scan(prims, world.ground, lidar2global, cfg, _frame_rng(cfg, plan, "LIDAR_TOP", time))
    return points, lidar2global


def camera_at(
    plan: ScenePlan,
    world: LocationWorld,
    cfg: WorldConfig,
    channel: str,
    cam2ego: np.ndarray,
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    time: float,
) -> tuple[CameraImage, np.ndarray]:
    """Camera image at ``time`` (s after the first keyframe).

    Args:
        plan: the scene.
        world: its location.
        cfg: world config.
        channel: camera name (seeds the sensor noise).
        cam2ego: 4x4 camera -> ego transform.
        intrinsics: 3x3 pinhole matrix.
        image_size: (height, width).
        time: exposure time.

    Returns:
        The rendered image and the 4x4 camera -> global transform.
    """
    cam2global = plan.ego2global(time) @ cam2ego
    prims = frame_primitives(plan, world, time, cam2global[:2, 3])
    image = render_camera(
        prims,
        len(plan.objects),
        world.ground,
        cam2global,
        intrinsics,
        image_size[0],
        image_size[1],
        plan.lighting,
        cfg,
        _frame_rng(cfg, plan, channel, time),
    )
    return image, cam2global


def points_in_objects(points_global: np.ndarray, objects: list[WorldObject], time: float) -> np.ndarray:
    """Number of points inside each object's box (faces included, like the devkit's ``points_in_box``).

    Args:
        points_global: (N, 3) points in the global frame.
        objects: the scene's objects.
        time: when to place the boxes.

    Returns:
        (len(objects),) int64 counts.
    """
    counts = np.zeros(len(objects), np.int64)
    for index, obj in enumerate(objects):
        centre = obj.centre(time)
        offset = points_global - centre
        reach = np.hypot(obj.size[0], obj.size[1]) / 2
        near = (np.abs(offset[:, 0]) <= reach) & (np.abs(offset[:, 1]) <= reach)
        if not near.any():
            continue
        local = offset[near]
        cos_yaw, sin_yaw = np.cos(obj.yaw), np.sin(obj.yaw)
        along = local[:, 0] * cos_yaw + local[:, 1] * sin_yaw
        across = -local[:, 0] * sin_yaw + local[:, 1] * cos_yaw
        inside = (
            (np.abs(along) <= obj.size[0] / 2)
            & (np.abs(across) <= obj.size[1] / 2)
            & (np.abs(local[:, 2]) <= obj.size[2] / 2)
        )
        counts[index] = int(inside.sum())
    return counts


def to_global(points: np.ndarray, sensor2global: np.ndarray) -> np.ndarray:
    """(N, 3) sensor-frame points of a (N, >=3) array in the global frame."""
    return points[:, :3].astype(np.float64) @ sensor2global[:3, :3].T + sensor2global[:3, 3]
