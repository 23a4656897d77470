"""BEV IoU metric (threshold sweep, DDP-safe sums, ignore mask) and the BEV prediction plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nsmae_lightning.constants import MAP_CLASSES
from nsmae_lightning.evaluation.bev_iou import DEFAULT_THRESHOLDS, BEVIoU
from nsmae_lightning.evaluation.bev_plot import CLASS_COLOURS, plot_bev_predictions


def reference_best_iou(probs: np.ndarray, target: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """Per-class max over thresholds of |pred & gt| / |pred | gt| over non-ignored pixels, by loops."""
    valid = np.ones_like(target) if ignore is None else ~np.broadcast_to(ignore[:, None], target.shape)
    best = np.zeros(probs.shape[1])
    for c in range(probs.shape[1]):
        ious = []
        for threshold in DEFAULT_THRESHOLDS:
            predicted = probs[:, c] >= np.float32(threshold)
            truth = target[:, c]
            keep = valid[:, c]
            union = ((predicted | truth) & keep).sum()
            ious.append(((predicted & truth) & keep).sum() / union if union else 0.0)
        best[c] = max(ious)
    return best


def random_batch(seed: int, frames: int = 4, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(frames, len(MAP_CLASSES), size, size, generator=generator) > 0.6
    noise = torch.rand(frames, len(MAP_CLASSES), size, size, generator=generator)
    probs = (0.55 * target.float() + 0.6 * noise).clamp(0, 1)  # informative but imperfect
    return probs, target


def test_threshold_sweep_takes_the_best_threshold_on_a_hand_built_mask() -> None:
    # Positives scored 0.9, 0.58, 0.42; negatives 0.62, 0.38, 0.1, 0.0 ...
    probs = torch.tensor([0.9, 0.58, 0.42, 0.62, 0.38, 0.1, 0.0, 0.0]).reshape(1, 1, 2, 4)
    target = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0], dtype=torch.bool).reshape(1, 1, 2, 4)
    metric = BEVIoU(classes=("road",))
    metric.update(probs, target)
    # t=0.35: 3/5; 0.40: 3/4; 0.45-0.55: 2/4; 0.60: 1/4; 0.65: 1/3.
    expected = torch.tensor([3 / 5, 3 / 4, 2 / 4, 2 / 4, 2 / 4, 1 / 4, 1 / 3], dtype=torch.float64)
    torch.testing.assert_close(metric.iou_per_threshold()[0], expected)
    scores = metric.compute()
    assert scores["iou/road"].item() == pytest.approx(0.75)
    assert scores["mIoU"].item() == pytest.approx(0.75)
    assert metric.tp[0].tolist() == [3, 3, 2, 2, 2, 1, 1]
    assert metric.fp[0].tolist() == [2, 1, 1, 1, 1, 1, 0]
    assert metric.fn[0].tolist() == [0, 0, 1, 1, 1, 2, 2]


def test_probability_equal_to_threshold_counts_as_positive() -> None:
    metric = BEVIoU(classes=("road",), thresholds=(0.5,))
    metric.update(torch.tensor([0.5, 0.49]).reshape(1, 1, 1, 2), torch.tensor([True, False]).reshape(1, 1, 1, 2))
    assert metric.compute()["iou/road"].item() == 1.0


def test_bf16_probabilities_meet_float32_thresholds() -> None:
    # bf16 has no 0.35: its nearest value 0.3496 is below the threshold, not equal to a rounded one
    below = torch.tensor(0.35).bfloat16()
    assert float(below) < 0.35
    metric = BEVIoU(classes=("road",), thresholds=(0.35,))
    probs = torch.stack([below, torch.tensor(0.36).bfloat16()]).reshape(1, 1, 1, 2)
    metric.update(probs, torch.tensor([False, True]).reshape(1, 1, 1, 2))
    assert metric.tp[0].tolist() == [1] and metric.fp[0].tolist() == [0]
    assert metric.compute()["iou/road"].item() == 1.0


def test_matches_numpy_reference_over_batches() -> None:
    metric = BEVIoU()
    batches = [random_batch(seed) for seed in range(3)]
    for probs, target in batches:
        metric.update(probs, target)
    scores = metric.compute()
    all_probs = torch.cat([p for p, _ in batches]).numpy()
    all_target = torch.cat([t for _, t in batches]).numpy()
    expected = reference_best_iou(all_probs, all_target)
    assert set(scores) == {f"iou/{name}" for name in MAP_CLASSES} | {"mIoU"}
    for index, name in enumerate(MAP_CLASSES):
        assert scores[f"iou/{name}"].item() == pytest.approx(expected[index], abs=1e-12)
    assert scores["mIoU"].item() == pytest.approx(expected.mean(), abs=1e-12)
    assert 0.2 < scores["mIoU"].item() < 1.0


def test_ignore_mask_drops_pixels_from_every_count() -> None:
    probs, target = random_batch(5)
    ignore = torch.zeros(probs.shape[0], *probs.shape[2:], dtype=torch.bool)
    ignore[:, :, :5] = True
    metric = BEVIoU()
    metric.update(probs, target, ignore=ignore)
    expected = reference_best_iou(probs.numpy(), target.numpy(), ignore.numpy())
    torch.testing.assert_close(
        torch.stack([metric.compute()[f"iou/{name}"] for name in MAP_CLASSES]), torch.from_numpy(expected)
    )
    cropped = BEVIoU()
    cropped.update(probs[..., 5:], target[..., 5:])
    for state in ("tp", "fp", "fn"):
        assert torch.equal(getattr(metric, state), getattr(cropped, state))


def test_split_across_ranks_equals_one_pass() -> None:
    """Two 'ranks' see half the frames each; summed (or merged) states equal one pass over all."""
    probs, target = random_batch(9, frames=6)
    one_pass = BEVIoU()
    one_pass.update(probs, target)
    rank0, rank1 = BEVIoU(), BEVIoU()
    rank0.update(probs[:2], target[:2])
    rank1.update(probs[2:], target[2:])
    for state in ("tp", "fp", "fn"):
        assert torch.equal(getattr(rank0, state) + getattr(rank1, state), getattr(one_pass, state))
    rank0.merge_state(rank1)
    merged, expected = rank0.compute(), one_pass.compute()
    assert merged.keys() == expected.keys()
    for key in expected:
        assert merged[key].item() == expected[key].item()


def test_absent_class_scores_zero_and_reset_clears() -> None:
    metric = BEVIoU(classes=("a", "b"))
    target = torch.zeros(1, 2, 3, 3, dtype=torch.bool)
    target[0, 0] = True
    metric.update(torch.zeros(1, 2, 3, 3).index_fill_(1, torch.tensor([0]), 0.9), target)
    scores = metric.compute()
    assert scores["iou/a"].item() == 1.0 and scores["iou/b"].item() == 0.0 and scores["mIoU"].item() == 0.5
    metric.reset()
    assert int(metric.tp.sum() + metric.fp.sum() + metric.fn.sum()) == 0


def test_bad_inputs_raise() -> None:
    metric = BEVIoU()
    probs, target = random_batch(0, frames=1, size=4)
    with pytest.raises(ValueError, match="bool"):
        metric.update(probs, target.float())
    with pytest.raises(ValueError, match=r"\(B, 6, H, W\)"):
        metric.update(probs[:, :3], target[:, :3])
    with pytest.raises(ValueError, match="ignore"):
        metric.update(probs, target, ignore=torch.zeros(1, 5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="thresholds"):
        BEVIoU(thresholds=(0.5, 1.5))


def test_plot_writes_a_png_with_target_and_prediction_columns(tmp_path: Path) -> None:
    target = torch.zeros(3, len(MAP_CLASSES), 20, 20, dtype=torch.bool)
    target[:, 0, :, 5:15] = True  # a road along y
    target[:, 1, 8:10, 5:15] = True  # a crossing over it
    probs = target.float() * 0.8
    path = plot_bev_predictions(probs, target, tmp_path / "plots" / "bev.png", max_frames=2)
    assert [p.name for p in path.parent.iterdir()] == ["bev.png"]  # no temporary left behind
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
        width, height = image.size
    assert height > width  # two rows of frames
    crossing_red = (np.array(CLASS_COLOURS[1]) * 255).round()
    assert (np.abs(pixels.astype(float) - crossing_red).sum(axis=-1) < 3).any()
    with pytest.raises(ValueError, match="max_frames"):
        plot_bev_predictions(probs, target, tmp_path / "x.png", max_frames=0)
