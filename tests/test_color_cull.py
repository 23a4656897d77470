"""Colour only where the compositing weight counts (`RenderConfig.color_cull`, models/color_cull.py)."""

from __future__ import annotations

import math

import pytest
import torch
from test_rendering_march import PC_RANGE, random_bundle
from triton_interpreter import run_interpreted

from nsmae_lightning.models.color_cull import colored_samples, scatter_colors
from nsmae_lightning.models.composite_packed import packed_weights
from nsmae_lightning.models.ray_samples import pack_samples
from nsmae_lightning.models.rays import RayBundle
from nsmae_lightning.models.rendering import NeRFPretrainHead, RenderConfig

STEP = 0.8
FEATURES = 4


def test_packed_weights_of_uniform_rays_are_the_analytic_ones() -> None:
    # sigma s on every sample: w_i = exp(-s delta i) (1 - exp(-s delta)); rays of 3, 0 and 5 samples
    near = torch.tensor([0.0, 1.0, 2.0])
    far = near + torch.tensor([2.2, -1.0, 3.9])
    samples = pack_samples(near, far, STEP, max_samples=16)
    assert samples.offsets.tolist() == [0, 3, 3, 8]
    sigma = torch.full((8,), 0.5)
    expected = [math.exp(-0.4 * i) * (1.0 - math.exp(-0.4)) for i in (0, 1, 2, 0, 1, 2, 3, 4)]
    assert packed_weights(sigma, samples, STEP).tolist() == pytest.approx(expected, rel=1e-6)


def test_colored_samples_are_those_above_epsilon_and_scattered_back() -> None:
    near = torch.tensor([0.0, 0.0])
    samples = pack_samples(near, near + 3.9, STEP, max_samples=16)  # 5 samples a ray
    sigma = torch.tensor([0.0, 3.0, 3.0, 3.0, 3.0, 0.01, 0.01, 0.01, 0.01, 0.01])
    weights = packed_weights(sigma, samples, STEP)
    # ray 0: w = 0, 0.909, 0.083, 0.0075, 0.0007; ray 1: ~0.008 each
    kept = colored_samples(sigma, samples, STEP, 0.005)
    assert kept.tolist() == [1, 2, 3, 5, 6, 7, 8, 9]
    assert bool((weights[kept] > 0.005).all()) and bool((weights[[0, 4]] <= 0.005).all())
    colors = torch.rand(8, 3, requires_grad=True)
    full = scatter_colors(colors, kept, 10)
    assert torch.equal(full[kept], colors) and not full[[0, 4]].any()
    full.sum().backward()
    assert torch.equal(colors.grad, torch.ones(8, 3))


def slab_volume() -> torch.Tensor:
    """(2, 4, 8, 8, 1 + FEATURES): thin density, an opaque half-space x > 0 (sigma 4 /m), random features."""
    generator = torch.Generator().manual_seed(0)
    volume = torch.randn(2, 4, 8, 8, 1 + FEATURES, generator=generator)
    density = torch.full((2, 4, 8, 8), 0.05)
    density[..., 4:] = 4.0
    volume[..., 0] = density
    return volume


def head(color_cull: float, march: str = "packed", sampler: str = "trilinear", color_mlp: str = "torch") -> NeRFPretrainHead:
    config = RenderConfig(z_bins=4, feature_channels=FEATURES, trunk_channels=8, mlp_hidden=16, background=0.2,
                          march=march, sampler=sampler, color_mlp=color_mlp, color_cull=color_cull)
    torch.manual_seed(0)
    return NeRFPretrainHead(config, embed_channels=6, pc_range=PC_RANGE)


