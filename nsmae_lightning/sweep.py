"""``nsmae sweep FILE``: label-efficient fine-tuning grids (the paper's Table VII).

A YAML spec names the tasks (each a base config), the inits (random or a
pretraining checkpoint), the label ratios and the seeds. Every point of the grid
is one subprocess of the real CLI (``python -m nsmae_lightning fit ...``) with
its own run folder ``<out>/<task>/<init>/r<ratio>/s<seed>``; its final
validation metrics are read from the run's CSVLogger ``metrics.csv`` and written
to ``<out>/results.csv``, which is then turned into ``results.md`` and
``results.png`` (see ``sweep_report``).

The sweep is resumable: a run with an ``ok`` row in ``results.csv`` is skipped;
a run without one (killed, or failed before) runs again, from its newest
checkpoint when ``resume`` is on and one exists, else from scratch. A failed run
is recorded with its return code and the last line of its log, and the sweep
goes on. Spec format (paths relative to the working directory)::

    out: runs/label_efficient
    tasks:
      detection: {config: configs/detection/bevfusion_256x704.yaml}        # metrics: val/mAP, val/NDS
      segmentation:
        config: configs/segmentation/bevfusion_256x704.yaml              # metrics: val/mIoU
        overrides: {trainer.max_epochs: 20}
    inits: {random: null, nsmae: runs/pretrain_256x704}
    ratios: [0.01, 0.05, 0.1, 1.0]
    seeds: [0, 1]
    split_seed: 0            # which frames are labelled (not the training seed)
    resume: true             # a killed run continues from its newest checkpoint
    overrides: {data.init_args.dataroot: data/nuscenes}                 # every run
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nsmae_lightning.checkpoint_file import newest_checkpoint, resumable_checkpoint
from nsmae_lightning.sweep_report import (
    STATUS_OK,
    ResultRow,
    format_ratio,
    read_final_metrics,
    read_results,
    write_report,
    write_results,
)
from nsmae_lightning.sweep_per_class import write_per_class

# Thread-pool sizes that every parallel run gets a share of (torch/OpenMP, MKL, OpenBLAS, numba).
THREAD_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")

# Final validation metrics of each known task (a spec may name others with `metrics:`).
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "detection": ("val/mAP", "val/NDS"),
    "segmentation": ("val/mIoU",),
}
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class TaskSpec:
    """One task of the grid.

    Attributes:
        name: folder and table name (``detection``).
        config: base config of ``nsmae fit`` (must log with a CSVLogger).
        metrics: logged metrics read from the run's metrics.csv at the end.
        overrides: extra CLI arguments of this task's runs (``--key=value``).
    """

    name: str
    config: Path
    metrics: tuple[str, ...]
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepSpec:
    """A whole grid: tasks x inits x ratios x seeds, plus what every run shares.

    Attributes:
        out: folder of the run folders and the results files.
        tasks: the tasks, in table order.
        inits: init name -> pretraining checkpoint (None = random init).
        ratios: label ratios in (0, 1].
        seeds: training seeds (``seed_everything``).
        split_seed: seed of the labelled subset (the same frames for every training seed).
        overrides: extra CLI arguments of every run (``--key=value``).
        resume: continue a run that has checkpoints but no result from its newest checkpoint.
    """

    out: Path
    tasks: tuple[TaskSpec, ...]
    inits: Mapping[str, Path | None]
    ratios: tuple[float, ...]
    seeds: tuple[int, ...]
    split_seed: int = 0
    overrides: tuple[str, ...] = ()
    resume: bool = True

    @property
    def results_csv(self) -> Path:
        """Where the results rows live."""
        return self.out / "results.csv"


@dataclass(frozen=True)
class Run:
    """One point of the grid."""

    task: TaskSpec
    init: str
    checkpoint: Path | None
    ratio: float
    seed: int

    @property
    def key(self) -> tuple[str, str, float, int]:
        """(task, init, ratio, seed), as in ``ResultRow.run_key``."""
        return (self.task.name, self.init, self.ratio, self.seed)

    @property
    def name(self) -> str:
        """``task/init/r<ratio>/s<seed>``: the run folder below ``out`` and the progress label."""
        return f"{self.task.name}/{self.init}/r{format_ratio(self.ratio)}/s{self.seed}"

    def run_dir(self, out: Path) -> Path:
        """The run's own output folder."""
        return out / self.name


