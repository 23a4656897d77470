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
        skipped: int64 scalar tensor, batch elements without any valid target for this term.
        rays: int64 scalar tensor, rays that contributed to the term.

    The counts stay on the device: reading them (`int()`) would make the host wait on it.
    """

    value: Tensor
    skipped: Tensor
    rays: Tensor


def ray_errors(rendered: Tensor, target: Tensor, power: int) -> Tensor:
    """Eqs. (5)/(6) per ray: ||rendered - target||_p^p, in float32 (their mean over rays is the loss).

    Args:
        rendered: (R,) or (R, K) rendered values.
        target: same shape, targets.
        power: p (2 for colour, 1 for depth in the paper).

    Returns:
        (R,) float32 errors.
    """
    difference = (rendered.float() - target.float()).abs()
    if difference.dim() == 1:
        difference = difference.unsqueeze(-1)  # (R, 1)
    return difference.pow(power).sum(dim=-1)


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
    # Masks, not selections: selecting the valid rays, or testing whether there are any, would
    # make the host wait on the device (four times per term).
    valid_per_element = torch.zeros(batch_size, dtype=torch.int64, device=valid.device)
    valid_per_element.index_add_(0, batch_index, valid.long())
    valid_rays = valid_per_element.sum()
    # invalid rays compare 0 with 0 (where before the error, so non-finite values leave no NaN gradient)
    use = valid.view(-1, *([1] * (rendered.dim() - 1)))
    errors = ray_errors(torch.where(use, rendered, 0.0), torch.where(use, target, 0.0), power)
    value = zero + errors.sum() / valid_rays.clamp_min(1)  # the mean over the valid rays
    return LossTerm(value=value, skipped=(valid_per_element == 0).sum(), rays=valid_rays)
