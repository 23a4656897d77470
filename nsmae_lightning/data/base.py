"""What every dataset and DataModule here shares: seeded per-sample augmentation, skipping
(and counting) bad samples, the labelled subset of the training split, and the
train/val/test DataLoaders with `collate_batch`, sharded over DDP ranks by `EpochSampler`."""

from __future__ import annotations

import logging
import sys
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, get_worker_info

from nsmae_lightning.data.cbgs import cbgs_indices
from nsmae_lightning.data.collate import collate_batch
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.labelled_subset import FrameKey, LabelledSplit, RepeatedSubset, choose_labelled, save_labelled_split
from nsmae_lightning.data.sampling import EpochSampler, ResumableDataLoader, SampleKey, key_index, run_seed
from nsmae_lightning.data.splits import SplitBy
from nsmae_lightning.data.transforms import RawSample, SampleTransform

log = logging.getLogger(__name__)


class SensorDataset(Dataset, ABC):
    """A map-style dataset of batch-contract samples built from RawSamples.

    Indexed by a `SampleKey` (what `EpochSampler` yields), a sample's augmentation
    draws come from a NumPy generator seeded with the key's `(seed, epoch, index)`:
    the same in every run, worker layout and resume. Indexed by a plain int, the
    generator is seeded from torch's RNG (so `torch.manual_seed` reproduces it).
    Every sample's `meta["padding"]` says whether the sampler added it as DDP padding.

    Args:
        transform: turns a RawSample into a contract sample.
        skip_bad_samples: on a DataError, log it, count it and use the next good sample
            instead of raising.
        num_workers: DataLoader workers that will read this dataset (sizes the skip counter).
    """

    def __init__(self, transform: SampleTransform, skip_bad_samples: bool = False, num_workers: int = 0) -> None:
        self.transform = transform
        self.skip_bad_samples = skip_bad_samples
        # One slot per process (main + workers) so increments never race; shared so the
        # main process sees the workers' counts.
        self._skip_counts = torch.zeros(num_workers + 1, dtype=torch.int64).share_memory_()

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abstractmethod
    def load_raw(self, index: int) -> RawSample:
        """Read sample `index` from disk, raising DataError on bad files."""

    @abstractmethod
    def box_labels(self, index: int) -> np.ndarray:
        """Class ids of the boxes of frame ``index``, read without its sensor data (for CBGS)."""

    @abstractmethod
    def frame_keys(self) -> list[FrameKey]:
        """Token, scene and timestamp of every sample, in dataset order (for label-ratio subsets)."""

    @property
    def num_skipped(self) -> int:
        """How many times a bad sample was skipped so far, over all workers."""
        return int(self._skip_counts.sum())

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        """The contract sample at `key` (or, when skipping, the next good one after it)."""
        if isinstance(key, SampleKey):
            rng, padding = np.random.default_rng(key.augmentation_seed), key.padding
        else:
            rng, padding = np.random.default_rng(int(torch.randint(0, 2**62, ()).item())), False
        index = key_index(key)
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            try:
                sample = self.transform(self.load_raw(candidate), rng)
                sample["meta"]["padding"] = padding
                return sample
            except DataError as error:
                if not self.skip_bad_samples:
                    raise
                worker = get_worker_info()
                slot = 0 if worker is None else (worker.id + 1) % len(self._skip_counts)
                self._skip_counts[slot] += 1
                log.warning("skipping bad sample %d: %s", candidate, error)
        raise DataError(f"dataset of {len(self)} samples", "every sample is bad")


