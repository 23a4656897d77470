"""nuScenes detection evaluation: result format, devkit loaders and real DetectionEval scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import socket

import torch.multiprocessing
from nuscenes import NuScenes
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes, load_gt_of_sample_tokens, load_prediction
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


def no_detections() -> dict[str, torch.Tensor]:
    """An empty decoded sample."""
    return {"boxes": torch.zeros(0, 9), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}


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
        "b": to_nuscenes_results("b", **no_detections(), lidar2global=np.eye(4)),
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


# ---------------------------------------------------------------- real evaluation on the tiny world
def lidar2global_of(nusc: NuScenes, sample_token: str) -> np.ndarray:
    """The keyframe LIDAR_TOP -> global transform, from the devkit's records."""
    lidar_record = nusc.get("sample_data", nusc.get("sample", sample_token)["data"]["LIDAR_TOP"])
    calibration = nusc.get("calibrated_sensor", lidar_record["calibrated_sensor_token"])
    ego_pose = nusc.get("ego_pose", lidar_record["ego_pose_token"])
    return pose_matrix(ego_pose["rotation"], ego_pose["translation"]) @ pose_matrix(calibration["rotation"], calibration["translation"])


def gt_as_detections(
    nusc: NuScenes, sample_tokens: list[str], shift_x: float = 0.0
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, object]]]:
    """The devkit's GT boxes (those with points, which DetectionEval keeps) as LiDAR-frame detections."""
    ground_truth = load_gt_of_sample_tokens(nusc, sample_tokens, DetectionBox)
    decoded, metas = [], []
    for token in sample_tokens:
        lidar2global = lidar2global_of(nusc, token)
        global2lidar = np.linalg.inv(lidar2global)
        rows, labels = [], []
        for box in ground_truth[token]:
            if box.num_pts <= 0:
                continue
            center = global2lidar[:3, :3] @ np.asarray(box.translation) + global2lidar[:3, 3]
            heading = global2lidar[:3, :3] @ Quaternion(box.rotation).rotation_matrix[:, 0]
            velocity = global2lidar[:3, :3] @ np.nan_to_num(np.array([*box.velocity, 0.0]))
            width, length, height = box.size
            rows.append([center[0] + shift_x, center[1], center[2], length, width, height,
                         math.atan2(heading[1], heading[0]), velocity[0], velocity[1]])
            labels.append(DETECTION_CLASSES.index(box.detection_name))
        decoded.append({
            "boxes": torch.tensor(rows, dtype=torch.float32).reshape(-1, 9),
            "scores": torch.full((len(rows),), 0.9),
            "labels": torch.tensor(labels, dtype=torch.int64),
        })
        metas.append({"sample_token": token, "lidar2global": lidar2global.astype(np.float32).tolist()})
    return decoded, metas


@pytest.fixture(scope="module")
def world(tiny_world: Path) -> tuple[Path, NuScenes, list[str]]:
    """The tiny world's dataroot, its devkit database and its val sample tokens."""
    nusc = NuScenes(version=VERSION, dataroot=str(tiny_world), verbose=False)
    val_scenes = set(create_splits_scenes()["val"])
    tokens = [s["token"] for s in nusc.sample if nusc.get("scene", s["scene_token"])["name"] in val_scenes]
    assert tokens, "the tiny world has no val samples"
    return tiny_world, nusc, tokens


def evaluate(
    world: tuple[Path, NuScenes, list[str]], output_dir: Path, sample_tokens: list[str], decoded: list, metas: list
) -> dict[str, float]:
    evaluator = NuScenesDetectionEvaluator(world[0], VERSION, output_dir, eval_set="val")
    evaluator.update(sample_tokens, decoded, metas)
    return evaluator.compute()


def scored_gt_classes(nusc: NuScenes, sample_tokens: list[str]) -> set[str]:
    """Classes with GT boxes left after the devkit's own filtering (points, class range): those can score AP > 0."""
    ground_truth = add_center_dist(nusc, load_gt_of_sample_tokens(nusc, sample_tokens, DetectionBox))
    kept = filter_eval_boxes(nusc, ground_truth, config_factory("detection_cvpr_2019").class_range)
    return {box.detection_name for box in kept.all}


def test_ground_truth_as_detections_scores_full_map(world: tuple[Path, NuScenes, list[str]], tmp_path: Path) -> None:
    _, nusc, tokens = world
    decoded, metas = gt_as_detections(nusc, tokens)
    metrics = evaluate(world, tmp_path / "exact", tokens, decoded, metas)
    present = scored_gt_classes(nusc, tokens)
    assert present, "the tiny world's val split has no annotated boxes"
    for name in present:
        assert metrics[f"AP_{name}"] >= 0.95, name
    assert metrics["mAP"] >= 0.95  # the val split holds every class (SPEC), so nothing scores AP 0
    assert metrics["mATE"] < 1e-3 and metrics["mASE"] < 1e-3 and metrics["mAOE"] < 1e-3
    summary = json.loads((tmp_path / "exact" / "metrics_summary.json").read_text())
    assert summary["mean_ap"] == pytest.approx(metrics["mAP"]) and summary["nd_score"] == pytest.approx(metrics["NDS"])
    assert metrics["num_samples"] == len(tokens) and metrics["nonfinite_boxes"] == 0

    shifted, _ = gt_as_detections(nusc, tokens, shift_x=1.5)
    shifted_metrics = evaluate(world, tmp_path / "shifted", tokens, shifted, metas)
    assert shifted_metrics["mAP"] < metrics["mAP"] - 0.1
    assert shifted_metrics["mATE"] > 0.5  # matched 1.5 m off (nearer GT of the same class aside)


