"""``nsmae kitti-eval GT_DIR DET_DIR [--split FILE] [--out FILE]``: score KITTI label files."""

from __future__ import annotations

import argparse
import json
import math
import sys

from rich.console import Console

from nsmae_lightning.data.errors import DataError
from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.evaluation.kitti.eval import Results, evaluate_dirs, format_results


def _parser() -> argparse.ArgumentParser:
    """Arguments of the ``kitti-eval`` sub-command."""
    parser = argparse.ArgumentParser(
        prog="nsmae kitti-eval",
        description="KITTI 3D object AP (bbox, bev, 3d, aos; R11 and R40) of detection label files.",
    )
    parser.add_argument("gt_dir", help="ground-truth label_2 folder")
    parser.add_argument("det_dir", help="detection label files (16 fields, score last)")
    parser.add_argument("--split", default=None, help="ImageSets/*.txt listing the frames (default: all GT files)")
    parser.add_argument("--out", default=None, help="write the results as JSON here (atomically)")
    return parser


def results_to_json(results: Results) -> str:
    """Results as strict JSON; NaN (no countable ground truth) becomes null."""
    cleaned = {
        metric: {
            class_name: {
                difficulty: {key: None if math.isnan(value) else value for key, value in per_recall.items()}
                for difficulty, per_recall in per_difficulty.items()
            }
            for class_name, per_difficulty in per_class.items()
        }
        for metric, per_class in results.items()
    }
    return json.dumps(cleaned, indent=2, allow_nan=False) + "\n"


def main(argv: list[str]) -> int:
    """Evaluate, print the KITTI table and optionally save JSON; returns the exit code."""
    arguments = _parser().parse_args(argv)
    try:
        results = evaluate_dirs(arguments.gt_dir, arguments.det_dir, arguments.split)
    except DataError as error:
        print(f"kitti-eval: {error}", file=sys.stderr)
        return 1
    Console(highlight=False).print(format_results(results), markup=False, end="")
    if arguments.out is not None:
        atomic_write_text(arguments.out, results_to_json(results))
    return 0
