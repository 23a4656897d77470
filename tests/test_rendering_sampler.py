"""Trilinear sampler (vs F.grid_sample, gradcheck) and volume compositing (analytic slab)."""

from __future__ import annotations

import math

import pytest
import torch
from triton_interpreter import run_interpreted

from nsmae_lightning.models.rendering import composite
from nsmae_lightning.models.trilinear import (
    grid_sample_reference,
    metric_to_voxel,
    sample_volume,
    trilinear_sample,
)


def _random_case(dtype: torch.dtype, samples: int = 200) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (2, 3, 4, 5, 6) volume and coordinates reaching one voxel beyond every face."""
    generator = torch.Generator().manual_seed(0)
    volume = torch.randn(2, 3, 4, 5, 6, dtype=dtype, generator=generator)
    extent = torch.tensor([5.0, 4.0, 3.0], dtype=dtype)
    coords = torch.rand(samples, 3, dtype=dtype, generator=generator) * (extent + 2.0) - 1.5
    batch_index = torch.randint(0, 2, (samples,), generator=generator)
    return volume, coords, batch_index


def test_sampler_matches_grid_sample_forward_and_backward() -> None:
    volume, coords, batch_index = _random_case(torch.float32)
    outputs, gradients = [], []
    for sampler in (trilinear_sample, grid_sample_reference):
        volume_leaf = volume.clone().requires_grad_()
        coords_leaf = coords.clone().requires_grad_()
        sampled = sampler(volume_leaf, coords_leaf, batch_index)
        upstream = torch.linspace(-1.0, 1.0, sampled.numel()).view_as(sampled)
        (sampled * upstream).sum().backward()
        outputs.append(sampled.detach())
        gradients.append((volume_leaf.grad, coords_leaf.grad))
    assert outputs[0].shape == (200, 6)
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gradients[0][0], gradients[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gradients[0][1], gradients[1][1], atol=1e-5, rtol=1e-5)


def test_grid_sample_option_places_bf16_samples_as_float32_does() -> None:
    # values alternate 0 / 1 along x over 200 cells: a sample a fraction of a voxel off reads a value
    # that far off (bf16 grid coordinates near x = 199 are ~0.4 voxel apart)
    volume = (torch.arange(200) % 2).to(torch.bfloat16).view(1, 1, 1, 200, 1).expand(1, 2, 2, 200, 1).contiguous()
    x = torch.arange(100, 199, dtype=torch.float32) + 0.3
    coords = torch.stack([x, torch.full_like(x, 0.5), torch.full_like(x, 0.5)], dim=1)
    batch_index = torch.zeros(x.shape[0], dtype=torch.int64)
    sampled = grid_sample_reference(volume, coords, batch_index)
    assert sampled.dtype == torch.bfloat16
    expected = trilinear_sample(volume.float(), coords, batch_index)
    torch.testing.assert_close(sampled.float(), expected, atol=4e-3, rtol=0.0)  # bf16 rounding of 0.3 / 0.7


def test_sampler_gradcheck_float64() -> None:
    volume, coords, batch_index = _random_case(torch.float64, samples=12)
    volume = volume[:, :2, :3, :3, :2].contiguous().requires_grad_()
    coords = (coords * 0.5 + 0.3).requires_grad_()  # keep samples off integer corners
    assert torch.autograd.gradcheck(lambda v, c: trilinear_sample(v, c, batch_index), (volume, coords))


def test_sampler_reads_cell_centres_and_zero_outside() -> None:
    volume = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4, 1)  # value = (z * 3 + y) * 4 + x
    coords = torch.tensor([[1.0, 2.0, 1.0], [1.5, 0.0, 0.0], [1.0, 1.0, 0.25], [-1.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    sampled = trilinear_sample(volume, coords, torch.zeros(5, dtype=torch.int64)).squeeze(1)
    # (1, 2, 1) -> 12 + 8 + 1; halfway in x -> 1.5; z 0.25 between 5 and 17 -> 8; outside -> 0.
    assert sampled.tolist() == pytest.approx([21.0, 1.5, 8.0, 0.0, 0.0])
    # Half a voxel outside the x face: half the weight of the edge voxel remains.
    edge = trilinear_sample(volume, torch.tensor([[-0.5, 0.0, 0.0]]), torch.zeros(1, dtype=torch.int64))
    assert edge.item() == pytest.approx(0.0)
    edge = trilinear_sample(volume, torch.tensor([[3.5, 0.0, 0.0]]), torch.zeros(1, dtype=torch.int64))
    assert edge.item() == pytest.approx(1.5)


def test_metric_to_voxel_puts_cell_centres_on_integers() -> None:
    pc_range = (-4.0, -2.0, -1.0, 4.0, 2.0, 1.0)
    centres = torch.tensor([[-3.5, -1.5, -0.5], [3.5, 1.5, 0.5], [-4.0, -2.0, -1.0]])
    coords = metric_to_voxel(centres, pc_range, (2, 4, 8))  # Z, Y, X
    assert coords.tolist() == [[0.0, 0.0, 0.0], [7.0, 3.0, 1.0], [-0.5, -0.5, -0.5]]
    with pytest.raises(ValueError, match="pc_range"):
        metric_to_voxel(centres, pc_range[:5], (2, 4, 8))


def test_ray_voxel_rows_put_a_ray_in_voxel_coordinates() -> None:
    from nsmae_lightning.models.trilinear_triton import ray_voxel_rows, voxel_frame

    pc_range = (-4.0, -2.0, -1.0, 4.0, 2.0, 1.0)  # cells of 1 x 1 x 1 over (Z, Y, X) = (2, 4, 8)
    origins = torch.tensor([[-3.5, -1.5, -0.5], [0.0, 0.0, 0.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]])
    rows = ray_voxel_rows(origins, directions, torch.tensor([0, 3]), voxel_frame(pc_range, (2, 4, 8)))
    # o' = (o - lower) / cell - 0.5, batch element, d' = d / cell, padding
    assert rows.tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [3.5, 1.5, 0.5, 3.0, 0.0, 2.0, -1.0, 0.0]]
    t = torch.tensor([2.0, 0.25])
    expected = metric_to_voxel(origins + t[:, None] * directions, pc_range, (2, 4, 8))
    torch.testing.assert_close(rows[:, :3] + t[:, None] * rows[:, 4:7], expected)


def test_sampler_bfloat16_keeps_dtype_and_accuracy() -> None:
    volume, coords, batch_index = _random_case(torch.float32)
    volume_bf16 = volume.bfloat16().requires_grad_()
    sampled = trilinear_sample(volume_bf16, coords, batch_index)
    sampled.float().sum().backward()
    assert sampled.dtype == torch.bfloat16 and volume_bf16.grad.dtype == torch.bfloat16
    reference = trilinear_sample(volume.bfloat16().float(), coords, batch_index)
    torch.testing.assert_close(sampled.float(), reference, atol=2e-2, rtol=1e-2)


def test_sampler_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="volume must be"):
        trilinear_sample(torch.zeros(2, 3, 4, 5), torch.zeros(1, 3), torch.zeros(1, dtype=torch.int64))
    with pytest.raises(ValueError, match="coords must be"):
        trilinear_sample(torch.zeros(1, 2, 2, 2, 1), torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))


def test_composite_slab_matches_analytic_colour_and_depth() -> None:
    step, sigma_value, background = 0.5, 0.7, 0.25
    colour = torch.tensor([0.9, 0.2, 0.4])
    first, count, total = 4, 6, 16  # samples 4..9 lie in the slab, the rest is empty
    near = 1.0
    sigma = torch.zeros(1, total)
    sigma[0, first : first + count] = sigma_value
    t = near + step * torch.arange(total, dtype=torch.float32).unsqueeze(0)
    rgb = colour.expand(1, total, 3).clone()
    rendered = composite(sigma, t, step, rgb, background, normalize_depth=False)
    slab_length = count * step
    absorbed = 1.0 - math.exp(-sigma_value * slab_length)
    expected_rgb = colour * absorbed + background * (1.0 - absorbed)
    torch.testing.assert_close(rendered.rgb[0], expected_rgb)
    assert rendered.opacity.item() == pytest.approx(absorbed, rel=1e-6)
    # depth = sum_i q^i (1 - q) t_i over the slab, q = exp(-sigma delta), t_i = near + (first + i) delta.
    q = math.exp(-sigma_value * step)
    slab_start = near + first * step
    expected_depth = sum(q**i * (1 - q) * (slab_start + i * step) for i in range(count))
    assert rendered.depth.item() == pytest.approx(expected_depth, rel=1e-6)
    normalized = composite(sigma, t, step, None, background, normalize_depth=True)
    assert normalized.depth.item() == pytest.approx(expected_depth / absorbed, rel=1e-6)
    assert normalized.rgb is None


def test_composite_stays_float32_under_autocast() -> None:
    sigma = torch.rand(3, 5, dtype=torch.bfloat16)
    t = torch.arange(5, dtype=torch.float32).expand(3, 5)
    rgb = torch.rand(3, 5, 3, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rendered = composite(sigma, t, 0.8, rgb, 0.0, normalize_depth=False)
    assert rendered.depth.dtype == rendered.opacity.dtype == rendered.rgb.dtype == torch.float32


TRITON_CHECK = """
import torch
from nsmae_lightning.models.trilinear import sample_volume
torch.manual_seed(0)
volume = torch.randn(2, 3, 5, 6, 7, requires_grad=True)  # C = 7: a channel block with masked lanes
# samples inside, on borders and well outside the volume (zeros there), in both batch elements
coords = (torch.rand(150, 3) * torch.tensor([9.0, 8.0, 6.0]) - 1.5).requires_grad_(True)
batch_index = torch.randint(0, 2, (150,))
upstream = torch.randn(150, 7)
outputs = {}
for sampler in ("trilinear", "trilinear_triton"):
    sampled = sample_volume(volume, coords, batch_index, sampler)
    outputs[sampler] = (sampled, *torch.autograd.grad(sampled, (volume, coords), upstream))
