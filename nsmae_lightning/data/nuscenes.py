"""nuScenes (real or synthetic) through nuscenes-devkit, as batches of the contract.

`setup()` reads the devkit tables once and keeps, per sample, plain dicts of paths,
calibrations, poses and boxes (in the keyframe LiDAR frame); the Dataset holds only
those, so workers never carry the NuScenes object.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from nuscenes.eval.detection.utils import category_to_detection_name
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.splits import get_scenes_of_split

from nsmae_lightning.constants import CAMERAS, DETECTION_CLASSES, PC_RANGE_NUSCENES
from nsmae_lightning.data.base import SensorDataModule, SensorDataset
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.labelled_subset import FrameKey
from nsmae_lightning.data.splits import SplitBy
from nsmae_lightning.data.geometry import pose_matrix, transform_points
from nsmae_lightning.data.map_raster import MapRasterizer
from nsmae_lightning.data.readers import read_image, read_points
from nsmae_lightning.data.transforms import ImageAugmentation, LidarAugmentation, RawSample, SampleTransform

LIDAR_CHANNEL = "LIDAR_TOP"
POINT_FILE_COLUMNS = 5  # x, y, z, intensity, ring


def load_nuscenes(dataroot: str | Path, version: str) -> NuScenes:
    """Open a nuScenes dataset, turning every devkit failure into a DataError.

    Raises:
        DataError: the root or version folder is missing, a table is missing or not JSON,
            or a table references a token that does not exist.
    """
    root = Path(dataroot)
    if not root.is_dir():
        raise DataError(root, "dataset root does not exist")
    if not (root / version).is_dir():
        raise DataError(root / version, f"version folder {version!r} not found in the dataset root")
    try:
        return NuScenes(version=version, dataroot=str(root), verbose=False)
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError) as error:
        # the devkit names neither the table nor the problem: find the table file that is not a JSON list
        # (only now, so a good dataset's large tables are parsed once)
        broken = broken_table(root / version)
        if broken is not None:
            raise broken from error
        if isinstance(error, KeyError):
            raise DataError(root / version, f"a table {missing_key(error)}") from error
        raise DataError(root / version, f"cannot read the tables: {type(error).__name__}: {error}") from error


def missing_key(error: KeyError) -> str:
    """What a devkit KeyError means, in words: a record without a field, or a reference to a missing token."""
    key = str(error.args[0]) if error.args else ""
    if re.fullmatch(r"[a-z_]+", key):  # field names are lowercase words; tokens carry digits or dashes
        return f"record lacks the field {key!r}"
    return f"references the missing token {key!r}"


# the tables the devkit's NuScenes() reads, each a JSON list of records
DEVKIT_TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
                 "scene", "sample", "sample_data", "sample_annotation", "map")


def broken_table(folder: Path) -> DataError | None:
    """A DataError naming the first devkit table of ``folder`` that is missing, not JSON or not a list of
    records, or None if every one parses."""
    for name in DEVKIT_TABLES:
        path = folder / f"{name}.json"
        if not path.is_file():
            return DataError(path, "table file not found")
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return DataError(path, f"table is not valid JSON ({error})")
        if not isinstance(document, list) or not all(isinstance(record, dict) for record in document):
            return DataError(path, f"a table is a JSON list of records, got {type(document).__name__}")
    return None


def get_record(nusc: NuScenes, table: str, token: str) -> dict[str, Any]:
    """`nusc.get` that names the missing token and table instead of raising a bare KeyError."""
    try:
        return nusc.get(table, token)
    except KeyError as error:
        raise DataError(token, f"token referenced but not found in table {table!r}") from error


def split_scenes(nusc: NuScenes, split: str) -> list[dict[str, Any]]:
    """The scene records of a devkit split (official, or custom from `<version>/splits.json`)."""
    try:
        names = set(get_scenes_of_split(split, nusc))
    except ValueError as error:
        raise DataError(Path(nusc.dataroot) / nusc.version / "splits.json", str(error)) from error
    scenes = [scene for scene in nusc.scene if scene["name"] in names]
    if not scenes:
        raise DataError(Path(nusc.dataroot) / nusc.version, f"split {split!r} has no scene in this dataset")
    return scenes


def sensor_to_global(nusc: NuScenes, sample_data: dict[str, Any]) -> np.ndarray:
    """4x4 sensor -> global of a sample_data record, through the ego pose at its timestamp."""
    calibration = get_record(nusc, "calibrated_sensor", sample_data["calibrated_sensor_token"])
    ego_pose = get_record(nusc, "ego_pose", sample_data["ego_pose_token"])
    return pose_matrix(ego_pose["rotation"], ego_pose["translation"]) @ pose_matrix(
        calibration["rotation"], calibration["translation"]
    )


def lidar_sweeps(nusc: NuScenes, keyframe: dict[str, Any], global2lidar: np.ndarray, count: int) -> list[dict]:
    """Up to `count` previous LiDAR sweeps: path, sweep -> keyframe LiDAR transform, dt (s)."""
    sweeps: list[dict[str, Any]] = []
    current = keyframe
    while len(sweeps) < count and current["prev"]:
        current = get_record(nusc, "sample_data", current["prev"])
        sweeps.append(
            {
                "path": str(Path(nusc.dataroot) / current["filename"]),
                "sweep2lidar": global2lidar @ sensor_to_global(nusc, current),
                "dt": (keyframe["timestamp"] - current["timestamp"]) / 1e6,
            }
        )
    return sweeps


def lidar_frame_boxes(
    nusc: NuScenes, sample: dict[str, Any], global2lidar: np.ndarray, min_lidar_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Detection-class boxes of a sample in the keyframe LiDAR frame.

    Returns:
        float32 (M, 9) x, y, z, l, w, h, yaw, vx, vy and int64 (M,) DETECTION_CLASSES labels;
        annotations of other categories or with fewer than `min_lidar_points` are dropped.
    """
    rows: list[list[float]] = []
    labels: list[int] = []
    rotation = global2lidar[:3, :3]
    for annotation_token in sample["anns"]:
        annotation = get_record(nusc, "sample_annotation", annotation_token)
        name = category_to_detection_name(annotation["category_name"])
        if name is None or annotation["num_lidar_pts"] < min_lidar_points:
            continue
        try:
            box = nusc.get_box(annotation_token)
            global_velocity = nusc.box_velocity(annotation_token)
        except KeyError as error:
            raise DataError(annotation_token, f"annotation (or a record it links to) {missing_key(error)}") from error
        centre = transform_points(global2lidar, np.asarray(box.center, dtype=np.float64)[None])[0]
        box_rotation = rotation @ box.rotation_matrix
        velocity = rotation @ np.nan_to_num(global_velocity, nan=0.0)
        width, length, height = box.wlh
        yaw = np.arctan2(box_rotation[1, 0], box_rotation[0, 0])
        rows.append([*centre, length, width, height, yaw, velocity[0], velocity[1]])
        labels.append(DETECTION_CLASSES.index(name))
    return np.asarray(rows, dtype=np.float32).reshape(-1, 9), np.asarray(labels, dtype=np.int64)


