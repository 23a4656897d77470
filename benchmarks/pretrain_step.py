"""NS-MAE pretraining step at the paper's sizes: step time, samples/s and peak GPU memory.

Builds ``PretrainTask`` from a paper config (configs/pretrain/*.yaml, model part)
and times full optimiser steps (masking, embedding, rendering, losses, backward,
AdamW) on synthetic batches with the paper's tensor sizes (bench_common.py). fp32
and bf16 autocast (the render head keeps transmittance and losses in fp32).

    python benchmarks/pretrain_step.py --out runs/pretrain_step.json
    python benchmarks/pretrain_step.py --out runs/triton_mlp.json --configs configs/pretrain/synthetic.yaml \
        --embedding configs/embedding/synthetic_lite.yaml --batch 8 --dtypes bf16 --color-mlp triton
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from bench_common import autocast, config_parser, kernel_times, load_bench_task, run_configs, task_batch, time_calls

from nsmae_lightning.tasks.optimizer import adamw

CONFIGS = ("configs/pretrain/nsmae_bevfusion_128x352.yaml", "configs/pretrain/nsmae_bevfusion_256x704.yaml")


def bench_config(config: str, args: argparse.Namespace, device: torch.device) -> list[dict[str, float | str]]:
    """Timed optimiser steps of one pretraining config, per dtype (its GPU memory is freed on return)."""
    task, data, label = load_bench_task(config, args.embedding)
    if args.no_compile:
        task.render_head.config.sampler = "trilinear"
    if args.color_mlp:  # the network reads its own copy of the knob
        task.render_head.config.color_mlp = task.render_head.network.color_kernel = args.color_mlp
        label = f"{label} (color_mlp {args.color_mlp})"
    if args.color_cull is not None:  # replace() checks the value against the config's march
        task.render_head.config = dataclasses.replace(task.render_head.config, color_cull=args.color_cull)
        label = f"{label} (color_cull {args.color_cull:g})"
    if args.volume_row_bytes is not None:  # the network reads its own copy of the knob
        task.render_head.config = dataclasses.replace(task.render_head.config, volume_row_bytes=args.volume_row_bytes)
        task.render_head.network.row_bytes = args.volume_row_bytes
        label = f"{label} (volume_row_bytes {args.volume_row_bytes})"
    task = task.to(device).train()
    batch = task_batch(task, data, args.batch, device)
    rows = []
    for dtype in args.dtypes.split(","):
        optimizer = adamw(task.parameters(), lr=1e-4, weight_decay=0.01, implementation=args.adamw)
        losses: list[float] = []

        def step() -> None:
            with autocast(device, dtype):
                loss = task.reconstruct(batch)[1].total
            loss.backward()
            torch.nn.utils.clip_grad_norm_(task.parameters(), 35.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))

        timed = time_calls(step, device, args.warmup, args.repeats)
        row = {"config": label, "dtype": dtype, "batch": args.batch, "adamw": args.adamw, "step_ms": timed["ms"],
               "host_ms": timed["host_ms"],
               "samples_per_s": 1000 * args.batch / timed["ms"], "peak_gib": timed["peak_gib"], "loss": losses[-1],
               **(kernel_times(step, device, args.profile, top=12) if args.profile else {})}
        rows.append(row)
        print(f"{label:52s} {dtype:5s} step {row['step_ms']:8.1f} ms  {row['samples_per_s']:6.2f} samples/s  "
              f"host {row['host_ms']:7.1f} ms  peak {row['peak_gib']:6.2f} GiB  loss {row['loss']:.3g}"
              + (f"  GPU kernels {row['gpu_ms']:.1f} ms" if "gpu_ms" in row else ""), flush=True)
    return rows


def main() -> None:
    parser = config_parser(__doc__.splitlines()[0], CONFIGS, batch=2)  # paper: 2 per GPU
    parser.add_argument("--no-compile", action="store_true", help="eager sampler instead of the config's compiled one")
    parser.add_argument("--color-mlp", choices=("torch", "triton", "auto"),
                        help="RenderConfig.color_mlp instead of the config's (e.g. A/B runs of the Triton MLP)")
    parser.add_argument("--color-cull", type=float, metavar="EPS",
                        help="RenderConfig.color_cull instead of the config's (colour only where the weight exceeds EPS)")
    parser.add_argument("--volume-row-bytes", type=int, metavar="BYTES",
                        help="RenderConfig.volume_row_bytes instead of the config's (volume rows padded to BYTES)")
    run_configs(parser.parse_args(), bench_config)


if __name__ == "__main__":
    main()
