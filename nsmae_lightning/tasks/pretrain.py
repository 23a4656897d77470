"""NS-MAE pretraining (paper Sec. III): mask the inputs, embed, render RGB-D, reconstruct the unmasked data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from nsmae_lightning.configuration import as_config
from nsmae_lightning.evaluation.render_plot import plot_render_grid
from nsmae_lightning.models.embedding import EmbeddingConfig, EmbeddingNetwork
from nsmae_lightning.models.masking import ImageMasker, VoxelMasker
from nsmae_lightning.models.rendering import NeRFPretrainHead, RenderConfig, RenderOutput
from nsmae_lightning.tasks.base import BaseTask, batch_size_of

VALIDATION_RAY_SEED = 20_240_000  # + batch index: the validation rays' seed


class PretrainTask(BaseTask):
    """Self-supervised pretraining of the embedding network by masked neural rendering.

    The maskers and the render head are pretraining-only modules (kept outside
    ``embedding.``); fine-tuning tasks take only the ``embedding.*`` weights.

    Args:
        embedding: the embedding network (what fine-tuning reuses).
        render: render network, views, targets and loss weights (Table VIII switches).
        mask_images: mask image patches (Table VIII "Masking").
        image_mask_ratio: fraction of patches replaced by the [MASK] token (paper 0.5).
        image_mask_patch: patch side s in pixels (paper: 4 at 128x352, 8 at 256x704).
        mask_voxels: drop non-empty voxels before the sparse encoder.
        voxel_mask_ratio: dropped fraction, or a (low, high) range drawn per sample (paper 0.7-0.9).
        voxel_mask_mode: "uniform" or "range_aware" (Voxel-MAE bands).
        lr: AdamW (peak) learning rate (paper 1e-4).
        weight_decay: AdamW weight decay (paper 0.01).
        schedule: "onecycle" (paper) or "constant".
        pct_start: one-cycle warm-up fraction.
        render_frames: frames drawn in the validation render grid (0 = none).
        render_stride: pixel stride of the validation renders.
    """

    def __init__(
        self,
        embedding: EmbeddingConfig,
        render: RenderConfig,
        mask_images: bool = True,
        image_mask_ratio: float = 0.5,
        image_mask_patch: int = 8,
        mask_voxels: bool = True,
        voxel_mask_ratio: float | tuple[float, float] = 0.9,
        voxel_mask_mode: Literal["uniform", "range_aware"] = "uniform",
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        schedule: Literal["onecycle", "constant"] = "onecycle",
        pct_start: float = 0.4,
        render_frames: int = 2,
        render_stride: int = 4,
    ) -> None:
        super().__init__()

    def configure_models(self) -> None:
        """Embedding network, maskers and the render head."""
        hp = self.hparams
        self.embedding = EmbeddingNetwork(as_config(EmbeddingConfig, hp.embedding))
        self.image_masker = ImageMasker(hp.image_mask_patch, hp.image_mask_ratio) if hp.mask_images else None
        self.voxel_masker = VoxelMasker(hp.voxel_mask_ratio, hp.voxel_mask_mode) if hp.mask_voxels else None
        self.render_head = NeRFPretrainHead(as_config(RenderConfig, hp.render), self.embedding.out_channels, self.embedding.pc_range)
        self._render_batches: list[dict[str, Any]] = []

    def reconstruct(self, batch: dict[str, Any]) -> tuple[dict[str, Any], RenderOutput]:
        """The embedding's outputs for the masked batch and the render head's losses against the unmasked one.

        The rays are drawn first (`NeRFPretrainHead.plan`): their host waits then find the device
        nearly idle, not behind the whole queued embedding forward.
        """
        plan = self.render_head.plan(batch, self.embedding.bev_shape)
        outputs = self.embedding(batch, self.image_masker, self.voxel_masker)
        return outputs, self.render_head(outputs["bev"], batch, plan)  # targets come from the unmasked batch

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor | None:
        """Embed the (masked) batch, render, and log every reconstruction term; in training a non-finite
        total skips the step (None) and logs nothing of it (its NaN terms would turn the epoch means NaN)."""
        outputs, rendered = self.reconstruct(batch)
        total = rendered.total
        if stage == "train" and self.guard_finite(total) is None:
            return None
        size = batch_size_of(batch)
        logs = {f"{stage}/{name}": value.detach() for name, value in rendered.losses.items()}
        logs[f"{stage}/loss"] = total.detach()
        for name, count in rendered.skipped.items():
            logs[f"{stage}/skipped_{name}"] = count.float()  # a tensor: float() would wait on the device
        if rendered.colored_fraction is not None:  # RenderConfig.color_cull: how much colour was evaluated
            logs[f"{stage}/colored_fraction"] = rendered.colored_fraction
        if stage == "train" and outputs["image_mask"] is not None:
            logs["train/image_masked_fraction"] = outputs["image_mask"].float().mean()
        if stage == "train" and outputs["voxel_keep"] is not None:
            kept = torch.cat([keep.float() for keep in outputs["voxel_keep"]])
            if kept.numel():
                logs["train/voxel_masked_fraction"] = 1.0 - kept.mean()
        # Synced in training too: the epoch means then cover every rank's batches, not rank 0's alone.
        self.log_dict(logs, batch_size=size, on_step=stage == "train", on_epoch=True, prog_bar=False, sync_dist=True)
        self.log(f"{stage}_loss", total.detach(), batch_size=size, prog_bar=True, sync_dist=stage != "train")
        return total

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """One masked-reconstruction step; a non-finite loss skips the step."""
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Reconstruction losses on held-out frames; keep a few frames for the render grid.

        The rays (PER pixels, BEV pillars, virtual cameras) are drawn at random; a seed per
        validation batch makes every pass score the same rays, so one run's epochs and
        different runs compare like with like. The training random stream is left as it was.
        """
        devices = [torch.cuda.current_device()] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(VALIDATION_RAY_SEED + batch_idx)
            self._step(batch, "val")
        if len(self._render_batches) < self.hparams.render_frames:
            self._render_batches.append(batch)

    def on_validation_epoch_end(self) -> None:
        """Write ``renders/epoch_{epoch:03d}.png``: rendered vs target RGB and depth (PER and BEV)."""
        batches, self._render_batches = self._render_batches, []
        if not batches or self.trainer.sanity_checking or not self.trainer.is_global_zero:
            return
        views = []
        for batch in batches:
            bev = self.embedding(batch)["bev"]
            views.append(self.render_head.render_views(bev, batch, stride=self.hparams.render_stride))
        path = Path(self.log_dir) / "renders" / f"epoch_{self.current_epoch:03d}.png"
        plot_render_grid(views, path, title=f"NS-MAE renders, epoch {self.current_epoch}")
