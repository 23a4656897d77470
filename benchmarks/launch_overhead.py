"""Host time per kernel launch: torch ops against Triton's launch paths, and the render step's host floor.

The render network's wall time is 1.6-2.6x its GPU time on the H200 (benchmarks/RESULTS.md): the host,
not the GPU, bounds it. This script measures where a launch's host time goes, each path timed as the
median over ``--calls`` back-to-back launches of a one-program kernel (no synchronise inside, so the GPU
never holds the host back):

- ``torch_add``: ``x.add_(1)`` on a small tensor (one ATen dispatch + one CUDA launch);
- ``triton_jit``: a ``@triton.jit`` kernel called as ``kernel[grid](...)`` (argument binding,
  specialisation key, cache lookup, launch);
- ``triton_autotuned``: the same kernel under ``triton.autotune`` with one config (plus the tuner's key
  and its nested call), as our kernels are launched;
- ``triton_compiled``: the compiled kernel that ``kernel[grid]`` returned, launched through its own
  runner (``CompiledKernel[grid](...)``: no binding, no lookup) where this Triton has one.

On a CPU (no CUDA) it prints what it cannot time and exits 0.

    python benchmarks/launch_overhead.py --out runs/launch_overhead.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nsmae_lightning.atomic import atomic_write_text

ROUNDS = 5  # timed rounds of back-to-back launches per path


def host_us_per_call(launch: Callable[[], Any], calls: int, rounds: int = ROUNDS) -> float:
    """Median over ``rounds`` of the host microseconds per call of ``calls`` back-to-back ``launch()``."""
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            launch()
        per_call.append((time.perf_counter() - start) / calls * 1e6)
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # between rounds: the launch queue never fills
    return statistics.median(per_call)


def triton_paths(x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """The Triton launch paths over ``x`` (CUDA), each adding 1 to its first BLOCK values."""
    import triton
    import triton.language as tl

    @triton.jit
    def _add_one(x_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(x_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + 1, mask=mask)

    tuned = triton.autotune([triton.Config({"BLOCK": 128}, num_warps=4)], key=["n"])(_add_one)
    n = x.numel()
    paths: dict[str, Callable[[], Any]] = {
        "triton_jit": lambda: _add_one[(1,)](x, n, BLOCK=128),
        "triton_autotuned": lambda: tuned[(1,)](x, n),
    }
    compiled = _add_one[(1,)](x, n, BLOCK=128)
    if hasattr(type(compiled), "__getitem__"):
        runner = compiled[(1, 1, 1)]
        try:  # the runner's arguments are the kernel's non-constexpr ones in some Triton versions, all in others
            runner(x, n)
            paths["triton_compiled"] = lambda: runner(x, n)
        except (TypeError, RuntimeError, ValueError):
            runner(x, n, 128)
            paths["triton_compiled"] = lambda: runner(x, n, 128)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: launch overheads are GPU-host measurements, nothing timed")
        return
    x = torch.zeros(1024, device="cuda")
    paths: dict[str, Callable[[], Any]] = {"torch_add": lambda: x.add_(1)}
    import triton

    paths.update(triton_paths(x))
    rows = []
    for name, launch in paths.items():
        for _ in range(50):  # compile, tune, warm the caches
            launch()
        torch.cuda.synchronize()
        before = float(x[0])
        host_us = host_us_per_call(launch, args.calls)
        # each launch adds 1: the path ran the kernel as often as it was called (rounds x calls)
        launched_all = float(x[0]) - before == ROUNDS * args.calls
        rows.append({"path": name, "host_us_per_launch": host_us, "every_launch_ran": launched_all})
        print(f"{name:18} {host_us:8.2f} us per launch (host)" + ("" if launched_all else "  NOT every launch ran"))
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "calls": args.calls, "rows": rows}
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
