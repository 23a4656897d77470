"""Checkpoint + resume continues the data stream bit-for-bit: our DataModule inside Lightning's fit loop.

A recorder module logs every training batch (epoch, batch index, sample tokens and a
fingerprint of the augmented tensors). An uninterrupted run is compared with a run
that crashes after a checkpoint and is resumed with ``ckpt_path``; mid-epoch and at
an epoch boundary, with worker processes, on a labelled subset repeated to the split
length (so repeated frames must get their own augmentation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from nsmae_lightning.data import NuScenesDataModule, collate_batch
from nsmae_lightning.data.sampling import EpochSampler

EPOCHS = 3
BATCHES_PER_EPOCH = 4  # 4 training frames (2 labelled, repeated), batch size 1
# (epoch, batch index, sample tokens, augmentation fingerprint)
Record = tuple[int, int, tuple[str, ...], tuple[float, ...]]


class BatchRecorder(LightningModule):
    """Fits one scalar; records what every training batch held."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.records: list[Record] = []

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        tokens = tuple(meta["sample_token"] for meta in batch["meta"])
        fingerprint = tuple(
            float(value) for value in (torch.cat(batch["points"]).double().sum(), batch["img_aug"].double().sum(), batch["images"].double().sum())
        )
        self.records.append((self.current_epoch, batch_idx, tokens, fingerprint))
        return (self.weight - 1.0) ** 2

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.log("val/weight", self.weight.detach(), batch_size=len(batch["meta"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Preempted(Exception):
    """Stands for the job being killed."""


class KillAtStep(Callback):
    """Raise when the step after ``step`` starts (after ModelCheckpoint saved ``step``)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            raise Preempted(f"killed at step {self.step}")


class ShuffleTrueDataModule(NuScenesDataModule):
    """The DataLoader(shuffle=True) every Lightning tutorial writes: the control group."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          collate_fn=collate_batch)


def fit(
    world: Path,
    root: Path,
    num_workers: int,
    callbacks: list[Callback],
    ckpt_path: Path | None = None,
    datamodule_class: type[NuScenesDataModule] = NuScenesDataModule,
    max_epochs: int = EPOCHS,
    **trainer_options: Any,
) -> list[Record]:
    """One (possibly resumed, possibly killed) seeded run; the batches it trained on."""
    seed_everything(0, workers=True)
    datamodule = datamodule_class(
        dataroot=str(world), sweeps=0, image_size=(32, 88), point_cloud_range=(-12.8, -12.8, -5.0, 12.8, 12.8, 3.0),
        load_bev_masks=False, batch_size=1, num_workers=num_workers, persistent_workers=num_workers > 0,
        label_ratio=0.5,
    )  # fmt: skip
    model = BatchRecorder()
    trainer = Trainer(
        accelerator="cpu", max_epochs=max_epochs, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root, callbacks=callbacks,
        **trainer_options,
    )  # fmt: skip
    try:
        trainer.fit(model, datamodule, ckpt_path=ckpt_path)
    except Preempted:
        pass
    return model.records


def interrupted(world: Path, root: Path, kill_at: int, checkpoint: ModelCheckpoint, **options: Any) -> list[Record]:
    """A run killed at step ``kill_at`` after ``checkpoint`` saved, then resumed from that checkpoint to the end."""
    before = fit(world, root, callbacks=[checkpoint, KillAtStep(kill_at)], **options)
    saved = Path(checkpoint.last_model_path or checkpoint.best_model_path)
    assert saved.is_file() and f"step={kill_at}" in saved.name, saved
    return before + fit(world, root / "resumed", callbacks=[], ckpt_path=saved, **options)


def training_tokens(world: Path) -> list[str]:
    """Sample token of every item of the (labelled, repeated) training set, by item index."""
    datamodule = NuScenesDataModule(dataroot=str(world), sweeps=0, load_bev_masks=False, label_ratio=0.5)
    datamodule.setup("fit")
    subset = datamodule.train_dataset
    return [subset.dataset.infos[subset.indices[item % len(subset.indices)]]["sample_token"] for item in range(len(subset))]


@pytest.fixture(scope="module")
def uninterrupted(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Record]:
    """The reference run: no workers, never stopped."""
    return fit(tiny_world, tmp_path_factory.mktemp("uninterrupted"), num_workers=0, callbacks=[])


def test_order_and_augmentation_are_a_function_of_seed_and_epoch(uninterrupted: list[Record], tiny_world: Path) -> None:
    assert [(epoch, index) for epoch, index, _, _ in uninterrupted] == [
        (epoch, index) for epoch in range(EPOCHS) for index in range(BATCHES_PER_EPOCH)
    ]
    tokens_at = training_tokens(tiny_world)
    sampler = EpochSampler(tokens_at, seed=0)
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        assert [tokens[0] for e, _, tokens, _ in uninterrupted if e == epoch] == [tokens_at[key.index] for key in sampler]
    # The two labelled frames, each repeated twice per epoch, never see the same augmentation twice.
    fingerprints = [fingerprint for _, _, _, fingerprint in uninterrupted]
    assert len(set(fingerprints)) == len(fingerprints) == EPOCHS * BATCHES_PER_EPOCH


def test_mid_epoch_resume_continues_with_the_next_batch(
    uninterrupted: list[Record], tiny_world: Path, tmp_path: Path
) -> None:
    """Killed during epoch 1 after the step-6 checkpoint: the resumed run serves batch 2 of epoch 1 next."""
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=6, save_top_k=-1)
    records = interrupted(tiny_world, tmp_path, kill_at=6, checkpoint=checkpoint, num_workers=2)
    assert records == uninterrupted


def test_epoch_end_resume_starts_the_next_epoch(uninterrupted: list[Record], tiny_world: Path, tmp_path: Path) -> None:
    """Killed at the first step of epoch 1, resumed from the epoch-0 checkpoint (saved after validation)."""
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1)
    records = interrupted(tiny_world, tmp_path, kill_at=BATCHES_PER_EPOCH, checkpoint=checkpoint, num_workers=1)
    assert records == uninterrupted


def test_shuffle_true_loader_does_not_resume_its_order(tiny_world: Path, tmp_path: Path) -> None:
    """The control: the same harness sees a plain ``shuffle=True`` loader lose its place (it replays epoch 0)."""
    options: dict[str, Any] = {"num_workers": 2, "datamodule_class": ShuffleTrueDataModule}
    reference = fit(tiny_world, tmp_path / "reference", callbacks=[], **options)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1)
    records = interrupted(tiny_world, tmp_path, kill_at=BATCHES_PER_EPOCH, checkpoint=checkpoint, **options)
    resumed_epoch_1 = [record[2:] for record in records if record[0] == 1]
    assert resumed_epoch_1 != [record[2:] for record in reference if record[0] == 1]


