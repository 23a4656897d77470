"""device_constant: configuration constants made once per (values, device, dtype), usable by autograd."""

from __future__ import annotations

import torch

from nsmae_lightning.models.device_constants import device_constant


def test_values_dtype_and_one_tensor_per_key() -> None:
    made = device_constant([1.5, -2.0, 3.0], "cpu", torch.float32)
    assert torch.equal(made, torch.tensor([1.5, -2.0, 3.0]))
    assert device_constant((1.5, -2.0, 3.0), torch.device("cpu"), torch.float32) is made  # list or tuple: one key
    assert device_constant([1.5, -2.0, 3.0], "cpu", torch.float64).dtype == torch.float64
    nested = device_constant([[0, 1], [1, 0]], "cpu")
    assert nested.dtype == torch.int64 and nested.shape == (2, 2)
    assert device_constant(((0, 1), (1, 0)), "cpu") is nested


def test_first_made_under_inference_mode_still_trains() -> None:
    with torch.inference_mode():
        scale = device_constant([2.0, 4.0, 8.0], "cpu", torch.float32)
    assert not scale.is_inference()
    points = torch.ones(5, 3, requires_grad=True)
    (points / scale).sum().backward()  # division saves the constant for backward
    assert torch.allclose(points.grad, 1.0 / scale.expand(5, 3))


def test_compiled_code_makes_its_own() -> None:
    @torch.compile(backend="eager", fullgraph=True)
    def shift(points: torch.Tensor) -> torch.Tensor:
        return points - device_constant((1.0, 2.0, 3.0), points.device, points.dtype)

    assert torch.equal(shift(torch.zeros(2, 3)), -torch.tensor([[1.0, 2.0, 3.0]] * 2))
