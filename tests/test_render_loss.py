"""Reconstruction loss terms (models/render_loss.py): masked means, skip counts, no NaN from invalid rays."""

from __future__ import annotations

import torch

from nsmae_lightning.models.render_loss import loss_term


def test_loss_term_means_over_valid_rays_and_counts_skipped_elements() -> None:
    rendered = torch.tensor([1.0, 2.0, 5.0, 7.0], requires_grad=True)
    target = torch.tensor([0.0, 4.0, float("nan"), 1.0])  # ray 2 has no target (nan)
    valid = torch.tensor([True, True, False, True])
    batch_index = torch.tensor([0, 0, 1, 2])  # element 1's only ray is invalid; element 3 has no ray
    zero = rendered.sum() * 0.0
    term = loss_term(rendered, target, valid, batch_index, 4, 1, zero)
    # |1 - 0| + |2 - 4| + |7 - 1| = 9 over 3 valid rays
    assert term.value.item() == 3.0 and term.value.dtype == torch.float32
    assert int(term.skipped) == 2 and int(term.rays) == 3
    term.value.backward()
    torch.testing.assert_close(rendered.grad, torch.tensor([1 / 3, -1 / 3, 0.0, 1 / 3]))


def test_loss_term_squares_colour_channels() -> None:
    rendered = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]])
    target = torch.tensor([[0.0, 0.5, 1.0], [1.0, 1.0, 0.0]])
    term = loss_term(rendered, target, torch.ones(2, dtype=torch.bool), torch.tensor([0, 1]), 2, 2, torch.zeros(()))
    assert term.value.item() == (0.25 + 0.25 + 1.0) / 2  # ||.||_2^2 per ray, mean over rays
    assert int(term.skipped) == 0


def test_loss_term_without_targets_is_the_tied_zero() -> None:
    rendered = torch.full((3,), float("inf"), requires_grad=True)
    anchor = torch.ones((), requires_grad=True)
    zero = anchor * 0.0
    term = loss_term(rendered, torch.zeros(3), torch.zeros(3, dtype=torch.bool), torch.tensor([0, 1, 1]), 2, 2, zero)
    assert term.value.item() == 0.0 and int(term.skipped) == 2 and int(term.rays) == 0
    term.value.backward()
    assert anchor.grad is not None and rendered.grad.tolist() == [0.0, 0.0, 0.0]  # never NaN