def sample_info(
    nusc: NuScenes, sample: dict[str, Any], cameras: tuple[str, ...], sweeps: int, min_lidar_points: int
) -> dict[str, Any]:
    """Everything the Dataset needs about one keyframe, as plain values and arrays."""
    for channel in (LIDAR_CHANNEL, *cameras):
        if channel not in sample["data"]:
            raise DataError(sample["token"], f"sample has no {channel} sample_data")
    lidar = get_record(nusc, "sample_data", sample["data"][LIDAR_CHANNEL])
    lidar_calibration = get_record(nusc, "calibrated_sensor", lidar["calibrated_sensor_token"])
    lidar_pose = get_record(nusc, "ego_pose", lidar["ego_pose_token"])
    lidar2ego = pose_matrix(lidar_calibration["rotation"], lidar_calibration["translation"])
    ego2global = pose_matrix(lidar_pose["rotation"], lidar_pose["translation"])
    lidar2global = ego2global @ lidar2ego
    global2lidar = np.linalg.inv(lidar2global)
    camera_records = [get_record(nusc, "sample_data", sample["data"][channel]) for channel in cameras]
    scene = get_record(nusc, "scene", sample["scene_token"])
    log = get_record(nusc, "log", scene["log_token"])
    boxes, labels = lidar_frame_boxes(nusc, sample, global2lidar, min_lidar_points)
    return {
        "sample_token": sample["token"],
        "scene_token": sample["scene_token"],
        "timestamp": sample["timestamp"],
        "location": log["location"],
        "lidar_path": str(Path(nusc.dataroot) / lidar["filename"]),
        "lidar2ego": lidar2ego,
        "ego2global": ego2global,
        "lidar2global": lidar2global,
        "sweeps": lidar_sweeps(nusc, lidar, global2lidar, sweeps),
        "image_paths": [str(Path(nusc.dataroot) / record["filename"]) for record in camera_records],
        "image_sizes": [(record["width"], record["height"]) for record in camera_records],
        "intrinsics": np.stack(
            [
                np.asarray(get_record(nusc, "calibrated_sensor", record["calibrated_sensor_token"])["camera_intrinsic"])
                for record in camera_records
            ]
        ).reshape(-1, 3, 3),
        "cam2lidar": np.stack([global2lidar @ sensor_to_global(nusc, record) for record in camera_records]).reshape(
            -1, 4, 4
        ),
        "boxes": boxes,
        "labels": labels,
    }


