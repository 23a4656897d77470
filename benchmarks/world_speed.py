"""Frames per second of synthetic-world generation (nuScenes format, default sizes).

Usage: ``python benchmarks/world_speed.py [--scenes 2] [--frames 4] [--out benchmarks/world_speed.md]``.
A frame is one keyframe: its LiDAR sweeps (9 by default), the keyframe scan and
six 450x800 camera images, written to disk with the tables. The first run also
pays numba's compilation (cached afterwards); a warm-up world is built first so
the timing excludes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

from nsmae_lightning.data.world import WorldConfig, write_nuscenes


def main() -> None:
    """Time the generation and write the result table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/world_speed.md")
    args = parser.parse_args()
    cfg = dataclasses.replace(WorldConfig(), scenes=args.scenes, keyframes=args.frames)
    with tempfile.TemporaryDirectory() as folder:
        write_nuscenes(Path(folder) / "warmup", WorldConfig.tiny())
        start = time.perf_counter()
        write_nuscenes(Path(folder) / "world", cfg)
        seconds = time.perf_counter() - start
    frames = cfg.scenes * cfg.keyframes
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), no GPU"
    text = (
        "# Synthetic world generation speed\n\n"
        f"Command: `python benchmarks/world_speed.py --scenes {args.scenes} --frames {args.frames}`\n\n"
        f"Machine: {machine}\n\n"
        "| scenes | keyframes | sweeps/keyframe | image | seconds | keyframes/s |\n"
        "|---|---|---|---|---|---|\n"
        f"| {cfg.scenes} | {frames} | {cfg.sweeps} | {cfg.image_height}x{cfg.image_width} x 6 | "
        f"{seconds:.1f} | {frames / seconds:.2f} |\n"
    )
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
