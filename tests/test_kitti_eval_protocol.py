"""The KITTI protocol on hand-built frames whose AP is derived by hand in each test."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from nsmae_lightning.evaluation.kitti import (
    KittiLabels,
    average_precision,
    evaluate,
    flatten_results,
    format_results,
    pr_curve,
)
from nsmae_lightning.evaluation.kitti.matching import score_thresholds

CAR_SIZE = (1.5, 1.6, 3.9)


def _labels(*objects: dict) -> KittiLabels:
    """One frame from object dicts (defaults: an easy, unrotated car 20 m ahead).

    Keys: name, bbox, and optionally location, dims, ry, alpha, truncated, occluded, score.
    """
    return KittiLabels.from_arrays(
        name=[item["name"] for item in objects],
        truncated=[item.get("truncated", 0.0) for item in objects],
        occluded=[item.get("occluded", 0) for item in objects],
        alpha=[item.get("alpha", 0.0) for item in objects],
        bbox=[item["bbox"] for item in objects],
        dimensions=[item.get("dims", CAR_SIZE) for item in objects],
        location=[item.get("location", (0.0, 1.65, 20.0)) for item in objects],
        rotation_y=[item.get("ry", 0.0) for item in objects],
        score=[item.get("score", 0.0) for item in objects],
    )


def _car(bbox: tuple[float, ...], location: tuple[float, ...], **extra: float) -> dict:
    """A Car object dict for :func:`_labels`."""
    return {"name": "Car", "bbox": bbox, "location": location, **extra}


CAR_BOX = (100.0, 100.0, 200.0, 160.0)  # 60 px high: easy
CAR_AT = (0.0, 1.65, 20.0)
FAR_BOX = (600.0, 100.0, 700.0, 160.0)
FAR_AT = (-5.0, 1.65, 40.0)


def _four_frames(van_name: str = "Van") -> tuple[list[KittiLabels], list[KittiLabels]]:
    """Four frames, one easy car each, detected at scores 0.9, 0.7, 0.5, 0.3.

    Frame 0 adds a false positive (0.95), a car detection on a Van (0.99) and one inside a
    DontCare region (0.97); frame 2 an undetected hard-only car; frame 3 a false positive (0.4).
    """
    van_box, van_at = (400.0, 100.0, 520.0, 170.0), (5.0, 1.65, 20.0)
    dontcare_box = (800.0, 100.0, 900.0, 200.0)
    gt = [
        _labels(
            _car(CAR_BOX, CAR_AT),
            {"name": van_name, "bbox": van_box, "location": van_at},
            {"name": "DontCare", "bbox": dontcare_box, "location": (-1000.0,) * 3, "dims": (-1.0,) * 3},
        ),
        _labels(_car(CAR_BOX, CAR_AT)),
        _labels(_car(CAR_BOX, CAR_AT), _car((300.0, 100.0, 400.0, 130.0), (-3.0, 1.65, 30.0), occluded=2)),
        _labels(_car(CAR_BOX, CAR_AT)),
    ]
    det = [
        _labels(
            _car(CAR_BOX, CAR_AT, score=0.9),
            _car(FAR_BOX, FAR_AT, score=0.95),
            _car(van_box, van_at, score=0.99),
            _car((810.0, 110.0, 890.0, 190.0), (10.0, 1.65, 50.0), score=0.97),
        ),
        _labels(_car(CAR_BOX, CAR_AT, score=0.7)),
        _labels(_car(CAR_BOX, CAR_AT, score=0.5)),
        _labels(_car(CAR_BOX, CAR_AT, score=0.3), _car(FAR_BOX, FAR_AT, score=0.4)),
    ]
    return gt, det


def test_hand_built_bbox_ap_with_fp_van_dontcare_and_missed_hard_box() -> None:
    gt, det = _four_frames()
    curve = pr_curve(gt, det, "Car", "moderate", "bbox", 0.7)
    # 4 countable cars (the occluded one is hard only); one threshold per TP score
    assert curve.num_valid_gt == 4
    np.testing.assert_allclose(curve.thresholds, [0.9, 0.7, 0.5, 0.3])
    # the Van detection (0.99) is ignored, the DontCare one (0.97) too: FPs are 0.95 and 0.4
    np.testing.assert_array_equal(curve.tp, [1, 2, 3, 4])
    np.testing.assert_array_equal(curve.fp, [1, 1, 1, 2])
    np.testing.assert_array_equal(curve.fn, [3, 2, 1, 0])
    # precision 1/2, 2/3, 3/4, 4/6 -> monotone 3/4, 3/4, 3/4, 2/3, then zeros
    expected = np.zeros(41)
    expected[:4] = [0.75, 0.75, 0.75, 2 / 3]
    np.testing.assert_allclose(curve.precision(), expected)
    ap = evaluate(gt, det, classes=("Car",))["bbox"]["Car"]["moderate"]
    assert ap["R11"] == pytest.approx(0.75 / 11 * 100)
    assert ap["R40"] == pytest.approx((0.75 + 0.75 + 2 / 3) / 40 * 100)


def test_missed_hard_box_is_a_false_negative_only_at_hard() -> None:
    gt, det = _four_frames()
    hard = pr_curve(gt, det, "Car", "hard", "bbox", 0.7)
    assert hard.num_valid_gt == 5
    np.testing.assert_array_equal(hard.fn, [4, 3, 2, 1])
    assert pr_curve(gt, det, "Car", "easy", "bbox", 0.7).num_valid_gt == 4


def test_dontcare_only_filters_the_2d_metric() -> None:
    gt, det = _four_frames()
    curve = pr_curve(gt, det, "Car", "moderate", "3d", 0.7)
    # the detection inside the DontCare region now counts as a false positive
    np.testing.assert_array_equal(curve.fp, [2, 2, 2, 3])
    # precision 1/3, 2/4, 3/5, 4/7 -> monotone 0.6, 0.6, 0.6, 4/7
    ap = evaluate(gt, det, classes=("Car",), metrics=("3d",))["3d"]["Car"]["moderate"]
    assert ap["R11"] == pytest.approx(0.6 / 11 * 100)
    assert ap["R40"] == pytest.approx((0.6 + 0.6 + 4 / 7) / 40 * 100)


def test_van_is_ignored_for_car_but_another_class_is_not() -> None:
    gt, det = _four_frames(van_name="Truck")
    # a Car detection on a Truck is an ordinary false positive (at every threshold <= 0.99)
    np.testing.assert_array_equal(pr_curve(gt, det, "Car", "moderate", "bbox", 0.7).fp, [2, 2, 2, 3])


def test_difficulty_rules_and_person_sitting() -> None:
    box = (100.0, 100.0, 150.0, 100.0)  # height set per object below

    def pedestrian(height: float, **extra: float) -> dict:
        return {"name": "Pedestrian", "bbox": (box[0], 100.0, box[2], 100.0 + height), **extra}

    frame = _labels(
        pedestrian(40.0),  # exactly the easy minimum height: counts (official devkit)
        pedestrian(39.9),  # moderate and hard
        pedestrian(60.0, occluded=1),  # moderate and hard
        pedestrian(60.0, truncated=0.4),  # hard only
        pedestrian(60.0, occluded=3),  # never
        pedestrian(24.9),  # never
        {"name": "Person_sitting", "bbox": (0.0, 0.0, 10.0, 80.0)},  # ignored, never counted
    )
    counts = [pr_curve([frame], [KittiLabels.empty()], "Pedestrian", name, "bbox", 0.5).num_valid_gt
              for name in ("easy", "moderate", "hard")]
    assert counts == [1, 3, 4]


def test_low_detection_absorbs_its_ground_truth_without_counting() -> None:
    gt = [_labels(_car((0.0, 100.0, 100.0, 126.0), CAR_AT), _car(CAR_BOX, FAR_AT))]
    det = [_labels(
        _car((0.0, 100.0, 100.0, 124.5), CAR_AT, score=0.9),  # 24.5 px < 25: ignored detection, IoU 0.94
        _car(CAR_BOX, FAR_AT, score=0.8),
    )]
    curve = pr_curve(gt, det, "Car", "moderate", "bbox", 0.7)
    assert curve.num_valid_gt == 2
    np.testing.assert_array_equal([curve.tp, curve.fp, curve.fn], [[1], [0], [0]])


def test_r11_and_r40_on_the_same_curve() -> None:
    precision = 1.0 - np.arange(41) / 40.0  # 1, 0.975, ..., 0
    # R11: mean of 1 - k/10 for k = 0..10 = 0.5; R40: mean of 1 - i/40 for i = 1..40 = 19.5/40
    assert average_precision(precision) == pytest.approx({"R11": 50.0, "R40": 48.75})
    with pytest.raises(ValueError, match="shape"):
        average_precision(precision[:40])


def test_score_thresholds_sample_recall_in_fortieths() -> None:
    scores = np.arange(80, 0, -1).astype(np.float64)  # 80 TPs of 80 ground-truth boxes
    # recall (i + 1) / 80 is kept at i = 0 and every odd i: 0, 1/40, 2/40, ... (41 thresholds)
    expected = [80.0] + [80.0 - index for index in range(1, 80, 2)]
    np.testing.assert_array_equal(score_thresholds(scores, 80, 41), expected)
    # fewer TPs than ground truth: one threshold per TP
    np.testing.assert_array_equal(score_thresholds(np.array([0.2, 0.9, 0.5]), 10, 41), [0.9, 0.5, 0.2])


def _perfect_split(per_class: int, alpha_error: float = 0.0) -> tuple[list[KittiLabels], list[KittiLabels]]:
    """One easy object per frame, ``per_class`` frames per class, detected exactly."""
    gt, det = [], []
    for class_index, name in enumerate(("Car", "Pedestrian", "Cyclist")):
        for index in range(per_class):
            item = {"name": name, "bbox": (10.0 * index, 100.0, 10.0 * index + 50.0, 170.0),
                    "location": (0.1 * index, 1.65, 10.0 + class_index), "alpha": 0.3}
            gt.append(_labels(item))
            det.append(_labels({**item, "score": 1.0 - index / 1000.0, "alpha": 0.3 + alpha_error}))
    return gt, det


def test_perfect_detections_score_100_and_orientation_similarity() -> None:
    results = evaluate(*_perfect_split(50))
    for metric in ("bbox", "bev", "3d", "aos", "3d_loose"):
        for class_name in ("Car", "Pedestrian", "Cyclist"):
            for difficulty in ("easy", "moderate", "hard"):
                assert results[metric][class_name][difficulty] == pytest.approx({"R11": 100.0, "R40": 100.0})
    # a quarter-turn orientation error halves the similarity: (1 + cos(pi / 2)) / 2
    aos = evaluate(*_perfect_split(50, alpha_error=math.pi / 2), metrics=("aos",))["aos"]["Car"]["moderate"]
    assert aos == pytest.approx({"R11": 50.0, "R40": 50.0})


def test_forty_perfect_detections_miss_the_last_recall_point() -> None:
    # 40 TPs give 40 thresholds (indices 0..39); the 41st sample, at recall 1, stays 0
    ap = evaluate(*_perfect_split(40), classes=("Car",), metrics=("bev",))["bev"]["Car"]["easy"]
    assert ap == pytest.approx({"R11": 10 / 11 * 100, "R40": 97.5})


def test_no_countable_ground_truth_gives_nan_and_table_shape() -> None:
    gt, det = _four_frames()
    results = evaluate(gt, det, classes=("Car", "Cyclist"), metrics=("bbox", "aos"))
    assert math.isnan(results["bbox"]["Cyclist"]["easy"]["R40"])
    assert set(results) == {"bbox", "aos", "bbox_loose", "aos_loose"}
    table = format_results(results).splitlines()
    assert table[:3] == [
        "Car AP@0.70, 0.70, 0.70:",
        f"bbox AP:{0.75 / 11 * 100:.4f}, {0.75 / 11 * 100:.4f}, {0.75 / 11 * 100:.4f}",
        f"aos  AP:{0.75 / 11 * 100:.4f}, {0.75 / 11 * 100:.4f}, {0.75 / 11 * 100:.4f}",
    ]
    assert "Cyclist AP_R40@0.50, 0.25, 0.25:" in table
    assert flatten_results(results)["kitti/bbox/Car/moderate/R11"] == pytest.approx(0.75 / 11 * 100)


def test_missing_orientation_skips_aos_with_a_warning() -> None:
    gt, det = _four_frames()
    det[0] = dataclasses.replace(det[0], alpha=np.full(len(det[0]), -10.0))
    with pytest.warns(UserWarning, match="alpha = -10"):
        results = evaluate(gt, det, classes=("Car",))
    assert "aos" not in results and "bbox" in results


def test_bad_arguments_are_rejected() -> None:
    gt, det = _four_frames()
    with pytest.raises(ValueError, match="Truck"):
        evaluate(gt, det, classes=("Truck",))
    with pytest.raises(ValueError, match="iou"):
        evaluate(gt, det, metrics=("iou",))
    with pytest.raises(ValueError, match="4 ground-truth frames but 3"):
        evaluate(gt, det[:3])
