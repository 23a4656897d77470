"""Size the pretraining and the sweep's fine-tuning runs to a time budget from measured step times.

Reads the JSON of benchmarks/pretrain_step.py and benchmarks/task_step.py (run on the
same GPU with the synthetic configs at the experiment's batch size) and prints shell
assignments, e.g. ``PRETRAIN_EPOCHS=9 PRETRAIN_MAX_TIME=00:00:09:48 FT_EPOCHS=4
FT_MAX_TIME=00:00:03:10``. One-cycle schedules need their length up front, so the
epochs come from measurement; the max times are only safety caps.

    python experiments/label_efficient/plan_epochs.py --pretrain-bench p.json --task-bench t.json \
        --train-frames 1020 --batch 8 --pretrain-seconds 300 --sweep-seconds 900 --runs 32 --parallel 4
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def bf16_step_ms(path: Path, key: str, config_part: str) -> float:
    """The bf16 step time (ms) of the row whose config contains ``config_part``."""
    rows = json.loads(path.read_text())["rows"]
    for row in rows:
        if config_part in row["config"] and row["dtype"] == "bf16":
            return float(row[key])
    raise SystemExit(f"{path}: no bf16 row for a config containing {config_part!r}")


def clock(seconds: float) -> str:
    """Lightning's max_time format DD:HH:MM:SS."""
    seconds = int(seconds)
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-bench", type=Path, required=True)
    parser.add_argument("--task-bench", type=Path, required=True)
    parser.add_argument("--config-part", default="synthetic", help="which benchmark rows to read")
    parser.add_argument("--train-frames", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--pretrain-seconds", type=float, required=True)
    parser.add_argument("--sweep-seconds", type=float, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--tasks", nargs="+", default=["detection", "segmentation"],
                        help="the sweep's tasks (the slowest one's step time sizes every run)")
    parser.add_argument("--ft-epochs", type=int, default=None,
                        help="fix the fine-tuning epochs (an ablation of the schedule) instead of fitting the budget")
    parser.add_argument("--parallel", type=int, required=True)
    parser.add_argument("--run-overhead", type=float, default=25.0, help="start-up, data set-up, final checkpoint (s)")
    parser.add_argument("--eval-seconds", type=float, default=12.0, help="one validation with the devkit (s)")
    parser.add_argument("--pretrain-factor", type=float, default=1.8,
                        help="real pretraining step / benchmark step (1.8 measured on the H200, 2026-12-01)")
    parser.add_argument("--loader-factor", type=float, default=1.0, help="real fine-tuning step / benchmark step")
    parser.add_argument("--sharing", type=float, default=1.0,
                        help="per-run slow-down per extra run sharing the GPU (1 = processes time-slice the GPU, "
                             "measured with 6 runs on the H200; 0 = perfect overlap)")
    parser.add_argument("--cap-factor", type=float, default=1.5,
                        help="max_time of a run = its planned time x this (a safety cap, not the plan)")
    args = parser.parse_args()
    steps_per_epoch = math.ceil(args.train_frames / args.batch)
    pretrain_ms = bf16_step_ms(args.pretrain_bench, "step_ms", args.config_part) * args.pretrain_factor
    pretrain_epochs = max(1, math.floor(args.pretrain_seconds / (pretrain_ms / 1000 * steps_per_epoch + 5.0)))
    task_ms = [bf16_step_ms(args.task_bench, "train_step_ms", f"{task}/{args.config_part}")
               for task in args.tasks]
    shared_ms = max(task_ms) * args.loader_factor * (1 + args.sharing * (args.parallel - 1))
    per_run = args.sweep_seconds * args.parallel / args.runs  # the pool keeps `parallel` runs going
    epoch_seconds = shared_ms / 1000 * steps_per_epoch + args.eval_seconds
    ft_epochs = args.ft_epochs or max(1, math.floor((per_run - args.run_overhead) / epoch_seconds))
    run_seconds = args.run_overhead + ft_epochs * epoch_seconds
    expected = math.ceil(args.runs / args.parallel) * run_seconds
    print(f"PRETRAIN_EPOCHS={pretrain_epochs} PRETRAIN_MAX_TIME={clock(args.pretrain_seconds * 1.4)} "
          f"FT_EPOCHS={ft_epochs} FT_MAX_TIME={clock(run_seconds * args.cap_factor)} "
          f"STEPS_PER_EPOCH={steps_per_epoch} EXPECTED_SWEEP_SECONDS={expected:.0f}")


if __name__ == "__main__":
    main()
