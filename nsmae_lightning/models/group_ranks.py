"""Rank of each element inside its group, from an order that lists the groups one after another.

Voxelization ranks points inside their voxel and voxels inside their sample, voxel masking ranks
voxels inside their (sample, range band) group: the same computation, on the device, without a
host wait (the group sizes stay tensors).
"""

from __future__ import annotations

import torch
from torch import Tensor


def ranks_in_groups(order: Tensor, group: Tensor, sizes: Tensor) -> Tensor:
    """(N,) int64 position of each element among its group's members, as they come in ``order``.

    Args:
        order: (N,) permutation listing the elements group by group, groups ascending (e.g. a
            stable argsort of ``group``, which keeps the input order inside each group).
        group: (N,) int64 group of each element, in 0..G - 1.
        sizes: (G,) int64 members of each group.
    """
    first = torch.cumsum(sizes, 0) - sizes  # where each group starts in ``order``
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.shape[0], device=order.device) - first[group[order]]
    return rank
