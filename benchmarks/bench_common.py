"""What the GPU benchmarks share: a task built from a config file, a paper-sized batch, a timer.

The batch has the tensor sizes of real nuScenes input (6 cameras at the config's
image size, ~34k LiDAR points per sweep, ~30 boxes, 6 BEV masks) on a consistent
rig, so step times measure the network, not a data loader.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import LightningModule

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.tasks.optimizer import ADAMW_IMPLEMENTATIONS

ROOT = Path(__file__).resolve().parents[1]
POINTS_PER_SWEEP = 34_000  # nuScenes LIDAR_TOP, 32 beams
BOXES_PER_FRAME = 30
CAMERAS = 6


def load_task(config_path: Path, **model_overrides: Any) -> tuple[LightningModule, dict[str, Any]]:
    """The task (``model.class_path``) of a LightningCLI config, and its data settings.

    A string ``embedding`` is read as a YAML path relative to the config, as the CLI does.
    """
    config = yaml.safe_load(config_path.read_text())
    module_name, class_name = config["model"]["class_path"].rsplit(".", 1)
    task_class = getattr(importlib.import_module(module_name), class_name)
    model_args = {**config["model"]["init_args"], **model_overrides}
    if isinstance(model_args.get("embedding"), str):
        model_args["embedding"] = yaml.safe_load((config_path.parent / model_args["embedding"]).read_text())
    return task_class(**model_args), config["data"]["init_args"]


def load_bench_task(config: str, embedding: str | None) -> tuple[LightningModule, dict[str, Any], str]:
    """``load_task`` of a repo-relative config, its embedding optionally replaced by another YAML.

    Returns the task, its data settings and the label its result rows carry.
    """
    overrides = {} if embedding is None else {"embedding": yaml.safe_load((ROOT / embedding).read_text())}
    task, data = load_task(ROOT / config, **overrides)
    return task, data, config if embedding is None else f"{config} + {embedding}"


def synthetic_batch(
    batch_size: int,
    image_size: tuple[int, int],
    sweeps: int,
    device: torch.device,
    cameras: int = CAMERAS,
    num_classes: int = 10,
) -> dict[str, Any]:
    """Paper-sized batch: cameras on a ring looking outwards (the first along +x), points on a ground
    and walls, boxes around; ``cameras`` and ``num_classes`` follow the task (1 and 3 on KITTI)."""
    height, width = image_size
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
    points, boxes, labels = [], [], []
    for _ in range(batch_size):
        radius = 3 + 50 * torch.rand(count)
        angle = 2 * torch.pi * torch.rand(count)
        z = torch.where(torch.rand(count) < 0.6, torch.full((count,), -1.8), -1.8 + 3 * torch.rand(count))
        dt = torch.randint(0, max(sweeps, 1), (count,)) * 0.05
        cloud = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle), z, 255 * torch.rand(count), dt], 1)
        points.append(cloud.to(device))
        centre = (torch.rand(BOXES_PER_FRAME, 2) - 0.5) * 80
        size = torch.tensor([4.5, 1.9, 1.7]) * (0.5 + torch.rand(BOXES_PER_FRAME, 3))
        yaw = (torch.rand(BOXES_PER_FRAME, 1) - 0.5) * 2 * torch.pi
        velocity = torch.randn(BOXES_PER_FRAME, 2)
        z_centre = torch.full((BOXES_PER_FRAME, 1), -1.0)
        boxes.append(torch.cat([centre, z_centre, size, yaw, velocity], 1).to(device))
        labels.append(torch.randint(0, num_classes, (BOXES_PER_FRAME,), device=device))
    return {
        "images": torch.randn(batch_size, cameras, 3, height, width, device=device),
        "intrinsics": intrinsics.to(device),
        "cam2lidar": cam2lidar.to(device),
        "img_aug": img_aug.to(device),
        "points": points,
        "gt_boxes": boxes,
        "gt_labels": labels,
        "bev_masks": torch.rand(batch_size, 6, 200, 200, device=device) < 0.3,
        "meta": [{"sample_token": f"bench{i}"} for i in range(batch_size)],
    }


def task_batch(task: LightningModule, data: dict[str, Any], batch_size: int, device: torch.device) -> dict[str, Any]:
    """``synthetic_batch`` shaped for a task: its config's image size and sweeps (1 where the data has
    none, as KITTI), its embedding's camera count and, for detection, its head's classes."""
    head_config = getattr(getattr(task, "head", None), "config", None)
    classes = len(getattr(head_config, "class_names", ())) or 10
    return synthetic_batch(batch_size, tuple(data["image_size"]), data.get("sweeps", 1), device,
                           cameras=task.embedding.config.num_cameras, num_classes=classes)


def time_calls(step: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """Median milliseconds per call of ``step`` (synchronised), the peak GPU memory of the timed calls,
    and ``host_ms``: the median time until ``step`` returns, before the synchronise (the host's own
    work: launches, Python, its waits on the GPU). ``host_ms`` near ``ms`` means the host bounds
    the call; far below it, the GPU does."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    durations, host = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        host.append(time.perf_counter() - start)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        durations.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"ms": 1000 * statistics.median(durations), "host_ms": 1000 * statistics.median(host), "peak_gib": peak}


