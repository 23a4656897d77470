"""Write the world as a genuine nuScenes dataset (tables, maps, LiDAR sweeps, camera JPEGs).

The result loads with ``nuscenes.NuScenes``, ``NuScenesMap`` and the detection
evaluation unmodified: scene names come from the devkit's official train / val
lists, categories and attributes are real nuScenes names, and every annotation
carries ``num_lidar_pts`` counted from its keyframe's points.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nsmae_lightning.atomic import folder_swapped_in
from nsmae_lightning.constants import CAMERAS
from nsmae_lightning.data.world import classes as cls
from nsmae_lightning.data.world.config import WorldConfig
from nsmae_lightning.data.world.frames import camera_at, lidar_at, points_in_objects, to_global
from nsmae_lightning.data.world.layout import RASTER_RESOLUTION, rasterise
from nsmae_lightning.data.world.map_expansion import expansion_json
from nsmae_lightning.data.world.rig import (
    CAMERA_MOUNTS,
    camera_intrinsics,
    camera_to_ego,
    lidar_to_ego,
    rotation_quaternion,
    yaw_quaternion,
)
from nsmae_lightning.data.world.scene import KEYFRAME_INTERVAL, LocationWorld, ScenePlan, plan_world
from nsmae_lightning.data.world.tokens import make_token

TABLES: tuple[str, ...] = (
    "attribute",
    "calibrated_sensor",
    "category",
    "ego_pose",
    "instance",
    "log",
    "map",
    "sample",
    "sample_annotation",
    "sample_data",
    "scene",
    "sensor",
    "visibility",
)
JPEG_QUALITY = 92
ANNOTATION_RADIUS = 70.0  # objects farther from the ego than this are not annotated


def write_json(path: Path, document: Any) -> None:
    """Write JSON with sorted keys and a fixed layout, so equal content gives equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, sort_keys=True, indent=1) + "\n", encoding="utf-8")


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as JPEG with fixed encoder settings (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=2, optimize=False)


def log_name(plan: ScenePlan) -> str:
    """A nuScenes-style log name: vehicle, local date and time, UTC offset."""
    boston = plan.location.startswith("boston")
    offset = timedelta(hours=-4 if boston else 8)
    local = datetime.fromtimestamp(plan.start_us / 1e6, tz=timezone(offset))
    vehicle = "n008" if boston else "n015"
    return f"{vehicle}-{local.strftime('%Y-%m-%d-%H-%M-%S%z')}"


def _pose_record(token: str, timestamp: int, matrix: np.ndarray) -> dict[str, Any]:
    """An ego_pose record from a 4x4 ego -> global transform."""
    return {
        "token": token,
        "timestamp": timestamp,
        "rotation": rotation_quaternion(matrix[:3, :3]),
        "translation": [float(v) for v in matrix[:3, 3]],
    }