def render_counted(render_head: NeRFPretrainHead, rays: RayBundle, volume: torch.Tensor) -> tuple[list[torch.Tensor], int]:
    """Depth, opacity, colour and the gradients (volume, colour MLP) of a fixed linear loss, and the rows
    the colour MLP ran on."""
    volume = volume.detach().requires_grad_()
    network = render_head.network
    rows: list[int] = []
    color = network.color

    def counted(features: torch.Tensor, *args: object) -> torch.Tensor:
        rows.append(features.shape[0])
        return color(features, *args)

    network.color = counted  # type: ignore[method-assign]
    try:
        rendered = render_head.render(volume, rays, STEP, with_color=True)
    finally:
        del network.color
    outputs = [rendered.depth, rendered.opacity, rendered.rgb]
    loss = sum((output * torch.linspace(-1.0, 1.0, output.numel()).view_as(output)).sum() for output in outputs)
    gradients = torch.autograd.grad(loss, [volume, *network.color_mlp.parameters()])
    return [output.detach() for output in outputs] + list(gradients), sum(rows)


def test_culled_march_keeps_depth_exact_and_colour_within_its_bound() -> None:
    rays = random_bundle(40, seed=2)
    volume = slab_volume()
    exact, all_rows = render_counted(head(0.0), rays, volume)
    epsilon = 1e-3
    culled, kept_rows = render_counted(head(epsilon), rays, volume)
    samples = pack_samples(rays.near, rays.far, STEP, RenderConfig.max_samples_per_ray)
    assert all_rows == samples.t.shape[0]
    assert 0 < kept_rows < 0.75 * all_rows  # behind the opaque half-space nothing is coloured
    torch.testing.assert_close(culled[0], exact[0], rtol=1e-6, atol=1e-6)  # depth
    torch.testing.assert_close(culled[1], exact[1], rtol=1e-6, atol=1e-6)  # opacity
    # per ray: |colour change| <= epsilon x its culled samples
    density = head(0.0)._sample(volume[..., :1], rays.origins[samples.ray_index] + samples.t[:, None]
                                * rays.directions[samples.ray_index], rays.batch_index[samples.ray_index],
                                "trilinear")[:, 0]
    weights = packed_weights(density, samples, STEP)
    culled_per_ray = torch.zeros(len(rays)).index_add(0, samples.ray_index, (weights <= epsilon).float())
    change = (culled[2] - exact[2]).abs().amax(dim=1)
    assert bool((change <= epsilon * culled_per_ray + 1e-6).all())
    assert float(change.max()) > 0.0  # something was culled on a coloured ray
    for got, reference in zip(culled[3:], exact[3:]):  # the volume's and the colour MLP's gradients
        assert got.abs().sum() > 0
        torch.testing.assert_close(got, reference, rtol=0.0, atol=0.05 * float(reference.abs().max()))


def test_rendered_rays_report_the_coloured_fraction() -> None:
    rays = random_bundle(40, seed=2)
    _, all_rows = render_counted(head(0.0), rays, slab_volume())
    _, kept_rows = render_counted(head(1e-3), rays, slab_volume())
    assert head(1e-3).render(slab_volume(), rays, STEP, with_color=True).colored_fraction == kept_rows / all_rows
    # every sample coloured: nothing to report (exact march, eval mode, depth-only views)
    assert head(0.0).render(slab_volume(), rays, STEP, with_color=True).colored_fraction is None
    assert head(1e-3).eval().render(slab_volume(), rays, STEP, with_color=True).colored_fraction is None
    assert head(1e-3).render(slab_volume()[..., :1], rays, STEP, with_color=False).colored_fraction is None


def test_culling_at_a_vanishing_epsilon_is_the_exact_march() -> None:
    rays = random_bundle(12, seed=1)
    volume = slab_volume()
    volume[..., 0] = 0.3  # no weight underflows to zero: every sample is kept
    exact, all_rows = render_counted(head(0.0), rays, volume)
    culled, kept_rows = render_counted(head(1e-30), rays, volume)
    assert kept_rows == all_rows
    for got, reference in zip(culled, exact):
        torch.testing.assert_close(got, reference, rtol=1e-6, atol=1e-6)