for reference, triton in zip(outputs["trilinear"], outputs["trilinear_triton"]):
    torch.testing.assert_close(triton, reference, atol=1e-5, rtol=1e-5)
# only the volume needs a gradient (the renderer's case), and an empty sample set
volume_only = sample_volume(volume, coords.detach(), batch_index, "trilinear_triton")
(grad,) = torch.autograd.grad(volume_only, volume, upstream)
torch.testing.assert_close(grad, outputs["trilinear"][1], atol=1e-5, rtol=1e-5)
empty = sample_volume(volume, torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), "trilinear_triton")
assert empty.shape == (0, 7)
# points computed in the kernels from each sample's ray and distance (the renderer's path) equal
# sampling at metric_to_voxel of the same points, values and volume gradient; rays are not differentiated
from nsmae_lightning.models.trilinear import metric_to_voxel
from nsmae_lightning.models.trilinear_triton import triton_sample_along_rays
pc_range = (-3.0, -2.5, -1.0, 4.0, 3.5, 2.0)  # cells of 1.0 x 1.0 x 1.0 over the (3, 5, 6, 7) volume's X=7, Y=6, Z=3
origins, directions = torch.randn(9, 3), torch.nn.functional.normalize(torch.randn(9, 3), dim=1)
ray_batch = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1])
ray_index = torch.randint(0, 9, (120,))
t = torch.rand(120) * 8.0
points = origins[ray_index] + t[:, None] * directions[ray_index]
expected = sample_volume(volume, metric_to_voxel(points, pc_range, volume.shape[1:4]), ray_batch[ray_index], "trilinear")
along = triton_sample_along_rays(volume, origins, directions, ray_batch, ray_index, t, pc_range)
torch.testing.assert_close(along, expected, atol=1e-5, rtol=1e-5)
torch.testing.assert_close(torch.autograd.grad(along, volume, upstream[:120])[0],
                           torch.autograd.grad(expected, volume, upstream[:120])[0], atol=1e-5, rtol=1e-5)
