"""KITTI detection: predictions as KITTI label files (round trip, hand-computed values), our evaluator
behind the task (ground truth as predictions, bad input), and NS-MAE pretraining -> hand-off ->
fine-tuning at a label ratio with the GT-database sampler -> test through the real CLI on the synthetic KITTI twin."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from test_cli import run_cli

from nsmae_lightning.configuration import as_config
from nsmae_lightning.constants import KITTI_CLASSES
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.kitti import label_difficulty, read_calib, read_labels, read_objects, read_split
from nsmae_lightning.data.splits import read_manifest, select_labelled
from nsmae_lightning.evaluation.kitti import (
    KittiLabels,
    evaluate,
    read_gt_and_detections,
    read_label_file,
    write_label_file,
)
from nsmae_lightning.evaluation.kitti_detection import KittiDetectionEvaluator, predictions_to_labels
from nsmae_lightning.models.embedding import EmbeddingConfig, EmbeddingNetwork
from nsmae_lightning.models.heads.detection import DetectionHeadConfig, TaskGroup

# Standard KITTI mounting (velodyne x forward, y left, z up; camera x right, y down, z forward) and a P2
# whose camera sits 0.06 m right of the rectified camera 0.
VELO_TO_CAM = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
P2 = np.array([[100.0, 0.0, 100.0, 100.0 * 0.06], [0.0, 100.0, 30.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
IMAGE_SIZE = (200, 60)  # (W, H)
# LiDAR-frame boxes x, y, z, l, w, h, yaw, vx, vy; the car is CAR_LABEL in label_2.
CAR = [10.27, -1.0, -0.83, 4.0, 1.6, 1.5, -np.pi / 2, 0.0, 0.0]
CAR_LABEL = "Car 0.00 0 0.00 10.0 10.0 50.0 40.0 1.50 1.60 4.00 1.00 1.50 10.00 0.00"
PREDICTIONS = np.array([
    CAR,
    [15.0, 2.0, -0.5, 0.8, 0.6, 1.7, 0.3, 0.0, 0.0],
    [20.0, -3.0, -0.6, 1.8, 0.6, 1.7, 2.5, 0.0, 0.0],
    [5.0, 30.0, -0.5, 4.0, 1.6, 1.5, 0.0, 0.0, 0.0],  # left of the camera's field of view
])  # fmt: skip
SCORES = np.array([0.5, 0.9, 0.7, 0.8])
LABELS = np.array([0, 1, 2, 0])


def detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> dict[str, torch.Tensor]:
    """One frame's decoded head output."""
    return {
        "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 9),
        "scores": torch.as_tensor(scores, dtype=torch.float32),
        "labels": torch.as_tensor(labels, dtype=torch.int64),
    }


def write_calib(path: Path) -> dict[str, np.ndarray]:
    """A KITTI calib file of the hand-built rig, read back with the data module's reader."""
    numbers = lambda values: " ".join(f"{value:.6f}" for value in np.ravel(values))  # noqa: E731
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"P{index}: {numbers(P2)}\n" for index in range(4))
        + f"R0_rect: {numbers(np.eye(3))}\nTr_velo_to_cam: {numbers(VELO_TO_CAM)}\n"
        + f"Tr_imu_to_velo: {numbers(VELO_TO_CAM)}\n"
    )
    return read_calib(path)


def test_predictions_become_kitti_rows_by_hand(tmp_path: Path) -> None:
    calib = write_calib(tmp_path / "calib.txt")
    rows = predictions_to_labels(PREDICTIONS, SCORES, LABELS, calib, IMAGE_SIZE)
    assert rows.name.tolist() == ["Pedestrian", "Cyclist", "Car"]  # best first; the car left of the image is gone
    np.testing.assert_array_equal(rows.score, [0.9, 0.7, 0.5])
    np.testing.assert_array_equal(rows.truncated, [-1.0] * 3)
    np.testing.assert_array_equal(rows.occluded, [-1] * 3)
    car = 2
    np.testing.assert_allclose(rows.dimensions[car], [1.5, 1.6, 4.0], atol=1e-12)  # h, w, l
    np.testing.assert_allclose(rows.location[car], [1.0, 1.5, 10.0], atol=1e-6)
    assert rows.rotation_y[car] == pytest.approx(0.0, abs=1e-6)
    assert rows.alpha[car] == pytest.approx(-math.atan2(1.0, 10.0), abs=1e-6)
    # Corners: camera-2 x in [-0.94, 3.06], y in [0, 1.5], z in [9.2, 10.8]; u = 100 x / z + 100, v = 100 y / z + 30.
    np.testing.assert_allclose(rows.bbox[car], [100 - 94 / 9.2, 30.0, 100 + 306 / 9.2, 30 + 150 / 9.2], atol=1e-4)


