"""NS-MAE pretraining step at the paper's sizes: step time, samples/s and peak GPU memory.

Builds ``PretrainTask`` from a paper config (configs/pretrain/*.yaml, model part)
and times full optimiser steps (masking, embedding, rendering, losses, backward,
AdamW) on synthetic batches with the paper's tensor sizes: 6 cameras at the
config's image size, ~34k LiDAR points per sweep times its sweep count. fp32 and
bf16 autocast (the render head keeps transmittance and losses in fp32).

    python benchmarks/pretrain_step.py --out runs/pretrain_step.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from nsmae_lightning.configuration import as_config
from nsmae_lightning.models.embedding import EmbeddingConfig
from nsmae_lightning.models.rendering import RenderConfig
from nsmae_lightning.tasks import PretrainTask

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("configs/pretrain/nsmae_bevfusion_128x352.yaml", "configs/pretrain/nsmae_bevfusion_256x704.yaml")
POINTS_PER_SWEEP = 34_000  # nuScenes LIDAR_TOP, 32 beams


def load_task(config_path: Path, compile_sampler: bool) -> tuple[PretrainTask, dict[str, Any]]:
    """The PretrainTask of a config file, and its data settings."""
    config = yaml.safe_load(config_path.read_text())
    model_args = dict(config["model"]["init_args"])
    embedding = model_args.pop("embedding")
    if isinstance(embedding, str):
        embedding = yaml.safe_load((config_path.parent / embedding).read_text())
    render = as_config(RenderConfig, model_args.pop("render"))
    if not compile_sampler:
        render.sampler = "trilinear"
    task = PretrainTask(embedding=as_config(EmbeddingConfig, embedding), render=render, **model_args)
    return task, config["data"]["init_args"]


def synthetic_batch(batch_size: int, image_size: tuple[int, int], sweeps: int, device: torch.device) -> dict[str, Any]:
    """Paper-sized batch with a consistent rig: cameras on a ring looking outwards, points on a ground + walls."""
    height, width = image_size
    cameras = 6
    intrinsics = torch.tensor([[1266.0, 0, 800.0], [0, 1266.0, 450.0], [0, 0, 1.0]]).expand(batch_size, cameras, 3, 3)
    scale = width / 1600.0
    img_aug = torch.eye(4).repeat(batch_size, cameras, 1, 1)
    img_aug[..., 0, 0] = img_aug[..., 1, 1] = scale
    img_aug[..., 1, 3] = -(900 * scale - height)  # bottom crop
    cam2lidar = torch.eye(4).repeat(batch_size, cameras, 1, 1)
    for index in range(cameras):
        yaw = torch.tensor(index * 2 * torch.pi / cameras)
        # camera: z forward, x right, y down; LiDAR: x, y horizontal, z up
        forward = torch.stack([torch.cos(yaw), torch.sin(yaw), torch.tensor(0.0)])
        right = torch.stack([torch.sin(yaw), -torch.cos(yaw), torch.tensor(0.0)])
        down = torch.tensor([0.0, 0.0, -1.0])
        cam2lidar[:, index, :3, :3] = torch.stack([right, down, forward], dim=1)
        cam2lidar[:, index, :3, 3] = torch.tensor([0.0, 0.0, -0.3])
    count = POINTS_PER_SWEEP * max(sweeps, 1)
    points = []
    for _ in range(batch_size):
        radius = 3 + 50 * torch.rand(count)
        angle = 2 * torch.pi * torch.rand(count)
        z = torch.where(torch.rand(count) < 0.6, torch.full((count,), -1.8), -1.8 + 3 * torch.rand(count))
        dt = torch.randint(0, max(sweeps, 1), (count,)) * 0.05
        cloud = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle), z, 255 * torch.rand(count), dt], 1)
        points.append(cloud.to(device))
    return {
        "images": torch.randn(batch_size, cameras, 3, height, width, device=device),
        "intrinsics": intrinsics.to(device),
        "cam2lidar": cam2lidar.to(device),
        "img_aug": img_aug.to(device),
        "points": points,
        "meta": [{"sample_token": f"bench{i}"} for i in range(batch_size)],
    }


def time_steps(task: PretrainTask, batch: dict[str, Any], dtype: str, warmup: int, repeats: int) -> dict[str, float]:
    """Median optimiser-step time and peak memory."""
    device = batch["images"].device
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4, weight_decay=0.01)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    times = []
    for index in range(warmup + repeats):
        if index == warmup and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast:
            outputs = task.embedding(batch, task.image_masker, task.voxel_masker)
            loss = task.render_head(outputs["bev"], batch).total
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 35.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"step_ms": 1000 * step, "samples_per_s": len(batch["points"]) / step, "peak_gib": peak, "loss": float(loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--batch", type=int, default=2, help="samples per GPU (paper: 2)")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true", help="eager sampler instead of the config's compiled one")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for config in args.configs:
        task, data = load_task(ROOT / config, compile_sampler=not args.no_compile)
        task = task.to(device).train()
        batch = synthetic_batch(args.batch, tuple(data["image_size"]), data["sweeps"], device)
        for dtype in args.dtypes.split(","):
            result = time_steps(task, batch, dtype, args.warmup, args.repeats)
            row = {"config": config, "dtype": dtype, "batch": args.batch, **result}
            rows.append(row)
            print(f"{config:52s} {dtype:5s} step {row['step_ms']:8.1f} ms  {row['samples_per_s']:6.2f} samples/s  "
                  f"peak {row['peak_gib']:6.2f} GiB  loss {row['loss']:.3g}", flush=True)
        del task
        if device.type == "cuda":
            torch.cuda.empty_cache()
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    payload = {"device": device_name, "torch": torch.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
