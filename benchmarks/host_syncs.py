"""Which lines of our code make a training step wait on the GPU, counted on any device (CPU too).

A step is host-bound when the CPU waits on the GPU (a result whose size or value the host needs:
`nonzero`, boolean indexing, `.item()`, `unique`, ...) and when it launches thousands of tiny kernels.
The 2026-12-02 H200 profile counted 388 `cudaStreamSynchronize` and ~7,000 launches per pretraining
step (benchmarks/RESULTS.md). This script runs one training step (forward, loss, backward) of each
config under a dispatch mode that sees every aten op, and attributes

- every op that synchronises on CUDA (SYNC_OPS, and indexing with a boolean mask) and
- every op at all (about one kernel launch each)

to the innermost line of `nsmae_lightning` on the Python stack. The counts do not depend on the
device (the same ops run on CPU), so the CPU box can find what to fix.

    python benchmarks/host_syncs.py --out host_syncs.md --configs configs/pretrain/synthetic.yaml \
        --embedding configs/embedding/synthetic_lite.yaml --batch 8
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench_common import autocast, load_bench_task, task_batch
from profile_step import step_loss

PACKAGE = "nsmae_lightning"
# ops whose result size or value the host needs before it can go on (a device -> host wait on CUDA)
SYNC_OPS: frozenset[str] = frozenset({
    "aten.nonzero.default", "aten._local_scalar_dense.default", "aten.masked_select.default",
    "aten._unique2.default", "aten.unique_dim.default", "aten.unique_consecutive.default",
    "aten.masked_scatter.default", "aten.is_nonzero.default", "aten.equal.default",
    "aten.repeat_interleave.Tensor",  # without output_size it reads the repeats' sum
})
REPEAT_INTERLEAVE = "aten.repeat_interleave.Tensor"
BOOLEAN_INDEXING: frozenset[str] = frozenset({"aten.index.Tensor", "aten.index_put.default", "aten.index_put_.default"})


def our_line() -> str:
    """The innermost `nsmae_lightning` frame of the current stack as ``module.py:line function``."""
    for frame in reversed(traceback.extract_stack()):
        if f"/{PACKAGE}/" in frame.filename.replace("\\", "/"):
            relative = frame.filename.replace("\\", "/").split(f"/{PACKAGE}/", 1)[1]
            return f"{relative}:{frame.lineno} {frame.name}"
    return "(outside nsmae_lightning: autograd, optimizer, benchmark)"


class OpCensus(TorchDispatchMode):
    """Counts every dispatched op, and the synchronising ones, by the line of ours that issued them."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()
        self.syncs: collections.Counter[tuple[str, str]] = collections.Counter()
        self._tolist = torch.Tensor.tolist

    def __enter__(self) -> OpCensus:
        # Tensor.tolist copies to the host without dispatching an aten op: counted here instead, where our
        # code calls it directly (a wait when the tensor is on the GPU; this CPU census counts host-only
        # tensors too). Libraries' own calls are left out: spconv's CPU algorithm reads its rule counts
        # with `.cpu().tolist()`, which its GPU algorithm does not.
        census, tolist = self, self._tolist

        def counted_tolist(tensor: torch.Tensor) -> Any:
            caller = traceback.extract_stack(limit=2)[0].filename.replace("\\", "/")
            if f"/{PACKAGE}/" in caller:
                census.syncs[(our_line(), "tolist")] += 1
            return tolist(tensor)

        torch.Tensor.tolist = counted_tolist  # type: ignore[method-assign]
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        torch.Tensor.tolist = self._tolist  # type: ignore[method-assign]
        super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = str(func)
        line = our_line()
        self.ops[line] += 1
        if name == REPEAT_INTERLEAVE and (kwargs or {}).get("output_size") is not None:
            pass  # given its output size it needs no read of the repeats
        elif name in SYNC_OPS or (name in BOOLEAN_INDEXING and _has_boolean_index(args)):
            self.syncs[(line, name.removeprefix("aten.").removesuffix(".default"))] += 1
        return func(*args, **(kwargs or {}))


def _has_boolean_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(index, torch.Tensor) and index.dtype == torch.bool for index in indices or ())


def census(config: str, args: argparse.Namespace, device: torch.device) -> str:
    task, data, label = load_bench_task(config, args.embedding)
    task = task.to(device).train()
    batch = task_batch(task, data, args.batch, device)
    with autocast(device, args.dtype):  # warm-up: lazy initialisation is not a per-step cost
        loss = step_loss(task, batch)
    loss.backward()
    task.zero_grad(set_to_none=True)
    mode = OpCensus()
    with mode:
        with autocast(device, args.dtype):
            loss = step_loss(task, batch)
        loss.backward()
    total_syncs = sum(mode.syncs.values())
    lines = [f"## {label} (batch {args.batch}, {args.dtype}, one step: forward, loss, backward)", "",
             f"{sum(mode.ops.values()):,} aten ops (about one kernel launch each), {total_syncs:,} that wait on the "
             "device (on CUDA)", "", "| ops that wait | op | line |", "|---:|---|---|"]
    lines += [f"| {count} | {op} | `{line}` |" for (line, op), count in mode.syncs.most_common(args.rows)]
    lines += ["", "| aten ops | line |", "|---:|---|"]
    lines += [f"| {count:,} | `{line}` |" for line, count in mode.ops.most_common(args.rows)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="markdown report")
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--embedding", help="embedding YAML replacing every config's own")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reports = [census(config, args, device) for config in args.configs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(reports))
    print("\n".join(reports), file=sys.stdout)


if __name__ == "__main__":
    main()
