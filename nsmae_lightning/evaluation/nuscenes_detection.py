"""nuScenes detection evaluation: LiDAR-frame boxes -> results JSON -> the devkit's DetectionEval.

We never re-score boxes ourselves: predictions are written in the devkit's
result format (global frame, ``size = [w, l, h]``, rotation quaternion,
attribute names) and scored by ``nuscenes.eval.detection.evaluate.DetectionEval``
with the ``detection_cvpr_2019`` config. DetectionEval itself insists that the
predictions cover a whole split; to score exactly the samples that were
evaluated (``limit_val_batches``, a custom token list) a small subclass loads
predictions and GT for those tokens with the devkit's own loaders
(``load_prediction_of_sample_tokens``, ``load_gt_of_sample_tokens``) and then runs
the devkit's filtering and metrics unchanged.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nuscenes import NuScenes
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.common.loaders import (
    add_center_dist,
    filter_eval_boxes,
    get_samples_of_custom_split,
    get_samples_of_scenes,
    load_gt_of_sample_tokens,
    load_prediction_of_sample_tokens,
)
from nuscenes.eval.detection.data_classes import DetectionBox, DetectionConfig
from nuscenes.eval.detection.evaluate import DetectionEval
from nuscenes.utils.splits import create_splits_scenes, is_predefined_split
from pyquaternion import Quaternion

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.constants import DETECTION_CLASSES
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.evaluation.detection_evaluator import DetectionEvaluator

log = logging.getLogger(__name__)

# The devkit refuses more boxes than this per sample.
MAX_BOXES_PER_SAMPLE: int = 500
# Speed (m/s) above which an object counts as moving (mmdet3d's attribute rule).
MOVING_SPEED: float = 0.2
VEHICLE_CLASSES: frozenset[str] = frozenset({"car", "truck", "bus", "trailer", "construction_vehicle"})
CYCLE_CLASSES: frozenset[str] = frozenset({"bicycle", "motorcycle"})
RESULTS_FILE: str = "results_nusc.json"
# Devkit TP error names -> the names papers report.
TP_ERROR_NAMES: dict[str, str] = {
    "trans_err": "mATE",
    "scale_err": "mASE",
    "orient_err": "mAOE",
    "vel_err": "mAVE",
    "attr_err": "mAAE",
}


def attribute_name(class_name: str, speed: float) -> str:
    """The attribute mmdet3d's ``DefaultAttribute`` rule gives a detection of this class and speed (m/s)."""
    moving = speed > MOVING_SPEED
    if class_name in VEHICLE_CLASSES:
        if moving:
            return "vehicle.moving"
        return "vehicle.stopped" if class_name == "bus" else "vehicle.parked"
    if class_name in CYCLE_CLASSES:
        return "cycle.with_rider" if moving else "cycle.without_rider"
    if class_name == "pedestrian":
        return "pedestrian.moving" if moving else "pedestrian.standing"
    return ""


