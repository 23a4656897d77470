"""``nsmae sweep``: grid, commands, resumability, failures, atomic results, table and plot.

Runs use a fake task: a few-line Python script, put in place of the CLI through
the injectable command builder, that writes a CSVLogger-like metrics.csv (or
fails), so no model is trained here.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from nsmae_lightning import atomic
from nsmae_lightning.sweep import (
    Run,
    SweepSpec,
    build_command,
    dry_run,
    expand_grid,
    load_spec,
    main,
    parse_spec,
    read_final_metrics,
    run_sweep,
    worker_environments,
)
from nsmae_lightning.sweep_report import ResultRow, markdown_table, read_results, write_report, write_results

FAKE_TASK = """
import os, sys
from pathlib import Path
run_dir, ratio, seed, init, resume_from, fail = sys.argv[1:]
if fail == "1":
    print("loading data")
    print("RuntimeError: simulated failure")
    sys.exit(3)
version = Path(run_dir) / ("version_1" if resume_from != "None" else "version_0")
version.mkdir(parents=True, exist_ok=True)
(Path(run_dir) / "resumed_from.txt").write_text(resume_from)
(Path(run_dir) / "gpu.txt").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
final = float(ratio) + 0.01 * int(seed) + (0.1 if init == "nsmae" else 0.0)
rows = ["epoch,step,train_loss,val/mAP,val/NDS", "0,0,1.5,,", f"0,0,,{final - 0.05},{final - 0.04}",
        "1,1,1.2,,", f"1,1,,{final},{final + 0.01}", "1,1,0.9,,"]
