"""Write the world's keyframes in KITTI object format (one front camera, velodyne, labels, calib).

The frames are the same scenes and LiDAR scans as the nuScenes twin, seen
through a single KITTI-like front camera (wide 1242x375-shaped image). KITTI
types: car -> Car (vans -> Van), truck -> Truck, pedestrians -> Pedestrian /
Person_sitting, ridden bicycles and motorcycles -> Cyclist, bus / trailer /
construction vehicle -> Misc; visible barriers, cones and riderless bikes become
DontCare regions.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nsmae_lightning.atomic import folder_swapped_in
from nsmae_lightning.data.world.config import WorldConfig
from nsmae_lightning.data.world.frames import camera_at, lidar_at, points_in_objects, to_global
from nsmae_lightning.data.world.rig import camera_to_ego, lidar_to_ego, pinhole, rotation_z
from nsmae_lightning.data.world.scene import KEYFRAME_INTERVAL, LocationWorld, ScenePlan, WorldObject, plan_world

KITTI_WIDTH = 1242
KITTI_HEIGHT = 375
KITTI_FOCAL = 721.5377
LABEL_RADIUS = 80.0


def kitti_image_size(cfg: WorldConfig) -> tuple[int, int]:
    """(height, width) of the KITTI camera: KITTI's aspect, scaled like the nuScenes images (800 -> 1242)."""
    width = int(round(cfg.image_width * KITTI_WIDTH / 800))
    return int(round(width * KITTI_HEIGHT / KITTI_WIDTH)), width


def velo_to_ego() -> np.ndarray:
    """4x4 KITTI velodyne (x forward, y left, z up) -> ego transform: the LiDAR mount, un-yawed."""
    return lidar_to_ego() @ _velo_to_lidar()


def _velo_to_lidar() -> np.ndarray:
    """4x4 rotation from KITTI velodyne axes to our (nuScenes) LiDAR axes: +90 degrees about z."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_z(np.pi / 2)
    return matrix


def _matrix_line(name: str, matrix: np.ndarray) -> str:
    """One calib line: name and the row-major entries."""
    return f"{name}: " + " ".join(f"{v:.12e}" for v in matrix.reshape(-1))


def _occlusion(visible: int, alone: int) -> int:
    """KITTI occlusion level from visible / unoccluded pixel counts: 0 fully visible .. 2 largely occluded, 3 unknown."""
    if alone == 0:
        return 3
    fraction = visible / alone
    return 0 if fraction >= 0.8 else 1 if fraction >= 0.4 else 2


def _label_line(
    obj: WorldObject, time: float, velo2cam: np.ndarray, ego_yaw: float, global2velo: np.ndarray,
    intrinsics: np.ndarray, image_size: tuple[int, int], occlusion: int,
) -> str | None:  # fmt: skip
    """The KITTI label line of one object, or None when its box is not in front of the camera / in the image."""
    centre_velo = global2velo[:3, :3] @ obj.centre(time) + global2velo[:3, 3]
    yaw_velo = obj.yaw - ego_yaw
    length, width, height = obj.size
    corners = np.array([[sx * length / 2, sy * width / 2, sz * height / 2] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    corners = corners @ rotation_z(yaw_velo).T + centre_velo  # (8, 3) velodyne frame
    corners_cam = corners @ velo2cam[:3, :3].T + velo2cam[:3, 3]
    if (corners_cam[:, 2] < 0.1).any():
        return None
    uv = corners_cam @ intrinsics.T
    uv = uv[:, :2] / uv[:, 2:3]
    x1, y1 = uv.min(axis=0)
    x2, y2 = uv.max(axis=0)
    img_h, img_w = image_size
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, img_w - 1.0), min(y2, img_h - 1.0)
    if cx1 >= cx2 or cy1 >= cy2:
        return None
    truncation = 1.0 - (cx2 - cx1) * (cy2 - cy1) / max((x2 - x1) * (y2 - y1), 1e-9)
    centre_cam = velo2cam[:3, :3] @ centre_velo + velo2cam[:3, 3]
    bottom = centre_cam + np.array([0.0, height / 2, 0.0])  # camera y points down
    rotation_y = float(np.arctan2(np.sin(-yaw_velo - np.pi / 2), np.cos(-yaw_velo - np.pi / 2)))
    alpha = rotation_y - np.arctan2(centre_cam[0], centre_cam[2])
    alpha = float(np.arctan2(np.sin(alpha), np.cos(alpha)))
    if not obj.kitti_type:
        return f"DontCare -1 -1 -10 {cx1:.2f} {cy1:.2f} {cx2:.2f} {cy2:.2f} -1 -1 -1 -1000 -1000 -1000 -10"
    return (
        f"{obj.kitti_type} {truncation:.2f} {occlusion} {alpha:.2f} {cx1:.2f} {cy1:.2f} {cx2:.2f} {cy2:.2f} "
        f"{height:.2f} {width:.2f} {length:.2f} {bottom[0]:.2f} {bottom[1]:.2f} {bottom[2]:.2f} {rotation_y:.2f}"
    )


@dataclass(frozen=True)
class _Rig:
    """The KITTI camera and its calibration, the same for every frame."""

    image_size: tuple[int, int]
    intrinsics: np.ndarray
    cam2ego: np.ndarray
    velo2cam: np.ndarray
    calib: str


def _rig(cfg: WorldConfig) -> _Rig:
    """KITTI-like front camera of the world's rig and the calib text every frame shares."""
    image_size = kitti_image_size(cfg)
    intrinsics = pinhole(KITTI_FOCAL, image_size[0], image_size[1], KITTI_HEIGHT, KITTI_WIDTH)
    cam2ego = camera_to_ego("CAM_FRONT")
    velo2cam = np.linalg.inv(cam2ego) @ velo_to_ego()
    projection = np.hstack([intrinsics, np.zeros((3, 1))])
    calib = "\n".join(
        [
            *(_matrix_line(f"P{i}", projection) for i in range(4)),
            _matrix_line("R0_rect", np.eye(3)),
            _matrix_line("Tr_velo_to_cam", velo2cam[:3]),
            _matrix_line("Tr_imu_to_velo", np.linalg.inv(velo_to_ego())[:3]),
        ]
    )
    return _Rig(image_size, intrinsics, cam2ego, velo2cam, calib)


