"""table.md and fraction.png of run.sh: the culled march's coloured fraction through pretraining.

Usage: python report.py FOLDER (the folder holding run.sh's metrics_seed*.csv and fraction_*.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nsmae_lightning.atomic import atomic_savefig, atomic_write_text  # noqa: E402
from nsmae_lightning.evaluation.curves import read_series  # noqa: E402

def per_step(path: Path, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of a per-step training metric (``key`` as logged, e.g. "train/colored_fraction") of a
    CSVLogger metrics.csv."""
    series = read_series(path, key).get(key)
    if not series:
        raise SystemExit(f"{path}: no {key} values (was the run culled, with this commit's logging?)")
    return [step for step, _ in series], [value for _, value in series]


def running_mean(values: list[float], width: int) -> list[float]:
    return [sum(values[max(0, i - width + 1):i + 1]) / len(values[max(0, i - width + 1):i + 1]) for i in range(len(values))]


def main(folder: Path) -> None:
    seeds = sorted(int(path.stem.removeprefix("metrics_seed")) for path in folder.glob("metrics_seed*.csv"))
    if not seeds:
        raise SystemExit(f"{folder}: no metrics_seed*.csv")
    figure, (fraction_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4))
    lines = ["| seed | coloured, first 40 logged steps | last 40 logged steps |", "|---:|---:|---:|"]
    for seed in seeds:
        steps, fractions = per_step(folder / f"metrics_seed{seed}.csv", "train/colored_fraction")
        fraction_axis.plot(steps, fractions, alpha=0.25, color=f"C{seed}")
        fraction_axis.plot(steps, running_mean(fractions, 40), color=f"C{seed}", label=f"seed {seed}, trained culled (train/colored_fraction, mean of 40 steps)")
        loss_steps, losses = per_step(folder / f"metrics_seed{seed}.csv", "train/loss_color")
        loss_axis.plot(loss_steps, running_mean(losses, 40), color=f"C{seed}", label=f"seed {seed}")
        lines.append(f"| {seed} | {sum(fractions[:40]) / len(fractions[:40]):.3f} | {sum(fractions[-40:]) / len(fractions[-40:]):.3f} |")
    exact_lines = ["| exact-march checkpoint (all val frames) | " + " | ".join(f"seed {seed}" for seed in seeds) + " |",
                   "|---:|" + "---:|" * len(seeds)]
    exact: dict[int, dict[int, float]] = {}
    for seed in seeds:
        for path in folder.glob(f"fraction_exact_seed{seed}_step*.json"):
            step = int(path.stem.rsplit("step", 1)[1])
            exact.setdefault(step, {})[seed] = json.loads(path.read_text())["mean_colored_fraction"]["0.0001"]
        points = sorted((step, values[seed]) for step, values in exact.items() if seed in values)
        if points:
            fraction_axis.plot([step for step, _ in points], [value for _, value in points], "o--", color=f"C{seed}",
                               label=f"seed {seed}, trained exactly (its checkpoints, epsilon 1e-4)")
    for step in sorted(exact):
        exact_lines.append(f"| step {step} | " + " | ".join(
            f"{exact[step][seed]:.3f}" if seed in exact[step] else "-" for seed in seeds) + " |")
    fraction_axis.set(xlabel="training step", ylabel="coloured fraction of the PER view's samples",
                      title="color_cull 1e-4: samples whose colour is evaluated", ylim=(0, 1))
    loss_axis.set(xlabel="training step", ylabel="train loss_color (mean of 40 steps)", title="colour loss", yscale="log")
    for axis in (fraction_axis, loss_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    atomic_savefig(figure, folder / "fraction.png", dpi=110)
    sweeps = {(state, seed): json.loads(path.read_text())["mean_colored_fraction"]
              for state in ("untrained", "trained") for seed in seeds
              if (path := folder / f"fraction_{state}_seed{seed}.json").exists()}
    if sweeps:  # colored_fraction.py's epsilon sweeps (run.sh writes them; a GPU run may have none)
        epsilons = list(next(iter(sweeps.values())))
        lines += ["", "| network (all val frames, train mode) | " + " | ".join(f"epsilon {eps}" for eps in epsilons)
                  + " |", "|---|" + "---:|" * len(epsilons)]
        lines += [f"| {state}, seed {seed} | " + " | ".join(f"{summary[eps]:.3f}" for eps in epsilons) + " |"
                  for (state, seed), summary in sweeps.items()]
    if exact:
        lines += ["", "Coloured fraction at epsilon 1e-4 of the exact-march runs' checkpoints:", "", *exact_lines]
    atomic_write_text(folder / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