def test_culling_is_off_in_eval_mode() -> None:
    # validation scores the exact march, so runs with and without culling are compared alike
    rays = random_bundle(40, seed=2)
    exact, all_rows = render_counted(head(0.0), rays, slab_volume())
    evaluated, rows = render_counted(head(1e-3).eval(), rays, slab_volume())
    assert rows == all_rows
    for got, reference in zip(evaluated, exact):
        torch.testing.assert_close(got, reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("march", ["dense", "packed"])
def test_culling_runs_on_every_march_with_its_colour_mlp_apart(march: str) -> None:
    rays = random_bundle(16, seed=3)
    outputs, rows = render_counted(head(1e-3, march=march), rays, slab_volume())
    assert rows > 0 and all(bool(torch.isfinite(output).all()) for output in outputs)


def test_render_config_checks_color_cull() -> None:
    with pytest.raises(ValueError, match="color_cull must be in"):
        RenderConfig(color_cull=-1e-3)
    with pytest.raises(ValueError, match="color_cull must be in"):
        RenderConfig(color_cull=1.0)
    with pytest.raises(ValueError, match="colour MLP apart"):
        RenderConfig(color_cull=1e-4, march="fused_triton")


TRITON_CHECK = """
import torch
from test_color_cull import head, render_counted, slab_volume
from test_rendering_march import assert_all_close, random_bundle

# the Triton sampler (on channel slices), compositor and colour MLP on the culled samples, against torch
rays = random_bundle(24, seed=4)
volume = slab_volume()
expected, expected_rows = render_counted(head(1e-3), rays, volume)
got, rows = render_counted(head(1e-3, "packed_triton", "trilinear_triton", "triton"), rays, volume)
assert rows == expected_rows, (rows, expected_rows)
assert_all_close(got, expected, 1e-4)
print("culled triton march ok")
"""


def test_culled_triton_march_matches_torch_in_the_interpreter() -> None:
    run_interpreted(TRITON_CHECK, "culled triton march ok")


ABOVE_CHECK = """
import torch
from nsmae_lightning.models.color_cull import colored_samples
from nsmae_lightning.models.composite_packed import packed_weights
from nsmae_lightning.models.composite_triton import weights_above
from nsmae_lightning.models.ray_samples import pack_samples

# rays of 0 to ~40 samples (longer than a chunk), thin and opaque densities, a strided bf16 column
torch.manual_seed(0)
near = torch.rand(30) * 2.0
far = near + torch.rand(30) * 30.0
far[3] = near[3] - 1.0  # a ray with no samples
samples = pack_samples(near, far, 0.8, max_samples=64)
columns = torch.rand(samples.t.shape[0], 2)
columns[:, 1] *= torch.where(torch.rand(samples.t.shape[0]) < 0.1, 5.0, 0.05)
for epsilon in (1e-4, 1e-2):
    for density in (columns[:, 1], columns.bfloat16()[:, 1]):
        assert density.stride(0) == 2
        weights = packed_weights(density, samples, 0.8)
        above = weights_above(density, samples, 0.8, epsilon)
        assert above.dtype == torch.bool and above.shape == weights.shape
        clear = (weights - epsilon).abs() > 1e-5 * epsilon  # away from float32 rounding of the threshold
        assert torch.equal(above[clear], (weights > epsilon)[clear]), epsilon
        assert 0 < int(above.sum()) < above.numel()
        assert torch.equal(colored_samples(density, samples, 0.8, epsilon, kernel=True), above.nonzero().squeeze(1))
        assert torch.equal(colored_samples(density, samples, 0.8, epsilon), (weights > epsilon).nonzero().squeeze(1))
empty = pack_samples(near[:0], far[:0], 0.8, max_samples=64)
assert weights_above(torch.zeros(0), empty, 0.8, 1e-4).shape == (0,)
print("weights above ok")
"""


def test_weights_above_epsilon_in_one_kernel_match_packed_weights_in_the_interpreter() -> None:
    run_interpreted(ABOVE_CHECK, "weights above ok")
