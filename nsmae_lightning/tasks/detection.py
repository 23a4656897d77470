"""3D object detection fine-tuning: EmbeddingNetwork + CenterPoint head, scored by the benchmark's evaluator.

The evaluator is pluggable (``evaluation:`` in the task config): the nuScenes devkit
(DetectionEval) or our KITTI AP evaluator; both collect the decoded boxes per frame
through the same DetectionEvaluator interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from nsmae_lightning.evaluation.detection_evaluator import DetectionEvaluator
from nsmae_lightning.evaluation.kitti_detection import KittiDetectionEvaluator
from nsmae_lightning.evaluation.nuscenes_detection import NuScenesDetectionEvaluator
from nsmae_lightning.models.embedding import EmbeddingConfig
from nsmae_lightning.models.heads.detection import CenterPointHead, DetectionHeadConfig
from nsmae_lightning.tasks.base import (
    BaseTask,
    batch_size_of,
    embedding_and_head_config,
    evaluated_samples,
)

EvaluationKind = Literal["nuscenes", "kitti", "none"]


def make_evaluator(
    kind: EvaluationKind, datamodule: Any, output_dir: Path, stage: str, class_names: tuple[str, ...],
    modalities: list[str],
) -> DetectionEvaluator:  # fmt: skip
    """The evaluator of a benchmark, given the data module that holds its frames.

    Args:
        kind: "nuscenes" (devkit DetectionEval; needs ``dataroot`` and ``version``) or "kitti"
            (our KITTI AP; needs ``dataroot`` and the ImageSets split of the stage).
        datamodule: the trainer's data module.
        output_dir: where the evaluator writes its files.
        stage: "val" or "test" (picks the KITTI split the frames must belong to).
        class_names: the head's label vocabulary.
        modalities: sensors the model uses (recorded in nuScenes results).
    """
    if kind == "nuscenes":
        return NuScenesDetectionEvaluator(
            datamodule.dataroot, datamodule.version, output_dir, class_names=class_names, modalities=modalities
        )
    if kind == "kitti":
        split = datamodule.val_split if stage == "val" else datamodule.test_split
        return KittiDetectionEvaluator(datamodule.dataroot, output_dir, class_names, split=split)
    raise ValueError(f"unknown evaluation {kind!r}; expected 'nuscenes', 'kitti' or 'none'")


class DetectionTask(BaseTask):
    """Fine-tune (or train from scratch) a BEV detector on the shared embedding.

    Args:
        embedding: the embedding network; ``pretrained`` fills its weights.
        head: the CenterPoint head (``in_channels`` and ``pc_range`` are taken from
            the embedding, so the YAML cannot disagree with it).
        pretrained: a PretrainTask/any task checkpoint or an ``nsmae export`` file;
            only ``embedding.*`` is loaded (``--ckpt_path`` still means resume).
        modalities: override of ``embedding.modalities`` (camera-only / LiDAR-only / both).
        evaluation: "nuscenes" (devkit DetectionEval), "kitti" (our KITTI AP on label files)
            or "none"; scores the validation/test frames.
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        schedule: "onecycle" or "constant".
        pct_start: one-cycle warm-up fraction.
    """

    def __init__(
        self,
        embedding: EmbeddingConfig,
        head: DetectionHeadConfig,
        pretrained: str | None = None,
        modalities: list[str] | None = None,
        evaluation: EvaluationKind = "nuscenes",
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        schedule: Literal["onecycle", "constant"] = "onecycle",
        pct_start: float = 0.4,
    ) -> None:
        super().__init__()

    def configure_models(self) -> None:
        """Embedding (with the modality override) and the head sized to it."""
        hp = self.hparams
        self.embedding, head_config = embedding_and_head_config(hp.embedding, hp.modalities, hp.head, DetectionHeadConfig)
        self.head = CenterPointHead(head_config)
        self.evaluator: DetectionEvaluator | None = None

    def forward(self, batch: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
        """Decoded boxes per sample: {"boxes" (K, 9), "scores" (K,), "labels" (K,)} in the LiDAR frame."""
        return self.head.decode(self.head(self.embedding(batch)["bev"]))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """Heatmap focal + box L1 losses."""
        preds = self.head(self.embedding(batch)["bev"])
        return self.log_training_losses(self.head.loss(preds, batch["gt_boxes"], batch["gt_labels"]), batch)

    # ------------------------------------------------------------------ evaluation
    def _start_evaluation(self, stage: str) -> None:
        kind = self.hparams.evaluation
        if kind == "none" or self.trainer.sanity_checking:
            self.evaluator = None
            return
        out = Path(self.log_dir) / f"{kind}_eval" / f"{stage}_epoch_{self.current_epoch:03d}"
        self.evaluator = make_evaluator(
            kind, self.trainer.datamodule, out, stage, self.head.config.class_names, self.embedding.config.modalities
        )

    def _evaluation_step(self, batch: dict[str, Any], stage: str) -> None:
        preds = self.head(self.embedding(batch)["bev"])
        losses = self.head.loss(preds, batch["gt_boxes"], batch["gt_labels"])
        self.log(f"{stage}/loss", losses["loss"], batch_size=batch_size_of(batch), sync_dist=True)
        if self.evaluator is not None:
            decoded = self.head.decode(preds)
            keep = evaluated_samples(batch)
            metas = [batch["meta"][position] for position in keep]
            self.evaluator.update([meta["sample_token"] for meta in metas], [decoded[position] for position in keep], metas)

    def _finish_evaluation(self, stage: str) -> None:
        if self.evaluator is None:
            return
        metrics = self.evaluator.compute()  # gathered, scored on rank 0, broadcast: the same on every rank
        # Logged on every rank (no sync needed), so callbacks monitoring val/mAP work on all of them.
        self.log_dict({f"{stage}/{name}": value for name, value in metrics.items()})
        self.evaluator = None

    def on_validation_epoch_start(self) -> None:
        self._start_evaluation("val")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._start_evaluation("test")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test")
