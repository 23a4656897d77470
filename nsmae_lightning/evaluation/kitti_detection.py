"""KITTI detection evaluation: LiDAR-frame boxes -> KITTI label files -> our KITTI AP evaluator.

Each evaluated frame's detections become a KITTI detection file (16 fields: camera-rect
bottom centre, ``h w l``, ``rotation_y``, alpha, the 2D box enclosing the projected 3D
box, score), written atomically into ``<output_dir>/data/<frame>.txt`` as the KITTI
server expects them. The folder is then read back with the evaluator's own reader and
scored against the dataset's ``label_2`` files, so what is scored is exactly what was
written.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nsmae_lightning.constants import KITTI_CLASSES
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.kitti import image_path, read_calib, read_split
from nsmae_lightning.data.kitti_boxes import image_boxes, lidar_to_camera_boxes, observation_angle
from nsmae_lightning.data.readers import read_image_size
from nsmae_lightning.data.transforms import transform_boxes
from nsmae_lightning.evaluation.detection_evaluator import DetectionEvaluator
from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.evaluation.kitti.cli import results_to_json
from nsmae_lightning.evaluation.kitti.eval import DIFFICULTIES, METRICS, Results, evaluate, format_results
from nsmae_lightning.evaluation.kitti.labels import KittiLabels, read_gt_and_detections, write_label_file
from nsmae_lightning.evaluation.nuscenes_detection import finite_box_mask

log = logging.getLogger(__name__)

DETECTIONS_FOLDER = "data"
RESULTS_FILE = "results_kitti.json"
TABLE_FILE = "results_kitti.txt"
# KITTI's "not estimated" marker for truncation and occlusion in detection files.
UNKNOWN = -1


def predictions_to_labels(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    calib: Mapping[str, np.ndarray],
    image_size: tuple[int, int],
    class_names: Sequence[str] = KITTI_CLASSES,
) -> KittiLabels:
    """One frame's LiDAR-frame detections as KITTI detection rows, best score first.

    Detections whose projected box misses the image are dropped: KITTI labels only
    objects inside the camera's field of view.

    Args:
        boxes: (K, 9) finite boxes in the frame's (un-augmented) velodyne frame.
        scores: (K,) finite scores.
        labels: (K,) indices into ``class_names``.
        calib: the frame's :func:`read_calib` (``rect2lidar``, ``intrinsics``, ``cam2lidar``).
        image_size: (W, H) of image_2.
        class_names: label vocabulary, KITTI type names.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 9)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"labels must index {len(class_names)} classes, got {labels.min()}..{labels.max()}")
    bbox, in_image = image_boxes(boxes, calib["intrinsics"], calib["cam2lidar"], image_size)
    order = np.argsort(-scores, kind="stable")
    order = order[in_image[order]]
    dimensions, location, rotation_y = lidar_to_camera_boxes(boxes[order], calib["rect2lidar"])
    return KittiLabels.from_arrays(
        name=[class_names[label] for label in labels[order]],
        truncated=np.full(len(order), float(UNKNOWN)),
        occluded=np.full(len(order), UNKNOWN),
        alpha=observation_angle(location, rotation_y),
        bbox=bbox[order],
        dimensions=dimensions,
        location=location,
        rotation_y=rotation_y,
        score=scores[order],
    )


def results_to_metrics(results: Results) -> dict[str, float]:
    """Logger names for the strict-IoU results: ``Car_3d_moderate_R40`` ... and class means ``mAP_3d_moderate_R40``.

    A class without countable ground truth at a difficulty (NaN) is left out, and the
    mean is over the classes that have some.
    """
    metrics: dict[str, float] = {}
    for metric in METRICS:
        per_class = results.get(metric, {})
        for difficulty in DIFFICULTIES:
            for recall in ("R40", "R11"):
                values = []
                for class_name, per_difficulty in per_class.items():
                    value = per_difficulty[difficulty][recall]
                    if not math.isnan(value):
                        metrics[f"{class_name}_{metric}_{difficulty}_{recall}"] = value
                        values.append(value)
                if values:
                    metrics[f"mAP_{metric}_{difficulty}_{recall}"] = float(np.mean(values))
    return metrics