@dataclass
class SweepSummary:
    """What a sweep did: runs that finished now, were already done, or failed (name, status, log tail)."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)


# (spec, run, checkpoint to resume from or None) -> argv of the run's subprocess.
CommandBuilder = Callable[[SweepSpec, Run, Path | None], list[str]]


def cli_value(value: Any) -> str:
    """A YAML value as the CLI reads it (``null``, ``true``, JSON for lists and maps)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def override_arguments(raw: Any, where: str) -> tuple[str, ...]:
    """``{key: value}`` (or a list of ``--key=value`` strings) as CLI arguments."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        return tuple(f"--{key}={cli_value(value)}" for key, value in raw.items())
    if isinstance(raw, list) and all(isinstance(item, str) and item.startswith("--") for item in raw):
        return tuple(raw)
    raise ValueError(f"{where}: overrides must be a mapping {{key: value}} or a list of '--key=value' strings")


def _require(raw: Mapping[str, Any], key: str, where: str) -> Any:
    """``raw[key]``, or a ValueError naming the spec file and the missing key."""
    if key not in raw or raw[key] in (None, [], {}):
        raise ValueError(f"{where}: missing or empty '{key}'")
    return raw[key]


def parse_spec(raw: Mapping[str, Any], where: str) -> SweepSpec:
    """Validate a spec mapping (``where`` names its file in errors)."""
    unknown = sorted(set(raw) - {"out", "tasks", "inits", "ratios", "seeds", "split_seed", "overrides", "resume"})
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")
    tasks_raw = _require(raw, "tasks", where)
    if not isinstance(tasks_raw, Mapping):
        raise ValueError(f"{where}: 'tasks' must map task names to {{config: ..., metrics: ..., overrides: ...}}")
    tasks = []
    for name, task_raw in tasks_raw.items():
        task_where = f"{where}: tasks.{name}"
        if not isinstance(task_raw, Mapping):
            raise ValueError(f"{task_where}: must be a mapping with a 'config'")
        metrics = task_raw.get("metrics", DEFAULT_METRICS.get(name))
        if not metrics:
            raise ValueError(f"{task_where}: no 'metrics' given and no default for a task named {name!r}")
        tasks.append(
            TaskSpec(
                name=str(name),
                config=Path(_require(task_raw, "config", task_where)),
                metrics=tuple(str(metric) for metric in metrics),
                overrides=override_arguments(task_raw.get("overrides"), task_where),
            )
        )
    inits_raw = _require(raw, "inits", where)
    if not isinstance(inits_raw, Mapping):
        raise ValueError(f"{where}: 'inits' must map names to a checkpoint path or null")
    ratios = _numbers(_require(raw, "ratios", where), float, "ratios", where)
    bad_ratios = [ratio for ratio in ratios if not 0.0 < ratio <= 1.0]
    if bad_ratios:
        raise ValueError(f"{where}: ratios must lie in (0, 1], got {bad_ratios}")
    return SweepSpec(
        out=Path(_require(raw, "out", where)),
        tasks=tuple(tasks),
        inits={str(name): None if path is None else Path(path) for name, path in inits_raw.items()},
        ratios=ratios,
        seeds=_numbers(_require(raw, "seeds", where), int, "seeds", where),
        split_seed=_numbers([raw.get("split_seed", 0)], int, "split_seed", where)[0],
        overrides=override_arguments(raw.get("overrides"), where),
        resume=bool(raw.get("resume", True)),
    )


def _numbers(values: object, kind: type, key: str, where: str) -> tuple:
    """``values`` (a YAML list) as a tuple of ``kind`` (int or float), or a ValueError naming the spec and key.

    A bare number or a string is refused (``seeds: "01"`` would otherwise iterate to (0, 1)); an int key
    takes whole numbers only, never booleans.
    """
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{where}: '{key}' must be a list of numbers, e.g. [0, 1], got {values!r}")
    numbers = []
    for value in values:
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not whole):
            expected = "whole numbers" if kind is int else "numbers"
            raise ValueError(f"{where}: '{key}' must hold {expected}, got {value!r} in {values!r}")
        numbers.append(kind(value))
    return tuple(numbers)


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a sweep spec YAML."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read the sweep spec: {error}") from error
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: a sweep spec is a mapping, got {type(raw).__name__}")
    return parse_spec(raw, str(path))


def expand_grid(spec: SweepSpec) -> list[Run]:
    """Every run of the grid, seed-major then task, init, ratio (the order they start in).

    Seeds come last so that a sweep cut short (a time budget, a lost machine) has
    filled every cell of the table once before it repeats any.
    """
    return [
        Run(task, init, checkpoint, ratio, seed)
        for seed in spec.seeds
        for task in spec.tasks
        for init, checkpoint in spec.inits.items()
        for ratio in spec.ratios
    ]


def init_checkpoint(path: Path | None) -> Path | None:
    """An init's checkpoint: the file itself, or a run folder's ``last.ckpt`` / newest checkpoint.

    Resolved when the run starts, so a spec can name a pretraining folder before it exists.
    """
    if path is None or not path.is_dir():
        return path
    checkpoint = newest_checkpoint(path)
    if checkpoint is None:
        raise ValueError(f"{path}: no *.ckpt under this init folder")
    return checkpoint


def fit_command(config: Path, run_dir: Path, arguments: Sequence[str], resume_from: Path | None) -> list[str]:
    """``python -m nsmae_lightning fit --config CONFIG ...`` logging (CSVLogger) and checkpointing into ``run_dir``."""
    command = [
        sys.executable,
        "-m",
        "nsmae_lightning",
        "fit",
        "--config",
        str(config),
        *arguments,
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}",
    ]
    if resume_from is not None:
        command.append(f"--ckpt_path={resume_from}")
    return command


def build_command(spec: SweepSpec, run: Run, resume_from: Path | None) -> list[str]:
    """The fit command of one grid point: its init, label ratio and seed, then the spec's overrides."""
    checkpoint = init_checkpoint(run.checkpoint)
    arguments = [
        f"--model.init_args.pretrained={cli_value(None if checkpoint is None else str(checkpoint))}",
        f"--data.init_args.label_ratio={run.ratio!r}",
        f"--data.init_args.split_seed={spec.split_seed}",
        f"--seed_everything={run.seed}",
        *spec.overrides,
        *run.task.overrides,
    ]
    return fit_command(run.task.config, run.run_dir(spec.out), arguments, resume_from)


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a run log."""
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:]) if log_path.exists() else ""


def execute_run(spec: SweepSpec, run: Run, builder: CommandBuilder, env: Mapping[str, str]) -> tuple[list[ResultRow], str]:
    """Run one grid point as a subprocess; return its result rows and (if it failed) its log tail."""
    run_dir = run.run_dir(spec.out)
    resume_from, passed_over = resumable_checkpoint(run_dir) if spec.resume else (None, [])
    if resume_from is None and run_dir.exists():
        shutil.rmtree(run_dir)  # a killed run without a checkpoint starts clean: no stale metrics.csv
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "run.log"
    if passed_over:
        with log_path.open("a") as log:
            log.writelines(f"not resuming from {note}\n" for note in passed_over)
    start = time.monotonic()
    try:
        command = builder(spec, run, resume_from)
    except (OSError, ValueError) as error:  # e.g. an init folder without a checkpoint
        return _failed_rows(spec, run, f"failed: {error}", 0.0), str(error)
    returncode = run_logged(command, log_path, env)
    seconds = time.monotonic() - start
    try:
        metrics = read_final_metrics(run_dir, run.task.metrics) if returncode == 0 else {}
    except (OSError, ValueError) as error:  # a metrics.csv that cannot be read: this run failed, not the sweep
        return _failed_rows(spec, run, f"failed: {error}", seconds), str(error)
    missing = [name for name in run.task.metrics if name not in metrics]
    if returncode == 0 and not missing:
        return [
            ResultRow(run.task.name, run.init, run.ratio, run.seed, name, metrics[name], str(run_dir), seconds, STATUS_OK)
            for name in run.task.metrics
        ], ""
    tail = log_tail(log_path)
    if returncode != 0:
        last_line = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        status = f"failed rc={returncode}: {last_line.strip()[:200]}"
    else:
        status = f"failed: {', '.join(missing)} not in any metrics.csv under {run_dir}"
    return _failed_rows(spec, run, status, seconds), tail


def _failed_rows(spec: SweepSpec, run: Run, status: str, seconds: float) -> list[ResultRow]:
    """One row per expected metric, without a value, carrying why the run failed."""
    run_dir = str(run.run_dir(spec.out))
    return [ResultRow(run.task.name, run.init, run.ratio, run.seed, name, None, run_dir, seconds, status)
            for name in run.task.metrics]


def run_logged(command: Sequence[str], log_path: Path, env: Mapping[str, str]) -> int:
    """Run ``command`` with stdout and stderr appended to ``log_path`` (after the command line); its exit code."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        return subprocess.run(list(command), stdout=log, stderr=subprocess.STDOUT, env=dict(env), check=False).returncode


