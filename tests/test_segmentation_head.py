"""BEV map segmentation head: grid alignment, shapes, losses and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nsmae_lightning.constants import MAP_CLASSES
from nsmae_lightning.models.heads.segmentation import (
    SegmentationHead,
    SegmentationHeadConfig,
    sigmoid_focal_loss,
)


def make_head(pc_range: tuple[float, ...], in_channels: int = 4, **overrides: object) -> SegmentationHead:
    torch.manual_seed(0)
    return SegmentationHead(SegmentationHeadConfig(in_channels=in_channels, hidden_channels=4, pc_range=pc_range, **overrides))


def test_same_grid_resamples_to_itself() -> None:
    head = make_head((-50.0, -50.0, -5.0, 50.0, 50.0, 3.0))
    bev = torch.randn(2, 4, 200, 200)
    # atol covers float32 rounding of the grid; a half-cell shift would be off by O(1).
    torch.testing.assert_close(head.resample(bev), bev, rtol=0, atol=1e-3)


def test_larger_range_at_map_resolution_is_an_exact_crop() -> None:
    # +-54 m at 0.5 m = 216 cells; the map's +-50 m are cells 8..207 on both axes.
    head = make_head((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0))
    bev = torch.randn(1, 4, 216, 216)
    torch.testing.assert_close(head.resample(bev), bev[:, :, 8:208, 8:208], rtol=0, atol=1e-3)


def test_bf16_embedding_resamples_at_float32_positions() -> None:
    # a pattern of period 4 cells along x: a sample 0.17 cell off (a bf16 grid) reads ~0.25 off
    head = make_head((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0))
    x = torch.arange(180, dtype=torch.float32)
    bev = torch.sin(0.5 * math.pi * x).expand(1, 4, 180, 180).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        resampled = head.resample(bev)
    expected = head.resample(bev.float())
    torch.testing.assert_close(resampled.float(), expected, rtol=0.0, atol=8e-3)  # bf16 rounding of the result
    assert resampled.dtype == torch.bfloat16


def test_one_hot_feature_lands_on_the_map_cell_containing_it() -> None:
    """Paper grid (180 x 180 cells of 0.6 m over +-54 m): each channel holds one hot cell."""
    cell = 0.6
    # Input indices whose centres are not on a map-cell boundary (index = 2 mod 5 would be).
    positions = [(120, 45), (10, 170), (90, 90), (23, 64), (150, 8), (100, 131)]
    head = make_head((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0), in_channels=len(positions))
    bev = torch.zeros(1, len(positions), 180, 180)
    for channel, (iy, ix) in enumerate(positions):
        bev[0, channel, iy, ix] = 1.0
    resampled = head.resample(bev)[0]  # (C, 200, 200)
    for channel, (iy, ix) in enumerate(positions):
        x = -54.0 + (ix + 0.5) * cell
        y = -54.0 + (iy + 0.5) * cell
        expected = (math.floor((y + 50.0) / 0.5), math.floor((x + 50.0) / 0.5))
        flat_argmax = int(resampled[channel].argmax())
        assert divmod(flat_argmax, 200) == expected, f"feature at world ({x:.2f}, {y:.2f})"
    # (120, 45): world (-26.7, 18.3) -> map cell (136, 46), centre (-26.75, 18.25):
    # 0.05 m = 1/12 input cell away on each axis, bilinear weight (11/12)^2.
    assert resampled[0, 136, 46].item() == pytest.approx((11 / 12) ** 2, abs=1e-5)


def test_forward_shape_and_no_geometry_in_state_dict() -> None:
    head = make_head((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0))
    logits = head(torch.randn(2, 4, 36, 36))
    assert logits.shape == (2, len(MAP_CLASSES), 200, 200)
    assert not any("grid" in key for key in head.state_dict())


def test_focal_loss_matches_hand_computation() -> None:
    logits = torch.tensor([0.0, 2.0])
    targets = torch.tensor([1.0, 0.0])
    # x=0, t=1: p_t = 0.5, CE = ln 2, alpha_t = 0.25.  x=2, t=0: p_t = 1 - s(2), CE = ln(1 + e^2), alpha_t = 0.75.
    sigmoid_2 = 1 / (1 + math.exp(-2.0))
    expected = (0.25 * 0.5**2 * math.log(2) + 0.75 * sigmoid_2**2 * math.log(1 + math.exp(2.0))) / 2
    assert sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=None, gamma=0.0), bce)


@pytest.mark.parametrize("loss", ["focal", "bce"])
def test_loss_is_finite_float32_and_gives_gradients(loss: str) -> None:
    head = make_head((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0), loss=loss)
    bev = torch.randn(2, 4, 36, 36, requires_grad=True)
    logits = head(bev)
    bev_masks = torch.rand(2, len(MAP_CLASSES), 200, 200) > 0.7
    losses = head.loss(logits.to(torch.bfloat16), bev_masks)
    assert set(losses) == {"loss"} | {f"loss/{name}" for name in MAP_CLASSES}
    assert all(value.dtype == torch.float32 and torch.isfinite(value) for value in losses.values())
    torch.testing.assert_close(losses["loss"], sum(losses[f"loss/{name}"] for name in MAP_CLASSES))
    if loss == "bce":
        expected = F.binary_cross_entropy_with_logits(logits[:, 2].to(torch.bfloat16).float(), bev_masks[:, 2].float())
        torch.testing.assert_close(losses["loss/walkway"], expected)
    losses["loss"].backward()
    assert bev.grad is not None and torch.isfinite(bev.grad).all() and bev.grad.abs().sum() > 0
    for name, parameter in head.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_bad_inputs_and_configs_raise() -> None:
    head = make_head((-54.0, -54.0, -5.0, 54.0, 54.0, 3.0))
    with pytest.raises(ValueError, match=r"\(B, 4, Ny, Nx\)"):
        head(torch.randn(1, 3, 36, 36))
    with pytest.raises(ValueError, match="differ in shape"):
        head.loss(torch.randn(1, 6, 200, 200), torch.zeros(1, 6, 100, 100, dtype=torch.bool))
    with pytest.raises(ValueError, match="whole number"):
        SegmentationHeadConfig(map_resolution=0.3)
    with pytest.raises(ValueError, match="loss"):
        SegmentationHeadConfig(loss="dice")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pc_range"):
        SegmentationHeadConfig(pc_range=(54.0, -54.0, -5.0, -54.0, 54.0, 3.0))
