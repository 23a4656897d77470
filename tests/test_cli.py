"""The real CLI end to end on the tiny world: pretrain, hand the embedding to detection and segmentation, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nsmae_lightning.cli import main
from nsmae_lightning.tasks.pretrained import EXPORT_FORMAT, export_embedding, load_pretrained_embedding

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run_cli(subcommand: str, config: str, world: Path, out: Path, *extra: str) -> None:
    """``nsmae <subcommand> --config configs/<config>`` on the tiny world, writing under ``out``."""
    main(
        [
            subcommand,
            "--config",
            str(CONFIGS / config),
            f"--data.init_args.dataroot={world}",
            f"--trainer.default_root_dir={out}",
            f"--trainer.logger.init_args.save_dir={out}",
            "--trainer.enable_progress_bar=false",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def pretrain_checkpoint(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (one-epoch, two-step) NS-MAE pretraining run through ``nsmae fit``."""
    out = tmp_path_factory.mktemp("pretrain")
    run_cli("fit", "pretrain/tiny.yaml", tiny_world, out, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1")
    checkpoints = sorted(out.rglob("*.ckpt"))
    assert checkpoints, f"no checkpoint written under {out}"
    return checkpoints[-1]


@pytest.mark.parametrize("render", [[], ["--model.init_args.render.color_cull=1e-4"],
                                    ["--model.init_args.render.volume_row_bytes=32"]],
                         ids=["exact", "color_cull", "padded_rows"])
def test_pretrain_fast_dev_run(tiny_world: Path, tmp_path: Path, render: list[str]) -> None:
    run_cli("fit", "pretrain/tiny.yaml", tiny_world, tmp_path, "--trainer.fast_dev_run=2", *render)


def test_pretrain_logs_losses_and_renders(pretrain_checkpoint: Path) -> None:
    run_dir = pretrain_checkpoint.parents[1]
    metrics = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    for name in ("train/loss_color", "train/loss_depth_per", "train/loss_depth_bev", "train/loss_depth_rand", "val/loss"):
        assert any(column.startswith(name) for column in metrics), f"{name} not logged: {metrics}"
    assert (run_dir / "renders" / "epoch_000.png").stat().st_size > 0
    assert main(["curves", str(run_dir), "--out", str(run_dir / "curves.png")]) == 0
    assert (run_dir / "curves.png").stat().st_size > 0


def test_pretrain_validation_scores_the_same_rays_every_pass(
    tiny_world: Path, pretrain_checkpoint: Path, tmp_path: Path
) -> None:
    # rays are drawn at random; validation seeds them per batch, so two passes over the same
    # checkpoint and frames give the same held-out losses (and training's random stream is untouched)
    losses = []
    for attempt, seed in (("a", 1), ("b", 2)):  # a different global random state each time
        run_cli("validate", "pretrain/tiny.yaml", tiny_world, tmp_path / attempt, f"--ckpt_path={pretrain_checkpoint}",
                "--trainer.limit_val_batches=1", f"--seed_everything={seed}")
        rows = next((tmp_path / attempt).rglob("metrics.csv")).read_text().splitlines()
        header, values = rows[0].split(","), rows[-1].split(",")
        losses.append({name: float(value) for name, value in zip(header, values) if name.startswith("val/loss")})
    # equal up to float summation order (index_add on several CPU threads), not up to a new ray draw
    assert losses[0] and losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_pretrain_validation_seed_leaves_the_training_stream(pretrain_checkpoint: Path) -> None:
    from nsmae_lightning.tasks import PretrainTask

    task = PretrainTask.load_from_checkpoint(pretrain_checkpoint, map_location="cpu")
    drawn: list[torch.Tensor] = []
    task._step = lambda batch, stage: drawn.append(torch.rand(4))  # what the ray samplers would draw
    torch.manual_seed(123)
    before = torch.get_rng_state()
    task.validation_step({}, batch_idx=3)
    task.validation_step({}, batch_idx=3)
    task.validation_step({}, batch_idx=4)
    assert torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[0], drawn[2])
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("given", ["checkpoint", "run folder"])
def test_handoff_loads_every_embedding_key(pretrain_checkpoint: Path, given: str) -> None:
    from nsmae_lightning.tasks import DetectionTask, PretrainTask

    pretrained = PretrainTask.load_from_checkpoint(pretrain_checkpoint, map_location="cpu")
    source_path = pretrain_checkpoint if given == "checkpoint" else pretrain_checkpoint.parents[2]  # runs/<name>
    detector = DetectionTask(embedding=pretrained.hparams.embedding, head=_tiny_head(), pretrained=str(source_path))
    report = detector.pretrained_report
    assert report is not None and not report.missing and not report.unexpected and not report.shape_skipped
    source = pretrained.state_dict()
    for key, value in detector.state_dict().items():
        if key.startswith("embedding."):
            assert torch.equal(value, source[key]), key
    assert len(report.loaded) == sum(1 for k in source if k.startswith("embedding."))


