"""KITTI object detection (`training/{calib,image_2,velodyne,label_2}` + `ImageSets/`) as
contract batches with one camera (image_2).

The velodyne frame is the LiDAR frame. `cam2lidar` inverts `T2 @ R0_rect @ Tr_velo_to_cam`,
where T2 is the offset of camera 2 from the rectified camera 0 encoded in P2, so that
`K2 @ inv(cam2lidar) @ p` equals `P2 @ R0_rect @ Tr_velo_to_cam @ p`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import rank_zero_info

from nsmae_lightning.constants import (
    KITTI_CLASSES,
    KITTI_MAX_OCCLUSION,
    KITTI_MAX_TRUNCATION,
    KITTI_MIN_HEIGHT,
    KITTI_OTHER_TYPES,
)
from nsmae_lightning.data.base import SensorDataModule, SensorDataset
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.gt_sampler import DatabaseFrame, GTDatabase, GTSampler, GTSamplerConfig
from nsmae_lightning.data.kitti_boxes import camera_to_lidar_boxes
from nsmae_lightning.data.labelled_subset import FrameKey, LabelledSplit
from nsmae_lightning.data.splits import SplitBy
from nsmae_lightning.data.readers import read_image, read_image_size, read_points, read_text_file
from nsmae_lightning.data.transforms import (
    ImageAugmentation,
    LidarAugmentation,
    RawSample,
    SampleTransform,
    points_in_boxes,
)

PC_RANGE_KITTI: tuple[float, float, float, float, float, float] = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)
VELODYNE_COLUMNS = 4  # x, y, z, reflectance (0..1)
LABEL_FIELDS = 15  # a label_2 line; detection files add a score

log = logging.getLogger(__name__)


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """Parse a KITTI calib file.

    Returns:
        `intrinsics` (3, 3) and `cam2lidar` (4, 4) of camera 2, and `rect2lidar` (4, 4)
        mapping camera-rect coordinates (where label_2 lives) into the velodyne frame.

    Raises:
        DataError: the file is missing, or P2 / R0_rect / Tr_velo_to_cam are absent or malformed.
    """
    values: dict[str, np.ndarray] = {}
    for line in read_text_file(path, "calibration file").splitlines():
        if ":" in line:
            key, numbers = line.split(":", 1)
            try:
                values[key.strip()] = np.array([float(number) for number in numbers.split()])
            except ValueError as error:
                raise DataError(path, f"non-numeric value in {key.strip()}: {error}") from error
            if not np.isfinite(values[key.strip()]).all():
                raise DataError(path, f"non-finite value in {key.strip()}")
    for key, size in (("P2", 12), ("R0_rect", 9), ("Tr_velo_to_cam", 12)):
        if key not in values or values[key].size != size:
            raise DataError(path, f"{key} missing or not {size} numbers")
    projection = values["P2"].reshape(3, 4)
    intrinsics = projection[:, :3]
    rect = np.eye(4)
    rect[:3, :3] = values["R0_rect"].reshape(3, 3)
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :] = values["Tr_velo_to_cam"].reshape(3, 4)
    camera_offset = np.eye(4)
    try:
        camera_offset[:3, 3] = np.linalg.solve(intrinsics, projection[:, 3])
        lidar2cam = camera_offset @ rect @ velo_to_cam
        return {
            "intrinsics": intrinsics,
            "cam2lidar": np.linalg.inv(lidar2cam),
            "rect2lidar": np.linalg.inv(rect @ velo_to_cam),
        }
    except np.linalg.LinAlgError as error:
        raise DataError(path, f"singular calibration ({error}): P2's 3x3 part, R0_rect or Tr_velo_to_cam "
                              "cannot be inverted") from error


@dataclass(frozen=True)
class KittiObjects:
    """The 3D-labelled objects of one label_2 file (DontCare regions left out), LiDAR frame.

    Attributes:
        names: (M,) KITTI types ("Car", "Van", "Pedestrian", ...).
        boxes: float32 (M, 9) boxes (velocity 0).
        difficulty: int64 (M,) 0 easy, 1 moderate, 2 hard, -1 none of them.
    """

    names: np.ndarray
    boxes: np.ndarray
    difficulty: np.ndarray

    def of_types(self, types: tuple[str, ...]) -> np.ndarray:
        """(M,) bool: objects whose type is one of ``types``."""
        return np.isin(self.names, types)

    def targets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The detection targets: boxes (T, 9), KITTI_CLASSES labels (T,) and difficulty (T,)."""
        mask = self.of_types(KITTI_CLASSES)
        labels = np.array([KITTI_CLASSES.index(name) for name in self.names[mask]], dtype=np.int64)
        return self.boxes[mask], labels, self.difficulty[mask]


