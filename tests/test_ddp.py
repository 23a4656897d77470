"""DDP on two CPU processes (gloo) through the real CLI, against one process on the same data.

The world has 3 validation frames, so the evaluation sampler pads rank 1's share
with a copy of frame 0: metrics must count it once. Both sides run one intra-op
thread (see the ``one_thread`` fixture). DDP runs are subprocesses with a timeout
whose whole process group is killed on a hang, so a deadlock fails the test instead
of blocking CI.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nsmae_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
LABELLED_LINE = re.compile(r"\[rank (\d+)\] labelled subset: (\d+) of (\d+) training frames .*? sha256 ([0-9a-f]{64})")
# What differs between the runs on purpose: the loss is a batch mean over the padded shares.
NOT_COMPARED = {"val/loss"}


@pytest.fixture(scope="module")
def odd_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny world with 3 keyframes per scene: 3 training and 3 validation frames."""
    from nsmae_lightning.data.world import WorldConfig, write_nuscenes

    root = tmp_path_factory.mktemp("odd_world")
    write_nuscenes(root, dataclasses.replace(WorldConfig.tiny(seed=0), keyframes=3))
    return root


def nsmae(subcommand: str, config: str, world: Path, out: Path, processes: int, *extra: str) -> str:
    """``nsmae <subcommand>`` on ``processes`` CPU ranks; the output of a multi-process run.

    One process runs here, through ``cli.main`` (no interpreter start-up: imports dominate
    these tiny runs; the tests hold it to one thread); several run as
    ``python -m nsmae_lightning`` with Lightning's launcher starting the other ranks.
    """
    args = [
        subcommand, "--config", str(REPO / "configs" / config), f"--data.init_args.dataroot={world}",
        f"--trainer.default_root_dir={out}", f"--trainer.logger.init_args.save_dir={out}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--data.init_args.batch_size=1",
        *extra,
    ]  # fmt: skip
    if processes == 1:
        main(args)
        return ""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "nsmae_lightning", *args, "--trainer.strategy=ddp", f"--trainer.devices={processes}"]
    # A session of its own, so a hang can be ended for every rank Lightning started.
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{subcommand} on {processes} processes hung for {TIMEOUT_S} s:\n{output[-4000:]}")
    if process.returncode != 0:
        pytest.fail(f"{subcommand} on {processes} processes failed ({process.returncode}):\n{output[-4000:]}")
    return output


def logged_validation(out: Path) -> dict[str, float]:
    """Every ``val/*`` value the run's CSV logger wrote (one validation epoch)."""
    (metrics_file,) = out.glob("version_*/metrics.csv")
    rows = list(csv.DictReader(metrics_file.read_text().splitlines()))
    return {key: float(value) for row in rows for key, value in row.items() if key.startswith("val/") and value}


def evaluated_tokens(out: Path) -> list[str]:
    """Sample tokens of the devkit results file the run wrote (rank 0 only)."""
    (results,) = out.glob("version_*/nuscenes_eval/*/results_nusc.json")
    return sorted(json.loads(results.read_text())["results"])


def assert_same_scores(two_ranks: dict[str, float], one_process: dict[str, float], required: set[str]) -> None:
    """Every validation value but the loss is bit-identical, and the ``required`` ones are there."""
    compared = set(one_process) - NOT_COMPARED
    assert required <= compared, sorted(compared)
    assert {key: two_ranks.get(key) for key in sorted(compared)} == {key: one_process[key] for key in sorted(compared)}


@pytest.mark.usefixtures("one_thread")
def test_detection_fit_on_two_ranks_scores_like_one_process(odd_world: Path, tmp_path: Path) -> None:
    """Fit on 2 ranks (its validation scores the epoch), then validate its checkpoint on 1 process."""
    fit_out, single_out = tmp_path / "fit", tmp_path / "validate_1"
    output = nsmae(
        "fit", "detection/tiny.yaml", odd_world, fit_out, 2, "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1", "--trainer.num_sanity_val_steps=0", "--data.init_args.label_ratio=0.5",
    )  # fmt: skip
    # Same labelled subset on every rank, computed without communication.
    subsets = {int(rank): (int(chosen), int(total), sha) for rank, chosen, total, sha in LABELLED_LINE.findall(output)}
    assert sorted(subsets) == [0, 1] and subsets[0] == subsets[1], [line for line in output.splitlines() if "rank" in line]
    chosen, total, sha = subsets[0]
    assert (chosen, total) == (2, 3)
    # Rank 0 alone writes: one run folder, one manifest (with that subset), one devkit results file.
    assert [path.name for path in fit_out.iterdir()] == ["version_0"]
    assert json.loads((fit_out / "version_0" / "label_split.json").read_text())["sha256"] == sha
    (checkpoint,) = fit_out.glob("version_0/checkpoints/*.ckpt")

    nsmae("validate", "detection/tiny.yaml", odd_world, single_out, 1, f"--ckpt_path={checkpoint}")
    two_ranks, one_process = logged_validation(fit_out), logged_validation(single_out)
    assert one_process["val/num_samples"] == two_ranks["val/num_samples"] == 3.0  # the padded copy counted once
    assert evaluated_tokens(fit_out) == evaluated_tokens(single_out) and len(evaluated_tokens(fit_out)) == 3
    assert_same_scores(two_ranks, one_process, {"val/mAP", "val/NDS", "val/AP_car", "val/mATE"})


@pytest.mark.usefixtures("one_thread")
def test_segmentation_validate_on_two_ranks_scores_like_one_process(odd_world: Path, tmp_path: Path) -> None:
    """Standalone ``validate`` under DDP (seeded fresh model): IoU counts summed over ranks, padding left out.

    Scored on the training scene: the validation scene's three map masks are identical,
    so no count could tell a missing or doubled frame there.
    """
    two_out, single_out = tmp_path / "validate_2", tmp_path / "validate_1"
    nsmae("validate", "segmentation/tiny.yaml", odd_world, two_out, 2, "--data.init_args.val_split=train")
    nsmae("validate", "segmentation/tiny.yaml", odd_world, single_out, 1, "--data.init_args.val_split=train")
    two_ranks, one_process = logged_validation(two_out), logged_validation(single_out)
    assert_same_scores(two_ranks, one_process, {"val/mIoU", "val/iou/drivable_area", "val/iou/divider"})
    assert one_process["val/iou/drivable_area"] > 0.0
