"""The colour MLP's Triton kernels (RenderConfig.color_mlp 'triton') against its torch layers."""

from __future__ import annotations

import os

import pytest
import torch
from triton_interpreter import run_interpreted

from nsmae_lightning.models.rendering import RenderConfig, RenderNetwork

# samples per ray: none, one, runs shorter and longer than the interpreter's 16-row block, 47 rows = 3 blocks
# for 2 persistent backward programs
LENGTHS = (0, 3, 1, 0, 0, 17, 2, 9, 0, 15)


def mlp_and_gradients(kind: str, dtype: torch.dtype = torch.float32, lengths: tuple[int, ...] = LENGTHS,
                      shuffle: bool = False, **sizes: object) -> dict[str, torch.Tensor]:
    """RenderNetwork.color of random features on rays with ``lengths`` samples (autocast in ``dtype``):
    colours, and the gradients of a random linear loss for the features and every colour-MLP parameter.
    ``shuffle`` permutes the samples (equal ray indices no longer adjacent)."""
    config = RenderConfig(**{"feature_channels": 5, "mlp_hidden": 12, "color_mlp": kind, **sizes})
    torch.manual_seed(0)
    network = RenderNetwork(embed_channels=4, config=config)
    generator = torch.Generator().manual_seed(3)
    ray_index = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    if shuffle:
        ray_index = ray_index[torch.randperm(ray_index.shape[0], generator=generator)]
    directions = torch.nn.functional.normalize(torch.randn(len(lengths), 3, generator=generator), dim=-1)
    # the features as the march passes them: a channel slice of the sampled (M, 1 + Cf) values
    values = torch.randn(ray_index.shape[0], 1 + config.feature_channels, generator=generator).to(dtype)
    values.requires_grad_()
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        rgb = network.color(values[:, 1:], directions, ray_index)
    loss = (rgb.float() * torch.randn(rgb.shape, generator=generator)).sum()
    parameters = dict(network.color_mlp.named_parameters())
    gradients = torch.autograd.grad(loss, [values, *parameters.values()])
    return {"rgb": rgb.detach(), **dict(zip(["values", *parameters], gradients))}


def assert_matches(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], relative: float,
                   floor: float) -> None:
    """Every value within ``relative`` of the reference's largest magnitude (plus ``floor``)."""
    assert got.keys() == expected.keys()
    for name, reference in expected.items():
        value = got[name]
        assert value.shape == reference.shape and value.dtype == reference.dtype, name
        error = float((value.float() - reference.float()).abs().max()) if reference.numel() else 0.0
        scale = float(reference.float().abs().max()) if reference.numel() else 0.0
        assert error <= relative * scale + floor, f"{name}: max error {error:.3g} against max |reference| {scale:.3g}"


def test_render_config_checks_the_color_mlp() -> None:
    RenderConfig(color_mlp="triton")  # the paper's shape is supported (no triton needed to check)
    deep = RenderConfig(color_mlp="auto", mlp_layers=3)  # auto falls back where the kernels cannot run
    assert RenderNetwork(embed_channels=4, config=deep).color_kernel == "torch"
    assert RenderNetwork(embed_channels=4, config=RenderConfig(color_mlp="auto")).color_kernel == "auto"
    with pytest.raises(ValueError, match="color_mlp must be one of"):
        RenderConfig(color_mlp="cuda")
    with pytest.raises(ValueError, match="color_mlp 'triton'.*mlp_layers == 2"):
        RenderConfig(color_mlp="triton", mlp_layers=3)
    with pytest.raises(ValueError, match="color_mlp 'triton'.*mlp_hidden <= 128"):
        RenderConfig(color_mlp="triton", mlp_hidden=256)


def test_auto_runs_the_torch_layers_on_a_cpu() -> None:
    # no triton needed: on a CPU "auto" is the torch MLP, bit for bit
    assert_matches(mlp_and_gradients("auto"), mlp_and_gradients("torch"), 0.0, 0.0)


def test_triton_color_mlp_refuses_cpu_tensors_outside_the_interpreter() -> None:
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the interpreter runs CPU tensors")
    with pytest.raises(ValueError, match="CUDA"):
        mlp_and_gradients("triton")