def test_overfit_batches_rebuilds_the_loader_in_dataset_order(tiny_world: Path, tmp_path: Path) -> None:
    """Lightning re-creates the training loader with a SequentialSampler for ``overfit_batches``."""
    records = fit(tiny_world, tmp_path, num_workers=0, callbacks=[], max_epochs=2, overfit_batches=1)
    first = (training_tokens(tiny_world)[0],)
    assert [(epoch, index, tokens) for epoch, index, tokens, _ in records] == [(0, 0, first), (1, 0, first)]


class StepTokens(Callback):
    """Appends ``<global step> <sample tokens>`` to a file at every training batch (for CLI runs)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        tokens = ",".join(meta["sample_token"] for meta in batch["meta"])
        with self.path.open("a") as handle:
            handle.write(f"{trainer.global_step} {tokens} {float(torch.cat(batch['points']).double().sum()):.6f}\n")


@pytest.mark.usefixtures("one_thread")
def test_a_task_resumed_mid_epoch_through_the_cli_continues_with_the_next_batch(tiny_world: Path, tmp_path: Path) -> None:
    # The tasks' one-cycle schedule reads trainer.estimated_stepping_batches in configure_optimizers,
    # which makes Lightning build the training loader before it restores the checkpoint; without
    # restore_train_loader_position the resumed epoch restarted from its first batch.
    from nsmae_lightning.cli import main

    def run(name: str, *extra: str) -> list[str]:
        main([
            "fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "detection" / "tiny.yaml"),
            f"--data.init_args.dataroot={tiny_world}", f"--trainer.default_root_dir={tmp_path / name}",
            f"--trainer.logger.init_args.save_dir={tmp_path / name}", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--data.init_args.num_workers=0", "--data.init_args.batch_size=1",
            "--trainer.max_steps=6", "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            f"--trainer.callbacks.dirpath={tmp_path / name}_ckpt", "--trainer.callbacks.every_n_train_steps=2",
            "--trainer.callbacks.save_top_k=-1", "--trainer.callbacks+=test_resume.StepTokens",
            f"--trainer.callbacks.path={tmp_path / name}.txt", *extra,
        ])  # fmt: skip
        return (tmp_path / f"{name}.txt").read_text().splitlines()

    straight = run("straight")
    assert len(straight) == 6 and len({line.split()[1] for line in straight[:4]}) == 4  # 4 frames per epoch
    (saved,) = (tmp_path / "straight_ckpt").glob("epoch=0-step=2.ckpt")  # mid-epoch
    assert run("resumed", f"--ckpt_path={saved}") == straight[2:]