def test_label_files_round_trip(tmp_path: Path) -> None:
    calib = write_calib(tmp_path / "calib.txt")
    rows = predictions_to_labels(PREDICTIONS, SCORES, LABELS, calib, IMAGE_SIZE)
    write_label_file(tmp_path / "det" / "000000.txt", rows)
    read_back = read_label_file(tmp_path / "det" / "000000.txt", with_score=True)  # the evaluator's reader
    for field in ("name", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y", "score"):
        np.testing.assert_array_equal(getattr(read_back, field), getattr(rows, field), err_msg=field)
    # And the data module's reader turns the file back into the predicted LiDAR boxes.
    boxes, labels = read_labels(tmp_path / "det" / "000000.txt", calib["rect2lidar"])
    order = [1, 2, 0]
    np.testing.assert_array_equal(labels, LABELS[order])
    np.testing.assert_allclose(boxes, PREDICTIONS[order], atol=2e-6)


def val_ground_truth(world: Path) -> tuple[list[str], list[dict[str, torch.Tensor]], dict[str, int]]:
    """The val frames, their target labels as score-1 predictions, and how many objects per class count at moderate."""
    training = world / "training"
    frames = read_split(world, "val")
    decoded, moderate = [], dict.fromkeys(KITTI_CLASSES, 0)
    for frame_id in frames:
        calib = read_calib(training / "calib" / f"{frame_id}.txt")
        boxes, labels = read_labels(training / "label_2" / f"{frame_id}.txt", calib["rect2lidar"])
        decoded.append(detections(boxes, np.ones(len(boxes)), labels))
        gt = read_label_file(training / "label_2" / f"{frame_id}.txt")
        difficulty = label_difficulty(gt.bbox[:, 3] - gt.bbox[:, 1], gt.occluded, gt.truncated)
        for name in KITTI_CLASSES:
            moderate[name] += int(((gt.name == name) & (difficulty >= 0) & (difficulty <= 1)).sum())
    return frames, decoded, moderate


def test_ground_truth_as_predictions_scores_perfect_recall_sampling(tiny_kitti_world: Path, tmp_path: Path) -> None:
    frames, decoded, moderate = val_ground_truth(tiny_kitti_world)
    assert moderate == {"Car": 4, "Pedestrian": 1, "Cyclist": 0}
    evaluator = KittiDetectionEvaluator(tiny_kitti_world, tmp_path, split="val")
    evaluator.update(frames, decoded, [{"lidar_aug": np.eye(4)}] * len(frames))
    metrics = evaluator.compute()
    # n perfect matches give n of the 41 recall samples precision 1: R40 = (n - 1) / 40, R11 = ceil(n / 4) / 11.
    for name, count in (("Car", 4), ("Pedestrian", 1)):
        for metric in ("3d", "bev"):
            assert metrics[f"{name}_{metric}_moderate_R40"] == pytest.approx(100.0 * (count - 1) / 40)
            assert metrics[f"{name}_{metric}_moderate_R11"] == pytest.approx(100.0 * math.ceil(count / 4) / 11)
    assert metrics["mAP_3d_moderate_R40"] == pytest.approx((7.5 + 0.0) / 2)  # Cyclist has nothing to count
    assert "Cyclist_3d_moderate_R40" not in metrics
    assert metrics["num_frames"] == len(frames) and metrics["nonfinite_boxes"] == 0
    assert sorted(path.stem for path in (tmp_path / "data").glob("*.txt")) == sorted(frames)
    saved = json.loads((tmp_path / "results_kitti.json").read_text())
    assert saved["3d"]["Car"]["moderate"]["R40"] == pytest.approx(metrics["Car_3d_moderate_R40"])
    assert (tmp_path / "results_kitti.txt").read_text().startswith("Car AP@0.70, 0.70, 0.70:")


def test_evaluator_bad_input(tiny_kitti_world: Path, tmp_path: Path) -> None:
    frames, decoded, _ = val_ground_truth(tiny_kitti_world)
    train_frame = read_split(tiny_kitti_world, "train")[0]
    evaluator = KittiDetectionEvaluator(tiny_kitti_world, tmp_path / "run", split="val")
    outside = rf"ImageSets/val.txt: detections for frame '{train_frame}', which is not in the split"
    with pytest.raises(DataError, match=outside):
        evaluator.update([train_frame], decoded[:1], [{}])
    # A NaN box from the model is dropped and counted; the file written holds only finite rows.
    with_nan = dict(decoded[0], boxes=decoded[0]["boxes"].clone())
    with_nan["boxes"][0, 0] = float("nan")
    evaluator.update(frames[:1], [with_nan], [{}])
    metrics = evaluator.compute()
    assert metrics["nonfinite_boxes"] == 1 and metrics["num_frames"] == 1
    written = read_label_file(tmp_path / "run" / "data" / f"{frames[0]}.txt", with_score=True)
    assert len(written) == len(decoded[0]["boxes"]) - 1
    # A stray detection file in the folder: the evaluator's reader names it.
    stray = tmp_path / "stray" / "data" / "999999.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("")
    evaluator = KittiDetectionEvaluator(tiny_kitti_world, tmp_path / "stray")
    evaluator.update(frames[:1], decoded[:1], [{}])
    foreign = r"999999.txt: detections for frame '999999', which is not in the ground-truth split"
    with pytest.raises(DataError, match=foreign):
        evaluator.compute()
    # NaN scores handed to the evaluator in memory (files cannot carry them: the reader refuses them).
    gt = [read_label_file(tiny_kitti_world / "training" / "label_2" / f"{frame}.txt") for frame in frames[:2]]
    nan_scores = KittiLabels.from_arrays(["Car"], [0.0], [0], [0.0], [[0, 0, 50, 50]], [[1.5, 1.6, 4]], [[0, 1.5, 10]],
                                         [0.0], [float("nan")])  # fmt: skip
    with pytest.raises(ValueError, match=r"detection frame 1, row 0 \(Car\): score nan is not finite"):
        evaluate(gt, [KittiLabels.empty(), nan_scores])


def test_ground_truth_line_with_wrong_field_count_names_file_and_line(tmp_path: Path) -> None:
    training = tmp_path / "training"
    write_calib(training / "calib" / "000000.txt")
    (training / "image_2").mkdir()
    Image.fromarray(np.zeros((60, 200, 3), np.uint8)).save(training / "image_2" / "000000.png")
    label = training / "label_2" / "000000.txt"
    label.parent.mkdir()
    label.write_text(f"{CAR_LABEL}\nCar 0.00 0 0.00 10.0 10.0\n")
    (tmp_path / "ImageSets").mkdir()
    (tmp_path / "ImageSets" / "val.txt").write_text("000000\n")
    with pytest.raises(DataError, match=r"000000.txt: line 2 has 6 fields, expected 15"):
        read_objects(label, np.eye(4))  # the data module's reader
    evaluator = KittiDetectionEvaluator(tmp_path, tmp_path / "eval", split="val")
    evaluator.update(["000000"], [detections(np.array([CAR]), np.ones(1), np.zeros(1))], [{}])
    with pytest.raises(DataError, match=r"label_2/000000.txt: line 2: 6 fields, a ground-truth label line has 15"):
        evaluator.compute()


def test_kitti_configs_build_a_three_class_head_on_kitti_geometry() -> None:
    configs = Path(__file__).resolve().parents[1] / "configs"
    for name in ("detection", "detection_db"):
        model = yaml.safe_load((configs / "kitti" / f"{name}.yaml").read_text())["model"]["init_args"]
        head = as_config(DetectionHeadConfig, model["head"])  # the dict form checkpoints keep
        assert head.class_names == KITTI_CLASSES and model["evaluation"] == "kitti"
        assert head.tasks == (TaskGroup(KITTI_CLASSES, "rotated", 0.01),)
    embedding_yaml = yaml.safe_load((configs / "embedding" / "kitti.yaml").read_text())
    embedding = EmbeddingNetwork(as_config(EmbeddingConfig, embedding_yaml))
    assert embedding.geometry() == {"pc_range": [0.0, -40.0, -3.0, 70.4, 40.0, 1.0], "voxel_size": [0.05, 0.05, 0.1],
                                    "num_cameras": 1, "bev_shape": [200, 176]}  # fmt: skip
    assert embedding.config.lidar.sparse_shape == (41, 1600, 1408)


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def kitti_pretrain_checkpoint(tiny_kitti_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-step NS-MAE pretraining on the KITTI twin's frames (labels unused) through ``nsmae fit``."""
    out = tmp_path_factory.mktemp("kitti_pretrain")
    run_cli("fit", "kitti/pretrain_tiny.yaml", tiny_kitti_world, out, "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=0")  # fmt: skip
    checkpoints = sorted(out.rglob("*.ckpt"))
    assert checkpoints, f"no checkpoint written under {out}"
    return checkpoints[-1]


def test_kitti_pretrain_fast_dev_run(tiny_kitti_world: Path, tmp_path: Path) -> None:
    run_cli("fit", "kitti/pretrain_tiny.yaml", tiny_kitti_world, tmp_path, "--trainer.fast_dev_run=1")
    assert (tmp_path / "renders" / "epoch_000.png").stat().st_size > 0  # the validation batch was rendered


def logged(run_dir: Path, prefix: str) -> dict[str, float]:
    """The last logged value of every metric starting with ``prefix`` in the run's metrics.csv."""
    values: dict[str, float] = {}
    with next(run_dir.rglob("metrics.csv")).open(newline="") as handle:
        for record in csv.DictReader(handle):
            values.update({key: float(value) for key, value in record.items() if key.startswith(prefix) and value})
    return values


def test_kitti_fit_with_db_and_test_log_kitti_ap(
    tiny_kitti_world: Path, kitti_pretrain_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    db = "{sample_groups: {Car: 4, Pedestrian: 2, Cyclist: 2}, min_points: {Car: 1, Pedestrian: 1, Cyclist: 1}, " \
         "exclude_difficulties: []}"  # fmt: skip
    run_cli("fit", "kitti/tiny.yaml", tiny_kitti_world, tmp_path, "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1", "--trainer.num_sanity_val_steps=0",
            f"--model.init_args.pretrained={kitti_pretrain_checkpoint}", f"--data.init_args.gt_sampler={db}",
            "--data.init_args.label_ratio=0.5")  # fmt: skip
    printed = capsys.readouterr().out
    handoff = printed.split("pretrained embedding", 1)[1].splitlines()[0]
    assert handoff.endswith("missing 0, unexpected 0, shape-skipped 0") and "loaded 0," not in handoff
    labelled = select_labelled(read_split(tiny_kitti_world, "train"), 0.5, split_seed=0)
    assert read_manifest(next(tmp_path.rglob("label_split.json"))).tokens == labelled
    val = logged(tmp_path, "val/")
    eval_dir = next(tmp_path.rglob("kitti_eval/val_epoch_000"))
    frames = read_split(tiny_kitti_world, "val")
    _, gt, det = read_gt_and_detections(tiny_kitti_world / "training" / "label_2", eval_dir / "data", frames)
    results = evaluate(gt, det)  # the files the run wrote, scored again here
    for metric in ("3d", "bev"):
        for difficulty in ("moderate", "hard"):
            key = f"val/Car_{metric}_{difficulty}_R40"
            assert val[key] == pytest.approx(results[metric]["Car"][difficulty]["R40"], abs=1e-4)
            per_class = [results[metric][name][difficulty]["R40"] for name in KITTI_CLASSES]
            mean = np.mean([value for value in per_class if not math.isnan(value)])
            assert val[f"val/mAP_{metric}_{difficulty}_R40"] == pytest.approx(mean, abs=1e-4)
    assert val["val/num_frames"] == len(frames) and "val/Cyclist_3d_moderate_R40" not in val  # no countable cyclist
    checkpoint = sorted(tmp_path.rglob("*.ckpt"))[-1]
    run_cli("test", "kitti/tiny.yaml", tiny_kitti_world, tmp_path / "test", f"--ckpt_path={checkpoint}",
            "--trainer.limit_test_batches=1")  # fmt: skip
    test = logged(tmp_path / "test", "test/")
    assert test["test/num_frames"] == 2 and 0.0 <= test["test/mAP_3d_moderate_R40"] <= 100.0