# split: density (M,) and features (M, C - 1) written apart, their gradients read apart: the same numbers
density, features = triton_sample_along_rays(volume, origins, directions, ray_batch, ray_index, t, pc_range, split=True)
assert density.shape == (120,) and features.shape == (120, 6) and features.is_contiguous()
assert torch.equal(density, along[:, 0]) and torch.equal(features, along[:, 1:])
(split_grad,) = torch.autograd.grad((density, features), volume, (upstream[:120, 0], upstream[:120, 1:]))
along = triton_sample_along_rays(volume, origins, directions, ray_batch, ray_index, t, pc_range)  # a fresh graph
assert torch.equal(split_grad, torch.autograd.grad(along, volume, upstream[:120])[0])
(density_only,) = torch.autograd.grad(
    triton_sample_along_rays(volume, origins, directions, ray_batch, ray_index, t, pc_range, split=True)[0],
    volume, upstream[:120, 0])  # the features' gradient is None: read as zeros
along = triton_sample_along_rays(volume, origins, directions, ray_batch, ray_index, t, pc_range)
assert torch.equal(density_only, torch.autograd.grad(along[:, 0], volume, upstream[:120, 0])[0])
# split for other channel counts (C = 1: no features; 8: a power of two, no tail block; 33: the renderer's),
# bf16 too, and no samples at all, on the renderer's permuted storage
for channels in (1, 8, 33):
    for dtype in (torch.float32, torch.bfloat16):
        for count in (0, 70):
            stored = torch.randn(2, 6, 7, 3, channels).to(dtype).permute(0, 3, 2, 1, 4).requires_grad_()
            index, distance = ray_index[:count], t[:count]
            whole = triton_sample_along_rays(stored, origins, directions, ray_batch, index, distance, pc_range)
            density, features = triton_sample_along_rays(stored, origins, directions, ray_batch, index, distance,
                                                         pc_range, split=True)
            assert density.shape == (count,) and features.shape == (count, channels - 1)
            assert torch.equal(density, whole[:, 0]) and torch.equal(features, whole[:, 1:])
            if count:
                pull = torch.randn(count, channels).to(dtype)
                (split_grad,) = torch.autograd.grad((density, features), stored, (pull[:, 0], pull[:, 1:]))
                (whole_grad,) = torch.autograd.grad(whole, stored, pull)
                assert split_grad.stride() == stored.stride() and torch.equal(split_grad, whole_grad), (channels, dtype)