(version / "metrics.csv").write_text("\\n".join(rows) + "\\n")
"""


def make_spec(tmp_path: Path, **changes: object) -> SweepSpec:
    """A 1-task x 2-init x 2-ratio x 2-seed spec writing under tmp_path/out."""
    raw = {
        "out": str(tmp_path / "out"),
        "tasks": {"detection": {"config": "configs/detection/tiny.yaml", "overrides": {"trainer.max_epochs": 1}}},
        "inits": {"random": None, "nsmae": str(tmp_path / "pretrain.ckpt")},
        "ratios": [0.25, 1.0],
        "seeds": [0, 1],
        "overrides": {"data.init_args.dataroot": "data/w", "trainer.enable_progress_bar": False},
    }
    raw.update(changes)
    return parse_spec(raw, "test.yaml")


def fake_builder(tmp_path: Path, failing: set[str] = frozenset()):
    """A command builder running FAKE_TASK; runs named in ``failing`` exit with code 3."""
    script = tmp_path / "fake_task.py"
    script.write_text(FAKE_TASK)
    calls: list[tuple[str, Path | None]] = []

    def builder(spec: SweepSpec, run: Run, resume_from: Path | None) -> list[str]:
        calls.append((run.name, resume_from))
        fail = "1" if run.name in failing else "0"
        return [sys.executable, str(script), str(run.run_dir(spec.out)), str(run.ratio), str(run.seed), run.init,
                str(resume_from), fail]

    builder.calls = calls  # type: ignore[attr-defined]
    return builder


def quiet() -> Console:
    """A console writing into a string (read back with ``.file.getvalue()``)."""
    return Console(file=io.StringIO(), width=200)


def test_grid_expansion_order_and_names(tmp_path: Path) -> None:
    runs = expand_grid(make_spec(tmp_path))
    assert [run.name for run in runs] == [
        "detection/random/r0.25/s0", "detection/random/r1/s0", "detection/nsmae/r0.25/s0", "detection/nsmae/r1/s0",
        "detection/random/r0.25/s1", "detection/random/r1/s1", "detection/nsmae/r0.25/s1", "detection/nsmae/r1/s1",
    ]
    assert runs[0].checkpoint is None and runs[2].checkpoint == tmp_path / "pretrain.ckpt"
    assert runs[0].task.metrics == ("val/mAP", "val/NDS")
    assert runs[0].run_dir(tmp_path) == tmp_path / "detection" / "random" / "r0.25" / "s0"


def test_build_command_passes_grid_point_and_overrides(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, split_seed=7)
    nsmae_run = expand_grid(spec)[6]
    command = build_command(spec, nsmae_run, resume_from=tmp_path / "last.ckpt")
    run_dir = tmp_path / "out" / "detection" / "nsmae" / "r0.25" / "s1"
    assert command == [
        sys.executable, "-m", "nsmae_lightning", "fit", "--config", "configs/detection/tiny.yaml",
        f"--model.init_args.pretrained={tmp_path / 'pretrain.ckpt'}",
        "--data.init_args.label_ratio=0.25", "--data.init_args.split_seed=7", "--seed_everything=1",
        "--data.init_args.dataroot=data/w", "--trainer.enable_progress_bar=false", "--trainer.max_epochs=1",
        f"--trainer.default_root_dir={run_dir}", f"--trainer.logger.init_args.save_dir={run_dir}",
        f"--ckpt_path={tmp_path / 'last.ckpt'}",
    ]
    assert "--model.init_args.pretrained=null" in build_command(spec, expand_grid(spec)[0], None)


def test_spec_errors_name_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"test.yaml: missing or empty 'seeds'"):
        make_spec(tmp_path, seeds=[])
    with pytest.raises(ValueError, match=r"ratios must lie in \(0, 1\], got \[1.5\]"):
        make_spec(tmp_path, ratios=[0.1, 1.5])
    with pytest.raises(ValueError, match="tasks.depth: no 'metrics'"):
        make_spec(tmp_path, tasks={"depth": {"config": "x.yaml"}})
    with pytest.raises(ValueError, match=r"unknown keys \['ratio'\]"):
        make_spec(tmp_path, ratio=[0.1])
    with pytest.raises(ValueError, match=r"test.yaml: 'ratios' must be a list of numbers, e.g. \[0, 1\], got 0.1"):
        make_spec(tmp_path, ratios=0.1)
    with pytest.raises(ValueError, match=r"'seeds' must be a list of numbers.*got '01'"):
        make_spec(tmp_path, seeds="01")  # not (0, 1)
    with pytest.raises(ValueError, match=r"'seeds' must hold whole numbers, got '0,1'"):
        make_spec(tmp_path, seeds=["0,1"])
    with pytest.raises(ValueError, match=r"'seeds' must hold whole numbers, got 1.5"):
        make_spec(tmp_path, seeds=[1.5])
    with pytest.raises(ValueError, match=r"'split_seed' must hold whole numbers, got \[1\]"):
        make_spec(tmp_path, split_seed=[1])
    assert make_spec(tmp_path, seeds=[0, 2.0], split_seed=3).seeds == (0, 2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    with pytest.raises(ValueError, match="bad.yaml: a sweep spec is a mapping"):
        load_spec(bad)


def test_sweep_records_every_run_and_skips_finished(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    builder = fake_builder(tmp_path)
    summary = run_sweep(spec, builder=builder, console=quiet())
    assert len(summary.finished) == 8 and not summary.failed and not summary.skipped
    rows = read_results(spec.results_csv)
    assert len(rows) == 16 and all(row.status == "ok" for row in rows)
    values = {(row.init, row.ratio, row.seed, row.metric): row.value for row in rows}
    assert values[("nsmae", 0.25, 1, "val/mAP")] == pytest.approx(0.25 + 0.01 + 0.1)
    assert values[("random", 1.0, 0, "val/NDS")] == pytest.approx(1.01)
    again = run_sweep(spec, builder=builder, console=quiet())
    assert len(again.skipped) == 8 and not again.finished and len(builder.calls) == 8
    assert read_results(spec.results_csv) == rows


def test_killed_run_reruns_from_checkpoint_or_from_scratch(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, ratios=[1.0], seeds=[0])
    builder = fake_builder(tmp_path)
    run_sweep(spec, builder=builder, console=quiet())
    # Kill simulation: drop the results of both runs; one left a checkpoint, the other stale files only.
    write_results(spec.results_csv, [])
    random_dir, nsmae_dir = (run.run_dir(spec.out) for run in expand_grid(spec))
    checkpoint = random_dir / "version_0" / "checkpoints" / "epoch=0-step=1.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, checkpoint)
    cut_short = checkpoint.with_name("last.ckpt")  # newer, but the kill cut it short: passed over
    torch.save({"state_dict": {"w": torch.zeros(64)}}, cut_short)
    cut_short.write_bytes(cut_short.read_bytes()[:100])
    (nsmae_dir / "version_0" / "metrics.csv").write_text("epoch,step,val/mAP,val/NDS\n0,0,0.99,0.99\n")
    summary = run_sweep(spec, builder=builder, console=quiet())
    assert sorted(summary.finished) == ["detection/nsmae/r1/s0", "detection/random/r1/s0"]
    assert builder.calls[-2:] == [("detection/random/r1/s0", checkpoint), ("detection/nsmae/r1/s0", None)]
    assert f"not resuming from {cut_short}: not a whole torch checkpoint" in (random_dir / "run.log").read_text()
    values = {(row.init, row.metric): row.value for row in read_results(spec.results_csv)}
    assert values[("nsmae", "val/mAP")] == pytest.approx(1.1)  # the stale 0.99 was cleared with the folder
    assert values[("random", "val/mAP")] == pytest.approx(1.0)  # read from version_1, the resumed run


def test_failed_run_is_recorded_and_sweep_goes_on(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, seeds=[0])
    builder = fake_builder(tmp_path, failing={"detection/random/r0.25/s0"})
    console = quiet()
    summary = run_sweep(spec, builder=builder, console=console)
    assert len(summary.finished) == 3
    [(name, status, tail)] = summary.failed
    assert name == "detection/random/r0.25/s0"
    assert status == "failed rc=3: RuntimeError: simulated failure"
    assert "loading data" in tail and "$ " in tail
    failed_rows = [row for row in read_results(spec.results_csv) if row.status != "ok"]
    assert [(row.metric, row.value, row.status) for row in failed_rows] == [
        ("val/mAP", None, status), ("val/NDS", None, status)
    ]
    # A later sweep retries the failure only, and its rows replace the failed ones.
    retry = run_sweep(spec, builder=fake_builder(tmp_path), console=quiet())
    assert retry.finished == ["detection/random/r0.25/s0"] and len(retry.skipped) == 3
    rows = read_results(spec.results_csv)
    assert len(rows) == 8 and all(row.status == "ok" for row in rows)


def test_an_unreadable_metrics_file_fails_its_run_only_and_names_the_file(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, seeds=[0])
    good = fake_builder(tmp_path)
    broken = "detection/nsmae/r1/s0"
    corrupt = tmp_path / "corrupt.py"
    corrupt.write_text("import sys, pathlib\n"
                       "version = pathlib.Path(sys.argv[1]) / 'version_0'\n"
                       "version.mkdir(parents=True, exist_ok=True)\n"
                       "(version / 'metrics.csv').write_text('step,val/mAP,val/NDS\\n0,abc,0.5\\n')\n")

    def builder(spec: SweepSpec, run: Run, resume_from: Path | None) -> list[str]:
        if run.name == broken:
            return [sys.executable, str(corrupt), str(run.run_dir(spec.out))]
        return good(spec, run, resume_from)

    summary = run_sweep(spec, builder=builder, console=quiet())
    assert len(summary.finished) == 3  # the other runs are recorded
    [(name, status, _)] = summary.failed
    assert name == broken
    assert "metrics.csv: line 2: val/mAP is 'abc', not a number" in status
    assert len([row for row in read_results(spec.results_csv) if row.status == "ok"]) == 6


def test_a_crashing_run_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, seeds=[0])
    good = fake_builder(tmp_path)

    def builder(spec: SweepSpec, run: Run, resume_from: Path | None) -> list[str]:
        if run.name == "detection/random/r1/s0":
            raise KeyError("an unexpected bug")
        return good(spec, run, resume_from)

    summary = run_sweep(spec, builder=builder, console=quiet())
    assert len(summary.finished) == 3
    [(_, status, _)] = summary.failed
    assert status == "failed: KeyError: 'an unexpected bug'"


def test_missing_metric_counts_as_failure(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, ratios=[1.0], seeds=[0], inits={"random": None},
                     tasks={"segmentation": {"config": "configs/segmentation/tiny.yaml"}})
    summary = run_sweep(spec, builder=fake_builder(tmp_path), console=quiet())
    [(_, status, _)] = summary.failed
    assert status.startswith("failed: val/mIoU not in any metrics.csv under")


def test_read_final_metrics_takes_last_row_of_newest_file(tmp_path: Path) -> None:
    old = tmp_path / "version_0" / "metrics.csv"
    new = tmp_path / "version_1" / "metrics.csv"
    for path in (old, new):
        path.parent.mkdir()
    old.write_text("step,val/mAP,val/NDS\n0,0.1,0.2\n1,0.3,0.4\n2,,\n")
    new.write_text("step,val/mAP\n3,0.5\n4,0.6\n")
    os.utime(old, (1, 1))
    assert read_final_metrics(tmp_path, ["val/mAP", "val/NDS", "val/mIoU"]) == {"val/mAP": 0.6, "val/NDS": 0.4}


def test_parallel_workers_each_get_one_gpu(tmp_path: Path) -> None:
    assert [env["CUDA_VISIBLE_DEVICES"] for env in worker_environments(2, {"CUDA_VISIBLE_DEVICES": "4,5,6"})] == ["4", "5"]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in worker_environments(2, {})] == ["0", "1"]
    assert "CUDA_VISIBLE_DEVICES" not in worker_environments(1, {})[0]
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES lists 1"):
        worker_environments(2, {"CUDA_VISIBLE_DEVICES": "3"})
    shared = worker_environments(5, {"CUDA_VISIBLE_DEVICES": "3,7"}, runs_per_gpu=3)
    assert [env["CUDA_VISIBLE_DEVICES"] for env in shared] == ["3", "3", "3", "7", "7"]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in worker_environments(4, {}, runs_per_gpu=4)] == ["0"] * 4
    cpus = os.cpu_count() or 1
    assert {env["OMP_NUM_THREADS"] for env in shared} == {str(max(1, cpus // 5))}  # no OpenMP oversubscription
    assert worker_environments(2, {"OMP_NUM_THREADS": "7"})[1]["OMP_NUM_THREADS"] == "7"  # the caller's choice wins
    assert "OMP_NUM_THREADS" not in worker_environments(1, {})[0]
    with pytest.raises(ValueError, match="needs 2 GPUs"):
        worker_environments(5, {"CUDA_VISIBLE_DEVICES": "0"}, runs_per_gpu=4)
    spec = make_spec(tmp_path, seeds=[0])
    summary = run_sweep(spec, parallel=2, builder=fake_builder(tmp_path), console=quiet())
    assert len(summary.finished) == 4
    gpus = sorted((run.run_dir(spec.out) / "gpu.txt").read_text() for run in expand_grid(spec))
    assert set(gpus) <= {"0", "1"} and len(read_results(spec.results_csv)) == 8


def test_results_survive_a_death_mid_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.csv"
    first = [ResultRow("detection", "random", 0.01, 0, "val/mAP", 0.25, "runs/a", 12.0, "ok")]
    write_results(path, first)
    before = path.read_bytes()

    def die(source: str, target: str) -> None:
        raise KeyboardInterrupt("killed between the temp write and the rename")

    monkeypatch.setattr(atomic.os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        write_results(path, [*first, ResultRow("detection", "nsmae", 0.01, 0, "val/mAP", 0.5, "runs/b", 3.0, "ok")])
    assert path.read_bytes() == before and read_results(path) == first
    monkeypatch.undo()
    assert not list(tmp_path.glob(".results.csv.*.tmp"))  # the interrupted write cleaned up its temporary


def test_results_round_trip_exact_floats(tmp_path: Path) -> None:
    rows = [ResultRow("segmentation", "nsmae", 0.05, 1, "val/mIoU", 0.1 + 0.2, "r", 1.25, "ok"),
            ResultRow("segmentation", "random", 1.0, 0, "val/mIoU", None, "r", 0.0, "failed rc=1: x, \"y\"")]
    write_results(tmp_path / "results.csv", rows)
    assert read_results(tmp_path / "results.csv")[0].value == 0.1 + 0.2
    assert read_results(tmp_path / "results.csv")[1] == ResultRow(*rows[1].__dict__.values())
    (tmp_path / "bad.csv").write_text("task,value\n")
    with pytest.raises(ValueError, match="bad.csv: header"):
        read_results(tmp_path / "bad.csv")


def hand_built_rows() -> list[ResultRow]:
    """mAP over 2 seeds at 1% and 100% for random and nsmae; one nsmae seed at 100% failed."""
    def row(init: str, ratio: float, seed: int, value: float | None, status: str = "ok") -> ResultRow:
        return ResultRow("detection", init, ratio, seed, "val/mAP", value, "r", 1.0, status)

    return [
        row("random", 0.01, 0, 0.20), row("random", 0.01, 1, 0.30),
        row("random", 1.0, 0, 0.60), row("random", 1.0, 1, 0.62),
        row("nsmae", 0.01, 0, 0.25), row("nsmae", 0.01, 1, 0.35),
        row("nsmae", 1.0, 0, 0.64), row("nsmae", 1.0, 1, None, "failed rc=1: boom"),
        ResultRow("segmentation", "random", 0.01, 0, "val/mIoU", 0.4, "r", 1.0, "ok"),
    ]


def test_markdown_table_mean_std_count() -> None:
    assert markdown_table(hand_built_rows()).splitlines() == [
        "| Metric | Init | 1% | 100% |",
        "|---|---|---:|---:|",
        "| val/mAP | random | 25.00 ± 7.07 (2) | 61.00 ± 1.41 (2) |",
        "| val/mAP | nsmae | 30.00 ± 7.07 (2) | 64.00 (1) |",
        "| val/mIoU | random | 40.00 (1) | - |",
        "| val/mIoU | nsmae | - | - |",
        "",
        "Values x100; cells are mean ± sample std (number of seeds) of the final validation metric.",
    ]
    with pytest.raises(ValueError, match="no finished run"):
        markdown_table(hand_built_rows()[7:8])


def test_report_files_written_next_to_results(tmp_path: Path) -> None:
    write_results(tmp_path / "results.csv", hand_built_rows())
    table, plot = write_report(tmp_path / "results.csv")
    assert table == tmp_path / "results.md" and "| val/mAP | nsmae | 30.00 ± 7.07 (2) | 64.00 (1) |" in table.read_text()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*.tmp"))


def test_dry_run_prints_commands_and_skips_done(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, seeds=[0])
    write_results(spec.results_csv, [ResultRow("detection", "random", 0.25, 0, "val/mAP", 0.3, "r", 1.0, "ok")])
    console = quiet()
    dry_run(spec, console)
    lines = console.file.getvalue().splitlines()
    assert lines[0] == f"# skip detection/random/r0.25/s0 (in {spec.results_csv})"
    assert len(lines) == 4 and all("-m nsmae_lightning fit --config configs/detection/tiny.yaml" in line for line in lines[1:])
    assert "--data.init_args.label_ratio=1.0" in lines[1] and not (spec.out / "detection").exists()


def test_main_dry_run_from_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_file = tmp_path / "grid.yaml"
    spec_file.write_text(
        "out: runs/x\ntasks:\n  segmentation: {config: configs/segmentation/tiny.yaml}\n"
        "inits: {random: null}\nratios: [0.5]\nseeds: [3]\n"
    )
    assert main([str(spec_file), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "--seed_everything=3" in out and f"--trainer.default_root_dir={tmp_path / 'o'}/segmentation/random/r0.5/s3" in out


def test_repo_sweep_spec_is_valid() -> None:
    spec = load_spec(Path(__file__).resolve().parents[1] / "experiments" / "label_efficient.yaml")
    assert spec.ratios == (0.01, 0.05, 0.1, 1.0) and len(spec.seeds) >= 2
    assert [task.name for task in spec.tasks] == ["detection", "segmentation"] and None in spec.inits.values()


def test_init_folder_resolves_to_its_checkpoint_or_fails_the_run(tmp_path: Path) -> None:
    pretrain_dir = tmp_path / "pretrain"
    spec = make_spec(tmp_path, inits={"nsmae": str(pretrain_dir)}, ratios=[1.0], seeds=[0])
    [run] = expand_grid(spec)
    pretrain_dir.mkdir()
    summary = run_sweep(spec, console=quiet())  # the real builder: no checkpoint yet, so no subprocess either
    [(_, status, _)] = summary.failed
    assert status == f"failed: {pretrain_dir}: no *.ckpt under this init folder"
    older, last = pretrain_dir / "version_0" / "epoch=3.ckpt", pretrain_dir / "version_0" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"")
    older.write_bytes(b"")  # newer file, but last.ckpt wins
    assert f"--model.init_args.pretrained={last}" in build_command(spec, run, None)


@pytest.mark.parametrize(("profile_name", "runs"), [("quick", 8), ("default", 8), ("full", 32)])
def test_demo_profiles_make_valid_sweeps(profile_name: str, runs: int, tmp_path: Path) -> None:
    from nsmae_lightning.demo import PROFILES, config_path, sweep_spec_raw

    profile = PROFILES[profile_name]
    assert config_path(profile.pretrain_config).is_file()
    spec = parse_spec(sweep_spec_raw(tmp_path / "sweep", tmp_path / "world", tmp_path / "pretrain", profile), "demo")
    grid = expand_grid(spec)
    assert len(grid) == runs and {run.init for run in grid} == {"random", "nsmae"}
    assert [task.name for task in spec.tasks] == ["detection", "segmentation"] and all(t.config.is_file() for t in spec.tasks)
    (tmp_path / "pretrain" / "last.ckpt").parent.mkdir()
    (tmp_path / "pretrain" / "last.ckpt").write_bytes(b"")
    command = build_command(spec, grid[-1], None)
    assert f"--model.init_args.pretrained={tmp_path / 'pretrain' / 'last.ckpt'}" in command
    assert f"--data.init_args.dataroot={tmp_path / 'world'}" in command
    if profile_name == "full":
        assert "--data.init_args.image_size=[128, 352]" in command  # segmentation sees the pretraining's input size


def test_demo_config_path_names_missing_file() -> None:
    from nsmae_lightning.demo import config_path

    with pytest.raises(FileNotFoundError, match="nope/x.yaml: config not found"):
        config_path("nope/x.yaml")


def test_demo_refuses_an_output_folder_of_another_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nsmae_lightning.demo import PROFILE_FILE, claim_output
    from nsmae_lightning.demo import main as demo_main

    out = tmp_path / "demo_out"
    claim_output(out, "quick")
    claim_output(out, "quick")  # the same profile resumes its own folder
    assert (out / PROFILE_FILE).read_text() == "quick\n"
    with pytest.raises(ValueError, match=r"demo_out: holds the 'quick' demo's world and runs"):
        claim_output(out, "default")
    assert demo_main(["--out", str(out)]) == 2  # nothing run, the reason printed
    assert "give the 'default' demo another --out" in capsys.readouterr().err


def test_cli_refuses_a_cut_short_ckpt_path_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nsmae_lightning.checkpoint_file import checkpoint_problem, ckpt_path_argument
    from nsmae_lightning.cli import main as cli_main

    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(8)}}, whole)
    assert checkpoint_problem(whole) is None
    broken = tmp_path / "epoch=3.ckpt"
    broken.write_bytes(whole.read_bytes()[:-30])
    assert "not a whole torch checkpoint" in str(checkpoint_problem(broken))
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert checkpoint_problem(tmp_path / "empty.ckpt") == "empty checkpoint file (0 bytes)"
    assert checkpoint_problem(tmp_path / "none.ckpt") == "checkpoint file not found"
    legacy = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": {}}, legacy, _use_new_zipfile_serialization=False)
    assert checkpoint_problem(legacy) is None  # the pre-1.6 format cannot be checked, so it is let through
    assert ckpt_path_argument(["fit", "--ckpt_path", "a.ckpt"]) == "a.ckpt"
    assert ckpt_path_argument(["fit", "--ckpt_path=b.ckpt"]) == "b.ckpt"
    assert cli_main(["fit", "--config", "unused.yaml", f"--ckpt_path={broken}"]) == 2
    assert f"--ckpt_path {broken}: not a whole torch checkpoint" in capsys.readouterr().err
