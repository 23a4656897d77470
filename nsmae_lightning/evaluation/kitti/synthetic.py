"""Seeded synthetic KITTI frames (ground truth + noisy detections) for benchmarks and tests.

Objects stand on a flat road in front of a KITTI-like camera; their 2D boxes are the
projections of their 3D boxes, so 2D, BEV and 3D overlaps move together as in real data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nsmae_lightning.evaluation.kitti.labels import KittiLabels, concatenate_labels

IMAGE_WIDTH = 1242.0
IMAGE_HEIGHT = 375.0
# Rectified camera intrinsics close to KITTI's P2: focal length and principal point (px).
FOCAL = 721.5
CENTER_U = 609.6
CENTER_V = 172.9
CAMERA_HEIGHT = 1.65

# Class -> (mean h, w, l in metres, share of objects); DontCare regions are added apart.
CLASS_PRIORS: dict[str, tuple[tuple[float, float, float], float]] = {
    "Car": ((1.53, 1.63, 3.88), 0.62),
    "Pedestrian": ((1.76, 0.66, 0.84), 0.18),
    "Cyclist": ((1.74, 0.60, 1.76), 0.10),
    "Van": ((2.20, 1.90, 5.10), 0.10),
}


def project_boxes(dimensions: np.ndarray, location: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """(N, 4) image boxes ``x1, y1, x2, y2`` enclosing the projected 3D boxes, clipped to the image.

    Args:
        dimensions: (N, 3) ``h, w, l``.
        location: (N, 3) bottom centres in the camera frame (all in front of the camera).
        rotation_y: (N,) yaw about camera y.
    """
    height, width, length = dimensions[:, 0:1], dimensions[:, 1:2], dimensions[:, 2:3]
    signs_u = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5
    signs_v = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5
    signs_y = np.array([0, 0, 0, 0, -1, -1, -1, -1])
    local_u, local_v, local_y = length * signs_u, width * signs_v, height * signs_y  # (N, 8) each
    cos_ry, sin_ry = np.cos(rotation_y)[:, None], np.sin(rotation_y)[:, None]
    x = location[:, 0:1] + cos_ry * local_u + sin_ry * local_v
    y = location[:, 1:2] + local_y
    z = np.maximum(location[:, 2:3] - sin_ry * local_u + cos_ry * local_v, 0.1)
    u = FOCAL * x / z + CENTER_U  # (N, 8)
    v = FOCAL * y / z + CENTER_V
    boxes = np.stack([u.min(1), v.min(1), u.max(1), v.max(1)], axis=1)
    return np.clip(boxes, 0.0, [IMAGE_WIDTH, IMAGE_HEIGHT, IMAGE_WIDTH, IMAGE_HEIGHT])


def _observation_angle(location: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """KITTI alpha: the yaw seen from the camera ray through the box centre, wrapped to [-pi, pi)."""
    alpha = rotation_y - np.arctan2(location[:, 0], location[:, 2])
    return (alpha + np.pi) % (2.0 * np.pi) - np.pi


def _objects(rng: np.random.Generator, names: np.ndarray) -> KittiLabels:
    """Ground-truth objects of the given classes at random places, sizes and yaws."""
    count = len(names)
    mean_sizes = np.array([CLASS_PRIORS[name][0] for name in names]).reshape(count, 3)
    dimensions = mean_sizes * rng.uniform(0.9, 1.1, size=(count, 3))
    depth = rng.uniform(5.0, 60.0, size=count)
    location = np.column_stack([
        depth * rng.uniform(-0.7, 0.7, size=count),
        CAMERA_HEIGHT + rng.normal(0.0, 0.05, size=count),
        depth,
    ])
    rotation_y = rng.uniform(-np.pi, np.pi, size=count)
    truncated = np.where(rng.random(count) < 0.75, 0.0, rng.uniform(0.0, 0.6, size=count))
    return KittiLabels.from_arrays(
        name=names,
        truncated=truncated,
        occluded=rng.choice(4, size=count, p=[0.5, 0.3, 0.15, 0.05]),
        alpha=_observation_angle(location, rotation_y),
        bbox=project_boxes(dimensions, location, rotation_y),
        dimensions=dimensions,
        location=location,
        rotation_y=rotation_y,
    )


def _dontcare(rng: np.random.Generator, count: int) -> KittiLabels:
    """DontCare regions: image boxes with KITTI's placeholder 3D fields."""
    corner = rng.uniform([0.0, 100.0], [IMAGE_WIDTH - 100.0, IMAGE_HEIGHT - 60.0], size=(count, 2))
    size = rng.uniform([20.0, 15.0], [100.0, 60.0], size=(count, 2))
    return KittiLabels.from_arrays(
        name=["DontCare"] * count,
        truncated=np.full(count, -1.0),
        occluded=np.full(count, -1),
        alpha=np.full(count, -10.0),
        bbox=np.column_stack([corner, corner + size]),
        dimensions=np.full((count, 3), -1.0),
        location=np.full((count, 3), -1000.0),
        rotation_y=np.full(count, -10.0),
    )


