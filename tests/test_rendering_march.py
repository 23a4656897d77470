"""Packed marches (ragged per-ray samples) against the dense reference: samples, values, gradients."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pytest
import torch
from triton_interpreter import run_interpreted

from nsmae_lightning.models.composite_packed import composite_packed
from nsmae_lightning.models.ray_samples import (
    PackedSamples,
    pack_samples,
    samples_per_ray_cap,
)
from nsmae_lightning.models.rays import RayBundle, clip_to_range
from nsmae_lightning.models.rendered_rays import RenderedRays
from nsmae_lightning.models.rendering import NeRFPretrainHead, RenderConfig, composite_dense, resolve_render_path

PC_RANGE = (-8.0, -8.0, -2.0, 8.0, 8.0, 2.0)
STEP = 0.4
# Rays without samples, with one, within one interpreter chunk (8) and across several.
LENGTHS = (0, 1, 5, 0, 13, 2, 20, 7, 8)

Compositor = Callable[..., RenderedRays]


def packed_case(lengths: tuple[int, ...] = LENGTHS, seed: int = 0) -> tuple[PackedSamples, torch.Tensor, torch.Tensor]:
    """Samples of rays with the given sample counts, random densities and colours."""
    generator = torch.Generator().manual_seed(seed)
    near = torch.rand(len(lengths), generator=generator) * 3.0
    counts = torch.tensor(lengths, dtype=torch.float32)
    far = torch.where(counts > 0, near + (counts - 0.5) * STEP, near - 1.0)
    samples = pack_samples(near, far, STEP, max_samples=64)
    assert torch.equal(samples.offsets.diff(), torch.tensor(lengths))
    sigma = torch.rand(samples.t.shape[0], generator=generator) * 2.0
    rgb = torch.rand(samples.t.shape[0], 3, generator=generator)
    return samples, sigma, rgb


def rendered_and_gradients(
    compositor: Compositor, samples: PackedSamples, sigma: torch.Tensor, rgb: torch.Tensor | None,
    background: float = 0.3, normalize_depth: bool = False,
) -> list[torch.Tensor]:
    """Depth, opacity, (colour) and the gradients of a random linear loss for sigma (and rgb)."""
    sigma = sigma.detach().requires_grad_()
    inputs = [sigma]
    if rgb is not None:
        rgb = rgb.detach().requires_grad_()
        inputs.append(rgb)
    rendered = compositor(sigma, samples, STEP, rgb, background, normalize_depth)
    generator = torch.Generator().manual_seed(7)
    outputs = [rendered.depth, rendered.opacity] + ([rendered.rgb] if rgb is not None else [])
    loss = sum((output * torch.randn(output.shape, generator=generator)).sum() for output in outputs)
    return [output.detach() for output in outputs] + list(torch.autograd.grad(loss, inputs))


def assert_all_close(got: list[torch.Tensor], expected: list[torch.Tensor], tolerance: float = 1e-5) -> None:
    assert len(got) == len(expected)
    for value, reference in zip(got, expected):
        torch.testing.assert_close(value.float(), reference.float(), atol=tolerance, rtol=tolerance)


def random_bundle(count: int, seed: int) -> RayBundle:
    """Rays from inside the range in random directions, plus one that starts outside and leaves (no samples)."""
    generator = torch.Generator().manual_seed(seed)
    origins = (torch.rand(count, 3, generator=generator) - 0.5) * torch.tensor([12.0, 12.0, 3.0])
    origins[-1] = torch.tensor([20.0, 0.0, 0.0])
    directions = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator), dim=-1)
    directions[-1] = torch.tensor([1.0, 0.0, 0.0])
    near, far = clip_to_range(origins, directions, PC_RANGE)
    zeros = torch.zeros_like(near)
    return RayBundle(origins=origins, directions=directions, batch_index=torch.arange(count) % 2, near=near,
                     far=far, depth_target=zeros, has_depth=zeros.bool())


def render_and_gradients(march: str, sampler: str, rays: RayBundle, with_color: bool) -> list[torch.Tensor]:
    """head.render of a fixed random volume; outputs and gradients for the volume and every MLP parameter."""
    config = RenderConfig(z_bins=4, feature_channels=4, trunk_channels=8, mlp_hidden=8, sampler=sampler, march=march,
                          background=0.2)
    torch.manual_seed(0)
    head = NeRFPretrainHead(config, embed_channels=6, pc_range=PC_RANGE)
    with torch.no_grad():
        volume = head.network.volume(torch.randn(2, 6, 8, 8))
    volume = volume if with_color else volume[..., :1].contiguous()
    volume.requires_grad_()
    rendered = head.render(volume, rays, 0.8, with_color)
    outputs = [rendered.depth, rendered.opacity] + ([rendered.rgb] if with_color else [])
    loss = sum((output * torch.linspace(-1.0, 1.0, output.numel()).view_as(output)).sum() for output in outputs)
    parameters = list(head.network.color_mlp.parameters()) if with_color else []
    return [output.detach() for output in outputs] + list(torch.autograd.grad(loss, [volume, *parameters]))


def test_pack_samples_lists_the_dense_marchs_samples_exactly() -> None:
    generator = torch.Generator().manual_seed(3)
    near = torch.rand(200, generator=generator) * 5.0
    far = near + torch.rand(200, generator=generator) * 12.0 - 1.0  # some rays end before they start
    far[:20] = near[:20] + 0.8 * torch.arange(20)  # far exactly on a sample: that sample is out
    far[20] = near[20]  # zero length
    for step, max_samples in ((0.8, 256), (0.3, 16)):  # 16 cuts the longest rays
        cap = max(1, min(math.ceil(float((far - near).clamp_min(0.0).max()) / step), max_samples))
        assert int(samples_per_ray_cap(near, far, step, max_samples)) == cap  # S, computed on the device
        t = near.unsqueeze(1) + step * torch.arange(cap)
        ray_index, sample_index = torch.nonzero(t < far.unsqueeze(1), as_tuple=True)
        packed = pack_samples(near, far, step, max_samples)
        assert torch.equal(packed.ray_index, ray_index) and torch.equal(packed.sample_index, sample_index)
        assert torch.equal(packed.t, t[ray_index, sample_index])
        assert torch.equal(packed.offsets, torch.cat([torch.zeros(1, dtype=torch.int64),
                                                      torch.bincount(ray_index, minlength=200).cumsum(0)]))


PACK_KERNELS_CHECK = """
import torch
from nsmae_lightning.models.ray_samples import pack_samples
generator = torch.Generator().manual_seed(3)
near = torch.rand(300, generator=generator) * 5.0
far = near + torch.rand(300, generator=generator) * 12.0 - 1.0  # some rays end before they start
far[:20] = near[:20] + 0.8 * torch.arange(20)  # far exactly on a sample: that sample is out
far[20] = near[20]  # zero length
far[90:140] = near[90:140]  # a run of empty rays over a whole listing block (32 rays) and its neighbours' edges
for step, max_samples in ((0.8, 256), (0.3, 16), (0.2, 1), (0.01, 1024)):  # 16, 1 cut the longest; 0.01: long rays
    torch_made = pack_samples(near, far, step, max_samples, kernels=False)
    kernel_made = pack_samples(near, far, step, max_samples, kernels=True)
    assert kernel_made.width == torch_made.width
    for name in ("ray_index", "sample_index", "t", "offsets"):  # bit for bit
        assert torch.equal(getattr(kernel_made, name), getattr(torch_made, name)), (step, name)
