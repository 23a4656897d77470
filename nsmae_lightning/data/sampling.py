"""Which samples a rank reads, in which order, with which augmentation: a function of (seed, epoch) alone.

Why not the DataLoader's ``shuffle=True``: its RandomSampler draws each epoch's
permutation from torch's global RNG, which a checkpoint does not hold; after a
resume the RNG is back at its post-``seed_everything`` state, so the resumed
epoch replays epoch 0's order (and, with augmentation seeded from that RNG, its
augmentation). A ``set_epoch``-aware sampler (torch's DistributedSampler) is not
enough either: Lightning 2.6 creates the training iterator in
``FitLoop.setup_data`` before it calls ``set_epoch`` and, when resuming, does not
create it again, so with ``num_workers > 0`` the workers have prefetched epoch 0's
order by then. And resuming mid-epoch, Lightning keeps counting from the saved
batch but feeds a fresh iterator unless the loader is stateful: the rest of the
interrupted epoch is its *first* batches again, and its last ones are never seen.
tests/test_resume.py compares interrupted-and-resumed runs with uninterrupted ones.

Here instead:

- :class:`EpochSampler` permutes with ``default_rng((seed, epoch))``, shards the
  permutation over ranks (padded like torch's DistributedSampler so every rank
  runs the same number of steps) and yields :class:`SampleKey` s carrying the
  augmentation seed ``(seed, epoch, index)`` and whether the item is padding.
- :class:`ResumableDataLoader` starts its pass lazily (at the first batch, after
  Lightning's ``set_epoch``) and implements ``state_dict`` / ``load_state_dict``,
  which Lightning stores in the checkpoint's loop state, so a mid-epoch resume
  continues with the next unseen batch of the interrupted epoch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sized
from typing import Any, NamedTuple

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler

log = logging.getLogger(__name__)


class SampleKey(NamedTuple):
    """What a sampler hands to ``SensorDataset.__getitem__`` instead of a bare index.

    Attributes:
        index: position in the dataset the sampler was built over.
        augmentation_seed: entropy of the sample's augmentation RNG, ``(seed, epoch, index)``.
        padding: a duplicate added so every rank gets as many samples as the others;
            evaluation metrics must skip it (it is already counted on another rank).
    """

    index: int
    augmentation_seed: tuple[int, int, int]
    padding: bool


def run_seed() -> int:
    """The run's seed as ``seed_everything`` recorded it (0 when unseeded, as Lightning's own samplers assume)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def key_index(key: int | SampleKey) -> int:
    """The dataset position a key points at."""
    return key.index if isinstance(key, SampleKey) else int(key)


def with_index(key: int | SampleKey, index: int) -> int | SampleKey:
    """``key`` pointed at another position, keeping its augmentation seed and padding flag."""
    return key._replace(index=index) if isinstance(key, SampleKey) else index


