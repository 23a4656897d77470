"""BEV map segmentation fine-tuning: EmbeddingNetwork + BEVFusion's map head, scored by BEV IoU."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from nsmae_lightning.evaluation.bev_iou import BEVIoU
from nsmae_lightning.evaluation.bev_plot import plot_bev_predictions
from nsmae_lightning.models.embedding import EmbeddingConfig
from nsmae_lightning.models.heads.segmentation import (
    SegmentationHead,
    SegmentationHeadConfig,
)
from nsmae_lightning.tasks.base import (
    BaseTask,
    batch_size_of,
    embedding_and_head_config,
    evaluated_samples,
)


class SegmentationTask(BaseTask):
    """Fine-tune (or train from scratch) six-class BEV map segmentation on the shared embedding.

    Args:
        embedding: the embedding network; ``pretrained`` fills its weights.
        head: the map head (``in_channels`` and ``pc_range`` are taken from the embedding).
        pretrained: a task checkpoint or an ``nsmae export`` file (``embedding.*`` only).
        modalities: override of ``embedding.modalities`` (camera-only or L+C, Table VI).
        plot_frames: frames drawn in the per-epoch prediction-vs-target PNG (0 = none).
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        schedule: "onecycle" or "constant".
        pct_start: one-cycle warm-up fraction.
    """

    def __init__(
        self,
        embedding: EmbeddingConfig,
        head: SegmentationHeadConfig,
        pretrained: str | None = None,
        modalities: list[str] | None = None,
        plot_frames: int = 4,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        schedule: Literal["onecycle", "constant"] = "onecycle",
        pct_start: float = 0.4,
    ) -> None:
        super().__init__()

    def configure_models(self) -> None:
        """Embedding (with the modality override) and the map head sized to it."""
        hp = self.hparams
        self.embedding, head_config = embedding_and_head_config(hp.embedding, hp.modalities, hp.head, SegmentationHeadConfig)
        self.head = SegmentationHead(head_config)

    def configure_metrics(self) -> None:
        """BEV IoU per class (max over thresholds 0.35..0.65) and mIoU; sum states, so DDP-exact."""
        self.val_iou = BEVIoU(self.head.config.classes)
        self.test_iou = BEVIoU(self.head.config.classes)
        self._plot_frames: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Per-class probabilities (B, 6, 200, 200)."""
        return self.head(self.embedding(batch)["bev"]).sigmoid()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """Per-class focal (or BCE) loss against the rasterized map masks."""
        losses = self.head.loss(self.head(self.embedding(batch)["bev"]), batch["bev_masks"])
        return self.log_training_losses(losses, batch)

    def _evaluation_step(self, batch: dict[str, Any], metric: BEVIoU, stage: str) -> None:
        logits = self.head(self.embedding(batch)["bev"])
        losses = self.head.loss(logits, batch["bev_masks"])
        self.log(f"{stage}/loss", losses["loss"], batch_size=batch_size_of(batch), sync_dist=True)
        keep = evaluated_samples(batch)
        probs, targets = logits.sigmoid()[keep], batch["bev_masks"][keep]
        metric.update(probs, targets)  # sum states: the counts of all ranks add up at compute()
        if stage == "val" and len(self._plot_frames) < self.hparams.plot_frames:
            take = self.hparams.plot_frames - len(self._plot_frames)
            self._plot_frames.extend(zip(probs[:take].detach().cpu(), targets[:take].cpu()))

    def _finish_evaluation(self, metric: BEVIoU, stage: str) -> None:
        scores = metric.compute()
        self.log_dict({f"{stage}/{name}": value for name, value in scores.items()})
        metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, self.val_iou, "val")

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation(self.val_iou, "val")
        frames, self._plot_frames = self._plot_frames, []
        if frames and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            probs, targets = (torch.stack(items) for items in zip(*frames))
            plot_bev_predictions(probs, targets, Path(self.log_dir) / "bev" / f"epoch_{self.current_epoch:03d}.png")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, self.test_iou, "test")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation(self.test_iou, "test")
