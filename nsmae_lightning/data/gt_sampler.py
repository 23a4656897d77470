"""GT-database sampling ("DB", SECOND / OpenPCDet's ``gt_sampling``): paste labelled objects,
with their LiDAR points, from other frames into a training frame.

The database holds every object of the *labelled* training frames that passes the
filters (class, difficulty, minimum points), with the points inside its box in its
source frame's LiDAR coordinates. For a training sample the sampler draws a fixed
number of objects per class, keeps those whose bird's-eye-view footprint overlaps
neither an existing box (targets and other labelled objects alike) nor an object
already accepted (rotated BEV IoU must be exactly 0), removes the frame's own points
inside the accepted boxes and adds the objects' points. Objects keep the place they
had in their source frame, as OpenPCDet pastes them (KITTI's rig is fixed, so they
stay on the ground and in the camera's field of view).

The images are left as they are: pasted objects exist only in the point cloud, as in
OpenPCDet's LiDAR gt_sampling (image-consistent pasting is not done here).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from nsmae_lightning.data.transforms import RawSample, points_in_boxes
from nsmae_lightning.models.heads.nms import rotated_iou_bev


@dataclass(frozen=True)
class GTSamplerConfig:
    """What the database keeps and how many objects a frame receives (OpenPCDet's KITTI values).

    Attributes:
        sample_groups: objects drawn per frame and class (before the collision check).
        min_points: objects with fewer LiDAR points in their box stay out of the database.
        exclude_difficulties: KITTI difficulty levels kept out (-1: none of easy / moderate / hard).
        limit_whole_scene: draw ``sample_groups[class]`` minus the frame's own objects of the class.
    """

    sample_groups: dict[str, int] = field(default_factory=lambda: {"Car": 15, "Pedestrian": 10, "Cyclist": 10})
    min_points: dict[str, int] = field(default_factory=lambda: {"Car": 5, "Pedestrian": 5, "Cyclist": 5})
    exclude_difficulties: tuple[int, ...] = (-1,)
    limit_whole_scene: bool = False

    def check_classes(self, class_names: Sequence[str]) -> None:
        """Refuse class names (a YAML typo) that the dataset does not label."""
        for setting in ("sample_groups", "min_points"):
            unknown = sorted(set(getattr(self, setting)) - set(class_names))
            if unknown:
                raise ValueError(
                    f"GTSamplerConfig.{setting} names unknown classes {unknown}; expected {list(class_names)}"
                )
        negative = {name: count for name, count in self.sample_groups.items() if count < 0}
        if negative:
            raise ValueError(f"GTSamplerConfig.sample_groups must not be negative, got {negative}")


class DatabaseFrame(NamedTuple):
    """One labelled frame offered to the database.

    Attributes:
        frame_id: the frame's id (recorded per object).
        points: float32 (P, 5) LiDAR points.
        boxes: (M, 9) LiDAR-frame boxes of the target classes.
        labels: (M,) int64 class indices.
        difficulty: (M,) int64 KITTI difficulty (0 easy, 1 moderate, 2 hard, -1 none).
    """

    frame_id: str
    points: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficulty: np.ndarray


@dataclass(frozen=True)
class GTDatabase:
    """Objects cut out of labelled frames, as flat arrays (cheap to share with DataLoader workers).

    Attributes:
        boxes: float32 (K, 9) boxes in their source frame's LiDAR coordinates.
        labels: int64 (K,) class indices.
        frame_ids: (K,) source frame of each object.
        point_offsets: int64 (K + 1,) object k owns ``points[point_offsets[k]:point_offsets[k + 1]]``.
        points: float32 (sum, 5) the objects' LiDAR points.
    """

    boxes: np.ndarray
    labels: np.ndarray
    frame_ids: np.ndarray
    point_offsets: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def object_points(self, index: int) -> np.ndarray:
        """(P_k, 5) points of object ``index``."""
        return self.points[self.point_offsets[index] : self.point_offsets[index + 1]]

    @classmethod
    def build(
        cls, frames: Iterable[DatabaseFrame], class_names: Sequence[str], config: GTSamplerConfig
    ) -> GTDatabase:
        """Collect the objects of ``frames`` that pass the class, difficulty and point filters.

        Args:
            frames: the labelled frames (only these may enter the database).
            class_names: label vocabulary of ``DatabaseFrame.labels``.
            config: filters (``sample_groups`` names the classes kept, ``min_points`` their minimum).
        """
        wanted = np.array([name in config.sample_groups for name in class_names])
        min_points = np.array([config.min_points.get(name, 0) for name in class_names], dtype=np.int64)
        boxes, labels, frame_ids, point_chunks = [], [], [], []
        for frame in frames:
            frame_labels = np.asarray(frame.labels, dtype=np.int64).reshape(-1)
            frame_boxes = np.asarray(frame.boxes, dtype=np.float32).reshape(-1, 9)
            if not len(frame_labels):
                continue
            inside = points_in_boxes(frame.points[:, :3], frame_boxes)  # (P, M)
            counts = inside.sum(axis=0)
            keep = (
                wanted[frame_labels]
                & (counts >= min_points[frame_labels])
                & ~np.isin(frame.difficulty, config.exclude_difficulties)
            )
            for index in np.flatnonzero(keep):
                boxes.append(frame_boxes[index])
                labels.append(frame_labels[index])
                frame_ids.append(frame.frame_id)
                point_chunks.append(frame.points[inside[:, index]].astype(np.float32))
        offsets = np.concatenate([[0], np.cumsum([len(chunk) for chunk in point_chunks])]).astype(np.int64)
        database = cls(
            boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 9),
            labels=np.asarray(labels, dtype=np.int64),
            frame_ids=np.asarray(frame_ids, dtype=str),
            point_offsets=offsets,
            points=np.concatenate(point_chunks).astype(np.float32) if point_chunks else np.zeros((0, 5), np.float32),
        )
        return database

    def summary(self, class_names: Sequence[str]) -> str:
        """One line: objects per class and the number of source frames."""
        counts = ", ".join(f"{name} {int((self.labels == index).sum())}" for index, name in enumerate(class_names))
        return f"{len(self)} objects ({counts}) from {len(set(self.frame_ids.tolist()))} frames"


def _bev(boxes: np.ndarray) -> torch.Tensor:
    """(M, 5) x, y, l, w, yaw of 9-dof boxes, as float64 torch for the rotated IoU."""
    return torch.from_numpy(np.asarray(boxes, dtype=np.float64).reshape(-1, 9)[:, [0, 1, 3, 4, 6]])


def collision_free(candidates: np.ndarray, existing: np.ndarray) -> np.ndarray:
    """Greedily accept candidate boxes whose BEV footprint overlaps no existing or accepted box.

    Sharing an edge (zero overlap area) is no collision.

    Args:
        candidates: (C, 9) boxes in the order they are tried.
        existing: (E, 9) boxes already in the frame.

    Returns:
        int64 indices of the accepted candidates, in order; their footprints overlap
        (rotated BEV IoU > 0) neither ``existing`` nor each other.
    """
    if not len(candidates):
        return np.zeros(0, dtype=np.int64)
    candidate_bev = _bev(candidates)
    with_existing = (
        rotated_iou_bev(candidate_bev, _bev(existing)).numpy().max(axis=1) > 0
        if len(existing)
        else np.zeros(len(candidates), dtype=bool)
    )
    among_candidates = rotated_iou_bev(candidate_bev, candidate_bev).numpy() > 0  # (C, C), diagonal True
    accepted: list[int] = []
    for index in range(len(candidates)):
        if not with_existing[index] and not among_candidates[index, accepted].any():
            accepted.append(index)
    return np.asarray(accepted, dtype=np.int64)


class GTSampler:
    """Pastes database objects into training samples (a RawSample -> RawSample augmentation).

    Args:
        database: the objects of the labelled frames.
        config: how many objects per class are drawn.
        class_names: label vocabulary of the samples and the database.
    """

    def __init__(self, database: GTDatabase, config: GTSamplerConfig, class_names: Sequence[str]) -> None:
        config.check_classes(class_names)
        self.database = database
        self.config = config
        self.class_names = tuple(class_names)
        self._pools = {name: np.flatnonzero(database.labels == index) for index, name in enumerate(self.class_names)}

    def draw(self, raw: RawSample, rng: np.random.Generator) -> np.ndarray:
        """Database indices drawn for ``raw``, class by class in ``sample_groups`` order (before collisions)."""
        drawn = []
        for name, count in self.config.sample_groups.items():
            if self.config.limit_whole_scene:
                count -= int((raw.labels == self.class_names.index(name)).sum())
            pool = self._pools[name]
            if count > 0 and len(pool):
                drawn.append(rng.choice(pool, size=min(count, len(pool)), replace=False))
        return np.concatenate(drawn).astype(np.int64) if drawn else np.zeros(0, dtype=np.int64)

    def __call__(self, raw: RawSample, rng: np.random.Generator) -> RawSample:
        """``raw`` with collision-free database objects added to its boxes, labels and points."""
        drawn = self.draw(raw, rng)
        obstacles = raw.obstacle_boxes if raw.obstacle_boxes is not None else np.zeros((0, 9), np.float32)
        existing = np.concatenate([raw.boxes.reshape(-1, 9), obstacles.reshape(-1, 9)]).astype(np.float64)
        chosen = drawn[collision_free(self.database.boxes[drawn], existing)]
        meta = {**raw.meta, "gt_sampled": len(chosen)}
        if not len(chosen):
            return dataclasses.replace(raw, meta=meta)
        pasted_boxes = self.database.boxes[chosen]
        # The frame's own points inside a pasted box would sit inside the pasted object.
        covered = points_in_boxes(raw.points[:, :3], pasted_boxes).any(axis=1)
        points = np.concatenate([raw.points[~covered], *(self.database.object_points(k) for k in chosen)])
        return dataclasses.replace(
            raw,
            points=points.astype(np.float32),
            boxes=np.concatenate([raw.boxes.reshape(-1, 9), pasted_boxes]).astype(raw.boxes.dtype),
            labels=np.concatenate([raw.labels.reshape(-1), self.database.labels[chosen]]).astype(np.int64),
            meta=meta,
        )
