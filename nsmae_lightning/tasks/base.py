"""Shared skeleton of every task (torchgeo's BaseTask shape).

``__init__`` saves hyper-parameters, then calls ``configure_models``,
``configure_losses`` and ``configure_metrics``; subclasses fill those in and
write the steps. The optimiser (AdamW + one-cycle, paper Sec. IV-A) and the
``pretrained=`` hand-off live here once, so every fine-tuning task shares them.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, TypeVar

import torch
from lightning.pytorch import LightningModule
from torch import nn

from nsmae_lightning.configuration import as_config
from nsmae_lightning.data.sampling import restore_train_loader_position
from nsmae_lightning.models.embedding import EmbeddingConfig, EmbeddingNetwork
from nsmae_lightning.tasks.optimizer import adamw
from nsmae_lightning.tasks.pretrained import (
    GEOMETRY_KEY,
    LoadReport,
    load_pretrained_embedding,
)

log = logging.getLogger(__name__)
HeadConfig = TypeVar("HeadConfig")


class BaseTask(LightningModule):
    """Skeleton: models, losses, metrics, AdamW + one-cycle, embedding hand-off.

    Subclasses must create ``self.embedding`` (an ``EmbeddingNetwork``) in
    ``configure_models``.
    """

    def __init__(self, ignore: list[str] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=ignore)
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()
        self.skipped_nonfinite_steps = 0
        self._run_dir: str | None = None
        self.pretrained_report: LoadReport | None = None
        pretrained = self.hparams.get("pretrained")
        if pretrained:
            self.pretrained_report = load_pretrained_embedding(self, pretrained, self.embedding.geometry())
            print(f"pretrained embedding {pretrained}: {self.pretrained_report.summary()}")

    def configure_models(self) -> None:
        """Build ``self.embedding`` and the task's heads."""
        raise TypeError(f"{type(self).__name__} must override configure_models")

    def configure_losses(self) -> None:
        """Build loss modules (default: the heads own their losses)."""

    def configure_metrics(self) -> None:
        """Build metric collections (default: none)."""

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (lr, weight_decay) with a one-cycle schedule over the whole run (paper Sec. IV-A)."""
        hp = self.hparams
        optimizer = adamw(self.parameters(), lr=hp.get("lr", 1e-4), weight_decay=hp.get("weight_decay", 0.01))
        if hp.get("schedule", "onecycle") == "constant":
            return {"optimizer": optimizer}
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=hp.get("lr", 1e-4),
            total_steps=total_steps,
            pct_start=hp.get("pct_start", 0.4),
            div_factor=hp.get("div_factor", 10.0),
            final_div_factor=hp.get("final_div_factor", 1e4),
            cycle_momentum=False,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def log_training_losses(self, losses: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor | None:
        """Log every term of ``losses`` and return its ``"loss"`` for the optimiser (None when non-finite).

        ``train/*`` is synced over ranks, so its epoch means cover every rank's batches,
        not rank 0's alone; the progress-bar ``train_loss`` stays this rank's (no sync per step).
        A skipped step logs nothing but the skip count (its NaN terms would turn the epoch means NaN);
        every rank decides alike (`guard_finite`), so the synced logs stay in step.
        """
        loss = self.guard_finite(losses["loss"])
        if loss is None:
            return None
        size = batch_size_of(batch)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=size, on_step=True, on_epoch=True, sync_dist=True)
        self.log("train_loss", losses["loss"].detach(), batch_size=size, prog_bar=True)
        return loss

    def guard_finite(self, loss: torch.Tensor) -> torch.Tensor | None:
        """Return ``loss``, or None (Lightning then skips the step) when it is NaN/inf on any rank, with a warning.

        Decided over all ranks: under DDP a rank that skipped its backward would leave the
        others waiting in the gradient all-reduce forever, while all ranks may skip together.
        """
        finite = bool(torch.isfinite(loss).all())
        if self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if finite:
            return loss
        self.skipped_nonfinite_steps += 1
        log.warning("non-finite loss at global step %d: step skipped (%d so far)", self.global_step, self.skipped_nonfinite_steps)
        self.log("train/skipped_nonfinite", float(self.skipped_nonfinite_steps), rank_zero_only=True)
        return None

    # ----------------------------------------------------------------- distributed
    def setup(self, stage: str) -> None:
        """Resolve the run folder on every rank.

        ``trainer.log_dir`` is a broadcast under DDP: asked on rank 0 alone (to write a
        plot, say), it would wait forever for the other ranks.
        """
        self._run_dir = self._resolve_run_dir()

    def on_fit_start(self) -> None:
        """Refuse SyncBatchNorm in CPU processes of a multi-process job before its first step.

        Raises:
            RuntimeError: ``--trainer.sync_batchnorm true`` on CPU (torch's SyncBatchNorm runs
                on GPUs only; its own error would come from inside the first forward).
        """
        synced = any(isinstance(module, nn.SyncBatchNorm) for module in self.modules())
        if synced and self.trainer.world_size > 1 and self.device.type == "cpu":
            raise RuntimeError(
                "--trainer.sync_batchnorm true needs GPU devices: torch's SyncBatchNorm has no CPU "
                "implementation; leave it off for CPU (gloo) runs"
            )

    def on_train_start(self) -> None:
        """A resumed run continues its interrupted epoch at the next unseen batch (see the function)."""
        restore_train_loader_position(self.trainer)

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the embedding geometry so a hand-off can refuse a mismatching model."""
        checkpoint[GEOMETRY_KEY] = self.embedding.geometry()

    @property
    def log_dir(self) -> str:
        """Folder for PNGs and summaries of this run (the logger's, else the trainer's root), safe on any rank."""
        return self._run_dir if self._run_dir is not None else self._resolve_run_dir()

    def _resolve_run_dir(self) -> str:
        """Ask the trainer (a collective under DDP: call it on every rank)."""
        trainer = self.trainer
        return str(trainer.log_dir or trainer.default_root_dir)


def batch_size_of(batch: dict[str, Any]) -> int:
    """Number of samples in a batch dict (the length of its per-sample ``meta`` list)."""
    return len(batch["meta"])


def evaluated_samples(batch: dict[str, Any]) -> list[int]:
    """Positions of a batch's samples that a metric should count.

    Under DDP the evaluation sampler pads the last rank's share with copies of
    frames another rank evaluates (``meta["padding"]``); counting them would weigh
    those frames twice.
    """
    return [position for position, meta in enumerate(batch["meta"]) if not meta.get("padding", False)]


def with_modalities(config: EmbeddingConfig, modalities: list[str] | None) -> EmbeddingConfig:
    """``config`` with its modalities replaced (camera-only / LiDAR-only models from one embedding)."""
    return config if modalities is None else dataclasses.replace(config, modalities=list(modalities))


def embedding_and_head_config(
    embedding: Any, modalities: list[str] | None, head: Any, head_type: type[HeadConfig]
) -> tuple[EmbeddingNetwork, HeadConfig]:
    """A fine-tuning task's embedding (with the modality override) and its head config sized to it.

    The head reads the embedding's output channels and point-cloud range, so a config never states
    them twice.
    """
    network = EmbeddingNetwork(with_modalities(as_config(EmbeddingConfig, embedding), modalities))
    sized = dataclasses.replace(  # type: ignore[type-var]
        as_config(head_type, head), in_channels=network.out_channels, pc_range=network.pc_range
    )
    return network, sized