TRITON_CHECK = """
import torch
from test_color_mlp_triton import LENGTHS, assert_matches, mlp_and_gradients

cases = [
    {},  # padded widths: 5 features -> 16 lanes, hidden 12 -> 16
    {"feature_channels": 16, "mlp_hidden": 16, "use_view_dir": False},
    {"feature_channels": 32, "mlp_hidden": 64},  # the paper's MLP (59 inputs -> 64 -> 64 -> 3)
]
for sizes in cases:
    for shuffle in (False, True):  # runs of equal rays inside blocks, and rays scattered over blocks
        expected = mlp_and_gradients("torch", shuffle=shuffle, **sizes)
        assert_matches(mlp_and_gradients("triton", shuffle=shuffle, **sizes), expected, 1e-5, 1e-6)
# bf16 autocast against the float32 torch layers: the kernels keep biases and accumulation in float32
expected = mlp_and_gradients("torch")
got = mlp_and_gradients("triton", torch.bfloat16)
assert got["rgb"].dtype == torch.bfloat16 and got["values"].dtype == torch.bfloat16
assert_matches({k: v.float() for k, v in got.items()}, expected, 2e-2, 1e-3)
# the backward split in two launches (per-row gradients, then the weights'): the same gradients
from nsmae_lightning.models import color_mlp_triton
color_mlp_triton.BACKWARD_PARTS = (1, 2)
for sizes in cases:
    assert_matches(mlp_and_gradients("triton", shuffle=True, **sizes), mlp_and_gradients("torch", shuffle=True, **sizes),
                   1e-5, 1e-6)
color_mlp_triton.BACKWARD_PARTS = (0,)
# no samples at all: empty colours, zero gradients
empty = (0, 0, 0)
assert_matches(mlp_and_gradients("triton", lengths=empty), mlp_and_gradients("torch", lengths=empty), 0.0, 0.0)
print("color mlp ok")
"""


def test_triton_color_mlp_matches_the_torch_layers_in_the_interpreter() -> None:
    run_interpreted(TRITON_CHECK, "color mlp ok")


def test_backward_benchmark_shapes_are_checked() -> None:
    from test_experiment_tools import _benchmark_module

    bench = _benchmark_module("color_mlp_backward")
    assert bench.parse_shape("32x2x4") == {"rows": 32, "warps": 2, "programs": 4, "maxnreg": None}
    assert bench.parse_shape("32X4x3x168")["maxnreg"] == 168
    assert bench.parse_shape("tuned") is None  # the kernel's own autotuning list
    for bad in ("32x2", "32x0x4", "ax2x4", "32x2x4x1x1"):
        with pytest.raises(ValueError, match="ROWSxWARPSxPROGRAMS"):
            bench.parse_shape(bad)
    with pytest.raises(SystemExit):
        bench.parse_args(["--shapes", "32x2x4,bad"])
    # a shape whose process does not finish in time is a failed row, and the next shape still runs
    rows = bench.main(["--rows", "10", "--shapes", "32x2x4,16x2x4", "--timeout", "0.01"])
    assert [row["failed"] for row in rows] == ["timed out after 0.01 s"] * 2


BENCHMARK_CHECK = """
import sys
from pathlib import Path
import nsmae_lightning
sys.path.insert(0, str(Path(nsmae_lightning.__file__).parents[1] / "benchmarks"))
import color_mlp_backward
# two shapes, each in its own process; the interpreter runs its own block size, so both rows agree
rows = color_mlp_backward.main(["--rows", "100", "--features", "5", "--hidden", "12", "--samples-per-ray", "7",
                                "--shapes", "32x2x4,64x4x1"])
assert [row["shape"]["rows"] for row in rows] == [32, 64] and all("failed" not in row for row in rows), rows
assert rows[0]["errors"] == rows[1]["errors"], rows
# split in two launches: the same numbers
split = color_mlp_backward.main(["--rows", "100", "--features", "5", "--hidden", "12", "--samples-per-ray", "7",
                                 "--shapes", "32x2x4", "--parts", "1,2"])
assert split[0]["parts"] == [1, 2] and split[0]["errors"] == rows[0]["errors"], split
# bf16 kernels against the float32 torch MLP: within bf16's reach on every gradient, not exact
assert 0 < rows[0]["worst_error"] < 0.1, rows[0]["errors"]
print("benchmark ok")
"""


def test_backward_benchmark_checks_gradients_in_the_interpreter() -> None:
    run_interpreted(BENCHMARK_CHECK, "benchmark ok")
