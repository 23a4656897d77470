"""The share of samples the culled colour march would colour, at several epsilons, for a pretraining
checkpoint (or the untrained network) on every validation frame of a world.

Why: `RenderConfig.color_cull` saves the colour work of the samples whose compositing weight is at or
below epsilon; how much that is depends on the volume (empty space and what lies behind opaque
surfaces), which pretraining shapes. The render head runs as in training (train mode: masked input,
random rays), without gradients, its `colored_fraction` read per batch.

Usage (repository root): python colored_fraction.py --config configs/pretrain/tiny.yaml --dataroot WORLD
    [--checkpoint CKPT] --epsilons 1e-5,1e-4,1e-3,1e-2 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.data import NuScenesDataModule
from nsmae_lightning.tasks import PretrainTask

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_common import load_task  # noqa: E402  (a LightningCLI config's task and data settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--dataroot", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="init of the untrained network (no --checkpoint)")
    parser.add_argument("--epsilons", default="1e-5,1e-4,1e-3,1e-2")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    epsilons = [float(value) for value in args.epsilons.split(",")]
    if args.checkpoint is None:
        torch.manual_seed(args.seed)  # the untrained network's init
        task, data = load_task(args.config)
    else:
        task = PretrainTask.load_from_checkpoint(args.checkpoint, map_location="cpu")
        data = yaml.safe_load(args.config.read_text())["data"]["init_args"]
    task.train()
    datamodule = NuScenesDataModule(**{**data, "dataroot": str(args.dataroot)})
    datamodule.setup("fit")
    fractions: dict[str, list[float]] = {str(epsilon): [] for epsilon in epsilons}
    torch.manual_seed(args.seed)  # the masks and rays drawn
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            for epsilon in epsilons:
                task.render_head.config.color_cull = epsilon
                fraction = task.reconstruct(batch)[1].colored_fraction
                if fraction is None:
                    raise SystemExit(f"{args.config}: no culled colour view (is render.color on?)")
                fractions[str(epsilon)].append(fraction)
    summary = {epsilon: sum(values) / len(values) for epsilon, values in fractions.items()}
    atomic_write_text(args.out, json.dumps({"checkpoint": str(args.checkpoint) if args.checkpoint else None,
                                            "config": str(args.config), "batches": len(fractions[str(epsilons[0])]),
                                            "mean_colored_fraction": summary, "per_batch": fractions}, indent=1))
    print(args.checkpoint or f"untrained (seed {args.seed})", {eps: round(value, 4) for eps, value in summary.items()})


if __name__ == "__main__":
    main()
