"""Marches 'fused_triton' (one Triton kernel each way for sampling + colour MLP + compositing) and
'fused_mlp_triton' (the same kernels reading the sampler's values) against 'packed'."""

from __future__ import annotations

import os

import pytest
import torch
from triton_interpreter import run_interpreted

from nsmae_lightning.models.rays import RayBundle
from nsmae_lightning.models.rendering import NeRFPretrainHead, RenderConfig

PC_RANGE = (-8.0, -8.0, -2.0, 8.0, 8.0, 2.0)
STEP = 0.8
# No samples, one, within one interpreter chunk (8), exactly one chunk and across several; 9 rays are
# 5 blocks of 2 rays for 2 persistent backward programs.
LENGTHS = (0, 1, 5, 0, 13, 2, 20, 7, 8)


def bundle_with_lengths(lengths: tuple[int, ...] = LENGTHS, seed: int = 0) -> RayBundle:
    """Rays in random directions from inside the range with exactly ``lengths`` samples (some leave the range)."""
    generator = torch.Generator().manual_seed(seed)
    origins = (torch.rand(len(lengths), 3, generator=generator) - 0.5) * torch.tensor([12.0, 12.0, 3.0])
    directions = torch.nn.functional.normalize(torch.randn(len(lengths), 3, generator=generator), dim=-1)
    near = torch.rand(len(lengths), generator=generator)
    counts = torch.tensor(lengths, dtype=torch.float32)
    far = torch.where(counts > 0, near + (counts - 0.5) * STEP, near - 1.0)
    zeros = torch.zeros_like(near)
    return RayBundle(origins=origins, directions=directions, batch_index=torch.arange(len(lengths)) % 2, near=near,
                     far=far, depth_target=zeros, has_depth=zeros.bool())


def march_and_gradients(march: str, rays: RayBundle, dtype: torch.dtype = torch.float32, with_color: bool = True,
                        **sizes: object) -> dict[str, torch.Tensor]:
    """head.render of a fixed random volume (autocast in ``dtype``): outputs, and the gradients of a random
    linear loss for the volume and every colour-MLP parameter."""
    config = RenderConfig(**{"z_bins": 4, "feature_channels": 5, "trunk_channels": 8, "mlp_hidden": 12,
                             "march": march, "sampler": "trilinear", "background": 0.2, **sizes})
    torch.manual_seed(0)
    head = NeRFPretrainHead(config, embed_channels=6, pc_range=PC_RANGE)
    with torch.no_grad():
        volume = head.network.volume(torch.randn(2, 6, 8, 8)).to(dtype)
    volume = (volume if with_color else volume[..., :1].contiguous()).requires_grad_()
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        rendered = head.render(volume, rays, STEP, with_color)
    outputs = {"depth": rendered.depth, "opacity": rendered.opacity}
    if with_color:
        outputs["rgb"] = rendered.rgb  # type: ignore[assignment]
    generator = torch.Generator().manual_seed(7)
    loss = sum((output * torch.randn(output.shape, generator=generator)).sum() for output in outputs.values())
    parameters = dict(head.network.color_mlp.named_parameters()) if with_color else {}
    gradients = torch.autograd.grad(loss, [volume, *parameters.values()])
    result = {name: output.detach() for name, output in outputs.items()}
    result.update(zip(["volume", *parameters], gradients))
    return result


def assert_matches(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], relative: float,
                   floor: float) -> None:
    """Every value within ``relative`` of the reference's largest magnitude (plus ``floor``)."""
    assert got.keys() == expected.keys()
    for name, reference in expected.items():
        value = got[name]
        assert value.shape == reference.shape, name
        error = float((value.float() - reference.float()).abs().max()) if reference.numel() else 0.0
        scale = float(reference.float().abs().max()) if reference.numel() else 0.0
        assert error <= relative * scale + floor, f"{name}: max error {error:.3g} against max |reference| {scale:.3g}"


@pytest.mark.parametrize("march", ["fused_triton", "fused_mlp_triton"])
def test_render_config_checks_the_fused_marchs_mlp_shape(march: str) -> None:
    RenderConfig(march=march)  # the paper's shape is supported (no triton needed to check)
    with pytest.raises(ValueError, match="fused_triton.*mlp_layers == 2"):
        RenderConfig(march=march, mlp_layers=3)
    with pytest.raises(ValueError, match="fused_triton.*mlp_hidden <= 128"):
        RenderConfig(march=march, mlp_hidden=256)
    with pytest.raises(ValueError, match="fused_triton.*feature_channels <= 128"):
        RenderConfig(march=march, feature_channels=200)
    RenderConfig(march="packed", mlp_layers=3)  # other marches take any MLP


@pytest.mark.parametrize("march", ["fused_triton", "fused_mlp_triton"])
def test_fused_march_refuses_cpu_tensors_outside_the_interpreter(march: str) -> None:
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the interpreter runs CPU tensors")
    with pytest.raises(ValueError, match="CUDA"):
        march_and_gradients(march, bundle_with_lengths())


TRITON_CHECK = """
import torch
from test_march_fused import assert_matches, bundle_with_lengths, march_and_gradients

rays = bundle_with_lengths()
cases = [
    {},  # padded widths: 5 features -> 16 lanes, hidden 12 -> 16
    {"feature_channels": 16, "mlp_hidden": 16, "use_view_dir": False, "normalize_depth": True},
    {"feature_channels": 32, "mlp_hidden": 64},  # the paper's MLP (59 inputs -> 64 -> 64 -> 3)
]
empty = bundle_with_lengths((0, 0, 0))
for march in ("fused_triton", "fused_mlp_triton"):
    for sizes in cases:
        expected = march_and_gradients("packed", rays, **sizes)
        assert_matches(march_and_gradients(march, rays, **sizes), expected, 1e-5, 1e-6)
    # bf16 volume and autocast (MLP operands in bf16) against the float32 packed march: the bf16 packed march
    # is no closer reference (autocast rounds enc(d) and dL/dz1 to bf16: ~6% off in W1's gradient; fused ~0.5%)
    expected = march_and_gradients("packed", rays)
    assert_matches(march_and_gradients(march, rays, torch.bfloat16), expected, 2e-2, 1e-3)
    # depth-only rays take the packed march with the Triton compositor
    expected = march_and_gradients("packed", rays, with_color=False)
    assert_matches(march_and_gradients(march, rays, with_color=False), expected, 1e-5, 1e-6)
    # only rays without samples: background colour, zero gradients
    assert_matches(march_and_gradients(march, empty), march_and_gradients("packed", empty), 0.0, 0.0)
print("fused march ok")
"""


def test_fused_march_matches_the_packed_march_in_the_interpreter() -> None:
    # As tests/test_rendering_march.py: Triton's CPU interpreter runs the kernels the GPU compiles.
    run_interpreted(TRITON_CHECK, "fused march ok")
