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
from pathlib import Path

import torch
import yaml

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.data import NuScenesDataModule
from nsmae_lightning.tasks import PretrainTask


def task_of(config: Path, checkpoint: Path | None, seed: int) -> PretrainTask:
    """The config's PretrainTask, untrained (``seed``) or with the checkpoint's weights."""
    if checkpoint is not None:
        return PretrainTask.load_from_checkpoint(checkpoint, map_location="cpu")
    options = yaml.safe_load(config.read_text())["model"]["init_args"]
    embedding = options.pop("embedding")
    if isinstance(embedding, str):  # a path relative to the config, as LightningCLI reads it
        embedding = yaml.safe_load((config.parent / embedding).read_text())
    torch.manual_seed(seed)
    return PretrainTask(embedding=embedding, **options)


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
    data = yaml.safe_load(args.config.read_text())["data"]["init_args"]
    datamodule = NuScenesDataModule(**{**data, "dataroot": str(args.dataroot)})
    datamodule.setup("fit")
    task = task_of(args.config, args.checkpoint, args.seed).train()
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