class _Tables:
    """Accumulates the 13 tables; links prev/next of sample_data per channel."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}

    def add(self, table: str, record: dict[str, Any]) -> None:
        self.rows[table].append(record)

    def link(self, table: str, records: list[dict[str, Any]]) -> None:
        """Fill prev/next of consecutive records."""
        for i, record in enumerate(records):
            record["prev"] = records[i - 1]["token"] if i > 0 else ""
            record["next"] = records[i + 1]["token"] if i + 1 < len(records) else ""


def _static_tables(tables: _Tables, seed: int) -> None:
    """sensor, category, attribute and visibility tables."""
    for channel in ("LIDAR_TOP", *CAMERAS):
        modality = "lidar" if channel == "LIDAR_TOP" else "camera"
        tables.add("sensor", {"token": make_token(seed, "sensor", channel), "channel": channel, "modality": modality})
    for index, (name, description) in enumerate(sorted(cls.CATEGORY_DESCRIPTIONS.items())):
        tables.add(
            "category",
            {"token": make_token(seed, "category", name), "name": name, "description": description, "index": index},
        )
    for name, description in sorted(cls.ATTRIBUTE_DESCRIPTIONS.items()):
        tables.add("attribute", {"token": make_token(seed, "attribute", name), "name": name, "description": description})
    for token, level, description in cls.VISIBILITY_LEVELS:
        tables.add("visibility", {"token": token, "level": level, "description": description})


def _write_maps(root: Path, tables: _Tables, worlds: dict[str, LocationWorld], plans: list[ScenePlan], seed: int) -> None:
    """Semantic-prior PNGs, the map table and the map expansion of every used location."""
    for location, world in worlds.items():
        token = make_token(seed, "map", location)
        filename = f"maps/{token}.png"
        mask = rasterise(world.layout.polygons["drivable_area"], world.layout.size, RASTER_RESOLUTION)
        path = root / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        # MapMask puts global +y up: image row 0 is the canvas' top edge
        Image.fromarray(np.ascontiguousarray(mask[::-1]) * 255).save(path, format="PNG")
        log_tokens = [make_token(seed, "log", p.index) for p in plans if p.location == location]
        tables.add("map", {"token": token, "log_tokens": log_tokens, "category": "semantic_prior", "filename": filename})
        write_json(root / "maps" / "expansion" / f"{location}.json", expansion_json(world.layout, seed))


def _write_scene(
    root: Path,
    tables: _Tables,
    plan: ScenePlan,
    world: LocationWorld,
    cfg: WorldConfig,
    on_frame: Callable[[], None] | None,
) -> None:
    """Sensor files and table records of one scene."""
    seed = cfg.seed
    log = log_name(plan)
    log_token = make_token(seed, "log", plan.index)
    scene_token = make_token(seed, "scene", plan.index)
    tables.add(
        "log",
        {
            "token": log_token,
            "logfile": log,
            "vehicle": log.split("-")[0],
            "date_captured": log[5:15],
            "location": plan.location,
        },
    )
    image_size = (cfg.image_height, cfg.image_width)
    calibration = {"LIDAR_TOP": (lidar_to_ego(), [])}
    for camera in CAMERAS:
        calibration[camera] = (camera_to_ego(camera), camera_intrinsics(camera, *image_size).tolist())
    calibration_tokens = {}
    for channel, (sensor2ego, intrinsic) in calibration.items():
        token = make_token(seed, "calibrated_sensor", plan.index, channel)
        calibration_tokens[channel] = token
        tables.add(
            "calibrated_sensor",
            {
                "token": token,
                "sensor_token": make_token(seed, "sensor", channel),
                "translation": [float(v) for v in sensor2ego[:3, 3]],
                "rotation": rotation_quaternion(sensor2ego[:3, :3]),
                "camera_intrinsic": intrinsic,
            },
        )

    sample_tokens = [make_token(seed, "sample", plan.index, k) for k in range(cfg.keyframes)]
    samples = [
        {"token": sample_tokens[k], "timestamp": plan.timestamp(k * KEYFRAME_INTERVAL), "scene_token": scene_token}
        for k in range(cfg.keyframes)
    ]
    tables.link("sample", samples)
    for sample in samples:
        tables.add("sample", sample)
    channel_records: dict[str, list[dict[str, Any]]] = {channel: [] for channel in calibration}
    annotations: dict[int, list[dict[str, Any]]] = {}

    def add_sample_data(channel: str, sample_k: int, time: float, sensor2ego: np.ndarray, key: bool, folder: str,
                        extension: str, size: tuple[int, int]) -> tuple[dict[str, Any], Path]:  # fmt: skip
        timestamp = plan.timestamp(time)
        token = make_token(seed, "sample_data", plan.index, channel, timestamp)
        pose_token = make_token(seed, "ego_pose", plan.index, channel, timestamp)
        tables.add("ego_pose", _pose_record(pose_token, timestamp, plan.ego2global(time)))
        filename = f"{folder}/{channel}/{log}__{channel}__{timestamp}.{extension}"
        record = {
            "token": token,
            "sample_token": sample_tokens[sample_k],
            "ego_pose_token": pose_token,
            "calibrated_sensor_token": calibration_tokens[channel],
            "timestamp": timestamp,
            "fileformat": "pcd" if channel == "LIDAR_TOP" else "jpg",
            "is_key_frame": key,
            "height": size[0],
            "width": size[1],
            "filename": filename,
        }
        channel_records[channel].append(record)
        return record, root / filename

    for k in range(cfg.keyframes):
        key_time = k * KEYFRAME_INTERVAL
        for sweep in range(cfg.sweeps, 0, -1):  # sweeps before the keyframe, oldest first
            time = key_time - sweep * KEYFRAME_INTERVAL / (cfg.sweeps + 1)
            points, _ = lidar_at(plan, world, cfg, time)
            _, path = add_sample_data("LIDAR_TOP", k, time, lidar_to_ego(), False, "sweeps", "pcd.bin", (0, 0))
            path.parent.mkdir(parents=True, exist_ok=True)
            points.tofile(path)
        points, lidar2global = lidar_at(plan, world, cfg, key_time)
        _, path = add_sample_data("LIDAR_TOP", k, key_time, lidar_to_ego(), True, "samples", "pcd.bin", (0, 0))
        path.parent.mkdir(parents=True, exist_ok=True)
        points.tofile(path)
        lidar_counts = points_in_objects(to_global(points, lidar2global), plan.objects, key_time)

        visible = np.zeros(len(plan.objects), np.int64)
        alone = np.zeros(len(plan.objects), np.int64)
        for camera in CAMERAS:
            time = key_time + CAMERA_MOUNTS[camera].time_offset
            image, _ = camera_at(plan, world, cfg, camera, calibration[camera][0],
                                 np.array(calibration[camera][1]), image_size, time)  # fmt: skip
            _, path = add_sample_data(camera, k, time, calibration[camera][0], True, "samples", "jpg", image_size)
            write_jpeg(path, image.rgb)
            visible += image.visible_pixels
            alone += image.alone_pixels

        ego_xy = plan.ego2global(key_time)[:2, 3]
        for index, obj in enumerate(plan.objects):
            centre = obj.centre(key_time)
            if np.hypot(*(centre[:2] - ego_xy)) > ANNOTATION_RADIUS or (lidar_counts[index] == 0 and visible[index] == 0):
                continue
            fraction = visible[index] / alone[index] if alone[index] > 0 else 0.0
            attribute_tokens = [make_token(seed, "attribute", obj.attribute)] if obj.attribute else []
            annotations.setdefault(index, []).append(
                {
                    "token": make_token(seed, "sample_annotation", plan.index, index, k),
                    "sample_token": sample_tokens[k],
                    "instance_token": make_token(seed, "instance", plan.index, index),
                    "visibility_token": cls.visibility_token(fraction),
                    "attribute_tokens": attribute_tokens,
                    "translation": [float(v) for v in centre],
                    "size": [float(obj.size[1]), float(obj.size[0]), float(obj.size[2])],  # w, l, h
                    "rotation": yaw_quaternion(obj.yaw),
                    "num_lidar_pts": int(lidar_counts[index]),
                    "num_radar_pts": 0,
                }
            )
        if on_frame is not None:
            on_frame()

    for records in channel_records.values():
        tables.link("sample_data", records)
        for record in records:
            tables.add("sample_data", record)
    for index, records in sorted(annotations.items()):
        tables.link("sample_annotation", records)
        for record in records:
            tables.add("sample_annotation", record)
        category = cls.OBJECT_CLASSES[plan.objects[index].class_name].category
        tables.add(
            "instance",
            {
                "token": make_token(seed, "instance", plan.index, index),
                "category_token": make_token(seed, "category", category),
                "nbr_annotations": len(records),
                "first_annotation_token": records[0]["token"],
                "last_annotation_token": records[-1]["token"],
            },
        )
    tables.add(
        "scene",
        {
            "token": scene_token,
            "log_token": log_token,
            "nbr_samples": cfg.keyframes,
            "first_sample_token": sample_tokens[0],
            "last_sample_token": sample_tokens[-1],
            "name": plan.name,
            "description": f"Synthetic {plan.location}: {plan.description}",
        },
    )


def _scene_rows(root: Path, plan: ScenePlan, world: LocationWorld, cfg: WorldConfig) -> dict[str, list[dict[str, Any]]]:
    """Write one scene's sensor files (in a worker process) and return its table rows."""
    tables = _Tables()
    _write_scene(root, tables, plan, world, cfg, None)
    return tables.rows