empty = pack_samples(torch.zeros(0), torch.zeros(0), 0.5, 8, kernels=True)
assert empty.t.shape == (0,) and empty.offsets.tolist() == [0]
print("pack kernels ok")
"""


def test_pack_samples_kernels_equal_the_torch_code_bit_for_bit_in_the_interpreter() -> None:
    run_interpreted(PACK_KERNELS_CHECK, "pack kernels ok")


def test_pack_samples_of_no_rays() -> None:
    packed = pack_samples(torch.zeros(0), torch.zeros(0), 0.5, 8)
    assert packed.t.shape == (0,) and packed.offsets.tolist() == [0] and packed.width == 1


@pytest.mark.parametrize("normalize_depth", [False, True])
@pytest.mark.parametrize("with_rgb", [True, False])
def test_packed_composite_matches_dense_values_and_gradients(with_rgb: bool, normalize_depth: bool) -> None:
    samples, sigma, rgb = packed_case()
    colours = rgb if with_rgb else None
    expected = rendered_and_gradients(composite_dense, samples, sigma, colours, normalize_depth=normalize_depth)
    got = rendered_and_gradients(composite_packed, samples, sigma, colours, normalize_depth=normalize_depth)
    assert_all_close(got, expected)


def test_packed_composite_slab_matches_analytic_values_and_gradient() -> None:
    # One ray through a slab of constant density: opacity 1 - exp(-sigma L), d opacity / d sigma_i = delta exp(-sigma L).
    sigma_value, first, count, total = 0.7, 4, 6, 16
    samples = pack_samples(torch.tensor([1.0]), torch.tensor([1.0 + (total - 0.5) * STEP]), STEP, 64)
    sigma = torch.zeros(total)
    sigma[first : first + count] = sigma_value
    sigma.requires_grad_()
    colour = torch.tensor([0.9, 0.2, 0.4]).expand(total, 3)
    rendered = composite_packed(sigma, samples, STEP, colour, 0.25, normalize_depth=False)
    passed = math.exp(-sigma_value * count * STEP)
    assert rendered.opacity.item() == pytest.approx(1.0 - passed, rel=1e-6)
    torch.testing.assert_close(rendered.rgb[0], colour[0] * (1.0 - passed) + 0.25 * passed)
    (gradient,) = torch.autograd.grad(rendered.opacity.sum(), sigma)
    torch.testing.assert_close(gradient, torch.full((total,), STEP * passed))


def test_packed_composite_stays_float32_under_autocast() -> None:
    samples, sigma, rgb = packed_case()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rendered = composite_packed(sigma.bfloat16(), samples, STEP, rgb.bfloat16(), 0.0, normalize_depth=False)
    assert rendered.depth.dtype == rendered.opacity.dtype == rendered.rgb.dtype == torch.float32


@pytest.mark.parametrize("with_color", [True, False])
def test_packed_march_renders_like_the_dense_march(with_color: bool) -> None:
    rays = random_bundle(12, seed=1)
    expected = render_and_gradients("dense", "trilinear", rays, with_color)
    assert_all_close(render_and_gradients("packed", "trilinear", rays, with_color), expected)


def test_auto_resolves_by_device_and_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    import nsmae_lightning.models.trilinear_triton as trilinear_triton

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(trilinear_triton, "triton", object())  # as if triton were installed
    assert resolve_render_path("auto", "auto", cuda) == ("trilinear_triton", "packed_triton")
    assert resolve_render_path("auto", "auto", cpu) == ("trilinear", "dense")
    assert resolve_render_path("grid_sample", "packed", cuda) == ("grid_sample", "packed")  # names stay
    monkeypatch.setattr(trilinear_triton, "triton", None)  # a CUDA machine without triton
    assert resolve_render_path("auto", "auto", cuda) == ("trilinear", "dense")
    assert resolve_render_path("auto", "fused_triton", cuda) == ("trilinear", "fused_triton")


def test_auto_renders_exactly_like_the_path_it_resolves_to_on_cpu() -> None:
    rays = random_bundle(12, seed=2)
    assert_all_close(render_and_gradients("auto", "auto", rays, True),
                     render_and_gradients("dense", "trilinear", rays, True), tolerance=0.0)


@pytest.mark.parametrize("use_view_dir", [True, False])
def test_colour_mlp_per_ray_directions_equal_per_sample_directions(use_view_dir: bool) -> None:
    # per ray, the first layer's direction part is computed once and added to W1f f: same function
    config = RenderConfig(feature_channels=5, mlp_hidden=8, use_view_dir=use_view_dir)
    torch.manual_seed(0)
    network = NeRFPretrainHead(config, embed_channels=6, pc_range=PC_RANGE).network.double()
    features = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    directions = torch.nn.functional.normalize(torch.randn(4, 3, dtype=torch.float64), dim=-1)
    ray_index = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 3, 3, 3])
    results = []
    for rgb in (network.color(features, directions, ray_index), network.color(features, directions[ray_index])):
        weights = torch.linspace(-1.0, 1.0, rgb.numel(), dtype=torch.float64).view_as(rgb)
        results.append([rgb, *torch.autograd.grad((rgb * weights).sum(), [features, *network.color_mlp.parameters()])])
    for per_ray, per_sample in zip(*results):
        torch.testing.assert_close(per_ray, per_sample, rtol=1e-12, atol=1e-12)


def test_render_config_rejects_an_unknown_march() -> None:
    with pytest.raises(ValueError, match="march must be one of"):
        RenderConfig(march="sparse")


def test_triton_march_refuses_cpu_tensors_outside_the_interpreter() -> None:
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the interpreter runs CPU tensors")
    from nsmae_lightning.models.composite_triton import composite_triton

    samples, sigma, rgb = packed_case()
    with pytest.raises(ValueError, match="CUDA"):
        composite_triton(sigma, samples, STEP, rgb, 0.0, normalize_depth=False)


TRITON_CHECK = """
import torch
from nsmae_lightning.models.composite_packed import composite_packed
from nsmae_lightning.models.composite_triton import composite_triton
from nsmae_lightning.models.trilinear import sample_volume
from nsmae_lightning.models.rendering import composite_dense
from test_rendering_march import (assert_all_close, packed_case, random_bundle,
                                  render_and_gradients, rendered_and_gradients)

