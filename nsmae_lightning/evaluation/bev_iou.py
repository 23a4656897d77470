"""BEV map segmentation IoU, as BEVFusion scores it: per class, the best IoU over a threshold sweep.

Counts (true/false positives, false negatives) are kept per class and threshold
as integer sums, so the metric is exact under DDP (states are summed across
ranks) and independent of how frames are batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from nsmae_lightning.constants import MAP_CLASSES
from nsmae_lightning.models.device_constants import device_constant

# BEVFusion's threshold sweep: 0.35, 0.40, ..., 0.65.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65)


class BEVIoU(Metric):
    """Per-class IoU (max over thresholds) and their mean, mIoU.

    A pixel counts as predicted positive at threshold t when ``prob >= t``. A
    class that is neither present nor predicted anywhere scores IoU 0 (as in
    BEVFusion), so evaluate on a split that holds every class.

    Args:
        classes: class names, in the channel order of ``probs`` and ``target``.
        thresholds: probability thresholds to sweep.
        **kwargs: passed to :class:`torchmetrics.Metric` (e.g. ``sync_on_compute``).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    tp: Tensor
    fp: Tensor
    fn: Tensor

    def __init__(
        self,
        classes: Sequence[str] = MAP_CLASSES,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not classes:
            raise ValueError("BEVIoU needs at least one class")
        if not thresholds or any(not 0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be a non-empty list of probabilities in [0, 1], got {thresholds}")
        self.classes = tuple(classes)
        self.thresholds = tuple(float(t) for t in thresholds)
        counts_shape = (len(self.classes), len(self.thresholds))
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.zeros(counts_shape, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor, ignore: Tensor | None = None) -> None:
        """Accumulate counts for a batch.

        Args:
            probs: (B, C, H, W) float class probabilities (sigmoid of the logits).
            target: (B, C, H, W) bool ground-truth masks.
            ignore: optional bool mask, (B, H, W) for all classes or (B, C, H, W)
                per class; True pixels are left out of every count.
        """
        if probs.dim() != 4 or probs.shape[1] != len(self.classes):
            raise ValueError(f"probs must be (B, {len(self.classes)}, H, W), got {tuple(probs.shape)}")
        if not probs.is_floating_point():
            raise ValueError(f"probs must be a float tensor of probabilities, got {probs.dtype}")
        if target.shape != probs.shape or target.dtype != torch.bool:
            raise ValueError(
                f"target must be a bool tensor shaped like probs {tuple(probs.shape)}, "
                f"got {target.dtype} {tuple(target.shape)}"
            )
        valid = torch.ones_like(target)
        if ignore is not None:
            if ignore.dtype != torch.bool:
                raise ValueError(f"ignore must be a bool tensor, got {ignore.dtype}")
            per_class_ignore = ignore.unsqueeze(1) if ignore.dim() == 3 else ignore
            if per_class_ignore.shape not in ((probs.shape[0], 1, *probs.shape[2:]), probs.shape):
                raise ValueError(f"ignore must be (B, H, W) or (B, C, H, W) matching probs, got {tuple(ignore.shape)}")
            valid = ~per_class_ignore.expand_as(target)

        num_classes = len(self.classes)
        # float32 thresholds and probabilities: in bf16 0.35 would be 0.3496 and the comparisons ~0.003 coarse
        thresholds = device_constant(self.thresholds, probs.device, torch.float32)  # (T,), made once per device
        # (B, C, H, W) -> (C, B*H*W): counts are summed over frames and pixels.
        class_probs = probs.detach().float().transpose(0, 1).reshape(num_classes, -1)
        class_target = target.transpose(0, 1).reshape(num_classes, -1, 1)  # (C, P, 1)
        class_valid = valid.transpose(0, 1).reshape(num_classes, -1, 1)  # (C, P, 1)
        predicted = (class_probs.unsqueeze(-1) >= thresholds) & class_valid  # (C, P, T)
        positive = class_target & class_valid  # (C, P, 1)
        self.tp += (predicted & positive).sum(dim=1)
        self.fp += (predicted & ~positive).sum(dim=1)
        self.fn += (~predicted & positive).sum(dim=1)

    def iou_per_threshold(self) -> Tensor:
        """(C, T) float64 IoU for every class and threshold (0 where a class has no pixels at all)."""
        union = self.tp + self.fp + self.fn
        return self.tp.double() / union.clamp(min=1).double()

    def compute(self) -> dict[str, Tensor]:
        """``{"iou/<class>": best IoU over thresholds, ..., "mIoU": mean of those}``."""
        best_iou = self.iou_per_threshold().max(dim=1).values  # (C,)
        scores = {f"iou/{name}": best_iou[index] for index, name in enumerate(self.classes)}
        scores["mIoU"] = best_iou.mean()
        return scores