def write_nuscenes(
    out_dir: str | Path,
    cfg: WorldConfig,
    version: str = "v1.0-trainval",
    on_frame: Callable[[], None] | None = None,
    workers: int = 1,
) -> Path:
    """Generate the world and write it in nuScenes format.

    Args:
        out_dir: dataroot to write into (created if missing).
        cfg: world config.
        version: table folder name; ``v1.0-trainval`` makes the devkit's train/val splits apply.
        on_frame: called after each keyframe (progress reporting; per finished scene when workers > 1).
        workers: processes casting scenes in parallel (same bytes for any count).

    Returns:
        The dataroot.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    worlds, plans = plan_world(cfg)
    tables = _Tables()
    _static_tables(tables, cfg.seed)
    _write_maps(root, tables, worlds, plans, cfg.seed)
    if workers <= 1:
        for plan in plans:
            _write_scene(root, tables, plan, worlds[plan.location], cfg, on_frame)
    else:
        # Scenes draw from their own seeded generators, so they can be cast in any
        # process; their table rows are merged in plan order: the bytes do not depend on `workers`.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_scene_rows, root, plan, worlds[plan.location], cfg) for plan in plans]
            for future in futures:
                for name, rows in future.result().items():
                    tables.rows[name].extend(rows)
                for _ in range(cfg.keyframes if on_frame else 0):
                    on_frame()  # type: ignore[misc]
    # the tables go last and all at once, swapped in whole: a killed run leaves either no table folder or
    # a former complete one, never a mix of old and new tables
    with folder_swapped_in(root / version) as partial:
        for name, rows in tables.rows.items():
            write_json(partial / f"{name}.json", rows)
        write_json(
            partial / "splits.json",
            {"synth_train": [p.name for p in plans if p.split == "train"],
             "synth_val": [p.name for p in plans if p.split == "val"]},
        )
    return root

