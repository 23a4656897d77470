"""The results file of a label-efficient sweep, and the table and plot made from it.

``results.csv`` holds one row per (run, metric): the sweep writes it, this module
reads it and turns the finished rows into a Markdown table shaped like the
paper's Table VII (rows: metric x init, columns: label ratios, cells
``mean ± std (n)`` over seeds) and a PNG of metric against label ratio. Every
file is written whole to a temporary name and then moved into place, so a
process killed mid-write leaves the previous version intact.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nsmae_lightning.atomic import atomic_savefig, atomic_write_text

RESULT_COLUMNS: tuple[str, ...] = ("task", "init", "ratio", "seed", "metric", "value", "run_dir", "seconds", "status")
STATUS_OK = "ok"


@dataclass(frozen=True)
class ResultRow:
    """One metric of one run (or the failure of a run, with ``value`` None).

    Attributes:
        task: task name of the sweep spec (``detection``, ``segmentation``).
        init: init name of the sweep spec (``random``, ``nsmae``).
        ratio: label ratio in (0, 1].
        seed: training seed.
        metric: logged metric name (``val/mAP``); for a failed run, the metric it was meant to give.
        value: final value of the metric, None when the run failed.
        run_dir: the run's output folder.
        seconds: wall-clock time of the run's subprocess.
        status: ``ok``, or why the run failed (``failed rc=1: <last log line>``).
    """

    task: str
    init: str
    ratio: float
    seed: int
    metric: str
    value: float | None
    run_dir: str
    seconds: float
    status: str

    @property
    def run_key(self) -> tuple[str, str, float, int]:
        """(task, init, ratio, seed): which run of the grid this row belongs to."""
        return (self.task, self.init, self.ratio, self.seed)


@dataclass(frozen=True)
class CellStats:
    """Mean, sample standard deviation (0 for one seed) and count of one table cell."""

    mean: float
    std: float
    count: int


def format_ratio(ratio: float) -> str:
    """A ratio as a short, exact-enough string (``0.01``, ``1``) for folders and CSV cells."""
    return f"{ratio:g}"


def last_values(metrics_csv: Path, names: Sequence[str]) -> dict[str, float]:
    """The value of each metric in the last row of a metrics.csv that has one (absent if none has)."""
    values: dict[str, float] = {}
    with metrics_csv.open(newline="") as handle:
        for line, record in enumerate(csv.DictReader(handle), start=2):
            for name in names:
                if record.get(name) not in (None, ""):
                    try:
                        values[name] = float(record[name])
                    except ValueError:
                        raise ValueError(f"{metrics_csv}: line {line}: {name} is {record[name]!r}, not a number") from None
    return values


def read_final_metrics(run_dir: Path, names: Sequence[str]) -> dict[str, float]:
    """The final value of each metric, from the newest metrics.csv under ``run_dir`` that has it.

    A resumed run writes a new ``version_N`` folder; when it had nothing left to
    train, its final values are still those of the version before.
    """
    found: dict[str, float] = {}
    for metrics_csv in sorted(run_dir.rglob("metrics.csv"), key=lambda path: path.stat().st_mtime, reverse=True):
        for name, value in last_values(metrics_csv, names).items():
            found.setdefault(name, value)
    return {name: found[name] for name in names if name in found}


def read_results(path: Path) -> list[ResultRow]:
    """Rows of a results CSV (empty list when it does not exist yet).

    Raises:
        ValueError: the header is not ``RESULT_COLUMNS`` or a row does not parse (names file and line).
    """
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != RESULT_COLUMNS:
            raise ValueError(f"{path}: header {reader.fieldnames} is not {list(RESULT_COLUMNS)}")
        rows = []
        for line_number, record in enumerate(reader, start=2):
            try:
                rows.append(
                    ResultRow(
                        task=record["task"],
                        init=record["init"],
                        ratio=float(record["ratio"]),
                        seed=int(record["seed"]),
                        metric=record["metric"],
                        value=float(record["value"]) if record["value"] else None,
                        run_dir=record["run_dir"],
                        seconds=float(record["seconds"]),
                        status=record["status"],
                    )
                )
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}:{line_number}: bad results row {record}: {error}") from error
    return rows


def write_results(path: Path, rows: Iterable[ResultRow]) -> None:
    """Write the whole results CSV atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        value = "" if row.value is None else repr(row.value)
        writer.writerow(
            [row.task, row.init, repr(row.ratio), row.seed, row.metric, value, row.run_dir,
             f"{row.seconds:.1f}", row.status]
        )
    atomic_write_text(path, buffer.getvalue())


