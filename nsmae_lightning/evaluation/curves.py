"""``nsmae curves RUN_DIR``: training curves of a run (CSVLogger's metrics.csv) as a PNG."""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nsmae_lightning.atomic import atomic_savefig


def read_series(metrics_csv: Path, prefix: str) -> dict[str, list[tuple[int, float]]]:
    """(step, value) series of every column starting with ``prefix`` (epoch aggregates excluded for train)."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with metrics_csv.open() as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key.startswith(prefix) and value not in ("", None) and not key.endswith("_epoch"):
                    number = float(value)
                    if math.isfinite(number):
                        series[key.removesuffix("_step")].append((step, number))
    return dict(series)


def plot_curves(metrics_csv: str | Path, out_png: str | Path, prefixes: tuple[str, ...] = ("train/loss", "val/loss")) -> Path:
    """One panel per metric (log y for losses), written atomically."""
    metrics_csv, out_png = Path(metrics_csv), Path(out_png)
    series: dict[str, list[tuple[int, float]]] = {}
    for prefix in prefixes:
        series.update(read_series(metrics_csv, prefix))
    if not series:
        raise ValueError(f"{metrics_csv}: no column starts with any of {prefixes}")
    names = sorted(series)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        steps, values = zip(*series[name])
        axis.plot(steps, values, lw=1, marker="o" if len(values) < 30 else None, ms=3)
        if "loss" in name and min(values) > 0:
            axis.set_yscale("log")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.tight_layout()
    atomic_savefig(figure, out_png, dpi=100)
    plt.close(figure)
    return out_png


def main(argv: list[str]) -> int:
    """Plot the curves of a run directory (the newest metrics.csv below it)."""
    parser = argparse.ArgumentParser(prog="nsmae curves", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, help="PNG (default: RUN_DIR/curves.png)")
    parser.add_argument("--prefix", action="append", help="metric prefixes (default: train/loss, val/loss)")
    args = parser.parse_args(argv)
    found = sorted(args.run_dir.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not found:
        print(f"nsmae curves: no metrics.csv under {args.run_dir}")
        return 2
    out = plot_curves(found[-1], args.out or args.run_dir / "curves.png", tuple(args.prefix or ("train/loss", "val/loss")))
    print(f"wrote {out}")
    return 0
