"""``nsmae demo``: NS-MAE end to end on the embedded synthetic world.

Three steps, each skipped when a former demo in the same ``--out`` finished it:

1. write a synthetic nuScenes-format world (``nsmae_lightning.data.world``);
2. pretrain NS-MAE on its training frames (``nsmae fit`` with the pretrain config);
3. a small label-efficient sweep (``nsmae sweep`` machinery): detection and BEV
   segmentation from random init vs the NS-MAE checkpoint at a few label ratios,
   then the Table VII-shaped table (printed, ``results.md``) and ``results.png``.

Every number comes from these runs. The default profile finishes in about ten
minutes on two CPU cores; ``--quick`` is a smoke test (seconds of training per
run, numbers meaningless); ``--full`` is the GPU-sized version (a larger world,
the paper's 128x352 network, all four ratios and two seeds).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import nsmae_lightning
from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.checkpoint_file import newest_checkpoint, resumable_checkpoint
from nsmae_lightning.data.world import WorldConfig, write_nuscenes
from nsmae_lightning.sweep import (
    fit_command,
    log_tail,
    override_arguments,
    parse_spec,
    run_logged,
    sweep_and_report,
)

CONFIGS = Path(nsmae_lightning.__file__).resolve().parents[1] / "configs"
DONE_MARKER = ".done"
PROFILE_FILE = "demo_profile.txt"  # which profile's world, pretraining and runs the output folder holds


@dataclass(frozen=True)
class DemoProfile:
    """Sizes of one demo flavour.

    Attributes:
        world: the synthetic world to write.
        world_workers: processes casting its scenes.
        pretrain_config: pretraining config, relative to ``configs/``.
        pretrain_overrides: CLI overrides of the pretraining run (``{key: value}``).
        task_configs: task name -> fine-tuning config, relative to ``configs/``.
        finetune_overrides: CLI overrides of every fine-tuning run.
        task_overrides: task name -> extra overrides of its runs.
        ratios: label ratios of the sweep.
        seeds: training seeds of the sweep.
    """

    world: WorldConfig
    world_workers: int
    pretrain_config: str
    pretrain_overrides: dict[str, Any]
    task_configs: dict[str, str]
    finetune_overrides: dict[str, Any]
    ratios: tuple[float, ...]
    seeds: tuple[int, ...]
    task_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


TINY_TASKS = {"detection": "detection/tiny.yaml", "segmentation": "segmentation/tiny.yaml"}
CPU_QUIET = {"trainer.accelerator": "cpu", "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}

PROFILES: dict[str, DemoProfile] = {
    # Smoke test: the tiny world, two training steps per run; exercises every step, proves nothing.
    "quick": DemoProfile(
        world=WorldConfig.tiny(seed=0),
        world_workers=1,
        pretrain_config="pretrain/tiny.yaml",
        pretrain_overrides={**CPU_QUIET, "trainer.max_epochs": 1, "trainer.limit_train_batches": 2,
                            "trainer.limit_val_batches": 1},
        task_configs=TINY_TASKS,
        finetune_overrides={**CPU_QUIET, "trainer.max_epochs": 1, "trainer.limit_train_batches": 2},
        ratios=(0.5, 1.0),
        seeds=(0,),
    ),
    # CPU demo: 10 scenes x 10 keyframes (80 training, 20 validation frames) and the tiny networks.
    "default": DemoProfile(
        world=WorldConfig(seed=0, scenes=10, keyframes=10, sweeps=1, image_height=112, image_width=200,
                          lidar_azimuth_resolution=0.6, val_fraction=0.2),
        world_workers=2,
        pretrain_config="pretrain/tiny.yaml",
        pretrain_overrides={**CPU_QUIET, "trainer.max_epochs": 8, "trainer.check_val_every_n_epoch": 8,
                            "trainer.limit_val_batches": 2},
        task_configs=TINY_TASKS,
        finetune_overrides={**CPU_QUIET, "trainer.max_epochs": 4, "trainer.check_val_every_n_epoch": 4},
        ratios=(0.25, 1.0),
        seeds=(0,),
    ),
    # One GPU: a 40-scene world at 450x800, the paper's 128x352 / 1-sweep network, bf16.
    "full": DemoProfile(
        world=WorldConfig(seed=0, scenes=40, keyframes=10, sweeps=1),
        world_workers=max(1, min(16, os.cpu_count() or 1)),
        pretrain_config="pretrain/nsmae_bevfusion_128x352.yaml",
        pretrain_overrides={"trainer.devices": 1, "trainer.strategy": "auto", "trainer.precision": "bf16-mixed",
                            "trainer.max_epochs": 20, "trainer.enable_progress_bar": False,
                            "data.init_args.batch_size": 4, "data.init_args.num_workers": 8},
        task_configs={"detection": "detection/bevfusion_128x352.yaml",
                      "segmentation": "segmentation/bevfusion_256x704.yaml"},
        finetune_overrides={"trainer.devices": 1, "trainer.strategy": "auto", "trainer.precision": "bf16-mixed",
                            "trainer.max_epochs": 10, "trainer.enable_progress_bar": False,
                            "data.init_args.batch_size": 4, "data.init_args.num_workers": 8},
        # Same input as the 128x352 pretraining (image size and sweeps live in the data module).
        task_overrides={"segmentation": {"data.init_args.image_size": [128, 352], "data.init_args.sweeps": 1}},
        ratios=(0.01, 0.05, 0.1, 1.0),
        seeds=(0, 1),
    ),
}


def config_path(relative: str) -> Path:
    """A config shipped in the repository's ``configs/`` (the demo needs the source checkout)."""
    path = CONFIGS / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config not found; run the demo from an editable install of the repository")
    return path