def label_difficulty(height_px: np.ndarray, occluded: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """KITTI difficulty per object: the first level (easy, moderate, hard) whose limits it meets, else -1."""
    difficulty = np.full(len(height_px), -1, dtype=np.int64)
    for level in reversed(range(len(KITTI_MIN_HEIGHT))):
        meets = (
            (height_px >= KITTI_MIN_HEIGHT[level])
            & (occluded <= KITTI_MAX_OCCLUSION[level])
            & (truncated <= KITTI_MAX_TRUNCATION[level])
        )
        difficulty[meets] = level
    return difficulty


def read_objects(path: Path, rect2lidar: np.ndarray) -> KittiObjects:
    """Every 3D-labelled object of a label_2 file, as LiDAR-frame boxes with their difficulty.

    Raises:
        DataError: the file is missing, or a line has the wrong number of fields or a
            non-numeric value (naming the line).
    """
    names: list[str] = []
    rows: list[list[float]] = []
    for line_number, line in enumerate(read_text_file(path, "label file").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (LABEL_FIELDS, LABEL_FIELDS + 1):
            raise DataError(path, f"line {line_number} has {len(fields)} fields, expected {LABEL_FIELDS}")
        if fields[0] == "DontCare":
            continue
        try:
            rows.append([float(value) for value in fields[1:LABEL_FIELDS]])
        except ValueError as error:
            raise DataError(path, f"line {line_number}: non-numeric field ({error})") from error
        if not np.isfinite(rows[-1]).all():  # as the evaluation's reader: a nan box would train as a target
            raise DataError(path, f"line {line_number}: non-finite field")
        names.append(fields[0])
    values = np.asarray(rows, dtype=np.float64).reshape(-1, LABEL_FIELDS - 1)
    boxes = camera_to_lidar_boxes(values[:, 7:10], values[:, 10:13], values[:, 13], rect2lidar)
    return KittiObjects(
        names=np.asarray(names, dtype=str),
        boxes=boxes.astype(np.float32),
        difficulty=label_difficulty(values[:, 6] - values[:, 4], values[:, 1], values[:, 0]),
    )


def read_labels(path: Path, rect2lidar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KITTI_CLASSES boxes of a label_2 file in the LiDAR frame.

    Returns:
        float32 (M, 9) boxes (velocity 0) and int64 (M,) KITTI_CLASSES labels.
    """
    boxes, labels, _ = read_objects(path, rect2lidar).targets()
    return boxes, labels


def read_split(root: Path, split: str) -> list[str]:
    """Frame ids listed in `ImageSets/<split>.txt`."""
    path = root / "ImageSets" / f"{split}.txt"
    if not path.is_file():
        raise DataError(path, f"split file for {split!r} not found")
    frame_ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not frame_ids:
        raise DataError(path, "split file lists no frames")
    return frame_ids


def image_path(training: Path, frame_id: str) -> Path:
    """The image_2 file of a frame (KITTI ships PNG; JPEG accepted)."""
    png = training / "image_2" / f"{frame_id}.png"
    jpeg = training / "image_2" / f"{frame_id}.jpg"
    return jpeg if not png.is_file() and jpeg.is_file() else png


class KittiDataset(SensorDataset):
    """Contract samples of KITTI frames.

    Args:
        root: KITTI root (with `training/`).
        frame_ids: frames of the split.
        transform: augmentation and tensorisation.
        min_lidar_points: boxes holding fewer velodyne points are no targets (they stay
            obstacles for object pasting).
        load_images: read image_2 (else no `images` key).
        skip_bad_samples: see SensorDataset.
        num_workers: see SensorDataset.
    """

    def __init__(
        self,
        root: Path,
        frame_ids: list[str],
        transform: SampleTransform,
        min_lidar_points: int,
        load_images: bool,
        skip_bad_samples: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(transform, skip_bad_samples, num_workers)
        self.training = root / "training"
        self.frame_ids = frame_ids
        self.min_lidar_points = min_lidar_points
        self.load_images = load_images

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.frame_ids)

    def frame_keys(self) -> list[FrameKey]:
        """Frame ids; KITTI object frames carry no drive, and their ids order them in time."""
        time_order = {frame_id: rank for rank, frame_id in enumerate(sorted(self.frame_ids))}
        return [FrameKey(frame_id, "", time_order[frame_id]) for frame_id in self.frame_ids]

    def read_annotations(self, frame_id: str) -> tuple[dict[str, np.ndarray], KittiObjects]:
        """Calibration and objects of a frame (its label file in the LiDAR frame), without the points."""
        calib = read_calib(self.training / "calib" / f"{frame_id}.txt")
        return calib, read_objects(self.training / "label_2" / f"{frame_id}.txt", calib["rect2lidar"])

    def read_frame(self, frame_id: str) -> tuple[dict[str, np.ndarray], np.ndarray, KittiObjects]:
        """Calibration, float32 (P, 5) points (x, y, z, intensity 0..255, dt 0) and objects of a frame."""
        calib, objects = self.read_annotations(frame_id)
        points = read_points(self.training / "velodyne" / f"{frame_id}.bin", VELODYNE_COLUMNS)
        # (P, 4) -> (P, 5): reflectance 0..1 -> intensity 0..255, dt = 0 (single scan).
        points = np.concatenate([points[:, :3], points[:, 3:4] * 255.0, np.zeros_like(points[:, :1])], axis=1)
        return calib, points.astype(np.float32), objects

    def database_frames(self, frame_ids: list[str]) -> Iterator[DatabaseFrame]:
        """Each of ``frame_ids`` once, with its target objects, for the GT database.

        With `skip_bad_samples`, a frame that cannot be read is logged and left out.
        """
        for frame_id in sorted(set(frame_ids)):
            try:
                _, points, objects = self.read_frame(frame_id)
            except DataError as error:
                if not self.skip_bad_samples:
                    raise
                log.warning("GT database: skipping frame %s: %s", frame_id, error)
                continue
            yield DatabaseFrame(frame_id, points, *objects.targets())

    def box_labels(self, index: int) -> np.ndarray:
        """Class ids of the frame's target objects, from its label file (before the min-points filter)."""
        return self.read_annotations(self.frame_ids[index])[1].targets()[1]

    def load_raw(self, index: int) -> RawSample:
        """Read calibration, velodyne, labels and image of frame `index`."""
        frame_id = self.frame_ids[index]
        calib, points, objects = self.read_frame(frame_id)
        boxes, labels, _ = objects.targets()
        keep = points_in_boxes(points[:, :3], boxes).sum(axis=0) >= self.min_lidar_points
        obstacles = np.concatenate([boxes[~keep], objects.boxes[objects.of_types(KITTI_OTHER_TYPES)]])
        path = image_path(self.training, frame_id)
        images = [read_image(path)] if self.load_images else None
        identity = np.eye(4)
        return RawSample(
            images=images,
            image_sizes=[images[0].size if images else read_image_size(path)],
            intrinsics=calib["intrinsics"][None],
            cam2lidar=calib["cam2lidar"][None],
            points=points,
            boxes=boxes[keep],
            labels=labels[keep],
            meta={
                "sample_token": frame_id,
                "scene_token": "",
                "timestamp": 0,
                "location": "",
                "lidar2ego": identity,
                "ego2global": identity,
                "lidar2global": identity,
                "image_paths": [str(path)],
            },
            obstacle_boxes=obstacles,
        )


class KittiDataModule(SensorDataModule):
    """KITTI object detection as contract batches (N = 1 camera, no `bev_masks`).

    Args:
        dataroot: KITTI root holding `training/` and `ImageSets/`.
        train_split: ImageSets file name for training.
        val_split: ImageSets file name for validation.
        test_split: ImageSets file name for test and predict.
        image_size: (H, W) of the batch images.
        image_aug: image augmentation ranges (train); the default factors keep KITTI's
            wide 1242x375 images at least `image_size` high after resize.
        lidar_aug: global LiDAR augmentation ranges (train); the default is OpenPCDet's KITTI
            recipe (rotation +-45 deg, scale 0.95..1.05, flips of y only: the range is forward-only).
        augment: augment the training split.
        gt_sampler: GT-database sampling ("DB" of Table IV) for training, or None; the
            database holds only the objects of the labelled training frames.
        point_cloud_range: points (and box centres in x/y) outside are dropped.
        min_lidar_points: drop boxes holding fewer velodyne points.
        load_images: read image_2.
        skip_bad_samples: log, count and skip bad training samples instead of raising.
        label_ratio: labelled fraction of the training split (see SensorDataModule).
        split_seed: seed of the labelled subset (not the training seed).
        split_by: "frame" or "interval" (KITTI object frames have no scenes).
        split_manifest: pin the labelled subset to an earlier run's `label_split.json`.
        repeat_labelled: repeat the subset to the full split's length (same steps as 100 %).
        cbgs: class-balanced resampling of the labelled frames (CBGS), off by default.
        batch_size: samples per batch.
        num_workers: DataLoader workers.
        pin_memory: pin batch memory.
        persistent_workers: keep workers between epochs.
    """

    def __init__(
        self,
        dataroot: str,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        image_size: tuple[int, int] = (256, 832),
        image_aug: ImageAugmentation = ImageAugmentation(resize_range=(1.02, 1.3), test_resize=1.1),
        lidar_aug: LidarAugmentation = LidarAugmentation(
            rotation_range=(-0.785, 0.785), scale_range=(0.95, 1.05), translation_std=0.0, flip_axes=("y",)
        ),
        augment: bool = True,
        gt_sampler: GTSamplerConfig | None = None,
        point_cloud_range: tuple[float, float, float, float, float, float] = PC_RANGE_KITTI,
        min_lidar_points: int = 1,
        load_images: bool = True,
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
        if gt_sampler is not None:
            gt_sampler.check_classes(KITTI_CLASSES)
        self.dataroot = Path(dataroot)
        self.image_size = tuple(image_size)
        self.image_aug = image_aug
        self.lidar_aug = lidar_aug
        self.augment = augment
        self.gt_sampler = gt_sampler
        self.point_cloud_range = tuple(point_cloud_range)
        self.min_lidar_points = min_lidar_points
        self.load_images = load_images
        self.gt_database: GTDatabase | None = None

    def make_dataset(self, split: str, train: bool) -> KittiDataset:
        """The dataset of an ImageSets split, augmented when `train` (and `augment`)."""
        if not self.dataroot.is_dir():
            raise DataError(self.dataroot, "dataset root does not exist")
        if not (self.dataroot / "training").is_dir():
            raise DataError(self.dataroot / "training", "KITTI training folder not found")
        return KittiDataset(
            self.dataroot,
            read_split(self.dataroot, split),
            self._transform(train, None),
            self.min_lidar_points,
            self.load_images,
            skip_bad_samples=train and self.skip_bad_samples,
            num_workers=self.num_workers,
        )

    def on_labelled_split(self, dataset: SensorDataset, split: LabelledSplit) -> None:
        """With DB sampling, build the GT database from the labelled training frames only."""
        if not (self.augment and self.gt_sampler is not None and isinstance(dataset, KittiDataset)):
            return
        self.gt_database = GTDatabase.build(dataset.database_frames(split.tokens), KITTI_CLASSES, self.gt_sampler)
        rank_zero_info(f"GT database of the labelled training frames: {self.gt_database.summary(KITTI_CLASSES)}")
        dataset.transform = self._transform(True, GTSampler(self.gt_database, self.gt_sampler, KITTI_CLASSES))

    def _transform(self, train: bool, gt_sampler: GTSampler | None) -> SampleTransform:
        """The sample transform of a split (augmented when `train` and `augment`)."""
        return SampleTransform(
            image_size=self.image_size,
            image_aug=self.image_aug,
            lidar_aug=self.lidar_aug,
            point_cloud_range=self.point_cloud_range,
            train=train and self.augment,
            gt_sampler=gt_sampler,
        )
