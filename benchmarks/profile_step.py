"""Where a training step's time goes: torch.profiler over a few steps of a config, top ops by self time.

For each config (any task: pretraining, detection, segmentation), a paper-sized synthetic
batch (bench_common.py) runs ``--warmup`` steps, then ``--steps`` profiled steps. Printed:
wall time per step, GPU busy time per step (sum of kernel self times; much lower than wall
means the step waits on the host), and the top ops by self CUDA and self CPU time. A
Chrome trace per config is written next to ``--out`` when ``--trace`` is given.

    python benchmarks/profile_step.py --out runs/profile.txt --configs configs/detection/synthetic.yaml
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from bench_common import autocast, device_name, kernel_summary, load_bench_task, task_batch


def step_loss(task: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The training loss of any of our tasks on a batch."""
    if hasattr(task, "render_head"):
        return task.reconstruct(batch)[1].total
    preds = task.head(task.embedding(batch)["bev"])
    if task.__class__.__name__ == "SegmentationTask":
        return task.head.loss(preds, batch["bev_masks"])["loss"]
    return task.head.loss(preds, batch["gt_boxes"], batch["gt_labels"])["loss"]


ANNOTATIONS = ("forward+loss", "backward", "optimizer")


def profile_config(config: str, args: argparse.Namespace, device: torch.device) -> str:
    """The profile report of one config."""
    task, data, label = load_bench_task(config, args.embedding)
    task = task.to(device).train()
    batch = task_batch(task, data, args.batch, device)
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)

    def step() -> None:
        with record_function("forward+loss"), autocast(device, args.dtype):
            loss = step_loss(task, batch)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with profile(activities=activities, record_shapes=False) as prof:
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    wall_ms = 1000 * (time.perf_counter() - start) / args.steps
    events = prof.key_averages()
    gpu_ms = kernel_summary(prof, args.steps, skip=ANNOTATIONS)["gpu_ms"] if device.type == "cuda" else 0.0
    lines = [f"## {label} ({args.dtype}, batch {args.batch}, {device_name(device)})",
             f"wall {wall_ms:.1f} ms/step (profiled), GPU kernels {gpu_ms:.1f} ms/step", ""]
    if device.type == "cuda":
        lines += ["top ops by self CUDA time:", events.table(sort_by="self_cuda_time_total", row_limit=args.rows), ""]
    lines += ["top ops by self CPU time:", events.table(sort_by="self_cpu_time_total", row_limit=args.rows), ""]
    if args.trace:
        prof.export_chrome_trace(str(args.out.with_name(f"{Path(config).stem}_{Path(config).parent.name}.trace.json")))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="text report")
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--embedding", help="embedding YAML (repo-relative) replacing every config's own")
    parser.add_argument("--trace", action="store_true", help="also write a Chrome trace per config")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    reports = []
    for config in args.configs:
        reports.append(profile_config(config, args, device))
        print(reports[-1], flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n\n".join(reports))


if __name__ == "__main__":
    main()
