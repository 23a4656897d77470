"""Discard slots: scatters that drop sources by index, equal to selecting the kept sources first."""

from __future__ import annotations

import math

import pytest
import torch

from nsmae_lightning.models.discard import discard_index


def test_dropped_sources_go_to_slots_past_the_targets_by_position() -> None:
    index = torch.tensor([[3, 1, 0], [2, 2, 1]])
    keep = torch.tensor([[True, False, True], [False, False, True]])
    # size 4, 2 slots: dropped positions 1, 3, 4 -> 4 + (1, 1, 0)
    assert discard_index(index, keep, 4, slots=2).tolist() == [[3, 5, 0], [5, 4, 1]]


def test_scatters_into_discard_slots_equal_selecting_the_kept_sources() -> None:
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(0, 50, (1000,), generator=generator)
    keep = torch.rand(1000, generator=generator) < 0.2
    values = torch.rand(1000, 3, generator=generator)
    spread = discard_index(index, keep, 50, slots=8)
    summed = torch.zeros(58, 3).index_add_(0, spread, values)[:50]
    expected = torch.zeros(50, 3).index_add_(0, index[keep], values[keep])
    assert torch.equal(summed, expected)
    nearest = torch.full((58,), math.inf).scatter_reduce_(0, spread, values[:, 0], reduce="amin")[:50]
    expected = torch.full((50,), math.inf).scatter_reduce_(0, index[keep], values[keep, 0], reduce="amin")
    assert torch.equal(nearest, expected)


@pytest.mark.parametrize("slots", [0, 3, -4])
def test_slot_counts_must_be_powers_of_two(slots: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        discard_index(torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.bool), 1, slots=slots)