def _as_numpy(values: torch.Tensor | np.ndarray | Sequence[Any]) -> np.ndarray:
    """A float64/int array from a tensor (any device or dtype) or array-like."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        return (values.double() if values.is_floating_point() else values).numpy()
    return np.asarray(values)


def finite_box_mask(boxes: torch.Tensor | np.ndarray, scores: torch.Tensor | np.ndarray) -> np.ndarray:
    """(K,) bool: True where the box (K, 9) and its score are all finite, i.e. writable."""
    boxes_array = _as_numpy(boxes).reshape(-1, 9)
    return np.isfinite(boxes_array).all(axis=1) & np.isfinite(_as_numpy(scores).reshape(-1))


def _orthonormal(rotation: np.ndarray) -> np.ndarray:
    """The nearest rotation matrix (SVD), so float32 round-off in a stored pose never trips pyquaternion."""
    left, _, right = np.linalg.svd(rotation)
    return left @ right


def to_nuscenes_results(
    sample_token: str,
    boxes: torch.Tensor | np.ndarray,
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    lidar2global: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
    class_names: Sequence[str] = DETECTION_CLASSES,
) -> list[dict[str, Any]]:
    """One sample's LiDAR-frame detections as devkit result dicts in the global frame.

    Boxes with a NaN/inf value or score are dropped (and logged; count them with
    ``finite_box_mask``); at most MAX_BOXES_PER_SAMPLE boxes are kept, the best scores.

    Args:
        sample_token: the nuScenes sample token.
        boxes: (K, 9) x, y, z, l, w, h, yaw, vx, vy in the keyframe LiDAR frame.
        scores: (K,) detection scores.
        labels: (K,) indices into ``class_names``.
        lidar2global: (4, 4) keyframe LiDAR -> global transform (the batch meta's).
        class_names: label vocabulary.

    Returns:
        Result dicts (sample_token, translation, size [w, l, h], rotation [w, x, y, z],
        velocity [vx, vy], detection_name, detection_score, attribute_name), best first.
    """
    boxes_array = _as_numpy(boxes).reshape(-1, 9).astype(np.float64)
    scores_array = _as_numpy(scores).reshape(-1).astype(np.float64)
    labels_array = _as_numpy(labels).reshape(-1).astype(np.int64)
    if not (len(boxes_array) == len(scores_array) == len(labels_array)):
        raise ValueError(
            f"sample {sample_token}: {len(boxes_array)} boxes, {len(scores_array)} scores, {len(labels_array)} labels"
        )
    if len(labels_array) and (labels_array.min() < 0 or labels_array.max() >= len(class_names)):
        raise ValueError(f"sample {sample_token}: labels must index {len(class_names)} classes")
    transform = _as_numpy(lidar2global).astype(np.float64)
    if transform.shape != (4, 4) or not np.isfinite(transform).all():
        raise ValueError(f"sample {sample_token}: lidar2global must be a finite 4x4 matrix")
    finite = finite_box_mask(boxes_array, scores_array)
    if not finite.all():
        log.warning("sample %s: dropped %d non-finite boxes", sample_token, int((~finite).sum()))
    boxes_array, scores_array, labels_array = boxes_array[finite], scores_array[finite], labels_array[finite]
    best_first = np.argsort(-scores_array, kind="stable")[:MAX_BOXES_PER_SAMPLE]

    rotation = _orthonormal(transform[:3, :3])
    frame_rotation = Quaternion(matrix=rotation)
    centers = boxes_array[:, :3] @ rotation.T + transform[:3, 3]  # (K, 3) global
    velocities = np.concatenate([boxes_array[:, 7:9], np.zeros((len(boxes_array), 1))], 1) @ rotation.T  # (K, 3)
    results = []
    for index in best_first:
        length, width, height, yaw = boxes_array[index, 3:7]
        orientation = frame_rotation * Quaternion(axis=[0.0, 0.0, 1.0], angle=float(yaw))
        class_name = class_names[labels_array[index]]
        velocity = velocities[index, :2]
        results.append(
            {
                "sample_token": sample_token,
                "translation": centers[index].tolist(),
                "size": [float(width), float(length), float(height)],
                "rotation": orientation.elements.tolist(),
                "velocity": velocity.tolist(),
                "detection_name": class_name,
                "detection_score": float(scores_array[index]),
                "attribute_name": attribute_name(class_name, float(np.linalg.norm(velocity))),
            }
        )
    return results


class _SampleTokenDetectionEval(DetectionEval):
    """The devkit's DetectionEval restricted to an explicit list of sample tokens.

    Predictions and GT come from the devkit's token loaders, then the devkit's
    centre-distance and range/points filtering run as in ``DetectionEval.__init__``;
    ``evaluate`` and ``main`` are inherited unchanged.
    """

    def __init__(
        self,
        nusc: NuScenes,
        config: DetectionConfig,
        result_path: Path,
        sample_tokens: list[str],
        eval_set: str,
        output_dir: Path,
        verbose: bool,
    ) -> None:
        self.nusc = nusc
        self.cfg = config
        self.result_path = str(result_path)
        self.eval_set = eval_set
        self.output_dir = str(output_dir)
        self.plot_dir = os.path.join(self.output_dir, "plots")
        self.verbose = verbose
        pred_boxes, self.meta = load_prediction_of_sample_tokens(
            self.result_path, config.max_boxes_per_sample, DetectionBox, sample_tokens=sample_tokens, verbose=verbose
        )
        gt_boxes = load_gt_of_sample_tokens(nusc, sample_tokens, DetectionBox, verbose=verbose)
        self.pred_boxes = self._filtered(add_center_dist(nusc, pred_boxes))
        self.gt_boxes = self._filtered(add_center_dist(nusc, gt_boxes))
        self.sample_tokens = self.gt_boxes.sample_tokens

    def _filtered(self, boxes: EvalBoxes) -> EvalBoxes:
        """The devkit's range / points / bike-rack filtering of ``boxes``.

        Skipped when there is no box at all (an empty prediction set is valid), which
        ``filter_eval_boxes`` cannot handle; there is nothing to filter then.
        """
        if not boxes.all:
            return boxes
        return filter_eval_boxes(self.nusc, boxes, self.cfg.class_range, verbose=self.verbose)


def _split_sample_tokens(nusc: NuScenes, eval_set: str) -> set[str]:
    """Sample tokens of a predefined (train/val/mini_val/...) or custom (splits.json) split."""
    if is_predefined_split(split_name=eval_set):
        return set(get_samples_of_scenes(create_splits_scenes()[eval_set], nusc))
    return set(get_samples_of_custom_split(eval_set, nusc))


class NuScenesDetectionEvaluator(DetectionEvaluator):
    """Collects decoded detections over an epoch and scores them with the devkit.

    DDP-safe through DetectionEvaluator: rank 0 writes the results JSON and scores it.
    Records are ``(result dicts, number of non-finite boxes dropped)`` per sample.

    Args:
        dataroot: nuScenes dataroot (real or synthetic).
        version: e.g. "v1.0-trainval".
        output_dir: where results_nusc.json and the devkit's metrics_summary.json go.
        eval_set: optional split name; when given, every evaluated sample must belong to it.
        class_names: label vocabulary of the decoded ``labels``.
        modalities: sensors the model used, recorded in the results' meta.
        verbose: let the devkit print its progress and summary.
    """

    def __init__(
        self,
        dataroot: str | Path,
        version: str,
        output_dir: str | Path,
        eval_set: str | None = None,
        class_names: Sequence[str] = DETECTION_CLASSES,
        modalities: Sequence[str] = ("lidar", "camera"),
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self.dataroot = Path(dataroot)
        self.version = version
        self.output_dir = Path(output_dir)
        self.eval_set = eval_set
        self.class_names = tuple(class_names)
        self.modalities = tuple(modalities)
        self.verbose = verbose
        self._nusc: NuScenes | None = None

    def convert(
        self, sample_token: str, detections: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], int]:
        """Devkit result dicts of one sample (``meta["lidar2global"]`` places them) and its non-finite box count."""
        boxes, scores, labels = detections["boxes"], detections["scores"], detections["labels"]
        nonfinite = int((~finite_box_mask(boxes, scores)).sum())
        return to_nuscenes_results(sample_token, boxes, scores, labels, meta["lidar2global"], self.class_names), nonfinite

    def nuscenes(self) -> NuScenes:
        """The devkit's database, loaded once."""
        if self._nusc is None:
            with self._quiet():
                self._nusc = NuScenes(version=self.version, dataroot=str(self.dataroot), verbose=self.verbose)
        return self._nusc

    def _quiet(self) -> contextlib.AbstractContextManager[Any]:
        """Silence the devkit's prints and progress bars unless verbose."""
        if self.verbose:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        return stack

    def _check_tokens(self, nusc: NuScenes, sample_tokens: Sequence[str]) -> None:
        """Refuse tokens that are not samples of the database (or of ``eval_set`` when given)."""
        for token in sample_tokens:
            try:
                nusc.get("sample", token)
            except KeyError:
                raise DataError(token, f"not a sample of {self.version} in {self.dataroot}") from None
        if self.eval_set is not None:
            split_tokens = _split_sample_tokens(nusc, self.eval_set)
            for token in sample_tokens:
                if token not in split_tokens:
                    raise DataError(token, f"sample is not in eval_set {self.eval_set!r} of {self.version}")

    def evaluate(self, gathered: Mapping[str, tuple[list[dict[str, Any]], int]]) -> dict[str, float]:
        """Write the results JSON and score it with the devkit (rank 0).

        Returns:
            {"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE", "AP_<class>" per class,
            "num_samples", "nonfinite_boxes"}; the devkit's metrics_summary.json is in output_dir.
        """
        sample_tokens = sorted(gathered)
        nusc = self.nuscenes()
        self._check_tokens(nusc, sample_tokens)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        result_path = self.output_dir / RESULTS_FILE
        submission = {
            "meta": {
                "use_camera": "camera" in self.modalities,
                "use_lidar": "lidar" in self.modalities,
                "use_radar": False,
                "use_map": False,
                "use_external": False,
            },
            "results": {token: gathered[token][0] for token in sample_tokens},
        }
        atomic_write_text(result_path, json.dumps(submission))
        with self._quiet():
            evaluation = _SampleTokenDetectionEval(
                nusc,
                config_factory("detection_cvpr_2019"),
                result_path,
                sample_tokens,
                self.eval_set or "sample_tokens",
                self.output_dir,
                self.verbose,
            )
            summary = evaluation.main(plot_examples=0, render_curves=False)
        metrics = {"mAP": float(summary["mean_ap"]), "NDS": float(summary["nd_score"])}
        metrics.update({TP_ERROR_NAMES[name]: float(value) for name, value in summary["tp_errors"].items()})
        metrics.update({f"AP_{name}": float(value) for name, value in summary["mean_dist_aps"].items()})
        metrics["num_samples"] = float(len(sample_tokens))
        metrics["nonfinite_boxes"] = float(sum(entry[1] for entry in gathered.values()))
        return metrics
