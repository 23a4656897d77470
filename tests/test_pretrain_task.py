"""PretrainTask as a whole on the tiny world: every loss term alone trains the whole embedding, the
masking is what the config says while the targets stay unmasked, and a non-finite step is skipped."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import yaml

from nsmae_lightning.data import NuScenesDataModule
from nsmae_lightning.tasks import PretrainTask

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EMBEDDING = yaml.safe_load((CONFIGS / "embedding" / "tiny.yaml").read_text())
TINY = yaml.safe_load((CONFIGS / "pretrain" / "tiny.yaml").read_text())["model"]["init_args"]


def make_task(**render: Any) -> PretrainTask:
    """The task of configs/pretrain/tiny.yaml (image patches 4 at 0.5, voxels 0.9, all four terms), its
    render settings updated by ``render``."""
    torch.manual_seed(0)
    options = {key: value for key, value in TINY.items() if key != "embedding"}
    options["render"] = {**options.get("render", {}), **render}
    return PretrainTask(embedding=EMBEDDING, **options)


@pytest.fixture(scope="module")
def datamodule(tiny_world: Path) -> NuScenesDataModule:
    data = yaml.safe_load((CONFIGS / "pretrain" / "tiny.yaml").read_text())["data"]["init_args"]
    datamodule = NuScenesDataModule(**{**data, "dataroot": str(tiny_world)})
    datamodule.setup("fit")
    return datamodule


@pytest.fixture(scope="module")
def batch(datamodule: NuScenesDataModule) -> dict[str, Any]:
    return next(iter(datamodule.train_dataloader()))


@pytest.mark.usefixtures("one_thread")
def test_each_loss_term_alone_reaches_every_embedding_parameter(batch: dict[str, Any]) -> None:
    task = make_task().train()
    rendered = task.reconstruct(batch)[1]
    assert set(rendered.losses) == {"loss_color", "loss_depth_per", "loss_depth_bev", "loss_depth_rand"}
    parameters = dict(task.embedding.named_parameters())
    assert len(parameters) > 50
    for term, value in rendered.losses.items():
        assert bool(torch.isfinite(value)) and float(value.detach()) > 0.0, term
        gradients = torch.autograd.grad(value, list(parameters.values()), retain_graph=True, allow_unused=True)
        unreached = [name for (name, _), grad in zip(parameters.items(), gradients)
                     if grad is None or not bool(grad.abs().sum() > 0)]
        assert not unreached, f"{term} does not reach embedding.{unreached}"


@pytest.mark.usefixtures("one_thread")
def test_masking_follows_the_config_and_the_targets_stay_unmasked(
    batch: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    task = make_task().train()
    images = batch["images"].clone()
    seen: dict[str, Any] = {}
    render = task.render_head.forward

    def recorded(bev: torch.Tensor, head_batch: dict[str, Any], plan: Any = None) -> Any:
        seen["images"] = head_batch["images"]
        return render(bev, head_batch, plan)

    monkeypatch.setattr(task.render_head, "forward", recorded)
    outputs, _ = task.reconstruct(batch)
    assert float(outputs["image_mask"].float().mean()) == pytest.approx(TINY["image_mask_ratio"])  # 0.5 of patches
    kept = torch.cat([keep.float() for keep in outputs["voxel_keep"]])
    assert float(1.0 - kept.mean()) == pytest.approx(TINY["voxel_mask_ratio"], abs=0.02)  # 0.9, rounded per sample
    assert torch.equal(seen["images"], images)  # the render targets come from the unmasked images
    assert torch.equal(batch["images"], images)  # and the batch itself is left as it was


@pytest.mark.usefixtures("one_thread")
def test_a_non_finite_loss_skips_the_step_logs_nothing_of_it_and_warns(
    datamodule: NuScenesDataModule, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    task = make_task()
    render = task.render_head.forward

    def poisoned(*args: Any, **kwargs: Any) -> Any:
        rendered = render(*args, **kwargs)
        nan = torch.tensor(float("nan"))
        return dataclasses.replace(rendered, total=rendered.total * nan,
                                   losses={name: value * nan for name, value in rendered.losses.items()})

    monkeypatch.setattr(task.render_head, "forward", poisoned)
    before = {name: parameter.detach().clone() for name, parameter in task.named_parameters()}
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    with caplog.at_level(logging.WARNING):
        trainer.fit(task, datamodule=datamodule)
    assert task.skipped_nonfinite_steps == 2
    assert sum("non-finite loss" in record.getMessage() for record in caplog.records) == 2
    for name, parameter in task.named_parameters():
        assert torch.equal(parameter, before[name]), f"{name} was trained on a NaN loss"
    logged = trainer.callback_metrics
    assert float(logged["train/skipped_nonfinite"]) == 2.0
    assert not [name for name in logged if name.startswith("train/loss")]  # no NaN means in the logs


@pytest.mark.usefixtures("one_thread")
def test_fp16_with_a_grad_scaler_trains_the_whole_step(batch: dict[str, Any]) -> None:
    # the paper's lambda 1e4 makes the colour term's gradients large: GradScaler's first scales (65536, ...)
    # overflow fp16 and are skipped, as the scaler is meant to, until one fits (32 on the tiny world)
    task = make_task().train()
    scaler = torch.amp.GradScaler("cpu")
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-4)
    before = {name: parameter.detach().clone() for name, parameter in task.named_parameters()}
    for _ in range(20):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.float16):
            outputs, rendered = task.reconstruct(batch)
        assert outputs["bev"].dtype == torch.float16 and rendered.total.dtype == torch.float32
        assert all(bool(torch.isfinite(value)) for value in rendered.losses.values())
        scaler.scale(rendered.total).backward()
        scaler.unscale_(optimizer)
        finite = all(bool(torch.isfinite(p.grad).all()) for p in task.parameters() if p.grad is not None)
        scaler.step(optimizer)
        scaler.update()
        if finite:
            break
    assert finite, f"fp16 gradients still overflow at scale {scaler.get_scale()}"
    changed = [name for name, parameter in task.named_parameters() if not torch.equal(parameter, before[name])]
    assert any(name.startswith("embedding.") for name in changed) and any(name.startswith("render_head.") for name in changed)


@pytest.mark.usefixtures("one_thread")
def test_culled_training_logs_its_coloured_fraction_and_validation_renders_exactly(
    datamodule: NuScenesDataModule, tmp_path: Path
) -> None:
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(make_task(color_cull=1e-4), datamodule=datamodule)
    logged = trainer.callback_metrics
    assert 0.0 < float(logged["train/colored_fraction"]) <= 1.0
    assert "val/colored_fraction" not in logged  # eval mode colours every sample
    exact = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, limit_val_batches=0, logger=False,
                       enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                       default_root_dir=tmp_path)
    exact.fit(make_task(), datamodule=datamodule)
    assert "train/colored_fraction" not in exact.callback_metrics
