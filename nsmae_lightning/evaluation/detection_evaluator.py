"""What every detection evaluator shares: collect an epoch's detections per frame, score once, DDP-safe.

A subclass says how one frame's decoded LiDAR-frame boxes become its own record
(``convert``: nuScenes result dicts, KITTI label rows, ...) and how the records of a
whole split are scored (``evaluate``). ``compute`` gathers every rank's records,
keeps each frame once (distributed samplers pad with duplicates), evaluates on rank 0
and broadcasts the metrics, so every rank logs the same numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch


def distributed() -> bool:
    """Whether a process group of more than one rank is running."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class DetectionEvaluator(ABC):
    """Collects decoded detections over an evaluation epoch and scores them with a benchmark's protocol."""

    def __init__(self) -> None:
        self._records: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget the collected detections (call at the start of each evaluation epoch)."""
        self._records = {}

    @abstractmethod
    def convert(self, sample_token: str, detections: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Any:
        """One frame's record (picklable) from its decoded boxes and the batch meta."""

    @abstractmethod
    def evaluate(self, records: Mapping[str, Any]) -> dict[str, float]:
        """Score the records of every evaluated frame (called on rank 0 only)."""

    def update(
        self,
        sample_tokens: Sequence[str],
        decoded: Sequence[Mapping[str, torch.Tensor]],
        metas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Add a batch of detections.

        Args:
            sample_tokens: the batch's sample tokens (KITTI: frame ids).
            decoded: per sample {"boxes": (K, 9), "scores": (K,), "labels": (K,)} in the LiDAR frame.
            metas: the batch's ``meta`` dicts.
        """
        if not (len(sample_tokens) == len(decoded) == len(metas)):
            raise ValueError(f"update got {len(sample_tokens)} tokens, {len(decoded)} detections, {len(metas)} metas")
        for token, detections, meta in zip(sample_tokens, decoded, metas):
            if token not in self._records:
                self._records[token] = self.convert(token, detections, meta)

    def _gathered(self) -> dict[str, Any]:
        """Every rank's records merged, each sample token once."""
        if not distributed():
            return dict(self._records)
        per_rank: list[dict[str, Any] | None] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(per_rank, self._records)
        merged: dict[str, Any] = {}
        for rank_records in per_rank:
            for token, record in (rank_records or {}).items():
                merged.setdefault(token, record)
        return merged

    def compute(self) -> dict[str, float]:
        """Gather, deduplicate, evaluate on rank 0 and return the metrics on every rank.

        Raises:
            ValueError: no frame was added.
            RuntimeError: on ranks > 0, when the evaluation failed on rank 0 (its message).
        """
        gathered = self._gathered()
        is_distributed = distributed()
        if is_distributed and torch.distributed.get_rank() != 0:
            outcome: list[Any] = [None]
            torch.distributed.broadcast_object_list(outcome, src=0)
            if isinstance(outcome[0], str):
                raise RuntimeError(f"{type(self).__name__} failed on rank 0: {outcome[0]}")
            return outcome[0]
        try:
            if not gathered:
                raise ValueError("no samples were evaluated: call update() before compute()")
            metrics = self.evaluate(gathered)
        except Exception as error:
            if is_distributed:
                torch.distributed.broadcast_object_list([f"{type(error).__name__}: {error}"], src=0)
            raise
        if is_distributed:
            torch.distributed.broadcast_object_list([metrics], src=0)
        return metrics