class KittiDetectionEvaluator(DetectionEvaluator):
    """Collects decoded detections per KITTI frame, writes label files and scores them (DDP-safe).

    Records are ``(KittiLabels, number of non-finite boxes dropped)`` per frame.

    Args:
        dataroot: KITTI root (``training/label_2``, ``training/calib``, ``ImageSets``).
        output_dir: where ``data/*.txt``, the results JSON and the printed table go.
        class_names: label vocabulary of the decoded ``labels`` (KITTI type names).
        split: ImageSets name; when given, a frame outside it is refused.
    """

    def __init__(
        self,
        dataroot: str | Path,
        output_dir: str | Path,
        class_names: Sequence[str] = KITTI_CLASSES,
        split: str | None = None,
    ) -> None:
        super().__init__()
        unknown = [name for name in class_names if name not in KITTI_CLASSES]
        if unknown:
            raise ValueError(f"KITTI evaluation scores {KITTI_CLASSES}; the head predicts unknown classes {unknown}")
        self.dataroot = Path(dataroot)
        self.training = self.dataroot / "training"
        self.output_dir = Path(output_dir)
        self.class_names = tuple(class_names)
        self.split = split
        self.split_frames = set(read_split(self.dataroot, split)) if split is not None else None

    def convert(
        self, sample_token: str, detections: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
    ) -> tuple[KittiLabels, int]:
        """KITTI rows of frame ``sample_token`` (its calib and image size from disk) and its non-finite count."""
        if self.split_frames is not None and sample_token not in self.split_frames:
            split_file = self.dataroot / "ImageSets" / f"{self.split}.txt"
            raise DataError(split_file, f"detections for frame {sample_token!r}, which is not in the split")
        boxes = detections["boxes"].detach().cpu().double().numpy().reshape(-1, 9)
        scores = detections["scores"].detach().cpu().double().numpy().reshape(-1)
        labels = detections["labels"].detach().cpu().numpy().reshape(-1)
        finite = finite_box_mask(boxes, scores)
        if not finite.all():
            log.warning("frame %s: dropped %d non-finite boxes", sample_token, int((~finite).sum()))
        # Undo the LiDAR augmentation (identity at evaluation) to reach the velodyne frame of calib.
        boxes = transform_boxes(boxes[finite], np.linalg.inv(np.asarray(meta.get("lidar_aug", np.eye(4)))))
        calib = read_calib(self.training / "calib" / f"{sample_token}.txt")
        image_size = read_image_size(image_path(self.training, sample_token))
        rows = predictions_to_labels(boxes, scores[finite], labels[finite], calib, image_size, self.class_names)
        return rows, int((~finite).sum())

    def evaluate(self, records: Mapping[str, tuple[KittiLabels, int]]) -> dict[str, float]:
        """Write ``data/<frame>.txt`` per frame, read them back and score them against label_2 (rank 0).

        Returns:
            ``<Class>_<metric>_<difficulty>_<R40|R11>`` for bbox, bev, 3d and aos at the strict IoU
            thresholds, the class means ``mAP_<metric>_<difficulty>_<R>``, ``num_frames`` and
            ``nonfinite_boxes``; the full results (loose thresholds too) are in the JSON file.
        """
        frame_ids = sorted(records)
        detections_dir = self.output_dir / DETECTIONS_FOLDER
        for frame_id in frame_ids:
            write_label_file(detections_dir / f"{frame_id}.txt", records[frame_id][0])
        _, gt_frames, det_frames = read_gt_and_detections(self.training / "label_2", detections_dir, frame_ids)
        results = evaluate(gt_frames, det_frames, classes=self.class_names)
        atomic_write_text(self.output_dir / RESULTS_FILE, results_to_json(results))
        atomic_write_text(self.output_dir / TABLE_FILE, format_results(results))
        metrics = results_to_metrics(results)
        metrics["num_frames"] = float(len(frame_ids))
        metrics["nonfinite_boxes"] = float(sum(record[1] for record in records.values()))
        return metrics
