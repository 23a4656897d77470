"""Trilinear sampling of a channels-last volume as two hand-written Triton kernels.

Same contract as `trilinear.trilinear_sample` (cell centres at integer coordinates,
zeros outside, accumulation in float32), but each sample's 8 corner rows are read,
weighted and summed in registers: nothing of size (samples x 8 x C) is written to
memory. The backward kernel re-derives the corners, scatters the weighted output
gradient into a float32 volume gradient with atomic adds, and (when asked)
differentiates the weights for the coordinates from the same corner reads.

`triton` is optional (CUDA builds of PyTorch ship it); without it only choosing this
sampler fails, with a clear error. On a GPU the rows per program and the warp count are
autotuned; on a CPU, ``TRITON_INTERPRET=1`` runs the plain kernels in Triton's
interpreter, which is how the tests check them against the reference sampler.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

BLOCK = 64  # samples per program in the interpreter (tuned on a GPU)


try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the machine
    triton = None

if triton is not None:

    @triton.jit
    def _corner(cx, cy, cz, b, size_x, size_y, size_z, valid, DX: tl.constexpr, DY: tl.constexpr, DZ: tl.constexpr):
        """Row, weight, per-axis factors and inside-mask of one corner of every sample."""
        x0 = tl.floor(cx)
        y0 = tl.floor(cy)
        z0 = tl.floor(cz)
        fx = cx - x0
        fy = cy - y0
        fz = cz - z0
        ix = x0.to(tl.int64) + DX
        iy = y0.to(tl.int64) + DY
        iz = z0.to(tl.int64) + DZ
        wx = fx if DX else 1.0 - fx
        wy = fy if DY else 1.0 - fy
        wz = fz if DZ else 1.0 - fz
        inside = valid & (ix >= 0) & (ix < size_x) & (iy >= 0) & (iy < size_y) & (iz >= 0) & (iz < size_z)
        row = ((b * size_z + iz) * size_y + iy) * size_x + ix
        row = tl.where(inside, row, 0)
        return row, wx, wy, wz, inside

    @triton.jit
    def _load_samples(coords, batch_index, samples, channels, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
        """This program's sample indices and coordinates, and the channel lanes."""
        m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        valid = m < samples
        c = tl.arange(0, BLOCK_C)
        cx = tl.load(coords + m * 3, mask=valid, other=0.0).to(tl.float32)
        cy = tl.load(coords + m * 3 + 1, mask=valid, other=0.0).to(tl.float32)
        cz = tl.load(coords + m * 3 + 2, mask=valid, other=0.0).to(tl.float32)
        b = tl.load(batch_index + m, mask=valid, other=0).to(tl.int64)
        return m, valid, c, c < channels, cx, cy, cz, b

    @triton.jit
    def _forward_kernel(volume, coords, batch_index, out, samples, size_x, size_y, size_z, channels,
                       BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
        m, valid, c, channel_ok, cx, cy, cz, b = _load_samples(coords, batch_index, samples, channels,
                                                               BLOCK_M, BLOCK_C)
        acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
        for index in tl.static_range(8):
            row, wx, wy, wz, inside = _corner(cx, cy, cz, b, size_x, size_y, size_z, valid,
                                             index & 1, (index >> 1) & 1, (index >> 2) & 1)
            mask = inside[:, None] & channel_ok[None, :]
            values = tl.load(volume + row[:, None] * channels + c[None, :], mask=mask, other=0.0)
            acc += (wx * wy * wz)[:, None] * values.to(tl.float32)
        tl.store(out + m[:, None] * channels + c[None, :], acc, mask=valid[:, None] & channel_ok[None, :])

    @triton.jit
    def _backward_kernel(volume, coords, batch_index, grad_out, grad_volume, grad_coords, samples,
                        size_x, size_y, size_z, channels,
                        NEED_COORDS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
        m, valid, c, channel_ok, cx, cy, cz, b = _load_samples(coords, batch_index, samples, channels,
                                                               BLOCK_M, BLOCK_C)
        out_mask = valid[:, None] & channel_ok[None, :]
        g = tl.load(grad_out + m[:, None] * channels + c[None, :], mask=out_mask, other=0.0).to(tl.float32)
        gx = tl.zeros((BLOCK_M,), dtype=tl.float32)
        gy = tl.zeros((BLOCK_M,), dtype=tl.float32)
        gz = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for index in tl.static_range(8):
            row, wx, wy, wz, inside = _corner(cx, cy, cz, b, size_x, size_y, size_z, valid,
                                             index & 1, (index >> 1) & 1, (index >> 2) & 1)
            mask = inside[:, None] & channel_ok[None, :]
            offsets = row[:, None] * channels + c[None, :]
            tl.atomic_add(grad_volume + offsets, (wx * wy * wz)[:, None] * g, mask=mask)
            if NEED_COORDS:
                values = tl.load(volume + offsets, mask=mask, other=0.0).to(tl.float32)
                dot = tl.where(inside, tl.sum(values * g, axis=1), 0.0)
                # d(weight)/d(coordinate) = +-1 times the other two axis factors
                gx += dot * (wy * wz if index & 1 else -(wy * wz))
                gy += dot * (wx * wz if (index >> 1) & 1 else -(wx * wz))
                gz += dot * (wx * wy if (index >> 2) & 1 else -(wx * wy))
        if NEED_COORDS:
            tl.store(grad_coords + m * 3, gx, mask=valid)
            tl.store(grad_coords + m * 3 + 1, gy, mask=valid)
            tl.store(grad_coords + m * 3 + 2, gz, mask=valid)

    # On a GPU, rows per program and warps are tuned once per channel count (the interpreter runs the
    # plain kernels). The backward accumulates with atomics, so its trials start from zeroed gradients.
    _TUNING = [triton.Config({"BLOCK_M": rows}, num_warps=warps) for rows in (32, 64, 128) for warps in (2, 4, 8)]
    _forward_tuned = triton.autotune(_TUNING, key=["channels"])(_forward_kernel)
    _backward_tuned = triton.autotune(
        _TUNING, key=["channels", "NEED_COORDS"], reset_to_zero=["grad_volume", "grad_coords"]
    )(_backward_kernel)


def _launch(kernel: str, samples: int, *args: object, **constants: object) -> None:
    """Run the ``kernel`` ("forward" / "backward") over ``samples`` samples: tuned on a GPU, plain when interpreted."""
    if triton is None:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "RenderConfig.sampler 'trilinear_triton' needs the `triton` package (shipped with CUDA builds "
            "of PyTorch); use 'trilinear_compiled' or 'trilinear' without it"
        )
    if os.environ.get("TRITON_INTERPRET") == "1":
        plain = _forward_kernel if kernel == "forward" else _backward_kernel
        plain[(triton.cdiv(samples, BLOCK),)](*args, **constants, BLOCK_M=BLOCK)
        return
    tuned = _forward_tuned if kernel == "forward" else _backward_tuned
    tuned[lambda meta: (triton.cdiv(samples, meta["BLOCK_M"]),)](*args, **constants)


def _shape_args(volume: Tensor) -> tuple[int, int, int, int]:
    """(size_x, size_y, size_z, channels) of a (B, Z, Y, X, C) volume."""
    _, size_z, size_y, size_x, channels = volume.shape
    return size_x, size_y, size_z, channels


def _channel_block(channels: int) -> int:
    """Channel lanes of a program: the next power of two."""
    return 1 << max(0, channels - 1).bit_length()


class _TritonTrilinear(torch.autograd.Function):
    """Autograd wrapper of the two kernels."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, volume: Tensor, coords: Tensor, batch_index: Tensor
    ) -> Tensor:
        shape = _shape_args(volume)
        samples = coords.shape[0]
        out = torch.empty(samples, shape[-1], device=volume.device, dtype=volume.dtype)
        if samples:
            _launch("forward", samples, volume, coords, batch_index, out, samples, *shape,
                    BLOCK_C=_channel_block(shape[-1]))
        ctx.save_for_backward(volume, coords, batch_index)
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None]:
        volume, coords, batch_index = ctx.saved_tensors  # type: ignore[attr-defined]
        shape = _shape_args(volume)
        samples = coords.shape[0]
        need_coords = bool(ctx.needs_input_grad[1])  # type: ignore[attr-defined]
        grad_volume = torch.zeros(volume.shape, device=volume.device, dtype=torch.float32)
        grad_coords = torch.zeros(samples, 3, device=coords.device, dtype=torch.float32)
        if samples:
            _launch("backward", samples, volume, coords, batch_index, grad_out.contiguous(), grad_volume, grad_coords,
                    samples, *shape, NEED_COORDS=need_coords, BLOCK_C=_channel_block(shape[-1]))
        grad_volume_out = grad_volume.to(volume.dtype) if ctx.needs_input_grad[0] else None  # type: ignore[attr-defined]
        return grad_volume_out, grad_coords.to(coords.dtype) if need_coords else None, None


def triton_trilinear_sample(volume: Tensor, coords: Tensor, batch_index: Tensor) -> Tensor:
    """`trilinear.trilinear_sample` through the Triton kernels (float32 / bf16 / fp16 volumes).

    Args:
        volume: (B, Z, Y, X, C) channels-last values.
        coords: (M, 3) continuous (ix, iy, iz) voxel coordinates.
        batch_index: (M,) batch element of each sample.

    Returns:
        (M, C) in the volume's dtype, accumulated in float32.
    """
    if volume.dtype == torch.float64:
        raise ValueError("the Triton sampler accumulates in float32; use sampler 'trilinear' for float64")
    if volume.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"the Triton sampler runs on CUDA tensors (got {volume.device.type}); on a CPU use sampler "
            "'trilinear', or TRITON_INTERPRET=1 to run the kernels in Triton's interpreter"
        )
    return _TritonTrilinear.apply(volume.contiguous(), coords.contiguous(), batch_index.to(torch.int64).contiguous())
