"""Markdown tables of the benchmark JSON files (pretrain_step, task_step, render_throughput).

    python benchmarks/results_table.py benchmarks/results/*.json >> benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def pretrain_table(report: dict[str, Any]) -> str:
    """Rows of benchmarks/pretrain_step.py."""
    rows = [[f"`{row['config']}`", row["dtype"], str(row["batch"]), f"{row['step_ms']:.1f}", f"{row['samples_per_s']:.2f}",
             f"{row['peak_gib']:.2f}"] for row in report["rows"]]
    return _table(["config", "dtype", "batch / GPU", "step (ms)", "samples/s", "peak GPU memory (GiB)"], rows)


def task_table(report: dict[str, Any]) -> str:
    """Rows of benchmarks/task_step.py."""
    rows = [[f"`{row['config']}`", row["dtype"], str(row["batch"]), f"{row['train_step_ms']:.1f}",
             f"{row['train_samples_per_s']:.2f}", f"{row['train_peak_gib']:.2f}", f"{row['infer_ms_per_frame']:.1f}"]
            for row in report["rows"]]
    return _table(["config", "dtype", "batch / GPU", "train step (ms)", "samples/s", "peak (GiB)", "inference (ms/frame)"], rows)


def render_table(report: dict[str, Any]) -> str:
    """Rows of benchmarks/render_throughput.py."""
    rows = []
    for row in report["rows"]:
        # reports before the packed marches have no "march": their head rows are the dense march
        march = row.get("march", "-" if row["kind"] == "sampler" else "dense")
        # reports before color_mlp ran the torch MLP wherever one ran (not in the fused marches)
        torch_mlp = row["kind"] in ("mlp", "march", "render") and not march.startswith("fused")
        label = [row["kind"], row["sampler"], march, row.get("color_mlp", "torch" if torch_mlp else "-"), row["dtype"]]
        if "error" in row:
            rows.append([*label, "-", "-", "-", row["error"][:60], "-"])
            continue
        # reference_error (reports from 2026-12-02 on): march / render rows against the eager dense march
        checked = f"{row['reference_error']:.1e}" if "reference_error" in row else "-"
        # gpu_ms (runs with --profile): the kernels' time per call, against the wall time before it
        rows.append([*label, f"{row['samples'] / 1e6:.2f} M", f"{row['seconds'] * 1e3:.2f}",
                     f"{row['gpu_ms']:.2f}" if "gpu_ms" in row else "-", f"{row['samples_per_s'] / 1e9:.3f}", checked])
    return _table(["measured", "sampler", "march", "colour MLP", "dtype", "samples", "fwd+bwd (ms)", "GPU kernels (ms)",
                   "Gsamples/s", "vs reference"], rows)


def describe(path: Path) -> str:
    """A heading and the table of one benchmark JSON."""
    report = json.loads(path.read_text())
    first = report["rows"][0] if report["rows"] else {}
    if "step_ms" in first:
        table = pretrain_table(report)
    elif "train_step_ms" in first:
        table = task_table(report)
    else:
        table = render_table(report)
    return f"`{path.name}` ({report['device']}, torch {report['torch']}):\n\n{table}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    for path in parser.parse_args().files:
        print(describe(path))


if __name__ == "__main__":
    main()