def summarize(rows: Iterable[ResultRow]) -> dict[tuple[str, str, float], CellStats]:
    """Mean and sample std over seeds of every finished (metric, init, ratio), in first-seen order."""
    values: dict[tuple[str, str, float], list[float]] = {}
    for row in rows:
        if row.status == STATUS_OK and row.value is not None and math.isfinite(row.value):
            values.setdefault((row.metric, row.init, row.ratio), []).append(row.value)
    return {
        key: CellStats(statistics.fmean(seeds), statistics.stdev(seeds) if len(seeds) > 1 else 0.0, len(seeds))
        for key, seeds in values.items()
    }


def _axes_of(stats: dict[tuple[str, str, float], CellStats]) -> tuple[list[str], list[str], list[float]]:
    """Metrics and inits in first-seen order, ratios ascending."""
    metrics = list(dict.fromkeys(metric for metric, _, _ in stats))
    inits = list(dict.fromkeys(init for _, init, _ in stats))
    ratios = sorted({ratio for _, _, ratio in stats})
    return metrics, inits, ratios


def format_cell(cell: CellStats | None, scale: float) -> str:
    """``mean ± std (n)`` scaled (``-`` for a missing cell; no ± for one seed)."""
    if cell is None:
        return "-"
    if cell.count == 1:
        return f"{cell.mean * scale:.2f} (1)"
    return f"{cell.mean * scale:.2f} ± {cell.std * scale:.2f} ({cell.count})"


def markdown_table(rows: Sequence[ResultRow], scale: float = 100.0) -> str:
    """Table VII's shape: a row per metric x init, a column per label ratio.

    Args:
        rows: results rows; failed ones are ignored.
        scale: factor applied to every value (100 shows fractions as percentages, like the paper).
    """
    stats = summarize(rows)
    if not stats:
        raise ValueError("no finished run in the results: nothing to tabulate")
    metrics, inits, ratios = _axes_of(stats)
    header = ["Metric", "Init", *(f"{format_ratio(ratio * 100)}%" for ratio in ratios)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * len(ratios)) + "|"]
    for metric in metrics:
        for init in inits:
            cells = [format_cell(stats.get((metric, init, ratio)), scale) for ratio in ratios]
            lines.append("| " + " | ".join([metric, init, *cells]) + " |")
    note = f"Values x{scale:g}; cells are mean ± sample std (number of seeds) of the final validation metric."
    return "\n".join(lines) + "\n\n" + note + "\n"


def plot_results(rows: Sequence[ResultRow], out_png: Path, scale: float = 100.0) -> Path:
    """Metric against label ratio (log x), a line per init with std error bars, a panel per metric."""
    stats = summarize(rows)
    if not stats:
        raise ValueError("no finished run in the results: nothing to plot")
    metrics, inits, ratios = _axes_of(stats)
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for axis, metric in zip(axes.flat, metrics):
        for init in inits:
            points = [(ratio, stats[(metric, init, ratio)]) for ratio in ratios if (metric, init, ratio) in stats]
            if not points:
                continue
            xs = [ratio * 100 for ratio, _ in points]
            axis.errorbar(
                xs,
                [cell.mean * scale for _, cell in points],
                yerr=[cell.std * scale for _, cell in points],
                marker="o",
                capsize=3,
                label=init,
            )
        axis.set_xscale("log")
        axis.set_xticks([ratio * 100 for ratio in ratios])
        axis.set_xticklabels([f"{format_ratio(ratio * 100)}%" for ratio in ratios])
        axis.minorticks_off()
        axis.set_xlabel("labelled frames")
        axis.set_ylabel(f"{metric} (x{scale:g})")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    atomic_savefig(figure, out_png, dpi=110)
    plt.close(figure)
    return out_png


def write_report(results_csv: Path, scale: float = 100.0) -> tuple[Path, Path]:
    """``results.md`` and ``results.png`` next to ``results_csv``, from its finished rows."""
    rows = read_results(results_csv)
    table_path = results_csv.with_suffix(".md")
    atomic_write_text(table_path, markdown_table(rows, scale))
    return table_path, plot_results(rows, results_csv.with_suffix(".png"), scale)