samples, sigma, rgb = packed_case()
for colours in (rgb, None):
    for normalize_depth in (False, True):
        expected = rendered_and_gradients(composite_dense, samples, sigma, colours, normalize_depth=normalize_depth)
        got = rendered_and_gradients(composite_triton, samples, sigma, colours, normalize_depth=normalize_depth)
        assert_all_close(got, expected)
# sigma as a strided column of the sampler's (M, C) output, in bf16 (the renderer's case)
values = torch.cat([sigma[:, None], rgb], dim=1).bfloat16()
expected = rendered_and_gradients(composite_packed, samples, values[:, 0], values[:, 1:])
assert_all_close(rendered_and_gradients(composite_triton, samples, values[:, 0], values[:, 1:]), expected, 1e-2)
# only rays without samples
empty = packed_case(lengths=(0, 0, 0))
assert composite_triton(empty[1], empty[0], 0.4, empty[2], 0.5, False).rgb.tolist() == [[0.5] * 3] * 3

# the sampler at the render network's channel split (33 = 32 + 1), one channel, and a power of two
for channels in (33, 1, 8):
    volume = torch.randn(2, 3, 4, 5, channels, requires_grad=True)
    coords = torch.rand(70, 3) * torch.tensor([7.0, 6.0, 5.0]) - 1.0
    batch_index = torch.randint(0, 2, (70,))
    upstream = torch.randn(70, channels)
    reference = torch.autograd.grad(sample_volume(volume, coords, batch_index, "trilinear"), volume, upstream)
    sampled = sample_volume(volume, coords, batch_index, "trilinear_triton")
    assert_all_close([sampled, *torch.autograd.grad(sampled, volume, upstream)],
                     [sample_volume(volume, coords, batch_index, "trilinear"), *reference])

# the whole march: Triton sampler + Triton compositor against the dense torch reference
rays = random_bundle(12, seed=1)
for with_color in (True, False):
    expected = render_and_gradients("dense", "trilinear", rays, with_color)
    assert_all_close(render_and_gradients("packed_triton", "trilinear_triton", rays, with_color), expected)
print("triton march ok")
"""


def test_triton_march_matches_the_reference_in_the_interpreter() -> None:
    # As tests/test_rendering_sampler.py: Triton's CPU interpreter runs the kernels the GPU compiles.
    run_interpreted(TRITON_CHECK, "triton march ok")
