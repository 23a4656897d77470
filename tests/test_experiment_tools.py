"""Experiment helpers: per-class sweep tables, run planning (experiments/label_efficient/), the DDP report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from nsmae_lightning import sweep_per_class as per_class

TOOLS = Path(__file__).resolve().parents[1] / "experiments" / "label_efficient"


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _benchmark_module(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module; the benchmark scripts import bench_common as a sibling."""
    benchmarks = TOOLS.parents[1] / "benchmarks"
    sys.path.insert(0, str(benchmarks))
    try:
        return _module(benchmarks / f"{name}.py")
    finally:
        sys.path.remove(str(benchmarks))


def _summary(car_ap: float, mean_ap: float) -> dict[str, object]:
    errors = {"trans_err": 0.5, "scale_err": 0.25, "orient_err": 1.0, "vel_err": 2.0, "attr_err": 0.75}
    return {"mean_dist_aps": {"car": car_ap, "pedestrian": 0.0}, "tp_errors": errors,
            "mean_ap": mean_ap, "nd_score": 0.3}


def _sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    for seed, car_ap in ((0, 0.2), (1, 0.4)):
        version = sweep / "detection" / "nsmae" / "r0.01" / f"s{seed}" / "version_0"
        (version / "nuscenes_eval" / "val_epoch_000").mkdir(parents=True)
        (version / "nuscenes_eval" / "val_epoch_000" / "metrics_summary.json").write_text(
            json.dumps(_summary(car_ap, car_ap / 2)))
    # an unfinished run: a version folder without a summary is left out
    (sweep / "detection" / "random" / "r1" / "s0" / "version_0").mkdir(parents=True)
    seg = sweep / "segmentation" / "random" / "r1" / "s0" / "version_0"
    seg.mkdir(parents=True)
    (seg / "metrics.csv").write_text(
        "epoch,step,train/loss,val/iou/divider,val/iou/walkway,val/mIoU\n"
        "0,10,0.5,,,\n0,127,,0.1,0.3,0.2\n1,200,0.4,,,\n")
    return sweep


