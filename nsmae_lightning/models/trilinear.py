"""Trilinear sampling of a channels-last voxel volume, with a hand-written backward.

The render network reads density and colour features at millions of ray samples per
step, so this is the hot loop of pretraining. `F.grid_sample` on a (B, C, Z, Y, X)
volume reads C strided values per corner; here the volume is channels-last
(B, Z, Y, X, C), so each of the 8 corners is one contiguous row of C values, and
density and features come out of one gather (the render network stores density in
channel 0). The backward scatters the weighted output gradient into the volume with
one `index_add_` and differentiates the weights for the sample coordinates.

Cell-centre convention: integer voxel coordinates are cell centres, i.e. the voxel
(ix, iy, iz) holds the value at `x = x0 + (ix + 0.5) * cell_x` (same for y, z). This
is the BEV grid of docs/conventions.md and `F.grid_sample(..., align_corners=False)`
with the grid normalised over the pc range. Corners outside the volume read zero
(`padding_mode="zeros"`), so samples outside the range read zero density.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import torch
from torch import Tensor

from nsmae_lightning.models.device_constants import device_constant
from nsmae_lightning.models.volume_layout import dense_volume, gradient_like, row_strides, volume_rows

# (dx, dy, dz) of the 8 cell corners around a sample, in the order the gather uses.
_CORNER_OFFSETS: tuple[tuple[int, int, int], ...] = tuple(
    (dx, dy, dz) for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)
)


def metric_to_voxel(points: Tensor, pc_range: Sequence[float], grid_size: Sequence[int]) -> Tensor:
    """Map metric LiDAR-frame points to continuous voxel coordinates.

    Args:
        points: (..., 3) x, y, z in metres.
        pc_range: (x0, y0, z0, x1, y1, z1) covered by the volume.
        grid_size: (Z, Y, X) voxel counts of the volume.

    Returns:
        (..., 3) continuous (ix, iy, iz) with cell centres at integers.
    """
    if len(pc_range) != 6 or len(grid_size) != 3:
        raise ValueError(f"pc_range needs 6 values and grid_size 3, got {pc_range} and {grid_size}")
    lower = device_constant(pc_range[:3], points.device, points.dtype)
    upper = device_constant(pc_range[3:], points.device, points.dtype)
    counts_xyz = device_constant((grid_size[2], grid_size[1], grid_size[0]), points.device, points.dtype)
    cell = (upper - lower) / counts_xyz
    return (points - lower) / cell - 0.5


def _corners(
    sizes: Sequence[int], strides: Sequence[int], coords: Tensor, batch_index: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Row indices, trilinear weights and per-axis weights of the 8 corners.

    Args:
        sizes: (Z, Y, X) of the volume.
        strides: (b, z, y, x) strides of the volume in rows of C channels (`volume_layout.row_strides`).
        coords: (M, 3) continuous voxel coordinates (x, y, z).
        batch_index: (M,) int64 batch element of each sample.

    Returns:
        rows: (M, 8) int64 rows of the volume's (N, C) `volume_rows` (0 where the corner is outside).
        weights: (M, 8) trilinear weights in the coordinates' dtype (0 where the corner is outside).
        axis_weights: (M, 8, 3) per-axis factors of each weight (0 where the corner
            is outside), from which the backward differentiates the weights.
    """
    size_z, size_y, size_x = sizes
    stride_b, stride_z, stride_y, stride_x = strides
    offsets = device_constant(_CORNER_OFFSETS, coords.device)  # (8, 3)
    base = torch.floor(coords)
    frac = coords - base  # (M, 3)
    corner = base.to(torch.int64).unsqueeze(1) + offsets  # (M, 8, 3)
    upper = device_constant((size_x - 1, size_y - 1, size_z - 1), coords.device)
    inside = ((corner >= 0) & (corner <= upper)).all(dim=-1)  # (M, 8)
    axis_weights = torch.where(offsets.bool(), frac.unsqueeze(1), 1.0 - frac.unsqueeze(1))  # (M, 8, 3)
    weights = axis_weights.prod(dim=-1) * inside
    rows = (batch_index.unsqueeze(1) * stride_b + corner[..., 2] * stride_z + corner[..., 1] * stride_y
            + corner[..., 0] * stride_x)
    rows = torch.where(inside, rows, torch.zeros_like(rows))
    return rows, weights, axis_weights * inside.unsqueeze(-1)


