"""Plot render_throughput.py results: Gsamples/s against samples per call, one line per way of running.

    python benchmarks/plot_render_scaling.py --out benchmarks/render_scaling.png --kind render \
        benchmarks/results/h200_2026-12-04_session12/call*/*.json

A line joins the rows of one (renderer, feature channels, eager / CUDA graph / culled) across the files
given (the median where several measured one workload); the 1 Gsamples/s target is drawn across. Rows that failed (an "error" entry) are left out.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series_label(args: dict[str, str], row: dict[str, Any]) -> str:
    """How the row ran: renderer (ours / naive), channels, eager / graph / culled."""
    renderer = "naive" if row["sampler"] == "grid_sample" else "ours"
    if row.get("cuda_graph"):
        mode = "CUDA graph"
    elif float(args.get("color_cull", "0") or 0) > 0.0:
        mode = f"eager, color_cull {float(args['color_cull']):g}"
    else:
        mode = "eager"
    return f"{renderer}, {args['feature_channels']} ch, {mode}"


def collect(paths: list[Path], kind: str) -> dict[str, list[tuple[float, float]]]:
    """{label: [(samples, Gsamples/s), ...]} of the ``kind`` rows, sorted by samples."""
    series: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for path in paths:
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(f"{path}: not a render_throughput JSON report ({error})") from error
        if "rows" not in report or "args" not in report:
            raise SystemExit(f"{path}: not a render_throughput JSON report (no 'rows' / 'args')")
        for row in report["rows"]:
            if row.get("kind") == kind and "error" not in row:
                series[series_label(report["args"], row)].append((row["samples"], row["samples_per_s"] / 1e9))
    # repeated measurements of one workload (several calls): their median
    return {label: [(samples, statistics.median(rate for x, rate in points if x == samples))
                    for samples in sorted({x for x, _ in points})] for label, points in series.items()}


def plot(series: dict[str, list[tuple[float, float]]], kind: str, title: str, out: Path) -> None:
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    for label, points in sorted(series.items()):
        style = "--" if label.startswith("naive") else ("-" if "graph" in label else ":")
        axis.plot([x for x, _ in points], [y for _, y in points], style, marker="o", markersize=4, label=label)
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.text(0.01, 1.0, "target 1 Gsamples/s", color="grey", fontsize=8, va="bottom",
              transform=axis.get_yaxis_transform())  # x in axes fraction, y in data
    axis.set_xscale("log")
    axis.set_xlabel("samples per call (fwd + bwd)")
    axis.set_ylabel("Gsamples/s by wall")
    axis.set_title(title or f"render_throughput.py, {kind} rows")
    axis.legend(fontsize=7, loc="center left")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path, help="render_throughput.py JSON files")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--kind", default="render", help="row kind to plot (render, march)")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    series = collect(args.reports, args.kind)
    if not series:
        raise SystemExit(f"no {args.kind!r} rows in {len(args.reports)} file(s)")
    plot(series, args.kind, args.title, args.out)
    for label, points in sorted(series.items()):
        print(f"{label:40s} " + "  ".join(f"{samples / 1e6:.2f} M: {rate:.3f} G" for samples, rate in points))


if __name__ == "__main__":
    main()