try:
    triton_sample_along_rays(volume, origins.requires_grad_(), directions, ray_batch, ray_index, t, pc_range)
    raise AssertionError("differentiable rays were accepted")
except ValueError as error:
    assert "does not differentiate the rays" in str(error)
print("triton sampler ok")
"""


def test_triton_sampler_matches_the_reference_in_the_interpreter() -> None:
    # Triton's CPU interpreter runs the same kernels the GPU compiles; triton ships with CUDA builds of
    # PyTorch, not with the CPU wheel, so machines without it skip this check.
    run_interpreted(TRITON_CHECK, "triton sampler ok")


CULLED_CHECK = """
import torch
from nsmae_lightning.models.trilinear_triton import triton_sample_along_rays, triton_sample_culled
torch.manual_seed(0)
pc_range = (-3.0, -2.5, -1.0, 4.0, 3.5, 2.0)
origins, directions = torch.randn(9, 3), torch.nn.functional.normalize(torch.randn(9, 3), dim=1)
ray_batch = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1])
ray_index = torch.randint(0, 9, (120,))
t = torch.rand(120) * 8.0
# both passes through one node equal sampling the two channel slices apart: values, kept samples and the
# volume's gradient, in the volume's own (permuted) layout; every sample kept, some, none; bf16 too
for dtype in (torch.float32, torch.bfloat16):
    for rule in ("all", "some", "none"):
        stored = torch.randn(2, 6, 7, 3, 5).to(dtype).permute(0, 3, 2, 1, 4).requires_grad_()  # 4 features
        choose = {"all": lambda d: torch.arange(d.shape[0]), "some": lambda d: (d > 0).nonzero().squeeze(1),
                  "none": lambda d: torch.zeros(0, dtype=torch.long)}[rule]
        density, features, kept = triton_sample_culled(stored, origins, directions, ray_batch, ray_index, t,
                                                       pc_range, choose)
        ref_density = triton_sample_along_rays(stored[..., :1], origins, directions, ray_batch, ray_index, t,
                                               pc_range)[:, 0]
        ref_kept = choose(ref_density)
        ref_features = triton_sample_along_rays(stored[..., 1:], origins, directions, ray_batch, ray_index[ref_kept],
                                                t[ref_kept], pc_range)
        assert torch.equal(kept, ref_kept) and not kept.requires_grad, rule
        assert torch.equal(density, ref_density) and torch.equal(features, ref_features), (dtype, rule)
        pull_density, pull_features = torch.randn(120).to(dtype), torch.randn(kept.shape[0], 4).to(dtype)
        (grad,) = torch.autograd.grad((density, features), stored, (pull_density, pull_features))
        (ref_grad,) = torch.autograd.grad((ref_density, ref_features), stored, (pull_density, pull_features))
        assert grad.stride() == stored.stride(), "the gradient is not in the volume's layout"
        torch.testing.assert_close(grad, ref_grad, atol=1e-6, rtol=1e-6)
        # the density alone differentiated (features' gradient None)
        density, _, _ = triton_sample_culled(stored, origins, directions, ray_batch, ray_index, t, pc_range, choose)
        (density_grad,) = torch.autograd.grad(density, stored, pull_density)
        assert torch.equal(density_grad[..., 1:], torch.zeros_like(density_grad[..., 1:]))
