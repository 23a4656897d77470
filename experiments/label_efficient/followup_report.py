"""One sweep cell (task, label ratio, metric) across follow-up conditions: a table and a per-seed plot.

Each ``--row`` is ``LABEL=SOURCE[+SOURCE...]`` and a SOURCE is a sweep ``results.csv``, optionally
``@INIT`` to take only that init's runs from it (e.g. an ablation fine-tuned from NS-MAE init only,
compared with the random-init runs of the headline sweep). The table gives each init's mean ± sample
std over seeds and, for seeds run from both inits, the mean paired difference (same seed, same subset)
and how many of those seeds the non-baseline init won; the plot shows every seed's value.

    python experiments/label_efficient/followup_report.py --task segmentation --ratio 0.01 \
      --row "128 steps, seeds 0-1=experiments/label_efficient/results.csv" \
      --row "512 steps, seeds 0-1=experiments/label_efficient/synthetic_h200_2026-12-02_followup/followup_steps/results.csv" \
      --out-md followup.md --out-png followup.png
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nsmae_lightning.atomic import atomic_savefig, atomic_write_text
from nsmae_lightning.sweep_report import STATUS_OK, CellStats, format_cell, read_results


@dataclass(frozen=True)
class Condition:
    """One table row: a label and every (init, seed) -> value it gathers."""

    label: str
    values: dict[tuple[str, int], float]

    def seeds_of(self, init: str) -> dict[int, float]:
        return {seed: value for (name, seed), value in self.values.items() if name == init}


def read_condition(spec: str, task: str, ratio: float, metric: str) -> Condition:
    """Parse ``LABEL=SOURCE[+SOURCE...]`` and read its runs of (task, ratio, metric).

    Raises:
        ValueError: a malformed spec, a missing file, no matching run, or one (init, seed) given twice.
    """
    label, sep, sources = spec.partition("=")
    if not sep or not label or not sources:
        raise ValueError(f"--row {spec!r}: expected LABEL=RESULTS_CSV[@INIT][+RESULTS_CSV[@INIT]...]")
    values: dict[tuple[str, int], float] = {}
    for source in sources.split("+"):
        path_text, _, only_init = source.partition("@")
        path = Path(path_text)
        if not path.is_file():
            raise ValueError(f"--row {label!r}: {path} does not exist")
        for row in read_results(path):
            if (row.task, row.ratio, row.metric) != (task, ratio, metric) or row.status != STATUS_OK:
                continue
            if row.value is None or (only_init and row.init != only_init):
                continue
            key = (row.init, row.seed)
            if key in values:
                raise ValueError(f"--row {label!r}: {row.init} seed {row.seed} appears twice ({path})")
            values[key] = row.value
    if not values:
        raise ValueError(f"--row {label!r}: no finished {task} run at ratio {ratio} with {metric}")
    return Condition(label, values)


def cell_of(values: list[float]) -> CellStats | None:
    if not values:
        return None
    return CellStats(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))


def paired(condition: Condition, baseline: str, other: str) -> tuple[CellStats | None, int]:
    """Mean ± std of other - baseline over the seeds run from both, and how many of them other won."""
    base, mine = condition.seeds_of(baseline), condition.seeds_of(other)
    differences = [mine[seed] - base[seed] for seed in sorted(base.keys() & mine.keys())]
    return cell_of(differences), sum(difference > 0 for difference in differences)


def markdown(conditions: list[Condition], inits: list[str], baseline: str, scale: float, title: str) -> str:
    others = [init for init in inits if init != baseline]
    header = ["condition", *inits, *(f"{other} - {baseline}, same seed" for other in others)]
    lines = [f"{title}\n", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for condition in conditions:
        cells = [format_cell(cell_of(list(condition.seeds_of(init).values())), scale) for init in inits]
        for other in others:
            difference, wins = paired(condition, baseline, other)
            cells.append("-" if difference is None else f"{format_cell(difference, scale)}, won {wins}")
        lines.append("| " + " | ".join([condition.label, *cells]) + " |")
    note = (f"Values x{scale:g}: mean ± sample std (number of seeds). The paired column only counts seeds "
            f"run from both inits within the row.")
    return "\n".join(lines) + "\n\n" + note + "\n"


def plot(conditions: list[Condition], inits: list[str], out_png: Path, scale: float, title: str) -> Path:
    """Every seed's value as a dot, a row per condition, a colour per init, the mean as a bar."""
    figure, axes = plt.subplots(figsize=(10, 0.7 * len(conditions) + 1.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labelled: set[str] = set()
    for row, condition in enumerate(conditions):
        for index, init in enumerate(inits):
            seeds = condition.seeds_of(init)
            if not seeds:
                continue
            y = row + (index - (len(inits) - 1) / 2) * 0.25
            xs = [value * scale for value in seeds.values()]
            axes.scatter(xs, [y] * len(xs), color=colours[index % len(colours)], s=28,
                         label=None if init in labelled else init)
            labelled.add(init)
            axes.plot([statistics.fmean(xs)] * 2, [y - 0.1, y + 0.1], color=colours[index % len(colours)], lw=2.5)
    axes.set_yticks(range(len(conditions)), [condition.label for condition in conditions])
    axes.invert_yaxis()
    axes.set_xlabel(f"value x{scale:g} (dots: seeds; bars: means)")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    atomic_savefig(figure, out_png, dpi=120)
    plt.close(figure)
    return out_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", action="append", required=True, help="LABEL=RESULTS_CSV[@INIT][+...]")
    parser.add_argument("--task", default="segmentation")
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--metric", default="val/mIoU")
    parser.add_argument("--baseline", default="random", help="init the others are paired against")
    parser.add_argument("--scale", type=float, default=100.0)
    parser.add_argument("--out-md", type=Path, required=True)
    parser.add_argument("--out-png", type=Path, required=True)
    args = parser.parse_args(argv)
    conditions = [read_condition(spec, args.task, args.ratio, args.metric) for spec in args.row]
    inits = list(dict.fromkeys(init for condition in conditions for init, _ in condition.values))
    if args.baseline in inits:
        inits.insert(0, inits.pop(inits.index(args.baseline)))
    title = f"{args.task} {args.metric} at {args.ratio:g} of the labels"
    atomic_write_text(args.out_md, markdown(conditions, inits, args.baseline, args.scale, f"## {title}"))
    plot(conditions, inits, args.out_png, args.scale, title)
    print(f"wrote {args.out_md} and {args.out_png}")


if __name__ == "__main__":
    main()