def test_per_class_tables_average_seeds_and_copy_the_summaries(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    detection = per_class.detection_tables(sweep, tmp_path)
    # car AP of the two seeds: (0.2 + 0.4) / 2 = 30.0 (x100), two seeds; mAP (0.1 + 0.2) / 2 = 15.0
    assert "| nsmae 0.01 | 30.0 (2) | 0.0 (2) |" in detection
    assert "| nsmae 0.01 | 15.0 (2) | 30.0 (2) | 0.500 (2) | 0.250 (2) | 1.000 (2) | 2.000 (2) | 0.750 (2) |" in detection
    assert "random" not in detection
    assert sorted(path.name for path in tmp_path.glob("metrics_summary_*.json")) == [
        "metrics_summary_nsmae_r0.01_s0.json", "metrics_summary_nsmae_r0.01_s1.json"]
    segmentation = per_class.segmentation_tables(sweep)
    assert "| init, label ratio | divider | walkway | mIoU |" in segmentation
    assert "| random 1 | 10.0 (1) | 30.0 (1) | 20.0 (1) |" in segmentation
    written = per_class.write_per_class(sweep).read_text()  # what `nsmae sweep` writes beside results.md
    assert detection.split("\n")[4] in written and segmentation.split("\n")[4] in written  # first rows


def test_per_class_names_a_cut_short_devkit_summary(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    summary = sorted(sweep.rglob("metrics_summary.json"))[0]
    summary.write_text(summary.read_text()[:40])
    with pytest.raises(ValueError, match=r"metrics_summary\.json: not a devkit metrics summary \(JSONDecodeError"):
        per_class.detection_tables(sweep)


def test_per_class_says_when_nothing_finished(tmp_path: Path) -> None:
    (tmp_path / "detection").mkdir()
    assert per_class.detection_tables(tmp_path, tmp_path).startswith("no detection run")
    assert per_class.segmentation_tables(tmp_path).startswith("no segmentation run")


def _bench(path: Path, key: str, rows: dict[str, float]) -> Path:
    path.write_text(json.dumps({"rows": [{"config": config, "dtype": "bf16", key: ms} for config, ms in rows.items()]}))
    return path


@pytest.mark.parametrize("parallel", [1, 4])
def test_plan_epochs_from_step_times(tmp_path: Path, parallel: int) -> None:
    pretrain = _bench(tmp_path / "p.json", "step_ms", {"configs/pretrain/synthetic.yaml + lite": 100.0})
    task = _bench(tmp_path / "t.json", "train_step_ms",
                  {"configs/detection/synthetic.yaml": 200.0, "configs/segmentation/synthetic.yaml": 100.0})
    command = [sys.executable, str(TOOLS / "plan_epochs.py"), "--pretrain-bench", str(pretrain),
               "--task-bench", str(task), "--train-frames", "800", "--batch", "8", "--pretrain-seconds", "100",
               "--sweep-seconds", "1000", "--runs", "8", "--parallel", str(parallel)]
    plan = dict(item.split("=") for item in subprocess.check_output(command, text=True).split())
    # 100 steps per epoch; pretraining: 100 ms x 1.8 x 100 steps + 5 s = 23 s per epoch -> 4 epochs in 100 s.
    assert plan["STEPS_PER_EPOCH"] == "100" and plan["PRETRAIN_EPOCHS"] == "4"
    # Fine-tuning at the slower task, time-sliced: 200 ms x parallel per step -> 20 s x parallel + 12 s per
    # epoch; each run gets 1000 x parallel / 8 s minus 25 s of start-up.
    per_run = 1000 * parallel / 8
    epochs = int((per_run - 25) // (20 * parallel + 12))
    assert plan["FT_EPOCHS"] == str(epochs)
    run_seconds = 25 + epochs * (20 * parallel + 12)
    assert plan["EXPECTED_SWEEP_SECONDS"] == str(round(-(-8 // parallel) * run_seconds))


def test_plan_epochs_for_one_task_and_a_fixed_schedule(tmp_path: Path) -> None:
    pretrain = _bench(tmp_path / "p.json", "step_ms", {"configs/pretrain/synthetic.yaml + lite": 100.0})
    task = _bench(tmp_path / "t.json", "train_step_ms",
                  {"configs/detection/synthetic.yaml": 200.0, "configs/segmentation/synthetic.yaml": 100.0})
    command = [sys.executable, str(TOOLS / "plan_epochs.py"), "--pretrain-bench", str(pretrain),
               "--task-bench", str(task), "--train-frames", "800", "--batch", "8", "--pretrain-seconds", "100",
               "--sweep-seconds", "1000", "--runs", "4", "--parallel", "2", "--tasks", "segmentation",
               "--ft-epochs", "3"]
    plan = dict(item.split("=") for item in subprocess.check_output(command, text=True).split())
    # segmentation alone sizes the runs: 100 ms x 2 (time-sliced) x 100 steps + 12 s = 32 s per epoch
    assert plan["FT_EPOCHS"] == "3"
    run_seconds = 25 + 3 * 32
    assert plan["EXPECTED_SWEEP_SECONDS"] == str(2 * run_seconds)
    assert plan["FT_MAX_TIME"] == "00:00:03:01"  # 121 s x 1.5


def _results(path: Path, *rows: tuple[str, int, float]) -> Path:
    """A sweep results.csv of segmentation runs at 1 %: (init, seed, mIoU) per row, plus a failed run."""
    lines = ["task,init,ratio,seed,metric,value,run_dir,seconds,status"]
    lines += [f"segmentation,{init},0.01,{seed},val/mIoU,{value},r,1.0,ok" for init, seed, value in rows]
    lines.append("segmentation,random,0.01,9,val/mIoU,,r,1.0,failed rc=1: boom")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_followup_report_pairs_seeds_and_filters_inits(tmp_path: Path) -> None:
    report = _module(TOOLS / "followup_report.py")
    headline = _results(tmp_path / "a.csv", ("random", 0, 0.10), ("nsmae", 0, 0.14), ("random", 1, 0.20),
                        ("nsmae", 1, 0.16))
    ablation = _results(tmp_path / "b.csv", ("nsmae", 0, 0.12), ("nsmae", 1, 0.30))
    out_md, out_png = tmp_path / "f.md", tmp_path / "f.png"
    report.main(["--row", f"headline={headline}", "--row", f"ablation={ablation}+{headline}@random",
                 "--out-md", str(out_md), "--out-png", str(out_png)])
    table = out_md.read_text()
    # headline: random (10, 20) -> 15 ± 7.07; nsmae (14, 16) -> 15 ± 1.41; differences +4, -4 -> 0 ± 5.66, 1 won
    assert "| headline | 15.00 ± 7.07 (2) | 15.00 ± 1.41 (2) | 0.00 ± 5.66 (2), won 1 |" in table
    # ablation: nsmae from b.csv, random from a.csv only; differences +2, +10 -> 6 ± 5.66, both won
    assert "| ablation | 15.00 ± 7.07 (2) | 21.00 ± 12.73 (2) | 6.00 ± 5.66 (2), won 2 |" in table
    assert out_png.stat().st_size > 0
    with pytest.raises(ValueError, match="nsmae seed 0 appears twice"):
        report.read_condition(f"x={headline}+{ablation}", "segmentation", 0.01, "val/mIoU")
    with pytest.raises(ValueError, match="no finished detection run"):
        report.read_condition(f"x={headline}", "detection", 0.01, "val/mAP")
    with pytest.raises(ValueError, match="missing.csv does not exist"):
        report.read_condition(f"x={tmp_path / 'missing.csv'}", "segmentation", 0.01, "val/mIoU")


def _csv(path: Path, header: str, *rows: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")


def test_ddp_report_from_a_hand_built_results_folder(tmp_path: Path) -> None:
    report = _module(TOOLS.parent / "ddp" / "report.py")
    results = tmp_path / "results"
    for devices, samples_per_s in ((1, 10.0), (2, 16.0)):
        folder = results / "throughput" / f"detection_{devices}dev" / "version_0"
        folder.mkdir(parents=True)
        (folder / "throughput.json").write_text(json.dumps({
            "batch_per_rank": 8, "steps_timed": 50, "median_step_s": 8 * devices / samples_per_s,
            "samples_per_s": samples_per_s, "peak_gib_per_rank": [5.0] * devices}))
    sha = "ab" * 32
    (results / "throughput" / "detection_2dev.log").write_text(
        "".join(f"[rank {rank}] labelled subset: 5 of 50 training frames (frame, ratio 0.1) sha256 {sha}\n"
                for rank in (0, 1)))
    for devices, mean_ap in ((1, 0.25), (2, 0.25)):
        _csv(results / "metrics" / f"detection_validate_{devices}dev" / "version_0", "epoch,val/mAP,val/NDS,val/loss",
             f"0,{mean_ap},0.3,{devices}")
    resume = results / "resume"
    for name, losses in (("uninterrupted", "5,4,3,2"), ("uninterrupted_again", "5,4,3,2.5"),
                         ("interrupted", "5,4"), ("interrupted_resumed", ",,3,2")):
        _csv(resume / name / "version_0", "step,train/loss_step",
             *(f"{step},{loss}" for step, loss in enumerate(losses.split(",")) if loss))
    (resume / "killed_at.txt").write_text("/x/epoch=0-step=2.ckpt\n")

    throughput = report.throughput_section(results)
    assert "| detection | 2 | 8 | 50 | 1000.0 | 16.0 | 0.80 | 5.00, 5.00 |" in throughput  # 16 / (2 x 10)
    metrics = report.metrics_section(results)
    assert "| val/mAP | 0.25 | 0.25 | identical |" in metrics and "2 of 2 logged values" in metrics
    assert "segmentation: not run" in metrics
    subsets = report.subsets_section(results)
    assert "| throughput/detection_2dev.log | 2 | 5 of 50 | abababababababab... | yes |" in subsets
    resumed = report.resume_section(results)
    assert "| resumed vs uninterrupted | 2 | 0 | 0 % |" in resumed
    assert "| uninterrupted twice (run-to-run spread) | 4 | 0.5 | 25 % |" in resumed
    assert (results / "resume_loss.png").stat().st_size > 0


@pytest.mark.parametrize(("config", "cameras", "classes"), [("configs/kitti/tiny.yaml", 1, 3), ("configs/detection/tiny.yaml", 6, 10)])
def test_benchmark_batches_follow_the_task(config: str, cameras: int, classes: int) -> None:
    common = _benchmark_module("bench_common")
    task, data, _ = common.load_bench_task(config, None)
    batch = common.task_batch(task, data, 2, torch.device("cpu"))
    height, width = data["image_size"]
    assert batch["images"].shape == (2, cameras, 3, height, width)
    assert batch["cam2lidar"].shape == (2, cameras, 4, 4) and batch["intrinsics"].shape == (2, cameras, 3, 3)
    assert all(int(labels.max()) < classes for labels in batch["gt_labels"])
    loss = task.head.loss(task.head(task.embedding(batch)["bev"]), batch["gt_boxes"], batch["gt_labels"])["loss"]
    assert loss.isfinite()


def test_host_sync_census_attributes_waits_to_our_lines() -> None:
    from nsmae_lightning.models.ray_samples import pack_samples
    from nsmae_lightning.models.rays import RayBundle

    census = _benchmark_module("host_syncs")
    count = 5
    bundle = RayBundle(origins=torch.zeros(count, 3), directions=torch.ones(count, 3), batch_index=torch.arange(count),
                       near=torch.zeros(count), far=torch.arange(count, dtype=torch.float32),
                       depth_target=torch.zeros(count), has_depth=torch.ones(count, dtype=torch.bool))
    mode = census.OpCensus()
    with mode:
        bundle.select(bundle.far > 1.5)  # one nonzero for the mask, then index by integers
        mask = torch.ones(count, dtype=torch.bool)
        torch.zeros(count)[mask]  # boolean indexing outside our package
        repeats = torch.full((count,), 2)
        torch.repeat_interleave(repeats, output_size=2 * count)  # a given output size: no wait
        torch.repeat_interleave(repeats)  # it reads the repeats' sum
        repeats.tolist()  # not ours: left out
        pack_samples(torch.zeros(count), torch.ones(count), 0.5, 8)  # one tolist of ours (S and the total)
    assert repeats.tolist() == [2] * count  # restored after the census
    waits = {(line.split(":")[0], op): n for (line, op), n in mode.syncs.items()}
    assert waits == {("models/rays.py", "nonzero"): 1, ("(outside nsmae_lightning", "index.Tensor"): 1,
                     ("(outside nsmae_lightning", "repeat_interleave.Tensor"): 1,
                     ("models/ray_samples.py", "tolist"): 1}
    assert sum(mode.ops.values()) > 8  # every op is counted, not only the waiting ones


def test_triton_registers_reads_each_compiled_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    common = _benchmark_module("bench_common")
    # a stand-in module with one JIT function compiled twice on one device (Triton's layout: device ->
    # (key -> kernel, ...)), one never compiled, and a plain value
    compiled = [types.SimpleNamespace(n_regs=regs, n_spills=spills, metadata=types.SimpleNamespace(num_warps=warps))
                for regs, spills, warps in ((128, 0, 4), (255, 24, 8))]
    fake = types.ModuleType("fake_kernels")
    fake._kernel = types.SimpleNamespace(device_caches={0: ({"a": compiled[0], "b": compiled[1]}, None)})
    fake._helper = types.SimpleNamespace(device_caches={})
    fake.BLOCK = 1024
    monkeypatch.setitem(sys.modules, "fake_kernels", fake)
    assert common.triton_registers(["fake_kernels"]) == [
        {"kernel": "fake_kernels._kernel", "n_regs": 128, "n_spills": 0, "num_warps": 4},
        {"kernel": "fake_kernels._kernel", "n_regs": 255, "n_spills": 24, "num_warps": 8},
    ]
    # our own kernel modules are found, import (with or without triton) and, nothing compiled on a CPU, list nothing
    assert "nsmae_lightning.models.color_mlp_triton" in common.triton_modules()
    assert common.triton_registers() == []


def test_render_benchmark_rays_in_raster_order_are_the_random_rays_listed_per_camera_and_row() -> None:
    bench = _benchmark_module("render_throughput")
    torch.manual_seed(0)
    scattered = bench.random_rays(2, 300, torch.device("cpu"), "random")
    torch.manual_seed(0)
    raster = bench.random_rays(2, 300, torch.device("cpu"), "raster")
    assert torch.equal(raster.origins, scattered.origins) and torch.equal(raster.batch_index, scattered.batch_index)
    for element in range(2):  # the same directions, reordered within each batch element
        rows = slice(300 * element, 300 * (element + 1))
        assert torch.equal(raster.directions[rows].sort(dim=0).values, scattered.directions[rows].sort(dim=0).values)
    yaw = torch.atan2(raster.directions[:300, 1], raster.directions[:300, 0]) % (2 * torch.pi)
    camera = (yaw * bench.CAMERAS / (2 * torch.pi)).floor()
    assert bool((camera.diff() >= 0).all()) and camera.unique().numel() == bench.CAMERAS
    with pytest.raises(ValueError, match="ray order"):
        bench.random_rays(1, 4, torch.device("cpu"), "spiral")


def test_render_benchmark_embedding_is_laid_out_as_the_decoder_returns_it() -> None:
    bench = _benchmark_module("render_throughput")
    cpu = torch.device("cpu")
    bev = bench.bev_embedding((2, 8, 5, 6), cpu, torch.bfloat16, "decoder", True)
    assert bev.dtype == torch.bfloat16 and bev.is_leaf and bev.requires_grad
    assert bev.is_contiguous(memory_format=torch.channels_last) and not bev.is_contiguous()
    old = bench.bev_embedding((2, 8, 5, 6), cpu, torch.bfloat16, "nchw-fp32", False)
    assert old.dtype == torch.float32 and old.is_contiguous() and not old.requires_grad
    with pytest.raises(ValueError, match="embedding layout"):
        bench.bev_embedding((1, 1, 1, 1), cpu, torch.float32, "nhwc", False)


def test_render_benchmark_cuda_graph_needs_cuda_and_its_error_is_printed() -> None:
    bench = _benchmark_module("render_throughput")
    with pytest.raises(SystemExit, match="needs a CUDA device"):
        bench.graphed(lambda packed: None, [], None, torch.device("cpu"))
    row = {"kind": "march", "sampler": "trilinear_triton", "march": "packed_triton", "color_mlp": "triton",
           "dtype": "bf16", "samples": 1e6, "seconds": 1e-3, "host_seconds": 1e-5, "samples_per_s": 1e9,
           "peak_mib": 1.0, "reference_error": 1e-4, "cuda_graph": True, "graph_error": 2.5e-3}
    line = bench.format_row(row)
    assert "1000.0" in line and line.endswith("graph err 2.5e-03")


def test_render_scaling_plot_groups_rows_by_how_they_ran(tmp_path: Path) -> None:
    plotter = _benchmark_module("plot_render_scaling")

    def report(name: str, rate: float, graph: bool, cull: str = "0.0", error: bool = False) -> Path:
        row = {"kind": "render", "sampler": "trilinear_triton", "samples": 1e6, "samples_per_s": rate * 1e9,
               "cuda_graph": graph}
        failed = {"kind": "render", "sampler": "grid_sample", "error": "RuntimeError: capture"}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"args": {"feature_channels": "32", "color_cull": cull},
                                    "rows": [row, failed] if error else [row]}))
        return path

    series = plotter.collect([report("a", 0.2, False), report("b", 0.4, False), report("c", 0.3, False),
                              report("d", 0.5, True, error=True), report("e", 0.1, False, cull="1e-4")], "render")
    assert series == {"ours, 32 ch, eager": [(1e6, 0.3)],  # the median of three calls
                      "ours, 32 ch, CUDA graph": [(1e6, 0.5)],  # the failed naive row left out
                      "ours, 32 ch, eager, color_cull 0.0001": [(1e6, 0.1)]}
    plotter.plot(series, "render", "", tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit, match="bad.json"):
        plotter.collect([tmp_path / "bad.json"], "render")


def test_corner_sharing_counts_the_distinct_corners_of_a_block() -> None:
    sharing = _benchmark_module("corner_sharing")
    # two samples in one cell share all 8 corners; a neighbour one cell along an axis shares 4
    coords = torch.tensor([[0.2, 0.3, 0.4], [0.7, 0.1, 0.9], [1.5, 0.5, 0.5], [1.5, 0.5, 0.5]])
    keys = sharing.corner_keys(coords, torch.tensor([0, 0, 0, 1]))
    assert keys.shape == (4, 8) and keys[0].unique().numel() == 8
    assert sharing.kept_fraction(keys[:2], 2) == 8 / 16
    assert sharing.kept_fraction(keys[1:3], 2) == 12 / 16
    assert sharing.kept_fraction(keys[2:], 2) == 1.0  # the same voxel in another batch element is another add
    assert sharing.kept_fraction(keys, 1) == 1.0
    with pytest.raises(ValueError, match="larger than"):
        sharing.kept_fraction(keys, 5)


def test_time_calls_reports_the_host_part_of_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    common = _benchmark_module("bench_common")
    # a fake clock: each call takes 2 ms of host work; the synchronise (CPU: none) would add the GPU's rest
    now = [0.0]

    def step() -> None:
        now[0] += 0.002

    monkeypatch.setattr(common.time, "perf_counter", lambda: now[0])
    timed = common.time_calls(step, torch.device("cpu"), warmup=1, repeats=5)
    assert timed["ms"] == pytest.approx(2.0) and timed["host_ms"] == pytest.approx(2.0)
    assert timed["host_ms"] <= timed["ms"]


def test_launch_overhead_times_host_microseconds_per_call(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    overhead = _benchmark_module("launch_overhead")
    now = [0.0]

    def launch() -> None:
        now[0] += 3e-6  # 3 us of host work per call

    monkeypatch.setattr(overhead.time, "perf_counter", lambda: now[0])
    assert overhead.host_us_per_call(launch, calls=10) == pytest.approx(3.0)
    if not torch.cuda.is_available():  # on a CPU it says so and writes nothing
        monkeypatch.setattr(sys, "argv", ["launch_overhead.py", "--out", str(tmp_path / "o.json")])
        overhead.main()
        assert "no CUDA device" in capsys.readouterr().out and not (tmp_path / "o.json").exists()


def test_render_benchmark_reports_what_the_culled_render_coloured(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _benchmark_module("render_throughput")
    monkeypatch.setattr(sys, "argv", ["render_throughput.py", "--out", "unused.json", "--batch", "1", "--rays", "48",
                                      "--grid", "16", "--z-bins", "4", "--feature-channels", "4", "--embed-channels",
                                      "8", "--warmup", "0", "--repeats", "1", "--color-cull", "1e-4"])
    args = bench.parse_args()
    torch.manual_seed(0)
    row = bench.bench_march(args, "trilinear", "packed", "-", torch.float32, torch.device("cpu"))
    assert 0.0 < row["colored_fraction"] <= 1.0 and row["samples"] > 0
    args.color_cull = 0.0
    assert "colored_fraction" not in bench.bench_march(args, "trilinear", "packed", "-", torch.float32,
                                                       torch.device("cpu"))


def test_render_benchmark_sampler_rows_read_padded_volume_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _benchmark_module("render_throughput")
    argv = ["render_throughput.py", "--out", "unused.json", "--batch", "1", "--rays", "24", "--grid", "8",
            "--z-bins", "4", "--feature-channels", "4", "--warmup", "0", "--repeats", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    torch.manual_seed(0)
    plain = bench.bench_sampler(bench.parse_args(), "trilinear", torch.float32, torch.device("cpu"))
    monkeypatch.setattr(sys, "argv", [*argv, "--row-pad", "3"])
    torch.manual_seed(0)
    padded = bench.bench_sampler(bench.parse_args(), "trilinear", torch.float32, torch.device("cpu"))
    assert (plain["row_channels"], padded["row_channels"]) == (5.0, 8.0)
    assert padded["samples"] == plain["samples"] > 0  # the same rays and samples, read from wider rows


def test_render_benchmark_render_rows_take_padded_volume_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _benchmark_module("render_throughput")
    argv = ["render_throughput.py", "--out", "unused.json", "--batch", "1", "--rays", "24", "--grid", "8",
            "--z-bins", "4", "--feature-channels", "4", "--embed-channels", "8", "--warmup", "0", "--repeats", "1"]
    rows = []
    for row_bytes in ("0", "32"):
        monkeypatch.setattr(sys, "argv", [*argv, "--volume-row-bytes", row_bytes])
        torch.manual_seed(0)
        rows.append(bench.bench_render(bench.parse_args(), "trilinear", "packed", "-", torch.float32,
                                       torch.device("cpu")))
    assert rows[0]["samples"] == rows[1]["samples"] > 0
    assert rows[1]["reference_error"] < 1e-5  # the padded head against its own dense-march reference