def test_handoff_refuses_other_geometry(pretrain_checkpoint: Path) -> None:
    import dataclasses

    from nsmae_lightning.tasks import DetectionTask, PretrainTask

    config = PretrainTask.load_from_checkpoint(pretrain_checkpoint, map_location="cpu").hparams.embedding
    other_cameras = dataclasses.replace(config, num_cameras=config.num_cameras - 1)
    with pytest.raises(ValueError, match="num_cameras"):
        DetectionTask(embedding=other_cameras, head=_tiny_head(), pretrained=str(pretrain_checkpoint))


def test_export_round_trip(pretrain_checkpoint: Path, tmp_path: Path) -> None:
    from nsmae_lightning.tasks import DetectionTask, PretrainTask

    exported = main(["export", str(pretrain_checkpoint), "--out", str(tmp_path / "embedding.pt")])
    assert exported == 0
    payload = torch.load(tmp_path / "embedding.pt", weights_only=False)
    assert payload["format"] == EXPORT_FORMAT and all(k.startswith("embedding.") for k in payload["state_dict"])
    config = PretrainTask.load_from_checkpoint(pretrain_checkpoint, map_location="cpu").hparams.embedding
    detector = DetectionTask(embedding=config, head=_tiny_head())
    report = load_pretrained_embedding(detector, tmp_path / "embedding.pt", detector.embedding.geometry())
    assert report.loaded and not report.missing


def test_pretrained_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        export_embedding(tmp_path / "nope.ckpt", tmp_path / "out.pt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.ckpt"):
        export_embedding(bad, tmp_path / "out.pt")


def test_detection_fit_and_test_scores_with_devkit(tiny_world: Path, pretrain_checkpoint: Path, tmp_path: Path) -> None:
    run_cli("fit", "detection/tiny.yaml", tiny_world, tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
            f"--model.init_args.pretrained={pretrain_checkpoint}")
    checkpoint = sorted(tmp_path.rglob("*.ckpt"))[-1]
    run_cli("test", "detection/tiny.yaml", tiny_world, tmp_path / "test", f"--ckpt_path={checkpoint}")
    summaries = sorted((tmp_path / "test").rglob("metrics_summary.json"))
    assert summaries, "the devkit wrote no metrics_summary.json"
    summary = json.loads(summaries[-1].read_text())
    assert 0.0 <= summary["mean_ap"] <= 1.0 and 0.0 <= summary["nd_score"] <= 1.0


def test_segmentation_fit_logs_miou(tiny_world: Path, tmp_path: Path) -> None:
    run_cli("fit", "segmentation/tiny.yaml", tiny_world, tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2")
    header = next(tmp_path.rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    assert "val/mIoU" in header and "val/iou/drivable_area" in header
    assert next(tmp_path.rglob("bev/epoch_000.png")).stat().st_size > 0


def _tiny_head():
    from nsmae_lightning.models.heads.detection import DetectionHeadConfig

    return DetectionHeadConfig(shared_channels=16, head_channels=16)
