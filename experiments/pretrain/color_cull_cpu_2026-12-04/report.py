"""results.md and curves.png of run.sh: pretraining losses with the exact and the culled colour march.

Usage: python report.py FOLDER (the folder holding run.sh's metrics_*.csv and exact_val_*.csv).
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nsmae_lightning.atomic import atomic_write_text  # noqa: E402

CULLS = ("0.0", "1.0e-4")
LABELS = {"0.0": "exact (color_cull 0)", "1.0e-4": "culled (color_cull 1e-4)"}
LOSSES = ("loss_color", "loss_depth_per", "loss_depth_bev", "loss_depth_rand")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def series(table: list[dict[str, str]], key: str, by: str) -> tuple[list[float], list[float]]:
    """(x, y) of the rows where ``key`` is logged, x from column ``by``."""
    points = [(float(row[by]), float(row[key])) for row in table if row.get(key)]
    return [x for x, _ in points], [y for _, y in points]


def main(folder: Path) -> None:
    runs = {(cull, seed): rows(folder / f"metrics_cull{cull}_seed{seed}.csv")
            for cull in CULLS for seed in (0, 1) if (folder / f"metrics_cull{cull}_seed{seed}.csv").exists()}
    exact = {(cull, seed): rows(folder / f"exact_val_cull{cull}_seed{seed}.csv")[-1]
             for cull, seed in runs if (folder / f"exact_val_cull{cull}_seed{seed}.csv").exists()}
    if not runs:
        raise SystemExit(f"{folder}: no metrics_cull*_seed*.csv (run run.sh first)")
    figure, axes = plt.subplots(1, len(LOSSES), figsize=(4 * len(LOSSES), 3.2))
    colors = {"0.0": "tab:blue", "1.0e-4": "tab:orange"}
    for axis, loss in zip(axes, LOSSES):
        for (cull, seed), table in sorted(runs.items()):
            x, y = series(table, f"train/{loss}_step", "step")
            axis.plot(x, y, color=colors[cull], alpha=0.35, linewidth=0.8)
            x, y = series(table, f"val/{loss}", "step")
            axis.plot(x, y, "o-", color=colors[cull], markersize=3,
                      label=f"{LABELS[cull]}, val" if seed == 0 else None)
        axis.set_title(loss)
        axis.set_xlabel("step")
        axis.set_yscale("log")
    axes[0].legend(fontsize=7)
    figure.suptitle("tiny pretraining on the demo world: train (faint) and val (dots) losses, seeds 0 and 1")
    figure.tight_layout()
    figure.savefig(folder / "curves.png", dpi=110)

    lines = ["| final checkpoint, validated with the exact march (all 20 val frames) | "
             + " | ".join(LOSSES) + " |", "|---|" + "---:|" * len(LOSSES)]
    for cull in CULLS:
        cells = []
        for loss in LOSSES:
            values = [float(exact[(cull, seed)][f"val/{loss}"]) for seed in (0, 1) if (cull, seed) in exact]
            cells.append(" / ".join(f"{value:.4g}" for value in values)
                         + (f" (mean {statistics.mean(values):.4g})" if len(values) > 1 else ""))
        lines.append(f"| {LABELS[cull]}, seeds 0 / 1 | " + " | ".join(cells) + " |")
    atomic_write_text(folder / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
