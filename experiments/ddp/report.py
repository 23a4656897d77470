"""Report of experiments/ddp/run_gpu.sh: scaling, metrics on 1 vs N devices, subsets per rank, resume.

    python experiments/ddp/report.py /tmp/nsmae_ddp/results      (writes results.md, resume_loss.png there)
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELLED_LINE = re.compile(r"\[rank (\d+)\] labelled subset: (\d+) of (\d+) training frames .*? sha256 ([0-9a-f]{64})")
LOSS = "train/loss_step"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(row) + " |" for row in rows])


def throughput_section(results: Path) -> str:
    """Samples/s on 1 and N devices, scaling efficiency, peak memory per rank."""
    rows = []
    for task in ("pretrain", "detection"):
        reports = {}
        for path in sorted((results / "throughput").glob(f"{task}_*dev/version_0/throughput.json")):
            devices = int(path.parts[-3].removeprefix(f"{task}_").removesuffix("dev"))
            reports[devices] = json.loads(path.read_text())
        single = reports.get(1, {}).get("samples_per_s")
        for devices, report in sorted(reports.items()):
            efficiency = "" if not single or devices == 1 else f"{report['samples_per_s'] / (devices * single):.2f}"
            peaks = ", ".join("-" if peak is None else f"{peak:.2f}" for peak in report.get("peak_gib_per_rank", []))
            rows.append([task, str(devices), f"{report['batch_per_rank']:g}", str(report["steps_timed"]),
                         f"{1000 * report['median_step_s']:.1f}", f"{report['samples_per_s']:.1f}", efficiency, peaks])
    header = ["task", "devices", "batch / rank", "steps timed", "median step (ms)", "samples/s", "scaling efficiency",
              "peak GiB per rank"]
    return "## Throughput\n\n" + table(header, rows) + (
        "\n\nScaling efficiency = samples/s on N devices / (N x samples/s on 1).\n")


def validation_values(run: Path) -> dict[str, float]:
    """Every ``val/*`` value a run's CSV logger wrote."""
    values: dict[str, float] = {}
    for metrics in sorted(run.glob("version_*/metrics.csv")):
        for row in csv.DictReader(metrics.read_text().splitlines()):
            values.update({key: float(value) for key, value in row.items() if key.startswith("val/") and value})
    return values


def spread(runs: dict[int, dict[str, float]], devices: list[int], key: str) -> str:
    """"identical", or the largest difference between the device counts (absolute and relative)."""
    values = [runs[d][key] for d in devices if key in runs[d]]
    if len(values) < len(devices):
        return "missing"
    if len(set(values)) == 1:
        return "identical"
    difference = max(values) - min(values)
    return f"{difference:.3g} ({100 * difference / max(abs(max(values, key=abs)), 1e-12):.2g} %)"


def metrics_section(results: Path) -> str:
    """The same checkpoint validated on 1 device and on N: every metric side by side."""
    parts = ["## Validation of one checkpoint on 1 device and on N\n"]
    for task, keys in (("detection", ("val/mAP", "val/NDS", "val/num_samples")), ("segmentation", ("val/mIoU",))):
        runs = {int(path.name.rsplit("_", 1)[1].removesuffix("dev")): validation_values(path)
                for path in sorted((results / "metrics").glob(f"{task}_validate_*dev")) if path.is_dir()}
        if len(runs) < 2:
            parts.append(f"{task}: not run\n")
            continue
        devices = sorted(runs)
        shown = [key for key in sorted(set().union(*runs.values())) if key in keys or key.startswith("val/iou/")]
        rows = [[key] + [f"{runs[d].get(key, float('nan')):.6g}" for d in devices] + [spread(runs, devices, key)]
                for key in shown]
        compared = [key for key in set().union(*runs.values()) if key != "val/loss"]
        differing = [key for key in compared if len({runs[d].get(key) for d in devices}) > 1]
        parts.append(f"### {task}\n\n" + table(["metric", *[f"{d} device(s)" for d in devices], "difference"], rows)
                     + f"\n\n{len(compared) - len(differing)} of {len(compared)} logged values (all but val/loss) are "
                     + ("identical.\n" if not differing else f"identical; differing: {', '.join(sorted(differing))}.\n"))
    return "\n".join(parts)


