"""Time EmbeddingNetwork forward + backward on a synthetic batch (shapes only; no dataset needed).

Usage::

    python benchmarks/embedding_forward.py --preset paper_256x704 --device cuda --amp bf16
    python benchmarks/embedding_forward.py --preset tiny --device cpu

Prints milliseconds per training step (with NS-MAE masking) and, on CUDA, peak memory.
"""

from __future__ import annotations

import argparse
import time

import torch

from nsmae_lightning.models import EmbeddingConfig, EmbeddingNetwork, ImageMasker, VoxelMasker

# preset -> (image height, width, mask patch size)
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (32, 88, 4),
    "paper_128x352": (128, 352, 4),
    "paper_256x704": (256, 704, 8),
}


def synthetic_batch(config: EmbeddingConfig, preset: str, batch_size: int, num_points: int, device: str) -> dict:
    """Random images and points inside the range, with forward-looking cameras of a plausible pose."""
    height, width, _ = PRESETS[preset]
    num_cameras = config.num_cameras
    intrinsics = torch.tensor([[width / 2, 0.0, width / 2], [0.0, width / 2, height / 2], [0.0, 0.0, 1.0]])
    cam2lidar = torch.eye(4)
    cam2lidar[:3, :3] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    low = torch.tensor(config.lidar.pc_range[:3])
    span = torch.tensor(config.lidar.pc_range[3:]) - low
    points = []
    for _ in range(batch_size):
        xyz = low + torch.rand(num_points, 3) * span
        points.append(torch.cat([xyz, torch.rand(num_points, 1) * 255, torch.zeros(num_points, 1)], 1).to(device))
    return {
        "images": torch.randn(batch_size, num_cameras, 3, height, width, device=device),
        "intrinsics": intrinsics.expand(batch_size, num_cameras, 3, 3).to(device),
        "img_aug": torch.eye(4).expand(batch_size, num_cameras, 4, 4).to(device),
        "cam2lidar": cam2lidar.expand(batch_size, num_cameras, 4, 4).to(device),
        "points": points,
    }


def main() -> None:
    """Parse arguments, warm up, then time training steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--points", type=int, default=30000)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    config = getattr(EmbeddingConfig, args.preset)()
    network = EmbeddingNetwork(config).to(args.device).train()
    image_masker = ImageMasker(PRESETS[args.preset][2]).to(args.device).train()
    voxel_masker = VoxelMasker(0.9).to(args.device).train()
    batch = synthetic_batch(config, args.preset, args.batch_size, args.points, args.device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)

    def step() -> None:
        with torch.autocast(args.device, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            out = network(batch, image_masker, voxel_masker)
        out["bev"].float().mean().backward()

    step()  # warm-up: allocator, kernels, spconv rulebooks
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed_ms = (time.perf_counter() - start) / args.steps * 1e3
    parameters = sum(p.numel() for p in network.parameters()) / 1e6
    print(f"{args.preset} on {args.device} ({args.amp}): {parameters:.1f}M parameters, {elapsed_ms:.1f} ms/step")
    if args.device.startswith("cuda"):
        print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