def _detections(rng: np.random.Generator, gt: KittiLabels, recall: float, num_false: int) -> KittiLabels:
    """Noisy copies of most ground-truth objects plus random false positives, scored."""
    kept = np.flatnonzero((rng.random(len(gt)) < recall) & (gt.name != "DontCare"))
    names = gt.name[kept]
    count = len(kept)
    location_noise = rng.normal(0.0, 1.0, size=(count, 3)) * np.array([0.15, 0.05, 0.3])
    location = gt.location[kept] + location_noise
    dimensions = gt.dimensions[kept] * rng.normal(1.0, 0.05, size=(count, 3))
    rotation_y = gt.rotation_y[kept] + rng.normal(0.0, 0.15, size=count)
    quality = np.exp(-np.linalg.norm(location_noise, axis=1))
    true_part = KittiLabels.from_arrays(
        name=names,
        truncated=np.zeros(count),
        occluded=np.zeros(count),
        alpha=_observation_angle(location, rotation_y),
        bbox=project_boxes(dimensions, location, rotation_y),
        dimensions=dimensions,
        location=location,
        rotation_y=rotation_y,
        score=np.clip(0.3 + 0.6 * quality + rng.normal(0.0, 0.1, size=count), 0.01, 1.0),
    )
    false_names = rng.choice(["Car", "Pedestrian", "Cyclist"], size=num_false)
    false_part = dataclasses.replace(
        _objects(rng, false_names),
        truncated=np.zeros(num_false),
        occluded=np.zeros(num_false, dtype=np.int64),
        score=rng.uniform(0.01, 0.7, size=num_false),
    )
    return concatenate_labels([true_part, false_part])


def synthetic_split(
    num_frames: int, seed: int = 0, objects_per_frame: float = 7.0, recall: float = 0.85,
    false_per_frame: float = 3.0,
) -> tuple[list[KittiLabels], list[KittiLabels]]:
    """Ground truth and detections for ``num_frames`` frames, deterministic by ``seed``.

    Args:
        num_frames: frames to make.
        seed: numpy seed.
        objects_per_frame: mean number of Car/Pedestrian/Cyclist/Van objects (Poisson).
        recall: chance that an object is detected.
        false_per_frame: mean number of false positives (Poisson).
    """
    rng = np.random.default_rng(seed)
    class_names = list(CLASS_PRIORS)
    shares = np.array([CLASS_PRIORS[name][1] for name in class_names])
    gt_frames, det_frames = [], []
    for _ in range(num_frames):
        names = rng.choice(class_names, size=rng.poisson(objects_per_frame), p=shares / shares.sum())
        gt = concatenate_labels([_objects(rng, names), _dontcare(rng, rng.poisson(1.0))])
        gt_frames.append(gt)
        det_frames.append(_detections(rng, gt, recall, rng.poisson(false_per_frame)))
    return gt_frames, det_frames
