"""The tasks' AdamW: implementation names, the same update whichever runs."""

from __future__ import annotations

import pytest
import torch

from nsmae_lightning.tasks.optimizer import adamw, adamw_options


def test_implementation_names_map_to_adamw_keywords() -> None:
    assert adamw_options() == {}  # PyTorch's default for the device
    assert adamw_options("fused") == {"fused": True}
    assert adamw_options("foreach") == {"foreach": True}
    assert adamw_options("for-loop") == {"foreach": False}
    with pytest.raises(ValueError, match="AdamW implementation 'apex'"):
        adamw_options("apex")


def test_every_implementation_makes_the_same_update_and_skips_frozen_parameters() -> None:
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(7)]
    gradients = [torch.randn(5, 3), torch.randn(7)]
    results = {}
    for implementation in ("fused", "foreach", "for-loop", "default"):  # fused AdamW runs on CPU too (torch >= 2.4)
        parameters = [value.clone().requires_grad_() for value in start]
        frozen = torch.ones(2, requires_grad=False)
        optimizer = adamw([*parameters, frozen], lr=1e-2, weight_decay=0.01, implementation=implementation)
        assert len(optimizer.param_groups[0]["params"]) == 2  # the frozen tensor is not optimised
        for _ in range(3):
            for parameter, gradient in zip(parameters, gradients):
                parameter.grad = gradient.clone()
            optimizer.step()
        results[implementation] = [parameter.detach() for parameter in parameters]
    for implementation in ("fused", "foreach", "default"):
        for got, expected in zip(results[implementation], results["for-loop"]):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    assert not torch.equal(results["for-loop"][0], start[0])  # it did update
