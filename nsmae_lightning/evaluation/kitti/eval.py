"""The KITTI 3D object detection protocol: AP for bbox (2D), bev, 3d and aos.

Follows the official devkit (``cpp/evaluate_object.cpp``) and its widely used python port
(kitti-object-eval-python):

* difficulties easy / moderate / hard: 2D box height >= 40 / 25 / 25 px, occlusion <= 0 /
  1 / 2, truncation <= 0.15 / 0.30 / 0.50; a ground-truth box of the class failing them is
  ignored (neither TP nor FN), as are neighbouring classes (Van for Car, Person_sitting for
  Pedestrian); detections lower than the minimum height are ignored. Like the C++ code a
  ground-truth box exactly at the minimum height counts (the python port drops it).
* DontCare regions: an unmatched detection covering one (2D intersection / detection area
  above the IoU threshold) is not a false positive. As in both references this takes effect
  for the 2D metric (and so aos) only: the official code feeds DontCare's placeholder 3D
  box (size -1 at -1000 m) to the 3D overlap, which never overlaps anything.
* IoU thresholds Car / Pedestrian / Cyclist: strict 0.7 / 0.5 / 0.5 everywhere; loose keeps
  the 2D ones and uses 0.5 / 0.25 / 0.25 for bev and 3d (reported as ``<metric>_loose``).
* 41 score thresholds at recalls 0, 1/40, ..., 1 (:func:`matching.score_thresholds`),
  precision made monotone (max over higher recalls), then AP_R11 = mean of the precisions
  at recall 0, 0.1, ..., 1 and AP_R40 = mean at 1/40, ..., 1, in percent. aos is the same
  with orientation similarity in place of precision, on the 2D matching.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsmae_lightning.constants import KITTI_CLASSES, KITTI_MAX_OCCLUSION, KITTI_MAX_TRUNCATION, KITTI_MIN_HEIGHT
from nsmae_lightning.evaluation.kitti import iou, matching
from nsmae_lightning.evaluation.kitti.labels import (
    KittiLabels,
    concatenate_labels,
    read_gt_and_detections,
    read_split_file,
)

DIFFICULTIES: tuple[str, ...] = ("easy", "moderate", "hard")
MIN_HEIGHT: tuple[float, ...] = KITTI_MIN_HEIGHT
MAX_OCCLUSION: tuple[int, ...] = KITTI_MAX_OCCLUSION
MAX_TRUNCATION: tuple[float, ...] = KITTI_MAX_TRUNCATION
METRICS: tuple[str, ...] = ("bbox", "bev", "3d", "aos")
NEIGHBOUR_CLASS: dict[str, str] = {"car": "van", "pedestrian": "person_sitting"}
DONTCARE = "dontcare"
NUM_SAMPLE_POINTS = 41
# KITTI's marker for "no orientation estimated": the official code then skips aos.
NO_ALPHA = -10.0
LOOSE_SUFFIX = "_loose"

# Minimum IoU per (matching metric, class), as in the reference printout.
STRICT_MIN_OVERLAPS: dict[str, dict[str, float]] = {
    metric: {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5} for metric in ("bbox", "bev", "3d")
}
LOOSE_MIN_OVERLAPS: dict[str, dict[str, float]] = {
    "bbox": {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5},
    "bev": {"Car": 0.5, "Pedestrian": 0.25, "Cyclist": 0.25},
    "3d": {"Car": 0.5, "Pedestrian": 0.25, "Cyclist": 0.25},
}
_OVERLAP_KIND: dict[str, int] = {"bbox": iou.IMAGE_IOU, "bev": iou.BEV_IOU, "3d": iou.BOX3D_IOU}

Results = dict[str, dict[str, dict[str, dict[str, float]]]]


@dataclass(frozen=True)
class PRCurve:
    """Counts at the score thresholds of one (metric, class, difficulty, IoU threshold).

    Attributes:
        thresholds: (T,) scores, T <= 41, highest first.
        tp, fp, fn: (T,) counts over the split at each threshold.
        similarity: (T,) orientation similarity summed over the TPs.
        num_valid_gt: ground-truth boxes that count for recall.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    similarity: np.ndarray
    num_valid_gt: int

    def _interpolated(self, numerator: np.ndarray) -> np.ndarray:
        """(41,) ``numerator / (tp + fp)`` padded with zeros, then max over higher recalls."""
        values = np.zeros(NUM_SAMPLE_POINTS)
        denominator = self.tp + self.fp
        count = len(self.thresholds)
        values[:count] = np.divide(numerator, denominator, out=np.zeros(count), where=denominator > 0)
        return np.maximum.accumulate(values[::-1])[::-1]

    def precision(self) -> np.ndarray:
        """(41,) interpolated precision at the sampled recalls."""
        return self._interpolated(self.tp)

    def orientation_similarity(self) -> np.ndarray:
        """(41,) interpolated average orientation similarity (aos) at the sampled recalls."""
        return self._interpolated(self.similarity)