def test_subset_duplicates_and_nonfinite_boxes(world: tuple[Path, NuScenes, list[str]], tmp_path: Path) -> None:
    _, nusc, tokens = world
    subset = tokens[:2]
    decoded, metas = gt_as_detections(nusc, subset)
    subset_metrics = evaluate(world, tmp_path / "subset", subset, decoded, metas)
    assert subset_metrics["num_samples"] == 2
    for name in scored_gt_classes(nusc, subset):
        assert subset_metrics[f"AP_{name}"] >= 0.95, name

    # DDP padding repeats samples; a NaN box must be dropped and counted, not written.
    with_nan = [dict(entry) for entry in decoded]
    nan_box = torch.full((1, 9), float("nan"))
    with_nan[0] = {"boxes": torch.cat([decoded[0]["boxes"], nan_box]), "scores": torch.cat([decoded[0]["scores"], torch.ones(1)]),
                   "labels": torch.cat([decoded[0]["labels"], torch.zeros(1, dtype=torch.int64)])}
    padded_metrics = evaluate(world, tmp_path / "padded", subset + subset[:1], with_nan + decoded[:1], metas + metas[:1])
    assert padded_metrics.pop("nonfinite_boxes") == 1
    subset_metrics.pop("nonfinite_boxes")
    assert padded_metrics == subset_metrics
    written = json.loads((tmp_path / "padded" / "results_nusc.json").read_text())["results"]
    assert sorted(written) == sorted(subset) and len(written[subset[0]]) == len(decoded[0]["boxes"])


def test_empty_predictions_score_zero(world: tuple[Path, NuScenes, list[str]], tmp_path: Path) -> None:
    _, nusc, tokens = world
    metas = [{"lidar2global": np.eye(4)} for _ in tokens]
    metrics = evaluate(world, tmp_path, tokens, [no_detections()] * len(tokens), metas)
    assert metrics["mAP"] == 0.0 and metrics["NDS"] == 0.0
    assert all(metrics[f"AP_{name}"] == 0.0 for name in DETECTION_CLASSES)


def test_samples_outside_eval_set_are_refused(world: tuple[Path, NuScenes, list[str]], tmp_path: Path) -> None:
    _, nusc, tokens = world
    train_token = next(s["token"] for s in nusc.sample if s["token"] not in set(tokens))
    with pytest.raises(DataError, match=train_token):
        evaluate(world, tmp_path, [train_token], [no_detections()], [{"lidar2global": np.eye(4)}])
    with pytest.raises(DataError, match="not a sample"):
        evaluate(world, tmp_path, ["no-such-token"], [no_detections()], [{"lidar2global": np.eye(4)}])


def _ddp_rank(
    rank: int, port: int, dataroot: Path, output_dir: Path, shards: list[tuple[list, list, list]], queue: object
) -> None:
    """One gloo rank: update with its shard, compute, report (rank, metrics or error text)."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(shards))
    try:
        evaluator = NuScenesDetectionEvaluator(dataroot, VERSION, output_dir, eval_set="val")
        evaluator.update(*shards[rank])
        queue.put((rank, evaluator.compute()))
    except Exception as error:  # reported to the test, which fails with it
        queue.put((rank, repr(error)))
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_gather_and_broadcast_the_single_process_metrics(
    world: tuple[Path, NuScenes, list[str]], tmp_path: Path
) -> None:
    _, nusc, tokens = world
    decoded, metas = gt_as_detections(nusc, tokens)
    single = evaluate(world, tmp_path / "single", tokens, decoded, metas)
    half = (len(tokens) + 1) // 2
    # A DistributedSampler pads rank 1 with rank 0's first sample when the count is odd; we pad anyway.
    shards = [
        (tokens[:half], decoded[:half], metas[:half]),
        (tokens[half:] + tokens[:1], decoded[half:] + decoded[:1], metas[half:] + metas[:1]),
    ]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = torch.multiprocessing.get_context("fork")
    queue = context.Queue()
    ranks = [context.Process(target=_ddp_rank, args=(rank, port, world[0], tmp_path / "ddp", shards, queue)) for rank in range(2)]
    for process in ranks:
        process.start()
    reports = dict(queue.get(timeout=120) for _ in ranks)
    for process in ranks:
        process.join(timeout=30)
    assert reports[0] == single, reports[0]
    assert reports[1] == single, reports[1]
