"""Collate samples into the batch contract of docs/conventions.md."""

from __future__ import annotations

from typing import Any

import torch

STACKED_KEYS: tuple[str, ...] = ("images", "intrinsics", "cam2lidar", "img_aug", "bev_masks")
LISTED_KEYS: tuple[str, ...] = ("points", "gt_boxes", "gt_labels", "meta")


def collate_batch(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the fixed-size tensors, keep per-sample point clouds, boxes, labels and meta as lists.

    Args:
        samples: per-sample dicts with the keys of the batch contract (`images` and
            `bev_masks` optional, but present in all samples or in none).

    Returns:
        The batch dict: stacked tensors gain a leading B axis, the rest are length-B lists.

    Raises:
        ValueError: the list is empty or the samples disagree on their keys.
    """
    if not samples:
        raise ValueError("collate_batch got no samples")
    keys = set(samples[0])
    for index, sample in enumerate(samples[1:], start=1):
        if set(sample) != keys:
            raise ValueError(f"sample {index} has keys {sorted(sample)}, sample 0 has {sorted(keys)}")
    batch: dict[str, Any] = {}
    for key in STACKED_KEYS:
        if key in keys:
            batch[key] = torch.stack([sample[key] for sample in samples])
    for key in LISTED_KEYS:
        batch[key] = [sample[key] for sample in samples]
    return batch