def make_world(root: Path, profile: DemoProfile, console: Console) -> Path:
    """Write the profile's world into ``root`` (unless a former demo finished it)."""
    if (root / DONE_MARKER).exists():
        console.print(f"world: {root} (already written)")
        return root
    cfg = profile.world
    total = cfg.scenes * cfg.keyframes  # write_nuscenes reports every keyframe
    columns = (TextColumn("[bold]world"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("", total=total)
        write_nuscenes(root, cfg, on_frame=lambda: progress.advance(bar), workers=profile.world_workers)
    (root / DONE_MARKER).write_text("")
    console.print(
        f"world: {root} ({cfg.scenes} scenes x {cfg.keyframes} keyframes, {cfg.train_scenes} train / "
        f"{cfg.val_scenes} val scenes)"
    )
    return root


def pretrain(world: Path, run_dir: Path, profile: DemoProfile, console: Console) -> bool:
    """NS-MAE pretraining on the world (resumed from its newest checkpoint if a former demo was killed)."""
    if (run_dir / DONE_MARKER).exists():
        console.print(f"pretrain: {run_dir} (already trained)")
        return True
    overrides = {"data.init_args.dataroot": str(world), **profile.pretrain_overrides}
    arguments = override_arguments(overrides, f"pretrain overrides of {profile.pretrain_config}")
    command = fit_command(config_path(profile.pretrain_config), run_dir, arguments, resumable_checkpoint(run_dir)[0])
    start = time.monotonic()
    with console.status(f"pretraining NS-MAE ({profile.pretrain_config}), log: {run_dir / 'run.log'}"):
        returncode = run_logged(command, run_dir / "run.log", os.environ)
    if returncode != 0 or newest_checkpoint(run_dir) is None:
        console.print(log_tail(run_dir / "run.log"), markup=False, highlight=False)
        console.print(f"[red]pretraining failed (rc={returncode}); log: {run_dir / 'run.log'}")
        return False
    (run_dir / DONE_MARKER).write_text("")
    console.print(f"pretrain: {newest_checkpoint(run_dir)} ({time.monotonic() - start:.0f} s)", soft_wrap=True)
    return True


def sweep_spec_raw(out: Path, world: Path, pretrain_dir: Path, profile: DemoProfile) -> dict[str, Any]:
    """The demo's sweep, as a spec mapping (the same format as ``experiments/*.yaml``)."""
    return {
        "out": str(out),
        "tasks": {
            name: {"config": str(config_path(config)), "overrides": profile.task_overrides.get(name, {})}
            for name, config in profile.task_configs.items()
        },
        "inits": {"random": None, "nsmae": str(pretrain_dir)},
        "ratios": list(profile.ratios),
        "seeds": list(profile.seeds),
        "overrides": {"data.init_args.dataroot": str(world), **profile.finetune_overrides},
    }


def claim_output(out: Path, profile_name: str) -> None:
    """Mark ``out`` as this profile's, or refuse it if another profile's demo wrote it: its finished world,
    pretraining and runs would be reused (a ``--quick`` smoke test's 2-step runs reported as the default
    demo's results)."""
    marker = out / PROFILE_FILE
    if marker.is_file():
        owner = marker.read_text().strip()
        if owner != profile_name:
            raise ValueError(f"{out}: holds the '{owner}' demo's world and runs ({marker}); give the "
                             f"'{profile_name}' demo another --out, or delete the folder")
        return
    atomic_write_text(marker, profile_name + "\n")


def run_demo(out: Path, profile_name: str, console: Console) -> int:
    """World, pretraining, sweep and report under ``out`` (claimed by `claim_output`); exit code 0 when every
    run finished."""
    profile = PROFILES[profile_name]
    start = time.monotonic()
    console.rule(f"nsmae demo ({profile_name}) -> {out}")
    world = make_world(out / "world", profile, console)
    pretrain_dir = out / "pretrain"
    if not pretrain(world, pretrain_dir, profile, console):
        return 1
    spec = parse_spec(sweep_spec_raw(out / "sweep", world, pretrain_dir, profile), f"nsmae demo --{profile_name}")
    code = sweep_and_report(spec, parallel=1, console=console)
    console.print(f"pretraining run: {pretrain_dir}\nfine-tuning runs: {spec.out}/<task>/<init>/r<ratio>/s<seed>")
    console.print(f"demo took {time.monotonic() - start:.0f} s")
    return code


def main(argv: list[str]) -> int:
    """``nsmae demo [--out DIR] [--quick | --full]``."""
    parser = argparse.ArgumentParser(prog="nsmae demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smoke test: tiny world, two steps per run")
    size.add_argument("--full", action="store_true", help="GPU-sized: bigger world, paper network, 4 ratios x 2 seeds")
    args = parser.parse_args(argv)
    profile_name = "quick" if args.quick else "full" if args.full else "default"
    try:
        claim_output(args.out, profile_name)
    except ValueError as error:
        Console(stderr=True).print(f"[red]nsmae demo:[/red] {error}", highlight=False, soft_wrap=True)
        return 2
    return run_demo(args.out, profile_name, Console())
