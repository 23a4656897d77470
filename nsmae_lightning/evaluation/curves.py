"""``nsmae curves RUN [RUN ...]``: training curves of runs (CSVLogger's metrics.csv) as a PNG.

One run: a panel per metric. Several (e.g. fine-tunes from random and from NS-MAE init): the
same panels with one line per run, labelled by ``--label`` or the run's folder name.
"""

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


def plot_curves(
    metrics_csv: str | Path | dict[str, str | Path],
    out_png: str | Path,
    prefixes: tuple[str, ...] = ("train/loss", "val/loss"),
) -> Path:
    """One panel per metric (log y for losses), one line per run, written atomically.

    Args:
        metrics_csv: a metrics.csv, or {label: metrics.csv} to overlay several runs.
        out_png: where the PNG goes.
        prefixes: metric-name prefixes to plot.
    """
    runs = {label: Path(path) for label, path in metrics_csv.items()} if isinstance(metrics_csv, dict) else {"": Path(metrics_csv)}
    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(dict)  # metric -> label -> points
    for label, path in runs.items():
        for prefix in prefixes:
            for name, points in read_series(path, prefix).items():
                series[name][label] = points
    if not series:
        raise ValueError(f"{', '.join(str(path) for path in runs.values())}: no column starts with any of {prefixes}")
    names = sorted(series)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        for label, points in series[name].items():
            steps, values = zip(*points)
            axis.plot(steps, values, lw=1, marker="o" if len(values) < 30 else None, ms=3, label=label or None)
        every = [value for points in series[name].values() for _, value in points]
        if "loss" in name and min(every) > 0:
            axis.set_yscale("log")
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if len(runs) > 1:
            axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.tight_layout()
    atomic_savefig(figure, out_png, dpi=100)
    plt.close(figure)
    return out_png


def newest_metrics(run: Path) -> Path | None:
    """``run`` itself when it is a CSV file, else the newest metrics.csv below it (None: none)."""
    if run.is_file():
        return run
    found = sorted(run.rglob("metrics.csv"), key=lambda path: path.stat().st_mtime)
    return found[-1] if found else None


def main(argv: list[str]) -> int:
    """Plot the curves of one or more runs (a run folder's newest metrics.csv, or a CSV file)."""
    parser = argparse.ArgumentParser(prog="nsmae curves", description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folder or metrics CSV")
    parser.add_argument("--label", action="append", help="legend label per RUN, in order (default: the names)")
    parser.add_argument("--out", type=Path, help="PNG (default: RUN/curves.png of the first run folder)")
    parser.add_argument("--prefix", action="append", help="metric prefixes (default: train/loss, val/loss)")
    args = parser.parse_args(argv)
    labels = args.label or [run.stem if run.is_file() else run.name for run in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"{len(labels)} --label for {len(args.runs)} runs")
    found: dict[str, Path] = {}
    for label, run in zip(labels, args.runs):
        metrics = newest_metrics(run)
        if metrics is None:
            print(f"nsmae curves: no metrics.csv under {run}")
            return 2
        found[label] = metrics
    first = args.runs[0]
    out = args.out or (first.parent if first.is_file() else first) / "curves.png"
    prefixes = tuple(args.prefix or ("train/loss", "val/loss"))
    out = plot_curves(found if len(found) > 1 else next(iter(found.values())), out, prefixes)
    print(f"wrote {out}")
    return 0