def average_precision(precision: np.ndarray) -> dict[str, float]:
    """AP in percent from a (41,) interpolated curve: R11 (points 0, 4, ..., 40) and R40 (1..40)."""
    if np.shape(precision) != (NUM_SAMPLE_POINTS,):
        raise ValueError(f"precision must have shape ({NUM_SAMPLE_POINTS},), got {np.shape(precision)}")
    return {
        "R11": float(precision[0::4].sum() / 11.0 * 100.0),
        "R40": float(precision[1:].sum() / 40.0 * 100.0),
    }


def _concatenate(frames: Sequence[KittiLabels]) -> tuple[KittiLabels, np.ndarray]:
    """All frames' objects as one ``KittiLabels`` plus (F + 1,) row offsets."""
    counts = np.array([len(frame) for frame in frames], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return concatenate_labels(frames), offsets


def _check_finite_scores(dt_annos: Sequence[KittiLabels]) -> None:
    """Refuse NaN / inf detection scores, which would make every threshold comparison false.

    (Label files cannot carry them: the reader refuses non-finite fields, naming file and line.)
    """
    for frame_index, frame in enumerate(dt_annos):
        bad = np.flatnonzero(~np.isfinite(frame.score))
        if len(bad):
            raise ValueError(
                f"detection frame {frame_index}, row {bad[0]} ({frame.name[bad[0]]}): score {frame.score[bad[0]]} "
                f"is not finite ({len(bad)} such rows in the frame)"
            )


def _boxes_for(labels: KittiLabels, metric: str) -> np.ndarray:
    """Box rows in the layout :mod:`iou` expects for a matching metric."""
    if metric == "bbox":
        return labels.bbox  # (N, 4) x1, y1, x2, y2
    if metric == "bev":
        # (N, 5) x, z, l, w, ry from location xyz and dimensions hwl
        return np.column_stack([labels.location[:, 0], labels.location[:, 2],
                                labels.dimensions[:, 2], labels.dimensions[:, 1], labels.rotation_y])
    return np.column_stack([labels.location, labels.dimensions, labels.rotation_y])  # (N, 7)


@dataclass(frozen=True)
class _Split:
    """Ground truth and detections of a whole split, flattened for the numba kernels."""

    gt: KittiLabels
    det: KittiLabels
    gt_names: np.ndarray  # (G,) lower-case
    det_names: np.ndarray  # (D,) lower-case
    offsets: np.ndarray  # (F + 1, 5), see matching's module docstring
    dontcare_overlaps: np.ndarray

    @classmethod
    def build(cls, gt_annos: Sequence[KittiLabels], dt_annos: Sequence[KittiLabels]) -> _Split:
        """Flatten the frames and compute the detection-over-DontCare 2D overlaps."""
        if len(gt_annos) != len(dt_annos):
            raise ValueError(f"{len(gt_annos)} ground-truth frames but {len(dt_annos)} detection frames")
        _check_finite_scores(dt_annos)
        gt, gt_offsets = _concatenate(gt_annos)
        det, det_offsets = _concatenate(dt_annos)
        gt_names = np.char.lower(gt.name.astype(str))
        frame_of_gt = np.repeat(np.arange(len(gt_annos)), np.diff(gt_offsets))
        is_dontcare = gt_names == DONTCARE
        dontcare_counts = np.bincount(frame_of_gt[is_dontcare], minlength=len(gt_annos))
        dontcare_offsets = np.concatenate([[0], np.cumsum(dontcare_counts)]).astype(np.int64)
        det_counts = np.diff(det_offsets)
        offsets = np.column_stack([
            gt_offsets,
            det_offsets,
            dontcare_offsets,
            np.concatenate([[0], np.cumsum(det_counts * np.diff(gt_offsets))]),
            np.concatenate([[0], np.cumsum(det_counts * dontcare_counts)]),
        ]).astype(np.int64)
        dontcare_overlaps = iou.frames_overlaps(
            iou.IMAGE_OVER_FIRST_AREA, det.bbox, det_offsets, gt.bbox[is_dontcare], dontcare_offsets
        )
        return cls(gt, det, gt_names, np.char.lower(det.name.astype(str)), offsets, dontcare_overlaps)

    def overlaps(self, metric: str) -> np.ndarray:
        """Flat per-frame (n_det, n_gt) overlaps for a matching metric."""
        kind = _OVERLAP_KIND[metric]
        return iou.frames_overlaps(kind, _boxes_for(self.det, metric), self.offsets[:, matching.DET_COLUMN],
                                   _boxes_for(self.gt, metric), self.offsets[:, matching.GT_COLUMN])

    def ignore_codes(self, class_name: str, difficulty: int) -> tuple[np.ndarray, np.ndarray]:
        """(G,) ground-truth and (D,) detection ignore codes (see :mod:`matching`)."""
        target = class_name.lower()
        gt_height = self.gt.bbox[:, 3] - self.gt.bbox[:, 1]
        same_class = self.gt_names == target
        neighbour = self.gt_names == NEIGHBOUR_CLASS[target] if target in NEIGHBOUR_CLASS else np.zeros_like(same_class)
        too_hard = ((self.gt.occluded > MAX_OCCLUSION[difficulty]) | (self.gt.truncated > MAX_TRUNCATION[difficulty])
                    | (gt_height < MIN_HEIGHT[difficulty]))
        gt_ignore = np.full(len(self.gt), -1, dtype=np.int64)
        gt_ignore[neighbour | (same_class & too_hard)] = 1
        gt_ignore[same_class & ~too_hard] = 0
        det_height = np.abs(self.det.bbox[:, 3] - self.det.bbox[:, 1])
        det_ignore = np.where(det_height < MIN_HEIGHT[difficulty], 1, np.where(self.det_names == target, 0, -1))
        return gt_ignore, det_ignore.astype(np.int64)

    def pr_curve(self, overlaps: np.ndarray, metric: str, class_name: str, difficulty: int,
                 min_overlap: float) -> PRCurve:
        """Match the split at the 41 score thresholds for one class and difficulty."""
        gt_ignore, det_ignore = self.ignore_codes(class_name, difficulty)
        offsets = self.offsets
        if metric != "bbox":
            offsets = offsets.copy()
            offsets[:, [matching.DONTCARE_COLUMN, matching.DONTCARE_OVERLAP_COLUMN]] = 0
        arrays = (offsets, overlaps, self.dontcare_overlaps, gt_ignore, det_ignore,
                  self.gt.alpha, self.det.alpha, self.det.score)
        num_valid_gt = int((gt_ignore == 0).sum())
        tp_scores = matching.true_positive_scores(*arrays, min_overlap)
        thresholds = (matching.score_thresholds(tp_scores, num_valid_gt, NUM_SAMPLE_POINTS)
                      if num_valid_gt > 0 else np.zeros(0))
        counts = matching.counts_at_thresholds(thresholds, *arrays, min_overlap)  # (T, 4)
        return PRCurve(thresholds, counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3], num_valid_gt)


