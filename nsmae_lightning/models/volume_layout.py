"""Memory layouts of the render network's (B, Z, Y, X, C) volumes, and their rows of C channels.

`RenderNetwork.volume` returns the volume as a permuted view: its storage is ordered
(B, Y, X, Z, C), the order in which the last 1x1 convolution (one GEMM over the BEV
cells) writes it, so no reordering copy is made in the forward or the backward. The
samplers therefore read volumes by their strides; what they need is that the C channels
of a voxel are adjacent. Gradients are made in the volume's own layout
(`gradient_like`), and scattered into through `volume_rows`: the (N, C) rows of a dense
tensor in memory order, whatever its dimension order.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _storage_order(volume: Tensor) -> Tensor:
    """The (..., C) tensor with its leading dims permuted by decreasing stride: the order of its storage
    (size-1 dims may go anywhere)."""
    order = sorted(range(volume.dim() - 1), key=lambda dim: -volume.stride(dim))
    return volume.permute(*order, volume.dim() - 1)


def row_pitch(volume: Tensor) -> int:
    """Elements from one voxel's C channels to the next in memory order: C for a dense tensor, more for rows
    padded to an alignment (`RenderConfig.volume_row_bytes`) or for a channel slice of a wider tensor.

    The (..., C) tensor must store its voxels as rows of that pitch, one after the other (its leading dims a
    permutation of a dense grid of rows), each row's channels adjacent; else ValueError.
    """
    channels = volume.shape[-1]
    storage = _storage_order(volume)
    sizes, strides = storage.shape[:-1], storage.stride()[:-1]
    inner = [stride for size, stride in zip(sizes, strides) if size > 1]
    pitch = inner[-1] if inner else channels
    expected = pitch
    dense = (channels == 1 or volume.stride(-1) == 1) and pitch >= channels
    for size, stride in reversed(list(zip(sizes, strides))):
        if size > 1:
            dense = dense and stride == expected
            expected *= size
    if not dense:
        raise ValueError(f"volume_rows needs a dense tensor with adjacent channels (rows of C channels, padded or "
                         f"not, in memory order), got shape {tuple(volume.shape)} and strides {volume.stride()}")
    return pitch


def gradient_like(volume: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialised tensor of the volume's shape and strides where the volume is stored as rows
    (`row_pitch`: dense, e.g. `RenderNetwork.volume`'s permutation, or padded rows), its own storage of as
    many rows, each row's channels where the volume's stand in theirs (padding entries left
    uninitialised); else contiguous."""
    try:
        pitch = row_pitch(volume)
    except ValueError:
        return torch.empty(volume.shape, dtype=dtype or volume.dtype, device=volume.device)
    if pitch == volume.shape[-1]:  # dense: no view, so autograd may add a second gradient into it in place
        return torch.empty_like(volume, dtype=dtype)  # preserve_format keeps the strides of dense tensors
    storage = torch.empty(volume.numel() // volume.shape[-1] * pitch, dtype=dtype or volume.dtype,
                          device=volume.device)
    return storage.as_strided(volume.shape, volume.stride(), volume.storage_offset() % pitch)