def subsets_section(results: Path) -> str:
    """The labelled subset every rank of every DDP run printed."""
    rows = []
    for log in sorted(results.rglob("*.log")):
        found = {int(rank): (chosen, total, sha) for rank, chosen, total, sha in LABELLED_LINE.findall(log.read_text())}
        if len(found) > 1:
            shas = {sha for _, _, sha in found.values()}
            chosen, total, sha = found[0]
            rows.append([str(log.relative_to(results)), str(len(found)), f"{chosen} of {total}", sha[:16] + "...",
                         "yes" if len(shas) == 1 else "NO"])
    return "## Labelled subset per rank\n\n" + (table(["run", "ranks", "frames", "sha256", "same on every rank"], rows)
                                                 if rows else "no multi-rank run logged a subset") + "\n"


def losses(run: Path) -> dict[int, float]:
    """step -> logged training loss of a run."""
    values: dict[int, float] = {}
    for metrics in sorted(run.glob("version_*/metrics.csv")):
        for row in csv.DictReader(metrics.read_text().splitlines()):
            if row.get(LOSS):
                values[int(row["step"])] = float(row[LOSS])
    return values


def largest_difference(reference: dict[int, float], other: dict[int, float]) -> tuple[int, float, float]:
    """(steps compared, largest absolute, largest relative difference) over the steps both logged."""
    common = sorted(set(reference) & set(other))
    absolute = [abs(reference[step] - other[step]) for step in common]
    relative = [a / max(abs(reference[step]), 1e-12) for a, step in zip(absolute, common)]
    return len(common), max(absolute, default=float("nan")), max(relative, default=float("nan"))


def resume_section(results: Path) -> str:
    """The resumed run's losses against the uninterrupted run's (and two uninterrupted runs against each other)."""
    resume = results / "resume"
    if not (resume / "killed_at.txt").exists():
        return "## Kill and resume\n\nnot run\n"
    runs = {name: losses(resume / name)
            for name in ("uninterrupted", "uninterrupted_again", "interrupted", "interrupted_resumed")}
    figure, axis = plt.subplots(figsize=(7, 4))
    styles = {"uninterrupted": "-", "uninterrupted_again": "--", "interrupted": "o", "interrupted_resumed": "x"}
    for name, values in runs.items():
        axis.plot(sorted(values), [values[step] for step in sorted(values)], styles[name], label=name, markersize=4)
    axis.set_xlabel("optimiser step")
    axis.set_ylabel(LOSS)
    axis.legend()
    figure.tight_layout()
    figure.savefig(results / "resume_loss.png", dpi=120)
    plt.close(figure)
    killed_at = Path((resume / "killed_at.txt").read_text().strip()).name
    rows = []
    for label, other in (("resumed vs uninterrupted", "interrupted_resumed"),
                         ("uninterrupted twice (run-to-run spread)", "uninterrupted_again")):
        steps, absolute, relative = largest_difference(runs["uninterrupted"], runs[other])
        rows.append([label, str(steps), f"{absolute:.3g}", f"{100 * relative:.2g} %"])
    return ("## Kill and resume\n\n"
            f"The interrupted run was killed (SIGKILL to every rank) once `{killed_at}` was complete and resumed "
            "from it with `--ckpt_path`; its losses after the resume point against the uninterrupted run's, next "
            "to two uninterrupted runs against each other (`resume_loss.png`):\n\n"
            + table(["comparison", "steps", "largest loss difference (absolute)", "relative"], rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    text = "\n".join([throughput_section(args.results), metrics_section(args.results), subsets_section(args.results),
                      resume_section(args.results)])
    (args.results / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