def read_lidar(info: dict[str, Any]) -> np.ndarray:
    """Keyframe + sweeps, motion-compensated into the keyframe LiDAR frame: float32 (P, 5)."""
    clouds = []
    for path, sweep2lidar, dt in [(info["lidar_path"], np.eye(4), 0.0)] + [
        (sweep["path"], sweep["sweep2lidar"], sweep["dt"]) for sweep in info["sweeps"]
    ]:
        points = read_points(path, POINT_FILE_COLUMNS)
        points[:, :3] = transform_points(sweep2lidar, points[:, :3])
        points[:, 4] = dt  # the ring column becomes dt
        clouds.append(points)
    return np.concatenate(clouds)


class NuScenesDataset(SensorDataset):
    """Contract samples of prebuilt nuScenes sample infos (see `sample_info`).

    Args:
        infos: one dict per keyframe.
        transform: augmentation and tensorisation.
        rasterizer: BEV map rasterizer, or None for no `bev_masks`.
        load_images: read the JPEGs (else no `images` key).
        skip_bad_samples: see SensorDataset.
        num_workers: see SensorDataset.
    """

    def __init__(
        self,
        infos: list[dict[str, Any]],
        transform: SampleTransform,
        rasterizer: MapRasterizer | None,
        load_images: bool,
        skip_bad_samples: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(transform, skip_bad_samples, num_workers)
        self.infos = infos
        self.rasterizer = rasterizer
        self.load_images = load_images

    def __len__(self) -> int:
        """Number of keyframes."""
        return len(self.infos)

    def frame_keys(self) -> list[FrameKey]:
        """Sample token, scene token and timestamp of every keyframe."""
        return [FrameKey(info["sample_token"], info["scene_token"], int(info["timestamp"])) for info in self.infos]

    def box_labels(self, index: int) -> np.ndarray:
        """Class ids of the keyframe's boxes (from the prebuilt infos)."""
        return self.infos[index]["labels"]

    def load_raw(self, index: int) -> RawSample:
        """Read the point clouds and images of keyframe `index`."""
        info = self.infos[index]
        meta_keys = ("sample_token", "scene_token", "timestamp", "location", "lidar2ego", "ego2global")
        images = [read_image(path) for path in info["image_paths"]] if self.load_images else None
        for path, image, (width, height) in zip(info["image_paths"], images or [], info["image_sizes"]):
            # the crops are planned at the table's size (the intrinsics'); a scaled copy is resized back to it,
            # but another aspect ratio (a cropped copy) would put every pixel somewhere else
            if abs(image.width * height - image.height * width) > 0.01 * width * height:
                raise DataError(path, f"image is {image.width}x{image.height}, sample_data says {width}x{height}: "
                                      "another aspect ratio than the calibrated camera's")
        return RawSample(
            images=images,
            image_sizes=info["image_sizes"],
            intrinsics=info["intrinsics"],
            cam2lidar=info["cam2lidar"],
            points=read_lidar(info),
            boxes=info["boxes"],
            labels=info["labels"],
            meta={
                **{key: info[key] for key in meta_keys},
                "lidar2global": info["lidar2global"],
                "image_paths": info["image_paths"],
            },
            bev_masks=None
            if self.rasterizer is None
            else partial(self.rasterizer, info["location"], info["lidar2global"]),
        )


class NuScenesDataModule(SensorDataModule):
    """nuScenes-format data (real or the synthetic world) as contract batches.

    Args:
        dataroot: dataset root (holding `<version>/`, `samples/`, `sweeps/`, `maps/`).
        version: table folder, e.g. "v1.0-trainval" or "v1.0-mini".
        train_split: devkit split name ("train", "mini_train", or a key of `splits.json`).
        val_split: split for validation.
        test_split: split for test and predict.
        sweeps: previous LiDAR sweeps per keyframe (0 = keyframe only; the paper uses 1 or 9).
        cameras: camera channels, in batch order.
        image_size: (H, W) of the batch images.
        image_aug: image augmentation ranges (train).
        lidar_aug: global LiDAR augmentation ranges (train).
        augment: augment the training split (False gives it the test-time transform).
        point_cloud_range: points (and box centres in x/y) outside are dropped.
        min_lidar_points: drop annotations with fewer LiDAR points (`num_lidar_pts`).
        load_images: read camera images (else the batch has no `images`).
        load_bev_masks: rasterize the six BEV map masks.
        skip_bad_samples: log, count and skip bad training samples instead of raising.
        label_ratio: labelled fraction of the training split (see SensorDataModule).
        split_seed: seed of the labelled subset (not the training seed).
        split_by: "frame", "scene" or "interval".
        split_manifest: pin the labelled subset to an earlier run's `label_split.json`.
        repeat_labelled: repeat the subset to the full split's length (same steps as 100 %).
        cbgs: class-balanced resampling of the labelled frames (CBGS), off by default as in the paper.
        batch_size: samples per batch.
        num_workers: DataLoader workers.
        pin_memory: pin batch memory.
        persistent_workers: keep workers between epochs.
    """

    def __init__(
        self,
        dataroot: str,
        version: str = "v1.0-trainval",
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        sweeps: int = 9,
        cameras: tuple[str, ...] = CAMERAS,
        image_size: tuple[int, int] = (256, 704),
        image_aug: ImageAugmentation = ImageAugmentation(),
        lidar_aug: LidarAugmentation = LidarAugmentation(),
        augment: bool = True,
        point_cloud_range: tuple[float, float, float, float, float, float] = PC_RANGE_NUSCENES,
        min_lidar_points: int = 1,
        load_images: bool = True,
        load_bev_masks: bool = True,
        skip_bad_samples: bool = False,
        label_ratio: float = 1.0,
        split_seed: int = 0,
        split_by: SplitBy = "frame",
        split_manifest: str | None = None,
        repeat_labelled: bool = True,
        cbgs: bool = False,
        batch_size: int = 4,
        num_workers: int = 4,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(
            train_split=train_split,
            val_split=val_split,
            test_split=test_split,
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            skip_bad_samples=skip_bad_samples,
            label_ratio=label_ratio,
            split_seed=split_seed,
            split_by=split_by,
            split_manifest=split_manifest,
            repeat_labelled=repeat_labelled,
            cbgs=cbgs,
        )
        self.save_hyperparameters()
        if sweeps < 0:
            raise ValueError(f"sweeps must be >= 0, got {sweeps}")
        unknown_cameras = sorted(set(cameras) - set(CAMERAS))
        if unknown_cameras:
            raise ValueError(f"unknown cameras {unknown_cameras}; expected names from {CAMERAS}")
        self.dataroot = dataroot
        self.version = version
        self.sweeps = sweeps
        self.cameras = tuple(cameras)
        self.image_size = tuple(image_size)
        self.image_aug = image_aug
        self.lidar_aug = lidar_aug
        self.augment = augment
        self.point_cloud_range = tuple(point_cloud_range)
        self.min_lidar_points = min_lidar_points
        self.load_images = load_images
        self.load_bev_masks = load_bev_masks
        self._nusc: NuScenes | None = None
        self._split_infos: dict[str, list[dict[str, Any]]] = {}

    def split_infos(self, split: str) -> list[dict[str, Any]]:
        """Per-keyframe infos of a split (built from the devkit once, then cached)."""
        if split not in self._split_infos:
            if self._nusc is None:
                self._nusc = load_nuscenes(self.dataroot, self.version)
            nusc = self._nusc
            infos = []
            for scene in split_scenes(nusc, split):
                sample_token = scene["first_sample_token"]
                while sample_token:
                    sample = get_record(nusc, "sample", sample_token)
                    infos.append(sample_info(nusc, sample, self.cameras, self.sweeps, self.min_lidar_points))
                    sample_token = sample["next"]
            self._split_infos[split] = infos
        return self._split_infos[split]

    def make_dataset(self, split: str, train: bool) -> NuScenesDataset:
        """The dataset of a split, augmented when `train` (and `augment`)."""
        infos = self.split_infos(split)
        rasterizer = MapRasterizer(self.dataroot) if self.load_bev_masks else None
        if rasterizer is not None:
            for location in sorted({info["location"] for info in infos}):
                rasterizer.check_location(location)
        transform = SampleTransform(
            image_size=self.image_size,
            image_aug=self.image_aug,
            lidar_aug=self.lidar_aug,
            point_cloud_range=self.point_cloud_range,
            train=train and self.augment,
        )
        return NuScenesDataset(
            infos,
            transform,
            rasterizer,
            self.load_images,
            skip_bad_samples=train and self.skip_bad_samples,
            num_workers=self.num_workers,
        )

    def setup(self, stage: str) -> None:
        """Build the stage's datasets, then release the devkit tables."""
        super().setup(stage)
        self._nusc = None