def kernel_summary(prof: Any, calls: int, top: int = 8, skip: Sequence[str] = ()) -> dict[str, Any]:
    """GPU and host time per call in a finished torch.profiler ``prof`` over ``calls`` calls.

    ``gpu_ms``: the kernels' sum (far below the wall time means the host is the bottleneck), their
    count and the ``top`` kernels by time, each [name, ms per call]; annotation ranges
    (record_function, optimizer steps; also any named in ``skip``) span kernels and are left out.
    ``cpu_op_ms``: the host's self time in torch ops (wall minus this is Python and waiting) and
    the ``top`` ops by it; ``top_gpu_ops``: the ops (autograd Functions included) by the GPU time of
    the kernels they launch themselves, with their input shapes where the profile recorded them (as
    `kernel_times` does), which names the op behind a generic kernel (a copy, a fill).
    """
    from torch.autograd import DeviceType

    per_kernel: dict[str, float] = {}
    per_op: dict[str, float] = {}
    per_op_gpu: dict[str, float] = {}
    launches = 0
    for event in prof.events():
        if getattr(event, "is_user_annotation", False) or event.name in skip:
            continue
        if event.device_type == DeviceType.CUDA:
            per_kernel[event.name] = per_kernel.get(event.name, 0.0) + event.device_time_total / 1000 / calls
            launches += 1
        elif event.device_type == DeviceType.CPU:
            per_op[event.name] = per_op.get(event.name, 0.0) + event.self_cpu_time_total / 1000 / calls
            if event.self_device_time_total:  # with the input shapes where recorded: which copy, which sum
                key = f"{event.name} {event.input_shapes}" if getattr(event, "input_shapes", None) else event.name
                per_op_gpu[key] = per_op_gpu.get(key, 0.0) + event.self_device_time_total / 1000 / calls

    def ranked(times: dict[str, float]) -> list[list[object]]:
        return [[name[:160], round(ms, 4)] for name, ms in sorted(times.items(), key=lambda item: -item[1])[:top]]

    return {"gpu_ms": sum(per_kernel.values()), "kernels_per_call": launches / calls, "top_kernels": ranked(per_kernel),
            "cpu_op_ms": sum(per_op.values()), "top_cpu_ops": ranked(per_op), "top_gpu_ops": ranked(per_op_gpu)}


def kernel_times(step: Callable[[], Any], device: torch.device, calls: int, top: int = 8) -> dict[str, Any]:
    """``kernel_summary`` of ``calls`` profiled calls of ``step``; empty on CPU."""
    if device.type != "cuda":
        return {}
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for _ in range(calls):
            step()
        torch.cuda.synchronize(device)
    return kernel_summary(prof, calls, top)


def triton_modules() -> list[str]:
    """Our modules that define Triton kernels: those of `nsmae_lightning.models` named ``*_triton``."""
    import pkgutil

    from nsmae_lightning import models

    return [f"{models.__name__}.{module.name}" for module in pkgutil.iter_modules(models.__path__)
            if module.name.endswith("_triton")]


def triton_registers(modules: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Registers, spills and warps of every compiled variant of the Triton kernels defined in ``modules``
    (default `triton_modules`; read from each JIT function's per-device cache: kernels run since the process
    started; none in the interpreter or without triton). Why: where registers cap a kernel's residency, more
    programs per SM only queue (2026-12-02 seventh session: the colour MLP's backward took 0.93 ms at 2 to 16
    programs per SM)."""
    rows = []
    for module_name in triton_modules() if modules is None else modules:
        module = importlib.import_module(module_name)  # ours import without triton too (it is then None)
        for name, value in sorted(vars(module).items()):
            for cache in getattr(value, "device_caches", {}).values():  # JIT functions; cache[0]: key -> kernel
                for kernel in cache[0].values():
                    metadata = getattr(kernel, "metadata", None)
                    rows.append({"kernel": f"{module_name.rsplit('.', 1)[-1]}.{name}",
                                 "n_regs": getattr(kernel, "n_regs", None), "n_spills": getattr(kernel, "n_spills", None),
                                 "num_warps": getattr(metadata, "num_warps", None)})
    return rows


def autocast(device: torch.device, dtype: str) -> torch.autocast:
    """bf16 autocast for "bf16", a disabled one for "fp32"."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"


def config_parser(description: str, configs: Sequence[str], batch: int) -> argparse.ArgumentParser:
    """The arguments every config benchmark takes: --out, --configs, --batch, --dtypes, --warmup, --repeats,
    --embedding, --profile, --adamw."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--configs", nargs="+", default=list(configs))
    parser.add_argument("--batch", type=int, default=batch, help=f"training samples per GPU (default {batch})")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--embedding", help="embedding YAML (repo-relative) replacing every config's own")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="after timing, profile STEPS more steps: GPU kernel ms per step and the top kernels")
    parser.add_argument("--adamw", default="default", choices=ADAMW_IMPLEMENTATIONS,
                        help="AdamW implementation (`tasks.optimizer`; default: PyTorch's, as the tasks train)")
    return parser


BenchConfig = Callable[[str, argparse.Namespace, torch.device], list[dict[str, Any]]]


def run_configs(args: argparse.Namespace, bench_config: BenchConfig) -> None:
    """``bench_config`` for every config of ``args``, then the rows as JSON in ``args.out``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for config in args.configs:
        rows += bench_config(config, args, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the config's model is gone; hand its cached blocks back
    payload = {"device": device_name(device), "torch": torch.__version__, "rows": rows,
               "triton_kernels": triton_registers()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(payload, indent=2))