class EpochSampler(DistributedSampler):
    """One rank's share of a (seeded, per-epoch) order of a dataset.

    The global order is ``default_rng((seed, epoch)).permutation(n)`` when shuffling,
    else ``0..n-1``; it is padded by wrapping around to a multiple of
    ``num_replicas`` and rank ``r`` takes positions ``r, r + num_replicas, ...``
    (torch's DistributedSampler layout). The order therefore depends on the seed
    and the epoch only, never on the RNG state, the number of workers or resumes.
    A subclass of DistributedSampler, so Lightning leaves it in place under DDP and
    calls ``set_epoch`` on it at every epoch start.

    Args:
        dataset: what is sampled (only its length is used).
        num_replicas: number of ranks.
        rank: this rank.
        shuffle: permute per epoch (training) or keep the dataset order (evaluation).
        seed: seed of the permutations and of the augmentation seeds.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)  # type: ignore[arg-type]
        # Items of this rank's share to leave out at the start of the next pass (mid-epoch resume).
        self.start = 0

    def global_order(self) -> list[int]:
        """The epoch's order over all ranks, padded to ``total_size`` items."""
        size = len(self.dataset)  # type: ignore[arg-type]
        order = np.random.default_rng((self.seed, self.epoch)).permutation(size) if self.shuffle else np.arange(size)
        return [int(order[position % size]) for position in range(self.total_size)]

    def __iter__(self) -> Iterator[SampleKey]:  # type: ignore[override]
        """This rank's keys for the current epoch, from ``start`` on (``start`` then returns to 0)."""
        size = len(self.dataset)  # type: ignore[arg-type]
        order = self.global_order()
        start, self.start = self.start, 0
        positions = range(self.rank, self.total_size, self.num_replicas)[start:]
        return iter([SampleKey(order[p], (self.seed, self.epoch, order[p]), p >= size) for p in positions])


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position in an :class:`EpochSampler`'s epoch a checkpoint can resume.

    Lightning saves ``state_dict()`` of training loaders that have one into the
    checkpoint and, on resume, calls ``load_state_dict`` before iterating. The state
    is the epoch and the number of batches served in it; the next pass of that epoch
    skips those batches (by index, without reading them). Passes start lazily, at the
    first batch, so the sampler's epoch is the one Lightning set for the epoch about
    to run, also right after a resume. The arguments are DataLoader's, so Lightning
    can rebuild it (``overfit_batches`` swaps in a SequentialSampler, which cannot skip).

    Args:
        *args: DataLoader's positional arguments (the dataset first).
        **kwargs: DataLoader's keyword arguments; ``sampler`` an EpochSampler.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch = getattr(self.sampler, "epoch", 0)
        self._batches_served = 0
        self._resume_state: dict[str, int] | None = None

    def _state_key(self) -> dict[str, int]:
        """What a saved position depends on besides the epoch."""
        return {"batch_size": int(self.batch_size or 1), "num_replicas": getattr(self.sampler, "num_replicas", 1)}

    def state_dict(self) -> dict[str, int]:
        """Position in the current epoch: ``{"epoch", "batches", "batch_size", "num_replicas"}``."""
        return {"epoch": self._epoch, "batches": self._batches_served, **self._state_key()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from ``state`` at the next pass over the same epoch (a pass over another epoch starts at 0)."""
        self._resume_state = dict(state)

    def _batches_to_skip(self, epoch: int) -> int:
        """Batches of ``epoch`` a restored state says were already served (once; 0 otherwise)."""
        state, self._resume_state = self._resume_state, None
        if state is None or state.get("epoch") != epoch or not state.get("batches"):
            return 0
        saved = {key: state.get(key) for key in self._state_key()}
        if not isinstance(self.sampler, EpochSampler) or saved != self._state_key():
            log.warning(
                "cannot resume epoch %d after its first %d batches (sampler %s, now %s, saved %s): "
                "the epoch restarts from its first batch",
                epoch, state["batches"], type(self.sampler).__name__, self._state_key(), saved,
            )  # fmt: skip
            return 0
        return int(state["batches"])

    def __iter__(self) -> Iterator[Any]:
        """Batches of the sampler's current epoch, after any already served before a resume."""
        return self._pass()

    def _pass(self) -> Iterator[Any]:
        """One pass, counting the batches it serves (a generator: nothing runs before the first batch)."""
        self._epoch = getattr(self.sampler, "epoch", 0)
        self._batches_served = self._batches_to_skip(self._epoch)
        if isinstance(self.sampler, EpochSampler):
            self.sampler.start = self._batches_served * int(self.batch_size or 1)
        for batch in super().__iter__():
            self._batches_served += 1
            yield batch


def restore_train_loader_position(trainer: Any) -> None:
    """Hand a resumed checkpoint's loader position to the training loader (call in ``on_train_start``).

    Lightning applies the saved ``state_dict`` of the training loaders only when it
    builds them, in ``FitLoop.setup_data``. A module that reads
    ``trainer.estimated_stepping_batches`` in ``configure_optimizers`` (a one-cycle
    schedule does) makes Lightning build them before the checkpoint is restored, so
    the position would stay unapplied and the interrupted epoch would restart from
    its first batch. The loader reads the state at its first batch, so applying it
    here is in time. A no-op when nothing is pending (fresh runs, or Lightning
    already applied it).
    """
    apply = getattr(trainer.fit_loop, "_load_combined_loader_states", None)
    if apply is not None:
        apply()
