"""`volume_layout.density_activation`'s two passes as one Triton kernel each (CUDA; on a CPU in Triton's
interpreter with ``TRITON_INTERPRET=1``, how the tests compare them with the torch code).

Why: in torch the forward is four kernels over the (N, G) density column of the decoder's (N, G * C)
output (a strided copy out, a cast, the softplus, a strided copy back; the strided copies of forward and
backward took 0.19 ms together on an H200 for the paper-size volume) and the backward five (a clone of the whole
gradient, then a cast, a sigmoid, a product and a strided copy on the density column). Here the forward
reads each density once, keeps it and writes its softplus in place; the backward copies the gradient
and scales its density channels in the same pass, the only full pass it needs.

Both compute in float32 as the torch code does: softplus(x) = x above 20 (torch's threshold), else
max(x, 0) + log1p(exp(-|x|)), the log1p by the compensated log(u) - ((u - 1) - y) / u; the sigmoid
as 1 / (1 + exp(-x)). The results can differ from torch's by a float32 ulp before the cast.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nsmae_lightning.models.trilinear_triton import triton

BLOCK = 1024  # elements per program

if triton is not None:
    import triton.language as tl

    @triton.jit
    def _softplus(x):
        """float32 softplus with torch's threshold of 20 (beta 1)."""
        y = tl.exp(-tl.abs(x))
        u = 1.0 + y
        log1p = tl.where(u == 1.0, y, tl.log(u) - ((u - 1.0) - y) / u)  # log1p(y), also for tiny y
        return tl.where(x > 20.0, x, tl.maximum(x, 0.0) + log1p)

    @triton.jit
    def _forward_kernel(projected, raw, densities, channels, position, BLOCK_N: tl.constexpr):
        """raw[k] = projected[k * channels + position] (the density of group k); that entry becomes its
        softplus."""
        k = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        valid = k < densities
        x = tl.load(projected + k * channels + position, mask=valid, other=0.0)
        tl.store(raw + k, x, mask=valid)
        tl.store(projected + k * channels + position, _softplus(x.to(tl.float32)), mask=valid)

    @triton.jit
    def _backward_kernel(grad, raw, grad_input, total, channels, position, BLOCK_N: tl.constexpr,
                         WIDE: tl.constexpr):
        """grad_input = grad, each group's channel ``position`` times sigmoid(raw) of the group; int64 indices
        only WIDE (the integer division by ``channels`` per element is several times slower in int64)."""
        i = tl.program_id(0).to(tl.int64 if WIDE else tl.int32) * BLOCK_N + tl.arange(0, BLOCK_N)
        valid = i < total
        group = i // channels
        is_density = valid & (i - group * channels == position)
        g = tl.load(grad + i, mask=valid, other=0.0)
        x = tl.load(raw + group, mask=is_density, other=0.0).to(tl.float32)
        scaled = g.to(tl.float32) * (1.0 / (1.0 + tl.exp(-x)))
        tl.store(grad_input + i, tl.where(is_density, scaled.to(g.dtype), g), mask=valid)


def triton_density_forward(projected: Tensor, channels: int, position: int = 0) -> Tensor:
    """softplus written into channel ``position`` of each group of ``channels`` of the contiguous
    ``projected``, in place; returns the pre-activation densities (..., G) in its dtype."""
    raw = torch.empty((*projected.shape[:-1], projected.shape[-1] // channels), device=projected.device,
                      dtype=projected.dtype)
    if raw.numel():
        _forward_kernel[(triton.cdiv(raw.numel(), BLOCK),)](projected, raw, raw.numel(), channels, position,
                                                           BLOCK_N=BLOCK)
    return raw


def triton_density_backward(grad: Tensor, raw: Tensor, channels: int, position: int = 0) -> Tensor:
    """A contiguous copy of ``grad`` with channel ``position`` of each group times sigmoid(raw)."""
    grad = grad.contiguous()
    grad_input = torch.empty_like(grad)
    if grad.numel():
        _backward_kernel[(triton.cdiv(grad.numel(), BLOCK),)](grad, raw, grad_input, grad.numel(), channels, position,
                                                            BLOCK_N=BLOCK, WIDE=grad.numel() + BLOCK >= 2**31)
    return grad_input
