"""KITTI label files: round trips, folder pairing, bad input, and the kitti-eval command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from nsmae_lightning.data.errors import DataError
from nsmae_lightning.evaluation.kitti import (
    KittiLabels,
    evaluate,
    evaluate_dirs,
    read_gt_and_detections,
    read_label_file,
    write_label_dir,
    write_label_file,
)
from nsmae_lightning.evaluation.kitti.cli import main
from nsmae_lightning.evaluation.kitti.synthetic import synthetic_split

GT_LINE = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"


def _assert_same_labels(first: KittiLabels, second: KittiLabels) -> None:
    """Every field equal, exactly."""
    for field in ("name", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y", "score"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field), err_msg=field)


def test_label_line_fields_land_in_the_right_arrays(tmp_path: Path) -> None:
    path = tmp_path / "000001.txt"
    path.write_text(GT_LINE + "\n\nDontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n")
    labels = read_label_file(path)
    assert labels.name.tolist() == ["Car", "DontCare"]
    np.testing.assert_array_equal(labels.bbox[0], [587.01, 173.33, 614.12, 200.12])
    np.testing.assert_array_equal(labels.dimensions[0], [1.65, 1.67, 3.64])  # h, w, l
    np.testing.assert_array_equal(labels.location[0], [-0.65, 1.71, 46.70])
    assert (labels.alpha[0], labels.rotation_y[0], labels.occluded[1]) == (-1.58, -1.59, -1)
    np.testing.assert_array_equal(labels.score, [0.0, 0.0])


def test_write_then_read_gives_the_same_arrays(tmp_path: Path) -> None:
    gt_frames, det_frames = synthetic_split(5, seed=3)
    write_label_dir(tmp_path / "det", {f"{index:06d}": frame for index, frame in enumerate(det_frames)})
    write_label_file(tmp_path / "gt.txt", gt_frames[0], with_score=False)
    for index, frame in enumerate(det_frames):
        _assert_same_labels(read_label_file(tmp_path / "det" / f"{index:06d}.txt", with_score=True), frame)
    _assert_same_labels(read_label_file(tmp_path / "gt.txt"), gt_frames[0])
    write_label_file(tmp_path / "empty.txt", KittiLabels.empty())
    assert len(read_label_file(tmp_path / "empty.txt", with_score=True)) == 0
    assert not list(tmp_path.glob("**/.*.tmp"))  # atomic writes leave no temporaries


@pytest.mark.parametrize(
    ("text", "with_score", "problem"),
    [
        (GT_LINE + "\n" + GT_LINE.rsplit(" ", 1)[0] + "\n", False, "line 2: 14 fields"),
        (GT_LINE + " 0.9 1\n", False, "line 1: 17 fields"),
        (GT_LINE + "\n", True, "line 1: 15 fields"),
        (GT_LINE.replace("46.70", "abc") + "\n", False, "line 1: field 14 'abc' is not a number"),
        (GT_LINE + " nan\n", True, "line 1: field 16 is 'nan'"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path: Path, text: str, with_score: bool, problem: str) -> None:
    path = tmp_path / "000007.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=problem) as caught:
        read_label_file(path, with_score=with_score)
    assert caught.value.path == str(path)


def _write_dirs(root: Path, frame_ids: list[str]) -> tuple[Path, Path]:
    """A ground-truth folder with one car per frame and an empty detection folder."""
    gt_dir, det_dir = root / "label_2", root / "det"
    gt_dir.mkdir()
    det_dir.mkdir()
    for frame_id in frame_ids:
        (gt_dir / f"{frame_id}.txt").write_text(GT_LINE + "\n")
    return gt_dir, det_dir


def test_folder_pairing_missing_and_foreign_detection_files(tmp_path: Path) -> None:
    gt_dir, det_dir = _write_dirs(tmp_path, ["000000", "000001", "000002"])
    (det_dir / "000001.txt").write_text(GT_LINE + " 0.8\n")
    split = tmp_path / "val.txt"
    split.write_text("000000\n000001\n\n")
    ids, gt, det = read_gt_and_detections(gt_dir, det_dir, ["000000", "000001"])
    assert ids == ["000000", "000001"]
    assert [len(frame) for frame in det] == [0, 1]  # missing file = no detections
    (det_dir / "000002.txt").write_text(GT_LINE + " 0.8\n")
    with pytest.raises(DataError, match="frame '000002', which is not in the ground-truth split") as caught:
        evaluate_dirs(gt_dir, det_dir, split)
    assert caught.value.path == str(det_dir / "000002.txt")
    with pytest.raises(DataError, match="no ground-truth label file for frame '000009'"):
        read_gt_and_detections(gt_dir, det_dir, ["000000", "000001", "000002", "000009"])
    with pytest.raises(DataError, match="split file not found"):
        evaluate_dirs(gt_dir, det_dir, tmp_path / "missing.txt")


def test_kitti_eval_command_prints_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gt_frames, det_frames = synthetic_split(30, seed=5)
    ids = {f"{index:06d}": index for index in range(30)}
    write_label_dir(tmp_path / "gt", {frame_id: gt_frames[index] for frame_id, index in ids.items()}, with_score=False)
    write_label_dir(tmp_path / "det", {frame_id: det_frames[index] for frame_id, index in ids.items()})
    out = tmp_path / "results" / "kitti.json"
    assert main([str(tmp_path / "gt"), str(tmp_path / "det"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Car AP@0.70, 0.70, 0.70:\nbbox AP:")
    saved = json.loads(out.read_text())
    expected = evaluate(gt_frames, det_frames)
    for metric, per_class in expected.items():
        for class_name, per_difficulty in per_class.items():
            for difficulty, per_recall in per_difficulty.items():
                for key, value in per_recall.items():
                    stored = saved[metric][class_name][difficulty][key]
                    assert stored is None if math.isnan(value) else stored == pytest.approx(value)
    assert main([str(tmp_path / "gt"), str(tmp_path / "nowhere")]) == 1
    assert "label folder not found" in capsys.readouterr().err


def test_labels_reject_inconsistent_shapes() -> None:
    with pytest.raises(ValueError, match="bbox has shape"):
        KittiLabels(
            name=np.array(["Car"]), truncated=np.zeros(1), occluded=np.zeros(1, dtype=np.int64), alpha=np.zeros(1),
            bbox=np.zeros((1, 3)), dimensions=np.zeros((1, 3)), location=np.zeros((1, 3)), rotation_y=np.zeros(1),
            score=np.zeros(1),
        )