def _write_scene(
    root: Path, plan: ScenePlan, world: LocationWorld, cfg: WorldConfig, rig: _Rig, first_frame: int,
    on_frame: Callable[[], None] | None,
) -> list[str]:  # fmt: skip
    """Write the keyframes of one scene as frames ``first_frame``, ``first_frame + 1``, ...; returns their ids."""
    frame_ids = []
    for k in range(cfg.keyframes):
        time = k * KEYFRAME_INTERVAL
        frame_id = f"{first_frame + k:06d}"
        points, lidar2global = lidar_at(plan, world, cfg, time)
        image, _ = camera_at(plan, world, cfg, "KITTI_CAM", rig.cam2ego, rig.intrinsics, rig.image_size, time)
        counts = points_in_objects(to_global(points, lidar2global), plan.objects, time)
        velo = np.empty((len(points), 4), np.float32)
        velo[:, :3] = (points[:, :3].astype(np.float64) @ np.linalg.inv(_velo_to_lidar())[:3, :3].T).astype(np.float32)
        velo[:, 3] = points[:, 3] / 255.0
        velo.tofile(root / "training" / "velodyne" / f"{frame_id}.bin")
        Image.fromarray(image.rgb).save(root / "training" / "image_2" / f"{frame_id}.png", format="PNG")
        (root / "training" / "calib" / f"{frame_id}.txt").write_text(rig.calib + "\n")
        ego2global = plan.ego2global(time)
        global2velo = np.linalg.inv(ego2global @ velo_to_ego())
        ego_xy = ego2global[:2, 3]
        lines = []
        for index, obj in enumerate(plan.objects):
            if np.hypot(*(obj.centre(time)[:2] - ego_xy)) > LABEL_RADIUS:
                continue
            if counts[index] == 0 and image.visible_pixels[index] == 0:
                continue
            occlusion = _occlusion(int(image.visible_pixels[index]), int(image.alone_pixels[index]))
            line = _label_line(
                obj, time, rig.velo2cam, plan.heading, global2velo, rig.intrinsics, rig.image_size, occlusion
            )
            if line is not None:
                lines.append(line)
        (root / "training" / "label_2" / f"{frame_id}.txt").write_text("".join(f"{line}\n" for line in lines))
        frame_ids.append(frame_id)
        if on_frame is not None:
            on_frame()
    return frame_ids


def write_kitti(
    out_dir: str | Path, cfg: WorldConfig, on_frame: Callable[[], None] | None = None, workers: int = 1
) -> Path:
    """Generate the world and write every keyframe as a KITTI object frame.

    Args:
        out_dir: root to write ``training/`` and ``ImageSets/`` into.
        cfg: world config.
        on_frame: called after each frame (progress reporting; per finished scene when workers > 1).
        workers: processes casting scenes in parallel (same bytes for any count).

    Returns:
        The root.
    """
    root = Path(out_dir)
    for folder in ("calib", "image_2", "velodyne", "label_2"):
        (root / "training" / folder).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    worlds, plans = plan_world(cfg)
    rig = _rig(cfg)
    first_frames = [index * cfg.keyframes for index in range(len(plans))]
    if workers <= 1:
        scene_ids = [
            _write_scene(root, plan, worlds[plan.location], cfg, rig, first, on_frame)
            for plan, first in zip(plans, first_frames)
        ]
    else:
        # Every frame draws from its own seeded generators and has a fixed id, so scenes can be
        # cast in any process: the bytes do not depend on `workers`.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [
                pool.submit(_write_scene, root, plan, worlds[plan.location], cfg, rig, first, None)
                for plan, first in zip(plans, first_frames)
            ]
            scene_ids = []
            for future in futures:
                scene_ids.append(future.result())
                for _ in range(cfg.keyframes if on_frame else 0):
                    on_frame()  # type: ignore[misc]
    split_ids: dict[str, list[str]] = {"train": [], "val": []}
    for plan, ids in zip(plans, scene_ids):
        split_ids[plan.split].extend(ids)
    # the split lists go last and together (as the nuScenes writer's tables): a killed (re)write leaves the
    # former complete ImageSets or none, never a new train list beside an old val list
    with folder_swapped_in(root / "ImageSets") as partial:
        for split, ids in split_ids.items():
            (partial / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root
