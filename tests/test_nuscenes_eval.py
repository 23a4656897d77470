"""nuScenes detection evaluation: result format, devkit loaders and real DetectionEval scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from nuscenes import NuScenes
from nuscenes.eval.common.loaders import load_gt_of_sample_tokens, load_prediction
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.utils.data_classes import Box
from nuscenes.utils.splits import create_splits_scenes
from pyquaternion import Quaternion

from nsmae_lightning.constants import DETECTION_CLASSES
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.geometry import pose_matrix
from nsmae_lightning.evaluation.nuscenes_detection import (
    MAX_BOXES_PER_SAMPLE,
    NuScenesDetectionEvaluator,
    attribute_name,
    to_nuscenes_results,
)

VERSION = "v1.0-trainval"


def tilted_lidar2global() -> np.ndarray:
    """A pose with yaw, a little roll/pitch and a translation, as float32 (stored poses are)."""
    rotation = Quaternion(axis=[0.0, 0.0, 1.0], angle=2.1) * Quaternion(axis=[1.0, 0.2, 0.0], angle=0.03)
    return pose_matrix(rotation.elements, [410.0, 1180.5, 1.8]).astype(np.float32)


def test_results_match_devkit_box_transform() -> None:
    lidar2global = tilted_lidar2global()
    boxes = torch.tensor([[3.0, -7.5, 0.4, 4.6, 1.9, 1.7, 0.8, 2.0, -1.0], [-12.0, 5.0, -0.2, 0.6, 0.7, 1.8, -2.5, 0.1, 0.0]])
    results = to_nuscenes_results("tok", boxes, torch.tensor([0.3, 0.9]), torch.tensor([0, 8]), lidar2global)
    assert [result["detection_name"] for result in results] == ["pedestrian", "car"]  # best score first
    car = results[1]
    # Reference: the devkit's Box, rotated and translated as mmdet3d's output_to_nusc_box does.
    reference = Box([3.0, -7.5, 0.4], [1.9, 4.6, 1.7], Quaternion(axis=[0, 0, 1], angle=0.8), velocity=(2.0, -1.0, 0.0))
    frame = Quaternion(matrix=lidar2global[:3, :3].astype(np.float64), atol=1e-5)
    reference.rotate(frame)
    reference.translate(lidar2global[:3, 3].astype(np.float64))
    np.testing.assert_allclose(car["translation"], reference.center, atol=1e-4)
    np.testing.assert_allclose(car["size"], [1.9, 4.6, 1.7], atol=1e-6)
    np.testing.assert_allclose(car["velocity"], reference.velocity[:2], atol=1e-4)
    assert Quaternion.absolute_distance(Quaternion(car["rotation"]), reference.orientation) < 1e-4
    assert car["attribute_name"] == "vehicle.moving" and results[0]["attribute_name"] == "pedestrian.standing"


def test_attribute_rule() -> None:
    assert attribute_name("truck", 0.1) == "vehicle.parked"
    assert attribute_name("bus", 0.1) == "vehicle.stopped"
    assert attribute_name("trailer", 0.3) == "vehicle.moving"
    assert attribute_name("bicycle", 1.0) == "cycle.with_rider"
    assert attribute_name("motorcycle", 0.0) == "cycle.without_rider"
    assert attribute_name("pedestrian", 0.5) == "pedestrian.moving"
    assert attribute_name("barrier", 3.0) == "" and attribute_name("traffic_cone", 0.0) == ""


def test_results_json_is_accepted_by_devkit_loader(tmp_path: Path) -> None:
    boxes = torch.tensor([[1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.1, 0.0, 0.0], [5.0, 2.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0]])
    results = {
        "a": to_nuscenes_results("a", boxes, torch.tensor([0.7, 0.2]), torch.tensor([1, 9]), np.eye(4)),
        "b": to_nuscenes_results("b", torch.zeros(0, 9), torch.zeros(0), torch.zeros(0, dtype=torch.int64), np.eye(4)),
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"meta": {"use_lidar": True}, "results": results}))
    loaded, meta = load_prediction(str(path), MAX_BOXES_PER_SAMPLE, DetectionBox)
    assert sorted(loaded.sample_tokens) == ["a", "b"] and meta == {"use_lidar": True}
    truck = loaded["a"][0]
    assert truck.detection_name == "truck" and truck.size == (2.0, 4.0, 1.5) and truck.attribute_name == "vehicle.parked"
    assert truck.detection_score == pytest.approx(0.7)
    assert loaded["b"] == []


def test_nonfinite_boxes_are_dropped_and_boxes_capped() -> None:
    boxes = torch.zeros(MAX_BOXES_PER_SAMPLE + 10, 9)
    boxes[:, 3:6] = 1.0
    boxes[:, 0] = torch.arange(len(boxes), dtype=torch.float32)
    scores = torch.linspace(0.0, 1.0, len(boxes))
    boxes[-1, 2] = float("nan")
    boxes[-2, 7] = float("inf")
    results = to_nuscenes_results("tok", boxes, scores, torch.zeros(len(boxes), dtype=torch.int64), np.eye(4))
    assert len(results) == MAX_BOXES_PER_SAMPLE
    kept_x = [result["translation"][0] for result in results]
    assert kept_x == [float(x) for x in range(len(boxes) - 3, 7, -1)]  # top scores among the finite ones
    assert all(math.isfinite(value) for result in results for value in result["translation"] + result["velocity"])


def test_bad_inputs_raise_naming_the_sample() -> None:
    with pytest.raises(ValueError, match="tok"):
        to_nuscenes_results("tok", torch.zeros(2, 9), torch.zeros(1), torch.zeros(2, dtype=torch.int64), np.eye(4))
    with pytest.raises(ValueError, match="tok.*labels"):
        to_nuscenes_results("tok", torch.zeros(1, 9), torch.zeros(1), torch.tensor([10]), np.eye(4))
