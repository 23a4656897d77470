"""The colour MLP's Triton backward at chosen launch shapes: ms per call and gradient error against torch.

Why: the backward is register-bound (255 registers a thread, benchmarks/RESULTS.md) and its autotuner
only picks among the shapes it lists. This times any launch shape on rows laid out as a packed march
makes them (ray indices ascending, ``--samples-per-ray`` rows a ray), checks every gradient against
the float32 torch MLP, and runs each shape in its own process: a shape that faults (an illegal address
poisons the CUDA context) takes only its own process down and is reported as failed.

    python benchmarks/color_mlp_backward.py --rows 1536000 --features 32 --shapes 32x2x4,64x4x1 --out mlp.json

A shape is ROWSxWARPSxPROGRAMS[xMAXNREG]: BLOCK_M rows a block, warps a program, persistent programs
per SM, an optional register cap; or "tuned": the kernel's own autotuning list, as training runs it.
``--parts 1,2`` splits the backward in two launches (`color_mlp_triton.BACKWARD_PARTS`). To compare kernel variants, put a variant copy first on PYTHONPATH
(`benchmarks/make_variant.sh`); each row records the module file that ran. Under TRITON_INTERPRET=1
(CPU) the interpreter's own block and program count replace the shape (tests check the values only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench_common import time_calls

from nsmae_lightning.atomic import atomic_write_text


def parse_shape(text: str) -> dict[str, int | None] | None:
    """"32x2x4" or "32x4x3x168" -> BLOCK_M, num_warps, PROGRAMS_PER_SM, maxnreg (None: uncapped); "tuned" ->
    None (the kernel's own autotuner picks among `_BACKWARD_TUNING`, each part apart, as in training)."""
    if text == "tuned":
        return None
    parts = text.lower().split("x")
    if len(parts) not in (3, 4) or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ValueError(f"shape {text!r}: expected ROWSxWARPSxPROGRAMS[xMAXNREG] of positive integers, e.g. 32x2x4")
    rows, warps, programs = (int(part) for part in parts[:3])
    return {"rows": rows, "warps": warps, "programs": programs, "maxnreg": int(parts[3]) if len(parts) == 4 else None}


def problem_inputs(rows: int, features: int, hidden: int, samples_per_ray: int, device: torch.device,
                   seed: int = 0) -> dict[str, Tensor]:
    """Random MLP weights and a backward's inputs, bf16 as autocast gives them (ray bias float32)."""
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int, scale: float = 1.0) -> Tensor:
        return (torch.randn(*shape, generator=generator) * scale).to(device)

    rays = -(-rows // samples_per_ray)
    return {
        "features": normal(rows, features).bfloat16(),
        "ray_bias": normal(rays, hidden, scale=0.5),
        "w1": normal(hidden, features, scale=features ** -0.5).bfloat16(),
        "w2": normal(hidden, hidden, scale=hidden ** -0.5).bfloat16(),
        "b2": normal(hidden, scale=0.1).bfloat16(),
        "w3": normal(3, hidden, scale=hidden ** -0.5).bfloat16(),
        "b3": normal(3, scale=0.1).bfloat16(),
        "ray_index": (torch.arange(rows) // samples_per_ray).to(device),
        "grad_color": normal(rows, 3).bfloat16(),
    }


GRADIENTS = ("features", "ray_bias", "w1", "w2", "b2", "w3", "b3")


def reference_gradients(inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """The float32 torch MLP's gradients, sigmoid(W3 relu(W2 relu(W1 f + p_r) + b2) + b3)."""
    leaves = {name: inputs[name].float().requires_grad_() for name in GRADIENTS}
    h1 = torch.relu(leaves["features"] @ leaves["w1"].T + leaves["ray_bias"][inputs["ray_index"]])
    h2 = torch.relu(h1 @ leaves["w2"].T + leaves["b2"])
    color = torch.sigmoid(h2 @ leaves["w3"].T + leaves["b3"])
    grads = torch.autograd.grad(color, list(leaves.values()), inputs["grad_color"].float())
    return dict(zip(GRADIENTS, grads))


def measure(shape: dict[str, int | None] | None, rows: int, features: int, hidden: int, samples_per_ray: int,
            warmup: int, repeats: int, parts: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """One launch shape in this process: median backward ms (`time_calls`: synchronised calls) and the
    worst gradient's error, the norm of its difference over the reference's norm (a max-based error would
    measure the few hidden units whose ReLU mask flips between bf16 and float32 activations, not the kernel)."""
    import triton

    from nsmae_lightning.models import color_mlp_triton

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if shape is not None:
        config = triton.Config({"BLOCK_M": shape["rows"], "PROGRAMS_PER_SM": shape["programs"]},
                               num_warps=shape["warps"], maxnreg=shape["maxnreg"])
        for tuned in color_mlp_triton._backward_tuned.values():
            tuned.configs = [config]  # each part's autotuner has one shape to pick
    color_mlp_triton.BACKWARD_PARTS = parts
    inputs = problem_inputs(rows, features, hidden, samples_per_ray, device)
    leaves = {name: inputs[name].clone().requires_grad_() for name in GRADIENTS}
    color = color_mlp_triton._ColorMLP.apply(*leaves.values(), inputs["ray_index"], torch.bfloat16)

    def backward() -> tuple[Tensor, ...]:
        return torch.autograd.grad(color, list(leaves.values()), inputs["grad_color"], retain_graph=True)

    grads = dict(zip(GRADIENTS, backward()))
    reference = reference_gradients(inputs)
    errors = {name: float((grads[name].float() - reference[name]).norm() / reference[name].norm().clamp_min(1e-12))
              for name in GRADIENTS}
    timed = time_calls(backward, device, warmup, repeats) if device.type == "cuda" else None
    picked = {part: str(tuned.best_config) for part, tuned in color_mlp_triton._backward_tuned.items()
              if getattr(tuned, "best_config", None) is not None}
    return {"shape": shape, "parts": list(parts), "picked": picked, "rows": rows, "features": features, "hidden": hidden,
            "module": color_mlp_triton.__file__,
            "ms": None if timed is None else timed["ms"], "peak_gib": None if timed is None else timed["peak_gib"],
            "errors": errors, "worst_error": max(errors.values())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="32x2x4", help="comma-separated ROWSxWARPSxPROGRAMS[xMAXNREG]")
    parser.add_argument("--rows", type=int, default=1_536_000, help="samples (rows) per call")
    parser.add_argument("--features", type=int, default=32, help="colour feature channels Cf")
    parser.add_argument("--hidden", type=int, default=64, help="mlp_hidden")
    parser.add_argument("--samples-per-ray", type=int, default=94, help="rows per ray (the packed march's ~94)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, help="JSON of every shape's row")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a shape's process may take")
    parser.add_argument("--parts", default="0", choices=["0", "1,2"],
                        help="the backward as one launch (0) or split in two (1,2: `color_mlp_triton.BACKWARD_PARTS`)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this shape here, print its JSON
    args = parser.parse_args(argv)
    shapes = [args.one] if args.one else args.shapes.split(",")
    for shape in shapes:
        try:
            parse_shape(shape)
        except ValueError as error:
            parser.error(f"--shapes: {error}")
    if min(args.rows, args.features, args.hidden, args.samples_per_ray, args.repeats, args.timeout) <= 0:
        parser.error("--rows, --features, --hidden, --samples-per-ray, --repeats and --timeout must be positive")
    return args


MARK = "ROW "


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    parts = tuple(int(part) for part in args.parts.split(","))
    common = ["--parts", args.parts, "--rows", str(args.rows), "--features", str(args.features),
              "--hidden", str(args.hidden), "--samples-per-ray", str(args.samples_per_ray), "--warmup", str(args.warmup),
              "--repeats", str(args.repeats)]
    if args.one:
        row = measure(parse_shape(args.one), args.rows, args.features, args.hidden, args.samples_per_ray,
                      args.warmup, args.repeats, parts)
        print(MARK + json.dumps(row), flush=True)
        return [row]
    rows = []
    for shape in args.shapes.split(","):
        try:
            done = subprocess.run([sys.executable, __file__, "--one", shape, *common], capture_output=True, text=True,
                                  check=False, timeout=args.timeout)
        except subprocess.TimeoutExpired:  # a hung kernel costs one shape, not the whole call
            row = {"shape": parse_shape(shape), "failed": f"timed out after {args.timeout} s"}
            print(f"{shape:14} FAILED  {row['failed']}", flush=True)
            rows.append(row)
            continue
        lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
        if done.returncode != 0 or not lines:
            row = {"shape": parse_shape(shape), "failed": f"exit {done.returncode}: {done.stderr.strip()[-400:]}"}
            print(f"{shape:14} FAILED  {row['failed'][-200:]}", flush=True)
        else:
            row = json.loads(lines[-1][len(MARK):])
            ms = f"{row['ms']:8.3f} ms" if row["ms"] is not None else "   (no GPU)"
            print(f"{shape:14} parts {args.parts:3} {ms}  worst grad err {row['worst_error']:.1e}  "
                  f"{row['rows']} rows x {row['features']} "
                  f"ch  {row['module']}", flush=True)
        rows.append(row)
    if args.out is not None:
        atomic_write_text(args.out, json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__,
                                                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                                                "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