class SensorDataModule(LightningDataModule, ABC):
    """Train/val/test DataLoaders over SensorDatasets of named splits.

    Args:
        train_split: split used by `fit`.
        val_split: split used by `fit` and `validate`.
        test_split: split used by `test` and `predict`.
        batch_size: samples per batch.
        num_workers: DataLoader worker processes.
        pin_memory: pin host memory of batches.
        persistent_workers: keep workers alive between epochs (when num_workers > 0).
        skip_bad_samples: skip (log and count) bad training samples instead of raising.
        label_ratio: fraction of the training split that carries labels (label-efficient
            fine-tuning, paper Sec. IV-C); 1.0 trains on every frame.
        split_seed: seed of the labelled subset, independent of the training seed.
        split_by: "frame", "scene" (whole drives) or "interval" (every N-th frame by
            timestamp, the authors' recipe); see `splits.select_labelled`.
        split_manifest: a `label_split.json` of an earlier run: train on exactly its frames.
        repeat_labelled: cycle the labelled subset up to the full split's length, so every
            ratio runs as many optimiser steps per epoch as 100 % (the paper's protocol).
        cbgs: resample the labelled frames class-balanced (CBGS, `cbgs.py`; drawn with
            `split_seed` from the labelled frames only). With `repeat_labelled`, an epoch is
            the full split's length times the CBGS growth of the labelled frames.
    """

    def __init__(
        self,
        train_split: str,
        val_split: str,
        test_split: str,
        batch_size: int,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        skip_bad_samples: bool,
        label_ratio: float = 1.0,
        split_seed: int = 0,
        split_by: SplitBy = "frame",
        split_manifest: str | None = None,
        repeat_labelled: bool = True,
        cbgs: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < label_ratio <= 1.0:
            raise ValueError(f"label_ratio must be in (0, 1], got {label_ratio}")
        if split_by not in ("frame", "scene", "interval"):
            raise ValueError(f"split_by must be 'frame', 'scene' or 'interval', got {split_by!r}")
        self.train_split = train_split
        self.val_split = val_split
        self.test_split = test_split
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.skip_bad_samples = skip_bad_samples
        self.label_ratio = label_ratio
        self.split_seed = split_seed
        self.split_by = split_by
        self.split_manifest = split_manifest
        self.repeat_labelled = repeat_labelled
        self.cbgs = cbgs
        self.labelled_split: LabelledSplit | None = None
        self.train_dataset: SensorDataset | RepeatedSubset | None = None
        self.val_dataset: SensorDataset | None = None
        self.test_dataset: SensorDataset | None = None

    @abstractmethod
    def make_dataset(self, split: str, train: bool) -> SensorDataset:
        """The dataset of a named split, augmented when `train`."""

    def setup(self, stage: str) -> None:
        """Build the datasets the stage needs (`fit`, `validate`, `test` or `predict`)."""
        if stage not in ("fit", "validate", "test", "predict"):
            raise ValueError(f"unknown stage {stage!r}; expected fit, validate, test or predict")
        if stage == "fit":
            self.train_dataset = self._labelled_training_set(self.make_dataset(self.train_split, train=True))
        if stage in ("fit", "validate"):
            self.val_dataset = self.make_dataset(self.val_split, train=False)
        if stage in ("test", "predict"):
            self.test_dataset = self.make_dataset(self.test_split, train=False)

    def _labelled_training_set(self, dataset: SensorDataset) -> SensorDataset | RepeatedSubset:
        """The labelled subset of the training split; its manifest goes into the run folder.

        Every rank computes the same subset and prints its sha256, so a log shows that
        all ranks train on the same frames.
        """
        split = choose_labelled(
            dataset.frame_keys(), self.label_ratio, self.split_seed, self.split_by, self.split_manifest
        )
        self.labelled_split = split
        self.on_labelled_split(dataset, split)
        trainer = self.trainer
        rank = 0 if trainer is None else trainer.global_rank
        # `trainer.log_dir` is a broadcast under DDP: every rank must ask, not only rank 0.
        log_dir = None if trainer is None else trainer.log_dir
        # One write with its newline: ranks print at the same moment, and an unbuffered print()
        # writes the text and the newline separately, so two ranks' lines could merge into one.
        sys.stdout.write(
            f"[rank {rank}] labelled subset: {len(split.tokens)} of {len(dataset)} training frames "
            f"({self.split_by}, ratio {self.label_ratio:g}, split_seed {self.split_seed}) sha256 {split.sha256}\n"
        )
        sys.stdout.flush()
        if trainer is not None and trainer.is_global_zero and log_dir:
            save_labelled_split(split, log_dir)
        indices = split.indices
        if self.cbgs:
            indices = cbgs_indices(dataset.box_labels, split.indices, self.split_seed)
            sys.stdout.write(f"[rank {rank}] CBGS: {len(split.indices)} labelled frames -> {len(indices)} draws\n")
        elif len(indices) == len(dataset):
            return dataset
        length = len(indices)
        if self.repeat_labelled:
            length = max(length, round(len(dataset) * len(indices) / len(split.indices)))
        return RepeatedSubset(dataset, indices, length)

    def on_labelled_split(self, dataset: SensorDataset, split: LabelledSplit) -> None:
        """Hook: the labelled frames of the training set are known (e.g. build a GT database from them)."""

    @property
    def num_skipped_samples(self) -> int:
        """Times a bad training sample was skipped so far, over all workers (0 before `setup("fit")`)."""
        return 0 if self.train_dataset is None else self.train_dataset.num_skipped

    def _loader(self, dataset: SensorDataset | RepeatedSubset | None, stage: str) -> DataLoader:
        """This rank's DataLoader of a stage, with the batch contract's collate function.

        fit: shuffled by (seed, epoch) and resumable mid-epoch; validate/test: in dataset
        order, this rank's share, padding flagged in `meta`; predict: a plain loader that
        Lightning shards without padding.
        """
        if dataset is None:
            raise ValueError(f"call setup({stage!r}) before asking for its dataloader")
        options: dict[str, Any] = {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
            "collate_fn": collate_batch,
        }
        if stage == "predict":
            return DataLoader(dataset, shuffle=False, **options)
        trainer = self.trainer
        sampler = EpochSampler(
            dataset,
            num_replicas=1 if trainer is None else trainer.world_size,
            rank=0 if trainer is None else trainer.global_rank,
            shuffle=stage == "fit",
            seed=run_seed(),
        )
        if stage == "fit":
            return ResumableDataLoader(dataset, sampler=sampler, **options)
        return DataLoader(dataset, sampler=sampler, **options)

    def train_dataloader(self) -> DataLoader:
        """Augmented training batches in a (seed, epoch)-determined order, resumable mid-epoch."""
        return self._loader(self.train_dataset, stage="fit")

    def val_dataloader(self) -> DataLoader:
        """Validation batches in dataset order (this rank's share under DDP)."""
        return self._loader(self.val_dataset, stage="validate")

    def test_dataloader(self) -> DataLoader:
        """Test batches in dataset order (this rank's share under DDP)."""
        return self._loader(self.test_dataset, stage="test")

    def predict_dataloader(self) -> DataLoader:
        """The test split, for prediction."""
        return self._loader(self.test_dataset, stage="predict")
