"""Reconstruction losses of NS-MAE (paper eqs. 5-7) and their skip bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class LossTerm:
    """One term of eq. (7) for one batch: its value and how many batch elements lacked targets.

    Attributes:
        value: scalar float32 loss L_k (unweighted); an exact zero tied to the graph when
            no ray of the batch has a target.
        skipped: batch elements without any valid target for this term.
        rays: rays that contributed to the term.
    """

    value: Tensor
    skipped: int
    rays: int


def reconstruction_loss(rendered: Tensor, target: Tensor, power: int) -> Tensor:
    """Eqs. (5)/(6): mean over rays of ||rendered - target||_p^p, in float32.

    Args:
        rendered: (R,) or (R, K) rendered values.
        target: same shape, targets.
        power: p (2 for colour, 1 for depth in the paper).

    Returns:
        Scalar float32 loss.
    """
    difference = (rendered.float() - target.float()).abs()
    if difference.dim() == 1:
        difference = difference.unsqueeze(-1)  # (R, 1)
    return difference.pow(power).sum(dim=-1).mean()


def loss_term(
    rendered: Tensor,
    target: Tensor,
    valid: Tensor,
    batch_index: Tensor,
    batch_size: int,
    power: int,
    zero: Tensor,
) -> LossTerm:
    """Loss over the rays that have a target, skipping (and counting) when there are none.

    Args:
        rendered: (R,) or (R, K) rendered values of every ray of the view.
        target: same shape, targets (arbitrary where not `valid`).
        valid: (R,) bool, rays with a target.
        batch_index: (R,) batch element of each ray.
        batch_size: B, to count the elements without targets.
        power: p of eq. (6).
        zero: a float32 zero tied to every parameter of the graph, returned when no
            ray has a target, so the term is never NaN and DDP sees every parameter.

    Returns:
        The term.
    """
    covered = torch.unique(batch_index[valid]).numel()
    valid_rays = int(valid.sum())
    value = zero if valid_rays == 0 else reconstruction_loss(rendered[valid], target[valid], power)
    return LossTerm(value=value, skipped=batch_size - covered, rays=valid_rays)