def _accumulation_dtype(volume: Tensor) -> torch.dtype:
    """float64 for float64 volumes (gradcheck), float32 for everything else (bf16, fp16)."""
    return torch.promote_types(volume.dtype, torch.float32)


def _forward_impl(
    rows_view: Tensor, sizes: Sequence[int], strides: Sequence[int], coords: Tensor, batch_index: Tensor
) -> Tensor:
    """Weighted sum of the 8 gathered corner rows of the (N, C) `volume_rows`; (M, C) in the accumulation dtype."""
    channels = rows_view.shape[-1]
    rows, weights, _ = _corners(sizes, strides, coords, batch_index)
    gathered = rows_view.index_select(0, rows.reshape(-1))  # (M*8, C)
    gathered = gathered.view(-1, 8, channels).to(_accumulation_dtype(rows_view))  # (M, 8, C)
    return (weights.unsqueeze(-1) * gathered).sum(dim=1)


def _backward_impl(
    rows_view: Tensor, sizes: Sequence[int], strides: Sequence[int], coords: Tensor, batch_index: Tensor,
    grad_out: Tensor, need_coords_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """Gradients for the volume's (N, C) rows (accumulation dtype) and, if asked, the coordinates."""
    channels = rows_view.shape[-1]
    accumulation_dtype = _accumulation_dtype(rows_view)
    rows, weights, axis_weights = _corners(sizes, strides, coords, batch_index)
    grad_out = grad_out.to(accumulation_dtype)
    contributions = weights.unsqueeze(-1) * grad_out.unsqueeze(1)  # (M, 8, C)
    grad_rows = torch.zeros(rows_view.shape, device=rows_view.device, dtype=accumulation_dtype)
    grad_rows.index_add_(0, rows.reshape(-1), contributions.reshape(-1, channels))
    grad_coords = None
    if need_coords_grad:
        gathered = rows_view.index_select(0, rows.reshape(-1)).view(-1, 8, channels)
        corner_dot = (gathered.to(accumulation_dtype) * grad_out.unsqueeze(1)).sum(dim=-1)  # (M, 8)
        offsets = device_constant(_CORNER_OFFSETS, coords.device, coords.dtype)
        sign = 2.0 * offsets - 1.0  # (8, 3): d(axis weight)/d(coordinate)
        # d weight / d coord_a = sign_a * product of the two other axis factors.
        other_axes = torch.stack(
            [
                axis_weights[..., 1] * axis_weights[..., 2],
                axis_weights[..., 0] * axis_weights[..., 2],
                axis_weights[..., 0] * axis_weights[..., 1],
            ],
            dim=-1,
        )  # (M, 8, 3)
        grad_coords = (corner_dot.unsqueeze(-1) * sign * other_axes).sum(dim=1)
    return grad_rows, grad_coords


@cache
def _compiled(function: Callable[..., object]) -> Callable[..., object]:
    """`torch.compile` a kernel once per process (fuses gather, weights and sum on GPU)."""
    return torch.compile(function, dynamic=True)


class _TrilinearSample(torch.autograd.Function):
    """Autograd wrapper: forward gathers, backward scatters with `index_add_` (rows in memory order)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        volume: Tensor,
        coords: Tensor,
        batch_index: Tensor,
        compiled: bool,
    ) -> Tensor:
        forward_impl = _compiled(_forward_impl) if compiled else _forward_impl
        ctx.save_for_backward(volume, coords, batch_index)
        ctx.compiled = compiled  # type: ignore[attr-defined]
        layout = (tuple(volume.shape[1:4]), row_strides(volume))
        return forward_impl(volume_rows(volume), *layout, coords, batch_index).to(volume.dtype)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None, None]:
        volume, coords, batch_index = ctx.saved_tensors  # type: ignore[attr-defined]
        backward_impl = _compiled(_backward_impl) if ctx.compiled else _backward_impl  # type: ignore[attr-defined]
        layout = (tuple(volume.shape[1:4]), row_strides(volume))
        grad_rows, grad_coords = backward_impl(
            volume_rows(volume), *layout, coords, batch_index, grad_out.contiguous(),
            ctx.needs_input_grad[1],  # type: ignore[attr-defined]
        )
        grad_volume_out = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            grad_volume_out = gradient_like(volume)  # the volume's own layout
            volume_rows(grad_volume_out).copy_(grad_rows)
        grad_coords_out = grad_coords.to(coords.dtype) if grad_coords is not None else None
        return grad_volume_out, grad_coords_out, None, None


def trilinear_sample(volume: Tensor, coords: Tensor, batch_index: Tensor, compiled: bool = False) -> Tensor:
    """Sample a channels-last volume at continuous voxel coordinates.

    Equals `F.grid_sample(volume.permute(0, 4, 1, 2, 3), grid, mode="bilinear",
    padding_mode="zeros", align_corners=False)` with `grid` the coordinates normalised
    to [-1, 1] (see module docstring), in forward and backward, but reads each corner
    as one contiguous row of channels.

    Args:
        volume: (B, Z, Y, X, C) values, any float dtype; gradients flow to it.
        coords: (M, 3) continuous (ix, iy, iz) from `metric_to_voxel`; gradients flow
            to it too (in float32 / float64 as given).
        batch_index: (M,) int64 batch element of each sample.
        compiled: run the gather/scatter through `torch.compile` (worth it on GPU).

    Returns:
        (M, C) sampled values in the volume's dtype (accumulated in float32, or
        float64 for float64 volumes).
    """
    if volume.dim() != 5:
        raise ValueError(f"volume must be (B, Z, Y, X, C), got shape {tuple(volume.shape)}")
    if coords.dim() != 2 or coords.shape[-1] != 3 or batch_index.shape != coords.shape[:1]:
        raise ValueError(
            f"coords must be (M, 3) and batch_index (M,), got {tuple(coords.shape)} and {tuple(batch_index.shape)}"
        )
    return _TrilinearSample.apply(dense_volume(volume), coords, batch_index.to(torch.int64), compiled)


SAMPLERS: tuple[str, ...] = ("trilinear", "trilinear_compiled", "trilinear_triton", "grid_sample")


def sample_volume(volume: Tensor, coords: Tensor, batch_index: Tensor, sampler: str) -> Tensor:
    """Sample a (B, Z, Y, X, C) volume at (M, 3) voxel coordinates with the named sampler.

    "trilinear" (eager), "trilinear_compiled" (the same through torch.compile),
    "trilinear_triton" (hand-written Triton kernels, CUDA) or "grid_sample" (the baseline);
    all return (M, C) in the volume's dtype.
    """
    if sampler == "grid_sample":
        return grid_sample_reference(volume, coords, batch_index)
    if sampler == "trilinear_triton":
        from nsmae_lightning.models.trilinear_triton import triton_trilinear_sample

        return triton_trilinear_sample(volume, coords, batch_index)
    if sampler in ("trilinear", "trilinear_compiled"):
        return trilinear_sample(volume, coords, batch_index, compiled=sampler == "trilinear_compiled")
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


def grid_sample_reference(volume: Tensor, coords: Tensor, batch_index: Tensor) -> Tensor:
    """The same sampling through `F.grid_sample` on a (B, C, Z, Y, X) view (the baseline).

    Kept as the reference the fast sampler is tested and benchmarked against, and as a
    render-network option. Loops over batch elements because grid_sample needs the same
    sample count per element.

    Args:
        volume: (B, Z, Y, X, C) values.
        coords: (M, 3) continuous voxel coordinates (cell centres at integers).
        batch_index: (M,) int64 batch element of each sample.

    Returns:
        (M, C) sampled values in the volume's dtype.
    """
    batch_size, size_z, size_y, size_x, channels = volume.shape
    # grid_sample takes the grid in the input's dtype: bf16 / fp16 coordinates in [-1, 1] would place a
    # sample up to ~0.4 voxel off at 180 cells (ref. err 0.4-0.9 in benchmarks/RESULTS.md, twelfth
    # session), so a low-precision volume is sampled in float32 and the result cast back
    compute = torch.promote_types(volume.dtype, torch.float32)
    volume_cf = volume.permute(0, 4, 1, 2, 3).to(compute)  # (B, C, Z, Y, X)
    sizes = coords.new_tensor([size_x, size_y, size_z])
    grid = ((2.0 * coords + 1.0) / sizes - 1.0).to(compute)  # align_corners=False normalisation
    output = volume.new_zeros(coords.shape[0], channels)
    for sample_index in range(batch_size):
        selected = batch_index == sample_index
        sampled = torch.nn.functional.grid_sample(
            volume_cf[sample_index : sample_index + 1],
            grid[selected].view(1, 1, 1, -1, 3),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )  # (1, C, 1, 1, m)
        output = output.index_put((torch.nonzero(selected).squeeze(1),), sampled.view(channels, -1).T.to(volume.dtype))
    return output