@contextmanager
def results_lock(results_csv: Path) -> Iterator[None]:
    """An exclusive lock on the results file, so two sweeps on one folder never interleave writes."""
    results_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(results_csv.with_name(results_csv.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_run(results_csv: Path, run: Run, rows: Sequence[ResultRow]) -> None:
    """Replace the run's rows (a former failure, say) by ``rows``, rewriting the file atomically."""
    with results_lock(results_csv):
        kept = [row for row in read_results(results_csv) if row.run_key != run.key]
        write_results(results_csv, [*kept, *rows])


def finished_keys(results_csv: Path) -> set[tuple[str, str, float, int]]:
    """Runs that already have an ``ok`` result."""
    return {row.run_key for row in read_results(results_csv) if row.status == STATUS_OK}


def worker_environments(parallel: int, base: Mapping[str, str], runs_per_gpu: int = 1) -> list[dict[str, str]]:
    """One environment per worker; with several, each sees one GPU (of those already visible, if set).

    ``runs_per_gpu`` > 1 lets that many small runs share a GPU (one large GPU, many
    tiny fine-tunes): worker ``i`` gets GPU ``i // runs_per_gpu``. Parallel workers
    also get an equal share of the CPU threads (unless the caller set them): every
    process defaulting to all cores oversubscribes OpenMP, the suspected cause of
    detection steps taking ~10 s with 8 runs on one 16-core GPU machine (406 ms alone;
    sharing the GPU 8 ways accounts for 8x at most).
    """
    if parallel < 1:
        raise ValueError(f"--parallel must be at least 1, got {parallel}")
    if runs_per_gpu < 1:
        raise ValueError(f"--runs-per-gpu must be at least 1, got {runs_per_gpu}")
    if parallel == 1:
        return [dict(base)]
    needed = -(-parallel // runs_per_gpu)
    visible = [device for device in base.get("CUDA_VISIBLE_DEVICES", "").split(",") if device.strip()]
    devices = visible or [str(index) for index in range(needed)]
    if len(devices) < needed:
        raise ValueError(
            f"--parallel {parallel} at {runs_per_gpu} run(s) per GPU needs {needed} GPUs, "
            f"CUDA_VISIBLE_DEVICES lists {len(devices)}"
        )
    threads = {name: str(max(1, (os.cpu_count() or 1) // parallel)) for name in THREAD_VARIABLES if name not in base}
    return [{**base, **threads, "CUDA_VISIBLE_DEVICES": devices[index // runs_per_gpu]} for index in range(parallel)]


def run_sweep(
    spec: SweepSpec,
    parallel: int = 1,
    builder: CommandBuilder = build_command,
    console: Console | None = None,
    runs_per_gpu: int = 1,
) -> SweepSummary:
    """Run every grid point without an ``ok`` result, ``parallel`` at a time; record each as it ends."""
    console = console or Console()
    summary = SweepSummary()
    done = finished_keys(spec.results_csv)
    pending: list[Run] = []
    for run in expand_grid(spec):
        if run.key in done:
            summary.skipped.append(run.name)
        else:
            pending.append(run)
    environments: queue.Queue[dict[str, str]] = queue.Queue()
    for env in worker_environments(parallel, os.environ, runs_per_gpu):
        environments.put(env)
    running: set[str] = set()
    columns = (TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("", total=len(pending))

        def work(run: Run) -> tuple[list[ResultRow], str]:
            env = environments.get()
            running.add(run.name)
            progress.update(bar, description=", ".join(sorted(running)))
            try:
                return execute_run(spec, run, builder, env)
            except Exception as error:  # noqa: BLE001 - one broken run is recorded as failed, the others still count
                return _failed_rows(spec, run, f"failed: {type(error).__name__}: {error}", 0.0), repr(error)
            finally:
                running.discard(run.name)
                environments.put(env)

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = {pool.submit(work, run): run for run in pending}
            for future in as_completed(futures):
                run = futures[future]
                rows, tail = future.result()
                record_run(spec.results_csv, run, rows)  # the main thread is the only writer
                if rows[0].status == STATUS_OK:
                    summary.finished.append(run.name)
                else:
                    summary.failed.append((run.name, rows[0].status, tail))
                    console.print(f"[red]failed[/red] {run.name}: {rows[0].status}")
                progress.advance(bar)
        progress.update(bar, description="done")
    return summary


def print_summary(summary: SweepSummary, console: Console) -> None:
    """Counts, and the log tail of every failed run."""
    console.print(
        f"sweep: {len(summary.finished)} finished, {len(summary.skipped)} skipped (already in results.csv), "
        f"{len(summary.failed)} failed"
    )
    for name, status, tail in summary.failed:
        console.rule(f"[red]{name}")
        console.print(status, markup=False)
        console.print(tail, markup=False, highlight=False)


def report(spec: SweepSpec, console: Console) -> None:
    """Write results.md, results.png and per_class.md from the runs and print the table (if any run finished)."""
    if not any(row.status == STATUS_OK for row in read_results(spec.results_csv)):
        console.print(f"no finished run in {spec.results_csv}: no table or plot written")
        return
    table_path, plot_path = write_report(spec.results_csv)
    per_class_path = write_per_class(spec.results_csv.parent)
    console.print(table_path.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"results: {spec.results_csv}\ntable:   {table_path}\nplot:    {plot_path}\nper class: {per_class_path}")


def sweep_and_report(
    spec: SweepSpec, parallel: int, console: Console, builder: CommandBuilder = build_command, runs_per_gpu: int = 1
) -> int:
    """Run the sweep, print its summary, write the report; exit code 1 if any run failed."""
    summary = run_sweep(spec, parallel, builder, console, runs_per_gpu)
    print_summary(summary, console)
    report(spec, console)
    return 1 if summary.failed else 0


def dry_run(spec: SweepSpec, console: Console, builder: CommandBuilder = build_command) -> None:
    """Print the command of every run that would run (and which are already done)."""
    done = finished_keys(spec.results_csv)
    for run in expand_grid(spec):
        if run.key in done:
            console.print(f"# skip {run.name} (in {spec.results_csv})", markup=False)
            continue
        run_dir = run.run_dir(spec.out)
        resume_from = resumable_checkpoint(run_dir)[0] if spec.resume else None  # as execute_run resumes
        console.print(shlex.join(builder(spec, run, resume_from)), markup=False, highlight=False, soft_wrap=True)


def main(argv: list[str]) -> int:
    """``nsmae sweep FILE [--dry-run] [--parallel N] [--runs-per-gpu K] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="nsmae sweep", description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="sweep spec YAML (e.g. experiments/label_efficient.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once, one GPU each (default 1)")
    parser.add_argument("--runs-per-gpu", type=int, default=1, help="runs sharing one GPU (small models; default 1)")
    parser.add_argument("--out", type=Path, help="output folder (default: the spec's 'out')")
    args = parser.parse_args(argv)
    console = Console()
    spec = load_spec(args.spec)
    if args.out is not None:
        spec = SweepSpec(**{**spec.__dict__, "out": args.out})
    if args.dry_run:
        dry_run(spec, console)
        return 0
    return sweep_and_report(spec, args.parallel, console, runs_per_gpu=args.runs_per_gpu)
