"""EpochSampler and ResumableDataLoader without Lightning: rank shares, padding, skip-on-resume."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from torch.utils.data import Dataset

from nsmae_lightning.data.labelled_subset import RepeatedSubset
from nsmae_lightning.data.sampling import EpochSampler, ResumableDataLoader, SampleKey


class KeyEcho(Dataset):
    """A dataset of ``size`` items whose item is the key it was asked for."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: SampleKey) -> SampleKey:
        return key


def echo_loader(size: int = 7, batch_size: int = 2, epoch: int = 0, num_workers: int = 0) -> ResumableDataLoader:
    sampler = EpochSampler(range(size), seed=5)
    sampler.set_epoch(epoch)
    return ResumableDataLoader(KeyEcho(size), sampler=sampler, batch_size=batch_size, num_workers=num_workers, collate_fn=list)


def test_two_ranks_split_one_seeded_order_and_flag_the_padding() -> None:
    ranks = [EpochSampler(range(5), num_replicas=2, rank=rank, seed=3) for rank in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(2)
    shares = [list(sampler) for sampler in ranks]
    order = [int(i) for i in np.random.default_rng((3, 2)).permutation(5)]
    # Positions 0, 2, 4 on rank 0; 1, 3 and the wrapped-around position 5 (= order[0]) on rank 1.
    assert [key.index for key in shares[0]] == order[0::2]
    assert [key.index for key in shares[1]] == [*order[1::2], order[0]]
    assert [key.padding for key in shares[0] + shares[1]] == [False] * 5 + [True]
    assert all(key.augmentation_seed == (3, 2, key.index) for key in shares[0] + shares[1])
    assert len(ranks[0]) == len(ranks[1]) == 3
    ranks[0].set_epoch(3)
    assert [key.index for key in ranks[0]] == [int(i) for i in np.random.default_rng((3, 3)).permutation(5)][0::2]


def test_evaluation_order_is_the_dataset_order() -> None:
    shares = [list(EpochSampler(range(3), num_replicas=2, rank=rank, shuffle=False)) for rank in (0, 1)]
    assert [(key.index, key.padding) for key in shares[0]] == [(0, False), (2, False)]
    assert [(key.index, key.padding) for key in shares[1]] == [(1, False), (0, True)]


def test_loader_resumes_after_the_served_batches() -> None:
    uninterrupted = list(echo_loader(epoch=4))
    assert len(uninterrupted) == 4 and len(uninterrupted[-1]) == 1  # 7 items, batches of 2
    first = echo_loader(epoch=4)
    batches = iter(first)
    served = [next(batches), next(batches)]
    state = first.state_dict()
    assert state == {"epoch": 4, "batches": 2, "batch_size": 2, "num_replicas": 1}
    resumed = echo_loader(epoch=4, num_workers=1)
    resumed.load_state_dict(state)
    assert served + list(resumed) == uninterrupted
    assert resumed.state_dict()["batches"] == 4
    assert list(resumed) == uninterrupted  # the skip applies to one pass only


def test_loader_state_of_another_epoch_or_batch_size_restarts_the_epoch(caplog: pytest.LogCaptureFixture) -> None:
    finished = {"epoch": 3, "batches": 4, "batch_size": 2, "num_replicas": 1}
    next_epoch = echo_loader(epoch=4)
    next_epoch.load_state_dict(finished)  # epoch 3 was complete; Lightning has moved on to epoch 4
    assert list(next_epoch) == list(echo_loader(epoch=4))
    other_batch_size = echo_loader(batch_size=3, epoch=3)
    other_batch_size.load_state_dict(finished)
    with caplog.at_level(logging.WARNING, logger="nsmae_lightning.data.sampling"):
        assert list(other_batch_size) == list(echo_loader(batch_size=3, epoch=3))
    assert "cannot resume epoch 3 after its first 4 batches" in caplog.text


def test_repeated_subset_passes_the_key_on() -> None:
    subset = RepeatedSubset(KeyEcho(10), [4, 7], length=5)
    key: Any = SampleKey(3, (0, 1, 3), False)
    assert subset[key] == SampleKey(7, (0, 1, 3), False)  # repeat of frame 7 keeps its own seed
    assert subset[2] == 4
    with pytest.raises(IndexError, match="out of range"):
        subset[SampleKey(5, (0, 1, 5), False)]