try:
    triton_sample_culled(torch.zeros(1, 3, 5, 6, 4), origins, directions, ray_batch, ray_index, t, pc_range,
                         lambda d: torch.arange(d.shape[0]))
    raise AssertionError("3 feature channels were accepted")
except ValueError as error:
    assert "power-of-two number of feature channels, got 3" in str(error)
print("culled sampler ok")
"""


def test_triton_culled_sampler_equals_sampling_the_channel_slices_in_the_interpreter() -> None:
    # `RenderConfig.color_cull`'s two passes (density everywhere, features where kept) in one autograd node
    run_interpreted(CULLED_CHECK, "culled sampler ok")


def test_triton_sampler_refuses_what_it_cannot_run() -> None:
    volume = torch.zeros(1, 2, 2, 2, 3)
    coords, batch_index = torch.zeros(1, 3), torch.zeros(1, dtype=torch.long)
    with pytest.raises((ValueError, RuntimeError), match="Triton|triton"):
        sample_volume(volume, coords, batch_index, "trilinear_triton")
    with pytest.raises(ValueError, match="float32"):
        sample_volume(volume.double(), coords, batch_index, "trilinear_triton")
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample_volume(volume, coords, batch_index, "nearest")


BOUNDARY_CHECK = """
import torch
from nsmae_lightning.models.trilinear import trilinear_sample
from nsmae_lightning.models.trilinear_triton import triton_trilinear_sample
torch.manual_seed(0)
# the volume's gradient (coordinates without one) equals the torch sampler's with samples below, above and
# beside the volume on every axis (z in [-1, 0): voxel 0 alone; the top cell: its lower corner alone), for
# one-channel blocks (a 1-channel volume, the last channel of 5 = 4 + 1) and 2 channels, in dense, stored and
# padded layouts
extent = torch.tensor([6.0, 5.0, 4.0])  # (x, y, z) sizes
coords = torch.rand(400, 3) * (extent + 3.0) - 1.5
coords[:40, 2] = -0.999 + 0.99 * torch.rand(40)  # just below the volume
coords[40:80, 2] = 3.0 + 0.99 * torch.rand(40)  # in the top cell (upper corner outside)
batch_index = torch.randint(0, 2, (400,))
for channels in (1, 5, 2):
    base = torch.randn(2, 4, 5, 6, channels)
    layouts = {"dense": base, "stored": base.permute(0, 2, 3, 1, 4).contiguous().permute(0, 3, 1, 2, 4),
               "padded": torch.cat([base, torch.zeros_like(base[..., :3])], -1).permute(0, 2, 3, 1, 4)
               .contiguous().permute(0, 3, 1, 2, 4)[..., :channels]}
    upstream = torch.randn(400, channels)
    ref_leaf = base.clone().requires_grad_()
    (expected,) = torch.autograd.grad((trilinear_sample(ref_leaf, coords, batch_index) * upstream).sum(), ref_leaf)
    for name, volume in layouts.items():
        leaf = volume.detach().requires_grad_()
        (grad,) = torch.autograd.grad((triton_trilinear_sample(leaf, coords, batch_index) * upstream).sum(), leaf)
        torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-5, msg=f"{channels} channels, {name}")
print("boundaries ok")
"""


def test_triton_sampler_gradient_at_the_volume_boundaries_in_the_interpreter() -> None:
    run_interpreted(BOUNDARY_CHECK, "boundaries ok")