def _check_names(classes: Sequence[str], metrics: Sequence[str]) -> None:
    """Reject classes and metrics the protocol does not define."""
    for class_name in classes:
        if class_name not in KITTI_CLASSES:
            raise ValueError(f"unknown KITTI class {class_name!r}; expected one of {KITTI_CLASSES}")
    for metric in metrics:
        if metric not in METRICS:
            raise ValueError(f"unknown KITTI metric {metric!r}; expected one of {METRICS}")


def pr_curve(gt_annos: Sequence[KittiLabels], dt_annos: Sequence[KittiLabels], class_name: str,
             difficulty: str, metric: str, min_overlap: float) -> PRCurve:
    """Counts at the score thresholds for one class, difficulty and matching metric.

    Args:
        gt_annos, dt_annos: per-frame ground truth and detections, same frame order.
        class_name: ``"Car"``, ``"Pedestrian"`` or ``"Cyclist"``.
        difficulty: ``"easy"``, ``"moderate"`` or ``"hard"``.
        metric: ``"bbox"``, ``"bev"`` or ``"3d"``.
        min_overlap: a match needs IoU strictly above this.
    """
    _check_names([class_name], [metric])
    if metric == "aos":
        raise ValueError("aos shares the bbox matching: ask for metric 'bbox'")
    split = _Split.build(gt_annos, dt_annos)
    return split.pr_curve(split.overlaps(metric), metric, class_name, DIFFICULTIES.index(difficulty), min_overlap)


