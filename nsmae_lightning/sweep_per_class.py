"""Per-class tables of a label-efficient sweep: detection AP / TP errors (devkit) and BEV IoU per class.

Reads every run folder of ``nsmae sweep`` (``<out>/<task>/<init>/r<ratio>/s<seed>/version_*``): the
devkit's ``metrics_summary.json`` of the last detection validation and the last ``val/iou/*`` row of
the segmentation runs' ``metrics.csv``; markdown tables, mean over seeds with the seed count in
brackets. ``nsmae sweep`` writes them to ``per_class.md`` beside ``results.md``; the command below
also copies the devkit summaries, so that published numbers can be checked against their source:

    python -m nsmae_lightning.sweep_per_class runs/label_efficient_synthetic \\
        --detection-out experiments/detection/synthetic_h200 --segmentation-out experiments/segmentation/synthetic_h200
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.sweep_report import read_final_metrics

RUN_PATTERN = re.compile(r"(?P<task>[^/]+)/(?P<init>[^/]+)/r(?P<ratio>[0-9.]+)/s(?P<seed>\d+)$")
TP_ERRORS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")

Cell = tuple[str, float]  # (init, ratio)


def run_folders(sweep: Path, task: str) -> list[tuple[str, float, int, Path]]:
    """(init, ratio, seed, newest version folder) of every run of ``task`` that has one."""
    found = []
    for seed_dir in sorted((sweep / task).glob("*/r*/s*")):
        match = RUN_PATTERN.search(seed_dir.relative_to(sweep).as_posix())
        versions = sorted(seed_dir.glob("version_*"), key=lambda path: int(path.name.split("_")[1]))
        if match and versions:
            found.append((match["init"], float(match["ratio"]), int(match["seed"]), versions[-1]))
    return found


def mean_cell(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean (n)``, x100 by default as in the sweep's results.md."""
    return f"{scale * statistics.fmean(values):.{digits}f} ({len(values)})" if values else "-"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def detection_tables(sweep: Path, copy_to: Path | None = None) -> str:
    """Per-class AP and the mean TP errors per (init, ratio); the summaries are copied into ``copy_to``."""
    ap: dict[Cell, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[Cell, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for init, ratio, seed, version in run_folders(sweep, "detection"):
        summaries = sorted(version.glob("nuscenes_eval/*/metrics_summary.json"))
        if not summaries:
            continue
        try:  # the devkit writes its summary in place: a killed evaluation leaves half a file
            summary = json.loads(summaries[-1].read_text())
            class_aps = summary["mean_dist_aps"]
            run_errors = {name: summary["tp_errors"][name] for name in TP_ERRORS}
            run_errors.update(mAP=summary["mean_ap"], NDS=summary["nd_score"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{summaries[-1]}: not a devkit metrics summary ({type(error).__name__}: {error})") from error
        if copy_to is not None:
            shutil.copy(summaries[-1], copy_to / f"metrics_summary_{init}_r{ratio:g}_s{seed}.json")
        for name, value in class_aps.items():
            ap[(init, ratio)][name].append(value)
        for name, value in run_errors.items():
            errors[(init, ratio)][name].append(value)
    if not ap:
        return "no detection run has a devkit summary\n"
    cells = sorted(ap)
    classes = sorted({name for cell in cells for name in ap[cell]})
    ap_rows = [[f"{init} {ratio:g}"] + [mean_cell(ap[(init, ratio)][name]) for name in classes] for init, ratio in cells]
    metric_names = ["mAP", "NDS", *TP_ERRORS]
    error_rows = [[f"{init} {ratio:g}"]
                  + [mean_cell(errors[(init, ratio)][name], *((100.0, 1) if name in ("mAP", "NDS") else (1.0, 3)))
                     for name in metric_names]
                  for init, ratio in cells]
    return ("## AP per class (x100, mean over seeds, number of seeds in brackets), devkit DetectionEval\n\n"
            + table(["init, label ratio", *classes], ap_rows)
            + "\n\n## mAP, NDS (x100) and mean TP errors (m, 1-IoU, rad, m/s, 1-acc)\n\n"
            + table(["init, label ratio", *metric_names], error_rows) + "\n")


def logged_names(run_dir: Path, prefix: str) -> list[str]:
    """Metric columns starting with ``prefix`` in any metrics.csv of a run."""
    names: set[str] = set()
    for metrics_csv in run_dir.rglob("metrics.csv"):
        with metrics_csv.open(newline="") as handle:
            names.update(name for name in next(csv.reader(handle), []) if name.startswith(prefix))
    return sorted(names)


def segmentation_tables(sweep: Path) -> str:
    """IoU per class and mIoU per (init, ratio)."""
    iou: dict[Cell, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for init, ratio, _, version in run_folders(sweep, "segmentation"):
        run_dir = version.parent  # the final values, as the sweep reads them (a resume adds versions)
        final = read_final_metrics(run_dir, [*logged_names(run_dir, "val/iou/"), "val/mIoU"])
        for name, value in final.items():
            iou[(init, ratio)][name.removeprefix("val/iou/").removeprefix("val/")].append(value)
    if not iou:
        return "no segmentation run has validation IoUs\n"
    cells = sorted(iou)
    classes = sorted({name for cell in cells for name in iou[cell]} - {"mIoU"}) + ["mIoU"]
    rows = [[f"{init} {ratio:g}"] + [mean_cell(iou[(init, ratio)][name]) for name in classes] for init, ratio in cells]
    return ("## BEV IoU per class (x100, max over thresholds 0.35..0.65; mean over seeds, number of seeds in brackets)\n\n"
            + table(["init, label ratio", *classes], rows) + "\n")


def write_per_class(sweep: Path) -> Path:
    """``per_class.md`` (detection and segmentation tables) in the sweep's folder."""
    return atomic_write_text(sweep / "per_class.md", detection_tables(sweep) + "\n" + segmentation_tables(sweep))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the sweep's out folder")
    parser.add_argument("--detection-out", type=Path, required=True)
    parser.add_argument("--segmentation-out", type=Path, required=True)
    args = parser.parse_args()
    args.detection_out.mkdir(parents=True, exist_ok=True)
    args.segmentation_out.mkdir(parents=True, exist_ok=True)
    detection = detection_tables(args.sweep, args.detection_out)
    atomic_write_text(args.detection_out / "per_class.md", detection)
    segmentation = segmentation_tables(args.sweep)
    atomic_write_text(args.segmentation_out / "per_class.md", segmentation)
    print(detection + "\n" + segmentation)


if __name__ == "__main__":
    main()
