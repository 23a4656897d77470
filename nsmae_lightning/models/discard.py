"""Scatters that drop some of their sources without selecting them out (a boolean selection waits on
the device for its size): the dropped sources are sent to discard slots past the real targets, which
are cut off after the scatter.

Spread over many slots, not one: on a GPU every source sent to a single discard slot makes its atomic
on the same address, and those serialise (for float min / max as retried compare-and-swap loops). The
LiDAR depth image of a pretraining step sends most of its 1.6 M point x camera pairs to the discard
(a point is in view of one or two of the six cameras), and with one slot its scatter took 2.0 ms of
the step's 53 ms of GPU kernels on an H200 (benchmarks/RESULTS.md, sixth session).
"""

from __future__ import annotations

import torch
from torch import Tensor

DISCARD_SLOTS = 4096  # a power of two: the slot is the source's position masked


def discard_index(index: Tensor, keep: Tensor, size: int, slots: int = DISCARD_SLOTS) -> Tensor:
    """``index`` where ``keep``, else ``size`` + the source's flat position modulo ``slots``: a scatter
    into ``size + slots`` targets whose last ``slots`` are dropped after it."""
    if slots <= 0 or slots & (slots - 1):
        raise ValueError(f"discard slots must be a positive power of two, got {slots}")
    position = torch.arange(index.numel(), device=index.device).view(index.shape)
    return torch.where(keep, index, size + (position & (slots - 1)))
