"""Fine-tuning cost at the paper's sizes: training step and per-frame inference latency.

For each detection / segmentation config (model part), on paper-sized synthetic
batches (bench_common.py):

- ``train``: one optimiser step (embedding, head, loss, backward, AdamW) at ``--batch``
  samples, fp32 and bf16 autocast: milliseconds, samples/s, peak memory;
- ``infer``: one frame (batch 1) through embedding and head, with box decoding + NMS for
  detection and sigmoid for segmentation, under ``torch.no_grad``: milliseconds per frame.

With ``--profile N`` both also get their GPU kernel time, kernel count and top kernels / host ops
(``train_*`` and ``infer_*`` keys, bench_common.kernel_times).

    python benchmarks/task_step.py --out runs/task_step.json
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from bench_common import autocast, config_parser, kernel_times, load_bench_task, run_configs, task_batch, time_calls

from nsmae_lightning.tasks.optimizer import adamw

CONFIGS = (
    "configs/detection/bevfusion_128x352.yaml",
    "configs/detection/bevfusion_256x704.yaml",
    "configs/segmentation/bevfusion_256x704.yaml",
)


def training_loss(task: Any, batch: dict[str, Any]) -> torch.Tensor:
    """The task's training loss on a batch (detection or segmentation)."""
    preds = task.head(task.embedding(batch)["bev"])
    if "bev_masks" in batch and task.__class__.__name__ == "SegmentationTask":
        return task.head.loss(preds, batch["bev_masks"])["loss"]
    return task.head.loss(preds, batch["gt_boxes"], batch["gt_labels"])["loss"]


def bench_config(config: str, args: argparse.Namespace, device: torch.device) -> list[dict[str, float | str]]:
    """Training step and inference latency of one fine-tuning config, per dtype (memory freed on return)."""
    rows = []
    task, data, label = load_bench_task(config, args.embedding)
    task = task.to(device)
    train_batch = task_batch(task, data, args.batch, device)
    frame = task_batch(task, data, 1, device)
    for dtype in args.dtypes.split(","):
        optimizer = adamw(task.parameters(), lr=1e-4, weight_decay=0.01, implementation=args.adamw)

        def train_step() -> None:
            with autocast(device, dtype):
                loss = training_loss(task, train_batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(task.parameters(), 35.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def infer_frame() -> None:
            with torch.no_grad(), autocast(device, dtype):
                task(frame)

        task.train()
        trained = time_calls(train_step, device, args.warmup, args.repeats)
        profiled = kernel_times(train_step, device, args.profile, top=12) if args.profile else {}
        task.eval()
        inferred = time_calls(infer_frame, device, args.warmup, args.repeats)
        profiled_infer = kernel_times(infer_frame, device, args.profile, top=12) if args.profile else {}
        row = {"config": label, "dtype": dtype, "batch": args.batch, "adamw": args.adamw, "train_step_ms": trained["ms"],
               "train_host_ms": trained["host_ms"],
               "train_samples_per_s": 1000 * args.batch / trained["ms"], "train_peak_gib": trained["peak_gib"],
               "infer_ms_per_frame": inferred["ms"], "infer_peak_gib": inferred["peak_gib"],
               **{f"train_{key}": value for key, value in profiled.items()},
               **{f"infer_{key}": value for key, value in profiled_infer.items()}}
        rows.append(row)
        print(f"{label:46s} {dtype:5s} train {row['train_step_ms']:7.1f} ms (host {row['train_host_ms']:6.1f}, {row['train_samples_per_s']:5.1f} "
              f"samples/s, peak {row['train_peak_gib']:5.1f} GiB)  infer {row['infer_ms_per_frame']:6.1f} ms/frame",
              flush=True)
    return rows


def main() -> None:
    parser = config_parser(__doc__.splitlines()[0], CONFIGS, batch=2)  # paper: 2 per GPU
    run_configs(parser.parse_args(), bench_config)


if __name__ == "__main__":
    main()
