"""The tasks' AdamW: the implementation picked per device, the same update whichever runs."""

from __future__ import annotations

import pytest
import torch

from nsmae_lightning.tasks.optimizer import adamw, adamw_options


class _FakeCudaParameter:
    """Stands in for a CUDA parameter on a box without one: what `adamw_options` reads."""

    is_cuda = True
    requires_grad = True

    def is_floating_point(self) -> bool:
        return True


def test_auto_takes_the_fused_adamw_on_cuda_only() -> None:
    assert adamw_options([_FakeCudaParameter(), _FakeCudaParameter()]) == {"fused": True}  # type: ignore[list-item]
    assert adamw_options([torch.zeros(2, requires_grad=True)]) == {}  # CPU: PyTorch's default
    assert adamw_options([]) == {}
    assert adamw_options([torch.zeros(2)], "foreach") == {"foreach": True}
    assert adamw_options([torch.zeros(2)], "for-loop") == {"foreach": False}
    with pytest.raises(ValueError, match="AdamW implementation 'apex'"):
        adamw_options([], "apex")


def test_every_implementation_makes_the_same_update_and_skips_frozen_parameters() -> None:
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(7)]
    gradients = [torch.randn(5, 3), torch.randn(7)]
    results = {}
    for implementation in ("fused", "foreach", "for-loop"):  # fused AdamW runs on CPU too (torch >= 2.4)
        parameters = [value.clone().requires_grad_() for value in start]
        frozen = torch.ones(2, requires_grad=False)
        optimizer = adamw([*parameters, frozen], lr=1e-2, weight_decay=0.01, implementation=implementation)
        assert len(optimizer.param_groups[0]["params"]) == 2  # the frozen tensor is not optimised
        for _ in range(3):
            for parameter, gradient in zip(parameters, gradients):
                parameter.grad = gradient.clone()
            optimizer.step()
        results[implementation] = [parameter.detach() for parameter in parameters]
    for implementation in ("fused", "foreach"):
        for got, expected in zip(results[implementation], results["for-loop"]):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
    assert not torch.equal(results["for-loop"][0], start[0])  # it did update