def volume_rows(volume: Tensor) -> Tensor:
    """(N, C) view of a (..., C) tensor stored as rows (`row_pitch`), rows in memory order (row stride: the
    pitch; the view is contiguous where the tensor is dense).

    Row i is the voxel stored i-th; for a (B, Z, Y, X, C) tensor with strides s and pitch P, voxel
    (b, z, y, x) is row (b s_b + z s_z + y s_y + x s_x) / P.
    """
    pitch = row_pitch(volume)
    channels = volume.shape[-1]
    return volume.as_strided((volume.numel() // max(channels, 1), channels), (pitch, 1))


def row_strides(volume: Tensor) -> tuple[int, ...]:
    """Strides in rows (`row_pitch` elements) of the leading dims of a tensor stored as rows (`volume_rows`'
    row numbers)."""
    pitch = row_pitch(volume)
    return tuple(stride // pitch for stride in volume.stride()[:-1])


def dense_volume(volume: Tensor) -> Tensor:
    """The volume itself if `volume_rows` can view it (rows in memory order, channels adjacent), else a
    contiguous copy."""
    try:
        row_pitch(volume)
    except ValueError:
        return volume.contiguous()
    return volume


def padded_pitch(channels: int, element_bytes: int, row_bytes: int) -> int:
    """Channels a row takes once padded to a multiple of ``row_bytes`` bytes (0: not padded)."""
    if row_bytes <= 0:
        return channels
    if row_bytes % element_bytes:
        raise ValueError(f"rows of {row_bytes} bytes cannot hold whole {element_bytes}-byte elements")
    step = row_bytes // element_bytes
    return -(-channels // step) * step


class _RowSuffix(torch.autograd.Function):
    """(N, Z * P) rows of Z groups of P channels -> the (B, Z, Y, X, C) view of each group's last C channels
    (N = B Y X; `RenderNetwork.volume` with padded rows: the padding stands in front, so that the features
    after the density start aligned, `trilinear_triton.aligned_features`). Its backward hands back the
    storage of a gradient made in the same layout (`gradient_like`), padding zeroed, where autograd's slice
    backward would zero a whole padded tensor and copy the gradient into it; other gradients are copied so."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, rows: Tensor, shape: tuple[int, int, int, int, int]
    ) -> Tensor:
        batch_size, z_bins, size_y, size_x, channels = shape
        pitch = rows.shape[1] // z_bins
        ctx.pitch = pitch  # type: ignore[attr-defined]
        return rows.view(batch_size, size_y, size_x, z_bins, pitch)[..., pitch - channels:].permute(0, 3, 1, 2, 4)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        batch_size, z_bins, size_y, size_x, channels = grad.shape
        pitch = ctx.pitch  # type: ignore[attr-defined]
        pad = pitch - channels
        total = batch_size * size_y * size_x * z_bins * pitch
        expected = (size_y * size_x * z_bins * pitch, pitch, size_x * z_bins * pitch, z_bins * pitch, 1)
        base = grad._base
        if (grad.stride() == expected and base is not None and base.is_contiguous() and base.numel() == total
                and grad.storage_offset() == base.storage_offset() + pad):
            rows = base.view(batch_size, size_y, size_x, z_bins, pitch)  # the gradient's own storage
        else:
            rows = grad.new_empty(batch_size, size_y, size_x, z_bins, pitch)
            rows[..., pad:].copy_(grad.permute(0, 2, 3, 1, 4))
        rows[..., :pad].zero_()  # padding: the decoder's backward multiplies it by zero weights
        return rows.view(batch_size * size_y * size_x, z_bins * pitch), None


def row_suffix(rows: Tensor, shape: tuple[int, int, int, int, int]) -> Tensor:
    """(B Y X, Z * P) decoder rows -> the (B, Z, Y, X, C) volume of each group's last C <= P channels, a view
    (`_RowSuffix`: the gradient comes back in the rows' layout without a copy)."""
    return _RowSuffix.apply(rows, tuple(shape))


def _at_least_float32(values: Tensor) -> Tensor:
    """float32 for half-precision values, the values themselves otherwise (float64 stays)."""
    return values.to(torch.promote_types(values.dtype, torch.float32))


class _DensityActivation(torch.autograd.Function):
    """softplus on channel ``position`` (density) of each group of C channels of a (..., G * C) tensor,
    identity on the rest, in place (no copy of the volume; its producer, the decoder's GEMM, does not need
    its output for its backward), where ``cat([softplus(x[..., :1]), x[..., 1:]])`` writes the volume once
    forward and three times in its backward (two zero-filled slice gradients and their sum); the softplus in float32,
    the result in the input's dtype; the backward makes one copy of the gradient. The input must not be
    a view (autograd would copy the whole gradient for the base's CopySlices): the groups are viewed here.
    With ``kernels`` each pass is one Triton kernel (`density_activation_triton`)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, projected: Tensor, channels: int, kernels: bool, position: int
    ) -> Tensor:
        if kernels:
            from nsmae_lightning.models.density_activation_triton import triton_density_forward

            raw = triton_density_forward(projected, channels, position)
        else:
            density = projected.unflatten(-1, (-1, channels))[..., position]
            # the pre-activation density, kept for the backward: a copy even where the column is contiguous
            # (C = 1), which contiguous() would hand back as the view that is overwritten next
            raw = density.clone(memory_format=torch.contiguous_format)
            density.copy_(torch.nn.functional.softplus(_at_least_float32(raw)))
        ctx.mark_dirty(projected)
        ctx.save_for_backward(raw)
        ctx.channels, ctx.kernels, ctx.position = channels, kernels, position  # type: ignore[attr-defined]
        return projected

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        (raw,) = ctx.saved_tensors  # type: ignore[attr-defined]
        channels, position = ctx.channels, ctx.position  # type: ignore[attr-defined]
        if ctx.kernels:  # type: ignore[attr-defined]
            from nsmae_lightning.models.density_activation_triton import triton_density_backward

            return triton_density_backward(grad, raw, channels, position), None, None, None
        grad_input = grad.clone(memory_format=torch.contiguous_format)  # ours to change
        density = grad_input.unflatten(-1, (-1, channels))[..., position]
        density.copy_(density * torch.sigmoid(_at_least_float32(raw)))
        return grad_input, None, None, None


def density_activation(projected: Tensor, channels: int, kernels: bool = False, position: int = 0) -> Tensor:
    """(..., G * (1 + Cf)) raw decoder output -> the same tensor, softplus(density) written into channel
    ``position`` (0; in padded rows the first after the padding) of each group of ``channels`` (1 + Cf, or
    the rows' pitch) (non-negative); ``projected`` must be a fresh result that no
    backward needs (e.g. a linear layer's output); a view is copied first (writing into it in place would
    make autograd copy the whole gradient of its base). ``kernels``: the Triton kernels of
    `density_activation_triton` (CUDA, or the interpreter; the render network's choice on CUDA:
    `benchmarks/render_throughput.py --kinds activation` compares them with the torch ops)."""
    if kernels:
        from nsmae_lightning.models.trilinear_triton import check_triton_device, require_triton

        require_triton("density_activation(kernels=True)", "kernels=False")
        check_triton_device(projected, "density_activation(kernels=True)", "kernels=False")
        projected = projected.contiguous()  # the kernels index the flat (..., G * C) storage
    if not 0 <= position < channels:
        raise ValueError(f"density_activation: position {position} is not a channel of groups of {channels}")
    return _DensityActivation.apply(projected.clone() if projected._is_view() else projected, channels, kernels,
                                    position)


class _SplitDensity(torch.autograd.Function):
    """(M, 1 + Cf) sampled values -> their density column (M,) and features (M, Cf), both views; the
    backward writes both gradients into one (M, 1 + Cf) tensor (the two slices' own backwards would
    zero-fill one each and add them)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, values: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        ctx.shape, ctx.dtype = values.shape, values.dtype  # type: ignore[attr-defined]
        return values[:, 0], values[:, 1:]

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_density: Tensor | None, grad_features: Tensor | None
    ) -> Tensor:
        dtype = ctx.dtype  # type: ignore[attr-defined]
        if grad_density is not None and grad_features is not None:
            return torch.cat([grad_density.unsqueeze(1).to(dtype), grad_features.to(dtype)], dim=1)
        present = grad_density if grad_density is not None else grad_features
        grad = torch.zeros(ctx.shape, dtype=dtype, device=present.device)  # type: ignore[attr-defined, union-attr]
        if grad_density is not None:
            grad[:, 0] = grad_density
        if grad_features is not None:
            grad[:, 1:] = grad_features
        return grad


def split_density(values: Tensor) -> tuple[Tensor, Tensor]:
    """(M, 1 + Cf) -> density (M,) and features (M, Cf), with a one-pass backward (`_SplitDensity`)."""
    return _SplitDensity.apply(values)
