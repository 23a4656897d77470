"""The labelled part of a training split: which frames (splits.py picks them) and how they are served.

Label-efficient fine-tuning trains on a subset of the training frames. The
paper (Sec. IV-C) keeps the number of iterations of the 100 % run, so by default
the subset is repeated up to the full split's length: an epoch at 1 % labels has
as many optimiser steps as an epoch at 100 %, and epoch-based schedules (one-cycle,
``max_epochs``, validation every N epochs) mean the same thing at every ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.sampling import SampleKey, key_index, with_index
from nsmae_lightning.data.splits import SplitBy, read_manifest, select_labelled, tokens_sha256, write_manifest

MANIFEST_NAME = "label_split.json"


@dataclass(frozen=True)
class FrameKey:
    """What a split needs to know about one training frame.

    Attributes:
        token: unique sample token (nuScenes) or frame id (KITTI).
        scene: the drive it belongs to ("" where the dataset has none).
        timestamp: capture time in any monotone unit (ordering for ``split_by: interval``).
    """

    token: str
    scene: str
    timestamp: int


@dataclass(frozen=True)
class LabelledSplit:
    """The outcome of choosing labelled frames.

    Attributes:
        tokens: selected tokens, sorted.
        indices: their positions in the training dataset, ascending.
        sha256: fingerprint of ``tokens`` (``splits.tokens_sha256``).
        info: the parameters that produced it (written into the manifest).
    """

    tokens: list[str]
    indices: list[int]
    sha256: str
    info: dict[str, Any]


def choose_labelled(
    keys: Sequence[FrameKey],
    ratio: float,
    split_seed: int,
    split_by: SplitBy,
    manifest: str | Path | None = None,
) -> LabelledSplit:
    """Pick the labelled frames of a training split, or read them back from a manifest.

    Every rank of a DDP job calls this with the same arguments and gets the same
    list without communicating.

    Args:
        keys: the training split's frames, in dataset order.
        ratio: fraction of frames to label, in (0, 1]; ignored when ``manifest`` is given.
        split_seed: seed of the subset (independent of the training seed).
        split_by: "frame", "scene" or "interval" (see ``splits.select_labelled``).
        manifest: a manifest written by an earlier run; pins the subset exactly.

    Raises:
        DataError: the manifest names a token that is not in the training split.
        ValueError: scene mode on a dataset without scenes, or a bad ratio.
    """
    tokens = [key.token for key in keys]
    index_of = {token: index for index, token in enumerate(tokens)}
    if manifest is not None:
        pinned = read_manifest(manifest)
        missing = [token for token in pinned.tokens if token not in index_of]
        if missing:
            raise DataError(
                manifest,
                f"{len(missing)} manifest token(s) are not in the training split, e.g. {missing[0]!r}: "
                "the manifest belongs to another dataset or split",
            )
        selected = pinned.tokens
        info = {**pinned.info, "pinned_from": str(manifest)}
    else:
        if split_by == "scene" and not all(key.scene for key in keys):
            raise ValueError("split_by='scene' needs scenes; this dataset's frames have none (use 'frame')")
        selected = select_labelled(
            tokens,
            ratio,
            split_seed,
            split_by,
            scene_of={key.token: key.scene for key in keys},
            timestamps={key.token: key.timestamp for key in keys},
        )
        info = {"ratio": ratio, "split_seed": split_seed, "split_by": split_by, "num_train_frames": len(tokens)}
    return LabelledSplit(
        tokens=sorted(selected),
        indices=sorted(index_of[token] for token in selected),
        sha256=tokens_sha256(selected),
        info=info,
    )


def save_labelled_split(split: LabelledSplit, folder: str | Path) -> Path:
    """Write the split's manifest (``label_split.json``) into a run folder, atomically."""
    return write_manifest(Path(folder) / MANIFEST_NAME, split.tokens, split.info)


class RepeatedSubset(Dataset):
    """The items ``indices`` of ``dataset``, cycled up to ``length`` items.

    Args:
        dataset: the full training dataset.
        indices: positions of the labelled frames.
        length: items per epoch (``len(indices)`` for no repetition).
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int], length: int) -> None:
        if not indices:
            raise ValueError("a labelled subset needs at least one frame")
        if length < len(indices):
            raise ValueError(f"length {length} is shorter than the {len(indices)} labelled frames")
        self.dataset = dataset
        self.indices = list(indices)
        self.length = length

    def __len__(self) -> int:
        """Items per epoch."""
        return self.length

    def __getitem__(self, key: int | SampleKey) -> Any:
        """Item ``key`` of the cycled subset (a SampleKey keeps its augmentation seed, so repeats differ)."""
        index = key_index(key)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        return self.dataset[with_index(key, self.indices[index % len(self.indices)])]

    def __getattr__(self, name: str) -> Any:
        """Everything else (skip counters, ...) from the wrapped dataset."""
        if name == "dataset":  # not set yet (unpickling): avoid recursing
            raise AttributeError(name)
        return getattr(self.dataset, name)
