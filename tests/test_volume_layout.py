"""Volume layouts: `RenderNetwork.volume`'s permuted storage, samplers reading strided volumes, the
two one-pass autograd helpers (density activation, density / feature split)."""

from __future__ import annotations

import pytest
import torch
from triton_interpreter import run_interpreted

from nsmae_lightning.models.rendering import RenderConfig, RenderNetwork
from nsmae_lightning.models.trilinear import sample_volume
from nsmae_lightning.models.trilinear_triton import aligned_features
from nsmae_lightning.models.volume_layout import (
    dense_volume,
    density_activation,
    gradient_like,
    padded_pitch,
    row_pitch,
    row_suffix,
    row_strides,
    split_density,
    volume_rows,
)


def _layouts(volume: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same (B, Z, Y, X, C) values contiguous, stored (B, Y, X, Z, C) as the render network makes
    them, as the channel-0 slice of a wider volume, and stored in rows padded in front to a pitch of 48
    (`RenderNetwork.volume` with volume_row_bytes: channel 1 of a 33-channel float32 volume 64-byte aligned)."""
    stored = volume.permute(0, 2, 3, 1, 4).contiguous().permute(0, 3, 1, 2, 4)
    wider = torch.cat([volume, torch.randn_like(volume[..., :2])], dim=-1)[..., : volume.shape[-1]]
    rows = torch.full((*stored.permute(0, 2, 3, 1, 4).shape[:-1], 48), float("nan"), dtype=volume.dtype)
    rows[..., 48 - volume.shape[-1]:] = volume.permute(0, 2, 3, 1, 4)
    padded = rows[..., 48 - volume.shape[-1]:].permute(0, 3, 1, 2, 4)  # the padding NaN: it must not be read
    return {"contiguous": volume.contiguous(), "stored": stored, "slice": wider, "front_padded": padded}


def test_volume_rows_follow_memory_order() -> None:
    volume = torch.arange(2 * 3 * 4 * 5 * 6.0).view(2, 3, 4, 5, 6)
    stored = volume.permute(0, 2, 3, 1, 4).contiguous().permute(0, 3, 1, 2, 4)
    rows = volume_rows(stored)
    strides = row_strides(stored)
    assert rows.data_ptr() == stored.data_ptr() and rows.shape == (120, 6)
    b, z, y, x = 1, 2, 3, 4
    row = b * strides[0] + z * strides[1] + y * strides[2] + x * strides[3]
    assert torch.equal(rows[row], volume[b, z, y, x])
    assert gradient_like(stored).stride() == stored.stride()
    assert gradient_like(stored)._base is None  # no view: autograd can add a second gradient into it in place
    assert dense_volume(stored) is stored
    every_other = torch.randn(2, 3, 8, 5, 6)[:, :, ::2]  # every other line of rows: not rows one after the other
    assert dense_volume(every_other).is_contiguous()
    with pytest.raises(ValueError, match="dense"):
        volume_rows(every_other)
    with pytest.raises(ValueError, match="dense"):
        volume_rows(torch.randn(2, 3, 4, 5, 6).transpose(3, 4))  # channels not adjacent


def test_padded_rows_are_rows_of_their_pitch() -> None:
    padded = torch.arange(2 * 4 * 5 * 3 * 8.0).view(2, 4, 5, 3, 8)  # stored (B, Y, X, Z, P), P = 8
    volume = padded[..., :6].permute(0, 3, 1, 2, 4)  # (B, Z, Y, X, C = 6)
    assert row_pitch(volume) == 8 and dense_volume(volume) is volume
    rows = volume_rows(volume)
    assert rows.shape == (120, 6) and rows.stride() == (8, 1) and rows.data_ptr() == padded.data_ptr()
    b, z, y, x = 1, 2, 3, 4
    strides = row_strides(volume)
    assert torch.equal(rows[b * strides[0] + z * strides[1] + y * strides[2] + x * strides[3]], volume[b, z, y, x])
    gradient = gradient_like(volume)
    assert gradient.stride() == volume.stride() and gradient.untyped_storage().nbytes() == padded.numel() * 4
    assert padded_pitch(33, 2, 32) == 48 and padded_pitch(33, 4, 32) == 40 and padded_pitch(33, 2, 0) == 33
    assert padded_pitch(32, 2, 32) == 32
    with pytest.raises(ValueError, match="whole"):
        padded_pitch(33, 4, 2)


def _padded_rows(rows: int, groups: int, pitch: int, channels: int) -> torch.Tensor:
    """(rows, groups * pitch) values whose padding entries (the first pitch - channels of each group) are zero."""
    values = torch.randn(rows, groups, pitch, dtype=torch.float64)
    values[..., : pitch - channels] = 0.0
    return values.view(rows, groups * pitch)


def test_row_suffix_hands_back_a_gradient_in_its_own_layout_without_a_copy() -> None:
    shape = (2, 3, 4, 5, 6)  # (B, Z, Y, X, C), rows of pitch 8: 2 padding channels in front of each row
    rows = _padded_rows(2 * 4 * 5, 3, 8, 6).requires_grad_()
    volume = row_suffix(rows, shape)
    assert volume.shape == shape and torch.equal(volume, rows.view(2, 4, 5, 3, 8)[..., 2:].permute(0, 3, 1, 2, 4))
    assert row_pitch(volume) == 8 and volume.storage_offset() == 2
    upstream = gradient_like(volume)  # as the samplers make it: the volume's layout, padding uninitialised
    assert upstream.stride() == volume.stride() and upstream.storage_offset() == 2
    upstream.copy_(torch.randn(shape, dtype=torch.float64))
    upstream._base.view(2 * 4 * 5 * 3, 8)[:, :2] = float("nan")  # what an uninitialised pad may hold
    (grad,) = torch.autograd.grad(volume, rows, upstream)
    assert grad.data_ptr() == upstream._base.data_ptr()  # the gradient's own storage, not a copy
    expected = torch.zeros(2, 4, 5, 3, 8, dtype=torch.float64)
    expected[..., 2:] = upstream.permute(0, 2, 3, 1, 4)
    assert torch.equal(grad, expected.view(40, 24))  # padding zeroed
    other = torch.randn(shape, dtype=torch.float64)  # any other layout: copied into the rows' layout
    (copied,) = torch.autograd.grad(volume, rows, other)
    expected[..., 2:] = other.permute(0, 2, 3, 1, 4)
    assert torch.equal(copied, expected.view(40, 24))


def test_render_config_checks_volume_row_bytes() -> None:
    assert RenderConfig(volume_row_bytes=32).volume_row_bytes == 32
    for bad in (-8, 12):
        with pytest.raises(ValueError, match="volume_row_bytes must be 0 or a positive multiple of 8"):
            RenderConfig(volume_row_bytes=bad)


def _samples(volume: torch.Tensor, count: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` voxel coordinates over the volume (some outside it) and their batch elements."""
    generator = torch.Generator().manual_seed(1)
    extent = torch.tensor([volume.shape[3], volume.shape[2], volume.shape[1]], dtype=torch.float32)
    coords = torch.rand(count, 3, generator=generator) * (extent + 2.0) - 1.5
    return coords, torch.randint(0, volume.shape[0], (count,), generator=generator)


@pytest.mark.parametrize("row_bytes", [32, 64])
def test_padded_volume_rows_change_no_value_and_no_gradient(row_bytes: int) -> None:
    def volume_and_gradients(row_bytes: int) -> list[torch.Tensor]:
        torch.manual_seed(0)
        config = RenderConfig(z_bins=3, feature_channels=4, trunk_channels=8, volume_row_bytes=row_bytes)
        network = RenderNetwork(6, config)
        bev = torch.randn(2, 6, 5, 7, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            volume = network.volume(bev)
        upstream = torch.randn(50, 5, generator=torch.Generator().manual_seed(2))
        # the sampler's gradient comes in the volume's (padded) layout: the rows' own storage flows on
        loss = (sample_volume(volume, *_samples(volume), "trilinear").float() * upstream).sum()
        inputs = [bev, *network.trunk.parameters(), *network.to_volume.parameters()]
        return [volume.float(), *torch.autograd.grad(loss, inputs)]

    for got, expected in zip(volume_and_gradients(row_bytes), volume_and_gradients(0)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_padded_network_volume_starts_its_features_aligned() -> None:
    # the paper's 32 bf16 features: rows of 48 with 15 padding channels in front, so channel 1 starts at byte 32
    for row_bytes, pitch, aligned in ((32, 48, True), (0, 33, False)):
        config = RenderConfig(z_bins=2, feature_channels=32, trunk_channels=8, volume_row_bytes=row_bytes)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            volume = RenderNetwork(6, config).volume(torch.randn(1, 6, 3, 4))
        assert row_pitch(volume) == pitch and volume.storage_offset() == pitch - 33
        assert aligned_features(volume) == aligned, row_bytes
        assert (volume[..., 0] >= 0).all()  # the softplus reached the density, not a padding channel


@pytest.mark.parametrize("sampler", ["trilinear", "grid_sample"])
def test_samplers_read_every_layout_alike(sampler: str) -> None:
    generator = torch.Generator().manual_seed(0)
    volume = torch.randn(2, 3, 4, 5, 6, generator=generator, dtype=torch.float64)
    coords = torch.rand(300, 3, generator=generator, dtype=torch.float64) * torch.tensor([7.0, 6.0, 5.0]) - 1.5
    batch_index = torch.randint(0, 2, (300,), generator=generator)
    upstream = torch.randn(300, 6, generator=generator, dtype=torch.float64)
    results = {}
    for name, layout in _layouts(volume).items():
        leaf = layout.detach().requires_grad_()
        (grad,) = torch.autograd.grad((sample_volume(leaf, coords, batch_index, sampler) * upstream).sum(), leaf)
        results[name] = (sample_volume(layout, coords, batch_index, sampler), grad)
        if name == "stored" and sampler == "trilinear":
            assert grad.stride() == layout.stride()  # the gradient comes in the volume's own layout
    for name in ("stored", "slice"):
        for got, expected in zip(results[name], results["contiguous"]):
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_network_volume_is_the_conv_volume_in_stored_order() -> None:
    config = RenderConfig(z_bins=4, feature_channels=5, trunk_channels=8, trunk_layers=2)
    network = RenderNetwork(6, config).double()
    bev = torch.randn(2, 6, 7, 9, dtype=torch.float64, requires_grad=True)
    volume = network.volume(bev)
    assert volume.shape == (2, 4, 7, 9, 6)
    assert volume.permute(0, 2, 3, 1, 4).is_contiguous()  # stored (B, Ny, Nx, Z, C)
    # the formulation before the reorder: conv output channels c * Z + z, softplus on c = 0
    projected = network.to_volume(network.trunk(bev)).view(2, 6, 4, 7, 9)
    reference = torch.cat([torch.nn.functional.softplus(projected[:, :1]), projected[:, 1:]], 1)
    reference = reference.permute(0, 2, 3, 4, 1)
    torch.testing.assert_close(volume, reference, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(volume.shape, dtype=torch.float64)
    inputs = [bev, *network.parameters()]
    got = torch.autograd.grad((volume * upstream).sum(), inputs, allow_unused=True)
    expected = torch.autograd.grad((reference * upstream).sum(), inputs, allow_unused=True)
    for value, reference_value in zip(got, expected):
        if reference_value is None:
            assert value is None or not value.abs().sum()  # the colour MLP takes no part
            continue
        torch.testing.assert_close(value, reference_value, rtol=1e-10, atol=1e-10)


def test_network_volume_has_the_autocast_dtype() -> None:
    network = RenderNetwork(6, RenderConfig(z_bins=4, feature_channels=5, trunk_channels=8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        volume = network.volume(torch.randn(1, 6, 5, 5))
    assert volume.dtype == torch.bfloat16 and (volume[..., 0] >= 0).all()


def test_density_activation_and_split_gradients() -> None:
    projected = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    # in place on a fresh result (as the decoder's GEMM output); a leaf cannot be written
    torch.autograd.gradcheck(lambda raw: density_activation(raw * 1.0, 5), (projected,))
    expected = torch.cat([torch.nn.functional.softplus(projected[..., :1]), projected[..., 1:]], -1)
    fresh = projected * 1.0
    activated = density_activation(fresh, 5)
    torch.testing.assert_close(activated, expected)
    assert activated.data_ptr() == fresh.data_ptr()  # no copy of the volume
    # groups of C channels along the last axis (the decoder's (..., Z * C)): density first in each
    grouped = torch.randn(2, 3 * 5, dtype=torch.float64)
    expected = grouped.unflatten(-1, (3, 5)).clone()
    expected[..., 0] = torch.nn.functional.softplus(expected[..., 0])
    torch.testing.assert_close(density_activation(grouped.clone(), 5), expected.flatten(-2))
    base = grouped.clone()
    density_activation(base[:, :5], 5)  # a view is copied, not written
    assert torch.equal(base, grouped)
    # padded rows: the density after 2 padding channels of each group (position 2)
    expected = grouped.unflatten(-1, (3, 5)).clone()
    expected[..., 2] = torch.nn.functional.softplus(expected[..., 2])
    torch.testing.assert_close(density_activation(grouped.clone(), 5, position=2), expected.flatten(-2))
    torch.autograd.gradcheck(lambda raw: density_activation(raw * 1.0, 5, position=2), (projected,))
    with pytest.raises(ValueError, match="position 5 is not a channel of groups of 5"):
        density_activation(grouped.clone(), 5, position=5)
    values = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda v: torch.cat([split_density(v)[0][:, None] * 2, split_density(v)[1] ** 2], 1),
                             (values,))
    # one output unused: its gradient is zero
    density, _ = split_density(values)
    (grad,) = torch.autograd.grad(density.sum(), values)
    assert torch.equal(grad[:, 0], torch.ones(7, dtype=torch.float64)) and not grad[:, 1:].any()
    _, features = split_density(values)
    (grad,) = torch.autograd.grad(features.sum(), values)
    assert not grad[:, 0].any() and torch.equal(grad[:, 1:], torch.ones(7, 4, dtype=torch.float64))


TRITON_LAYOUTS = """
import torch
from test_volume_layout import _layouts
from nsmae_lightning.models.trilinear import sample_volume
from nsmae_lightning.models.trilinear_triton import aligned_features
generator = torch.Generator().manual_seed(1)
volume = torch.randn(2, 3, 4, 5, 33, generator=generator)
coords = torch.rand(150, 3, generator=generator) * torch.tensor([7.0, 6.0, 5.0]) - 1.5
batch_index = torch.randint(0, 2, (150,), generator=generator)
upstream = torch.randn(150, 33, generator=generator)
reference = None
for name, layout in _layouts(volume).items():
    leaf = layout.detach().requires_grad_()
    coords_leaf = coords.clone().requires_grad_()
    sampled = sample_volume(leaf, coords_leaf, batch_index, "trilinear_triton")
    grads = torch.autograd.grad((sampled * upstream).sum(), (leaf, coords_leaf))
    if name == "stored":
        assert grads[0].stride() == layout.stride(), grads[0].stride()
    got = (sampled, *grads)
    expected = sample_volume(volume.double(), coords.double(), batch_index, "trilinear")
    if reference is None:
        reference = got
    assert aligned_features(leaf) == (name == "front_padded"), name  # that layout's features: 16-byte loads
    for value, ref in zip(got, reference):
        torch.testing.assert_close(value, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sampled.double(), expected, atol=1e-5, rtol=1e-5)
# the density channel of a stored volume, read in place (pitch 33)
stored = _layouts(volume)["stored"]
torch.testing.assert_close(sample_volume(stored[..., :1], coords, batch_index, "trilinear_triton"),
                           reference[0][:, :1], atol=1e-5, rtol=1e-5)
print("triton layouts ok")
"""


def test_triton_sampler_reads_every_layout_in_the_interpreter() -> None:
    run_interpreted(TRITON_LAYOUTS, "triton layouts ok")


TRITON_DENSITY = """
import torch
from nsmae_lightning.models.volume_layout import density_activation
generator = torch.Generator().manual_seed(3)
# 70 cells x 40 groups of 33 (the decoder's layout), wide-ranged densities: softplus' both branches; and
# groups of 48 with the density after 15 padding channels (volume_row_bytes 32 in bf16)
for dtype, (channels, position) in zip((torch.float32, torch.bfloat16, torch.bfloat16), ((33, 0), (33, 0), (48, 15))):
    raw = (torch.randn(70, 40 * channels, generator=generator) * 12).to(dtype)
    upstream = torch.randn(70, 40 * channels, generator=generator).to(dtype)
    results = {}
    for kernels in (False, True):
        leaf = raw.clone().requires_grad_()
        activated = density_activation(leaf * 1, channels, kernels=kernels, position=position)
        (grad,) = torch.autograd.grad(activated, leaf, upstream)
        results[kernels] = (activated.detach(), grad)
    # a few float32 ulps (exp, log); in bf16 one bf16 ulp: Triton's interpreter casts float32 to bf16 by
    # truncation where torch (and the GPU) round to nearest, so this does not check the GPU's rounding
    tolerance = 5e-7 if dtype == torch.float32 else 2 ** -7
    for reference, got in zip(results[False], results[True]):
        assert got.dtype == dtype
        torch.testing.assert_close(got, reference, atol=1e-30, rtol=tolerance)
    features = torch.ones(40 * channels, dtype=torch.bool)
    features[position::channels] = False
    for reference, got in zip(results[False], results[True]):
        assert torch.equal(got[:, features], reference[:, features])  # the feature channels untouched, bit for bit
print("triton density activation ok")
"""


def test_triton_density_activation_matches_torch_in_the_interpreter() -> None:
    run_interpreted(TRITON_DENSITY, "triton density activation ok")


def test_density_activation_with_one_channel_keeps_the_raw_density() -> None:
    # C = 1: the density column is the whole tensor, contiguous; the backward must see the pre-activation values
    raw = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(density_activation(raw * 1, 1).sum(), raw)
    torch.testing.assert_close(grad, torch.sigmoid(raw.detach()))


def test_density_kernels_refuse_a_cpu_tensor_outside_the_interpreter() -> None:
    with pytest.raises((ValueError, RuntimeError), match="triton|CUDA"):
        density_activation(torch.zeros(2, 6), 3, kernels=True)


PADDED_RENDER_CHECK = """
import dataclasses
import torch
from nsmae_lightning.models.trilinear_triton import aligned_features
from test_color_cull import head
from test_rendering_march import assert_all_close, random_bundle
# the render network's volume with rows padded to 32 bytes (volume_row_bytes) through the Triton sampler,
# compositor and colour MLP, exact and culled, and the fused march's kernels, float32 and bf16: the loss and
# every gradient (embedding and parameters) are those of unpadded rows
rays = random_bundle(24, seed=4)
for dtype in (torch.float32, torch.bfloat16):
    for cull, march in ((0.0, "packed_triton"), (1e-3, "packed_triton"), (0.0, "fused_triton")):
        results = []
        for row_bytes in (0, 32):
            render_head = head(cull, march, "trilinear_triton", "triton")
            render_head.network.row_bytes = row_bytes
            bev = torch.randn(2, 6, 8, 8, generator=torch.Generator().manual_seed(3)).requires_grad_()
            with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                volume = render_head.network.volume(bev)
                rendered = render_head.render(volume, rays, 0.8, with_color=True)
            if row_bytes:
                assert volume.stride()[1] == (8 if dtype == torch.float32 else 16), volume.stride()  # the pitch
                # float32: 4 features from byte 16 of 32-byte rows, read from channel 1 (SHIFT); bf16: 8 bytes, not
                assert aligned_features(volume) == (dtype == torch.float32)
            outputs = [rendered.depth, rendered.opacity, rendered.rgb]
            loss = sum((o.float() * torch.linspace(-1.0, 1.0, o.numel()).view_as(o)).sum() for o in outputs)
            results.append([loss.detach(), *torch.autograd.grad(loss, [bev, *render_head.parameters()],
                                                                   allow_unused=True)])
        assert_all_close([r for r in results[1] if r is not None], [r for r in results[0] if r is not None], 1e-5)
print("padded render ok")
"""


def test_padded_volume_rows_render_alike_through_the_triton_kernels_in_the_interpreter() -> None:
    run_interpreted(PADDED_RENDER_CHECK, "padded render ok")