def evaluate(
    gt_annos: Sequence[KittiLabels],
    dt_annos: Sequence[KittiLabels],
    classes: Sequence[str] = KITTI_CLASSES,
    metrics: Sequence[str] = METRICS,
) -> Results:
    """KITTI AP of detections against ground truth.

    Args:
        gt_annos: per-frame ground truth (DontCare rows included).
        dt_annos: per-frame detections, same frames in the same order.
        classes: classes to score.
        metrics: any of ``"bbox"``, ``"bev"``, ``"3d"``, ``"aos"``.

    Returns:
        ``results[metric][class][difficulty]["R11" | "R40"]`` in percent, for every metric at
        the strict IoU thresholds and again as ``metric + "_loose"`` at the loose ones. A
        class without a countable ground-truth box at a difficulty gets NaN. aos is left out
        (with a warning) when a detection has alpha -10, KITTI's "no orientation" marker.
    """
    _check_names(classes, metrics)
    split = _Split.build(gt_annos, dt_annos)
    wanted = list(metrics)
    if "aos" in wanted and np.any(split.det.alpha == NO_ALPHA):
        warnings.warn("detections carry alpha = -10 (no orientation): aos is not computed", stacklevel=2)
        wanted.remove("aos")
    overlaps = {metric: split.overlaps(metric) for metric in {"bbox" if m == "aos" else m for m in wanted}}
    curves: dict[tuple[str, str, int, float], PRCurve] = {}
    results: Results = {}
    for suffix, min_overlaps in (("", STRICT_MIN_OVERLAPS), (LOOSE_SUFFIX, LOOSE_MIN_OVERLAPS)):
        for metric in wanted:
            matching_metric = "bbox" if metric == "aos" else metric
            per_class = results.setdefault(metric + suffix, {})
            for class_name in classes:
                min_overlap = min_overlaps[matching_metric][class_name]
                per_difficulty = per_class.setdefault(class_name, {})
                for difficulty, difficulty_name in enumerate(DIFFICULTIES):
                    key = (matching_metric, class_name, difficulty, min_overlap)
                    if key not in curves:
                        curves[key] = split.pr_curve(overlaps[matching_metric], matching_metric, class_name,
                                                     difficulty, min_overlap)
                    curve = curves[key]
                    if curve.num_valid_gt == 0:
                        per_difficulty[difficulty_name] = {"R11": math.nan, "R40": math.nan}
                    else:
                        values = curve.orientation_similarity() if metric == "aos" else curve.precision()
                        per_difficulty[difficulty_name] = average_precision(values)
    return results


def evaluate_dirs(
    gt_dir: str | Path,
    det_dir: str | Path,
    split_file: str | Path | None = None,
    classes: Sequence[str] = KITTI_CLASSES,
    metrics: Sequence[str] = METRICS,
) -> Results:
    """:func:`evaluate` on KITTI label folders.

    Args:
        gt_dir: ground-truth ``label_2`` folder.
        det_dir: detection label files (16 fields); a frame without a file has no detections.
        split_file: ``ImageSets/*.txt`` listing the frames; ``None`` = every file in ``gt_dir``.
        classes, metrics: as for :func:`evaluate`.
    """
    frame_ids = read_split_file(split_file) if split_file is not None else None
    _, gt_annos, dt_annos = read_gt_and_detections(gt_dir, det_dir, frame_ids)
    return evaluate(gt_annos, dt_annos, classes, metrics)


def format_results(results: Results) -> str:
    """The familiar KITTI printout: per class and IoU set, AP (R11) then AP_R40 blocks."""
    metric_order = [metric for metric in METRICS if metric in results]
    classes = [name for name in KITTI_CLASSES if any(name in results[metric] for metric in metric_order)]
    lines = []
    for class_name in classes:
        for suffix, min_overlaps in (("", STRICT_MIN_OVERLAPS), (LOOSE_SUFFIX, LOOSE_MIN_OVERLAPS)):
            header = ", ".join(f"{min_overlaps[metric][class_name]:.2f}" for metric in ("bbox", "bev", "3d"))
            for recall_key, label in (("R11", "AP"), ("R40", "AP_R40")):
                lines.append(f"{class_name} {label}@{header}:")
                for metric in metric_order:
                    per_difficulty = results[metric + suffix].get(class_name)
                    if per_difficulty is None:
                        continue
                    values = ", ".join(f"{per_difficulty[name][recall_key]:.4f}" for name in DIFFICULTIES)
                    lines.append(f"{metric:<4} AP:{values}")
    return "\n".join(lines) + "\n"


def flatten_results(results: Results, prefix: str = "kitti/") -> dict[str, float]:
    """``{"kitti/3d/Car/moderate/R40": 81.2, ...}`` for loggers."""
    return {
        f"{prefix}{metric}/{class_name}/{difficulty}/{recall_key}": value
        for metric, per_class in results.items()
        for class_name, per_difficulty in per_class.items()
        for difficulty, per_recall in per_difficulty.items()
        for recall_key, value in per_recall.items()
    }
