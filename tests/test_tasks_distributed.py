"""The tasks' DDP-facing parts in one process: SyncBatchNorm conversion, padded evaluation frames.

``--trainer.sync_batchnorm true``: the sparse LiDAR encoder keeps BatchNorm1d inside
spconv's SparseSequential (which calls non-spconv modules on the voxel features), the
BEV decoder and heads keep BatchNorm2d. After Lightning's conversion the model must
still run and, outside a process group (SyncBatchNorm then normalises like
BatchNorm), compute exactly the same loss and gradients. Synchronised statistics
themselves need GPUs: torch's SyncBatchNorm has no CPU implementation, which the
tasks say up front.

Padding: a rank's share of the validation split can end with a copy of a frame
another rank evaluates; the metrics must leave it out. Non-finite losses: the skip
is decided over all ranks.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.plugins import TorchSyncBatchNorm
from torch import nn

from nsmae_lightning.data import NuScenesDataModule, collate_batch
from nsmae_lightning.data.sampling import EpochSampler
from nsmae_lightning.evaluation.bev_iou import BEVIoU
from nsmae_lightning.evaluation.nuscenes_detection import NuScenesDetectionEvaluator
from nsmae_lightning.tasks import DetectionTask, SegmentationTask
from nsmae_lightning.tasks.base import BaseTask

EMBEDDING = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "embedding" / "tiny.yaml").read_text())
HEADS: dict[type[BaseTask], dict[str, Any]] = {
    DetectionTask: {"shared_channels": 16, "head_channels": 16},
    SegmentationTask: {"hidden_channels": 16},
}


def training_loss(task: BaseTask, batch: dict[str, Any]) -> torch.Tensor:
    """The task's training loss on ``batch`` (no logging: the task is not attached to a trainer)."""
    bev = task.embedding(batch)["bev"]
    if isinstance(task, DetectionTask):
        return task.head.loss(task.head(bev), batch["gt_boxes"], batch["gt_labels"])["loss"]
    return task.head.loss(task.head(bev), batch["bev_masks"])["loss"]


def batchnorms(module: nn.Module) -> dict[str, type[nn.Module]]:
    return {name: type(child) for name, child in module.named_modules() if isinstance(child, nn.modules.batchnorm._BatchNorm)}


@pytest.fixture(scope="module")
def datamodule(tiny_world: Path) -> NuScenesDataModule:
    datamodule = NuScenesDataModule(
        dataroot=str(tiny_world), sweeps=1, image_size=(64, 176), point_cloud_range=(-12.8, -12.8, -5.0, 12.8, 12.8, 3.0),
        batch_size=2, num_workers=0,
    )  # fmt: skip
    datamodule.setup("fit")
    return datamodule


@pytest.fixture(scope="module")
def batch(datamodule: NuScenesDataModule) -> dict[str, Any]:
    return next(iter(datamodule.train_dataloader()))


@pytest.fixture(scope="module")
def padded_batch(datamodule: NuScenesDataModule) -> dict[str, Any]:
    """Rank 1 of 3 over the 4 validation frames: frame 1, then frame 0 as padding."""
    sampler = EpochSampler(datamodule.val_dataset, num_replicas=3, rank=1, shuffle=False)
    keys = list(sampler)
    assert [(key.index, key.padding) for key in keys] == [(1, False), (0, True)]
    return collate_batch([datamodule.val_dataset[key] for key in keys])


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("task_class", [DetectionTask, SegmentationTask])
def test_every_batchnorm_converts_and_trains_the_same(task_class: type[BaseTask], batch: dict[str, Any]) -> None:
    torch.manual_seed(0)
    task = task_class(embedding=EMBEDDING, head=HEADS[task_class])
    converted = TorchSyncBatchNorm().apply(copy.deepcopy(task))
    before, after = batchnorms(task), batchnorms(converted)
    assert any(name.startswith("embedding.lidar") and kind is nn.BatchNorm1d for name, kind in before.items())
    assert any(name.startswith("embedding.decoder") and kind is nn.BatchNorm2d for name, kind in before.items())
    assert after.keys() == before.keys() and set(after.values()) == {nn.SyncBatchNorm}

    losses = [training_loss(model, batch) for model in (task, converted)]
    assert torch.equal(losses[0], losses[1])
    for loss in losses:
        loss.backward()
    for (name, original), synced in zip(task.named_parameters(), converted.parameters()):
        assert original.grad is not None and torch.equal(original.grad, synced.grad), name


def test_sync_batchnorm_on_cpu_ranks_is_refused_up_front() -> None:
    task = TorchSyncBatchNorm().apply(DetectionTask(embedding=EMBEDDING, head=HEADS[DetectionTask]))
    task._trainer = SimpleNamespace(world_size=2)  # the trainer of a 2-process CPU run, as far as the check looks
    with pytest.raises(RuntimeError, match="sync_batchnorm true needs GPU"):
        task.on_fit_start()


@pytest.mark.usefixtures("one_thread")
def test_segmentation_counts_leave_the_padding_out(padded_batch: dict[str, Any]) -> None:
    task = SegmentationTask(embedding=EMBEDDING, head=HEADS[SegmentationTask]).eval()
    with torch.no_grad():
        task.validation_step(padded_batch, 0)
        probs = task(padded_batch)
    expected, both = BEVIoU(task.head.config.classes), BEVIoU(task.head.config.classes)
    expected.update(probs[:1], padded_batch["bev_masks"][:1])
    both.update(probs, padded_batch["bev_masks"])
    for name in ("tp", "fp", "fn"):
        assert torch.equal(getattr(task.val_iou, name), getattr(expected, name)), name
    assert not torch.equal(task.val_iou.fp + task.val_iou.fn, both.fp + both.fn)


@pytest.mark.usefixtures("one_thread")
def test_detection_scores_leave_the_padding_out(padded_batch: dict[str, Any], tiny_world: Path, tmp_path: Path) -> None:
    task = DetectionTask(embedding=EMBEDDING, head=HEADS[DetectionTask]).eval()
    task.evaluator = NuScenesDetectionEvaluator(tiny_world, "v1.0-trainval", tmp_path)
    with torch.no_grad():
        task.validation_step(padded_batch, 0)
    assert task.evaluator.compute()["num_samples"] == 1.0
    results = json.loads((tmp_path / "results_nusc.json").read_text())["results"]
    assert list(results) == [padded_batch["meta"][0]["sample_token"]]


def test_a_non_finite_loss_on_another_rank_skips_the_step_here_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """All ranks skip together: one rank leaving out its backward would hang the others' all-reduce."""
    task = DetectionTask(embedding=EMBEDDING, head=HEADS[DetectionTask])
    decisions: list[tuple[bool, bool]] = []

    def another_rank_saw_nan(decision: bool, all: bool) -> bool:
        decisions.append((decision, all))
        return False

    task._trainer = SimpleNamespace(world_size=2, global_step=7, strategy=SimpleNamespace(reduce_boolean_decision=another_rank_saw_nan))
    monkeypatch.setattr(task, "log", lambda *args, **kwargs: None)
    assert task.guard_finite(torch.tensor(0.5)) is None
    assert decisions == [(True, True)] and task.skipped_nonfinite_steps == 1
