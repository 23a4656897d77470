"""Trilinear sampling of a channels-last volume as two hand-written Triton kernels.

Same contract as `trilinear.trilinear_sample` (cell centres at integer coordinates,
zeros outside, accumulation in float32), but each sample's 8 corner rows are read,
weighted and summed in registers: nothing of size (samples x 8 x C) is written to
memory. The backward kernel re-derives the corners, scatters the weighted output
gradient into a float32 volume gradient with atomic adds, and (when asked)
differentiates the weights for the coordinates from the same corner reads.

Why it is laid out as it is (the first version was 3.7x slower than torch.compile's
gather / index_add on an H200):

- channels are split into exact power-of-two blocks (C = 33 -> 32 + 1) instead of one
  block padded to the next power of two (64 lanes, half of them masked, masked atomics
  included);
- the atomics are ``sem="relaxed"``: Triton's default (acq_rel) makes every add a
  returning ``atom.acq_rel``, where an order-free sum needs only a ``red`` (Inductor's
  scatter uses relaxed too);
- each channel block accumulates into its own float32 buffer with rows of exactly its
  width (N x 32 for the features), so rows are 16-byte aligned and the adds compile to
  vector reductions (``red.global.add.v4.f32``: 4 channels per instruction), which the
  volume's own 33-channel rows cannot allow; the blocks are cast into the volume's
  dtype and layout once at the end;
- offsets are 32-bit unless the volume has 2^31 elements or more;
- outside corners' indices are clamped (their loads masked), not their offsets zeroed with a select:
  Triton then keeps the strides' divisibility by 16 and, where a row's channels start aligned, loads
  them 16 bytes at a time; `RenderConfig.volume_row_bytes` pads the volume's rows in front so that the
  32 features after the density start 32-byte aligned, and the kernels read them from a pointer to
  channel 1 (``SHIFT``, `aligned_features`).

`triton` is optional (CUDA builds of PyTorch ship it); without it only choosing this
sampler fails, with a clear error. On a GPU the rows per program and the warp count are
autotuned; on a CPU, ``TRITON_INTERPRET=1`` runs the plain kernels in Triton's
interpreter, which is how the tests check them against the reference sampler.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from nsmae_lightning.models.volume_layout import gradient_like, row_strides, volume_rows

BLOCK = 64  # samples per program in the interpreter (tuned on a GPU)
JOIN_BLOCK = 1024  # gradient elements per program of the channel join
POINTS_BLOCK = 512  # samples per program of the points kernel
RAY_ROW = 8  # float32 values per ray of `ray_voxel_rows` (32 bytes: one sector); the kernels' literal 8


try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the machine
    triton = None


def interpreting() -> bool:
    """Whether Triton kernels run in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def require_triton(what: str, fallback: str) -> None:
    """Fail clearly where a Triton option is chosen on a machine without triton."""
    if triton is None:
        raise RuntimeError(
            f"{what} needs the `triton` package (shipped with CUDA builds of PyTorch); use {fallback} without it"
        )


def check_triton_device(tensor: Tensor, what: str, fallback: str) -> None:
    """Triton kernels run on CUDA tensors, or anywhere in the interpreter."""
    if tensor.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"{what} runs on CUDA tensors (got {tensor.device.type}); on a CPU use {fallback}, "
            "or TRITON_INTERPRET=1 to run the kernels in Triton's interpreter"
        )


if triton is not None:

    @triton.jit
    def _corner(cx, cy, cz, size_x, size_y, size_z, valid, DX: tl.constexpr, DY: tl.constexpr, DZ: tl.constexpr,
                WIDE: tl.constexpr):
        """Voxel indices, per-axis factors and inside-mask of one corner of every sample."""
        x0 = tl.floor(cx)
        y0 = tl.floor(cy)
        z0 = tl.floor(cz)
        fx = cx - x0
        fy = cy - y0
        fz = cz - z0
        index_type = tl.int64 if WIDE else tl.int32
        ix = x0.to(index_type) + DX
        iy = y0.to(index_type) + DY
        iz = z0.to(index_type) + DZ
        wx = fx if DX else 1.0 - fx
        wy = fy if DY else 1.0 - fy
        wz = fz if DZ else 1.0 - fz
        inside = valid & (ix >= 0) & (ix < size_x) & (iy >= 0) & (iy < size_y) & (iz >= 0) & (iz < size_z)
        # outside corners are masked; clamped (not zeroed with a select) their offsets stay in range and keep
        # the strides' divisibility, which lets Triton vectorise the row loads where the strides allow it
        ix = tl.minimum(tl.maximum(ix, 0), size_x - 1)
        iy = tl.minimum(tl.maximum(iy, 0), size_y - 1)
        iz = tl.minimum(tl.maximum(iz, 0), size_z - 1)
        return ix, iy, iz, wx, wy, wz, inside

    @triton.jit
    def _offset(b, ix, iy, iz, stride_b, stride_z, stride_y, stride_x, WIDE: tl.constexpr):
        """Offset of voxel (b, iz, iy, ix) for the given strides (`_corner`'s clamped indices: in range)."""
        return b.to(tl.int64 if WIDE else tl.int32) * stride_b + iz * stride_z + iy * stride_y + ix * stride_x

    @triton.jit
    def _ray_coordinate(ray_rows, ray, t_row, valid, AXIS: tl.constexpr):
        """Voxel coordinate along AXIS of a sample t_row along its ray: o' + t d' of the `ray_voxel_rows`
        row at offset ``ray``."""
        origin = tl.load(ray_rows + ray + AXIS, mask=valid, other=0.0)
        return origin + t_row * tl.load(ray_rows + ray + 4 + AXIS, mask=valid, other=0.0)

    @triton.jit
    def _load_samples(coords, batch_index, kept, samples, KEPT: tl.constexpr, BLOCK_M: tl.constexpr):
        """This program's sample indices, validity, voxel coordinates and batch elements, read from
        ``coords`` (M, 3) / ``batch_index`` (M,), or with KEPT at the rows ``kept`` (K,) names (a culled
        march's feature pass: no gathered (K, 3) copy of the coordinates)."""
        m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        valid = m < samples
        source = m
        if KEPT:
            source = tl.load(kept + m, mask=valid, other=0)
        cx = tl.load(coords + source * 3, mask=valid, other=0.0).to(tl.float32)
        cy = tl.load(coords + source * 3 + 1, mask=valid, other=0.0).to(tl.float32)
        cz = tl.load(coords + source * 3 + 2, mask=valid, other=0.0).to(tl.float32)
        b = tl.load(batch_index + source, mask=valid, other=0)
        return m, valid, cx, cy, cz, b

    @triton.jit
    def _points_kernel(ray_index, t, ray_rows, coords, batch_index, samples, BLOCK_M: tl.constexpr,
                       WIDE: tl.constexpr):
        """(M, 3) float32 voxel coordinates and (M,) int32 batch elements of ray samples: row + t step of
        each sample's ray's `ray_voxel_rows` row (``ray_index``, ``t`` (M,))."""
        m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        valid = m < samples
        ray = tl.load(ray_index + m, mask=valid, other=0).to(tl.int64 if WIDE else tl.int32) * 8  # RAY_ROW
        t_row = tl.load(t + m, mask=valid, other=0.0)
        row = m.to(tl.int64 if WIDE else tl.int32) * 3
        for axis in tl.static_range(3):
            tl.store(coords + row + axis, _ray_coordinate(ray_rows, ray, t_row, valid, axis), mask=valid)
        tl.store(batch_index + m, tl.load(ray_rows + ray + 3, mask=valid, other=0.0).to(tl.int32), mask=valid)

    @triton.jit
    def _interpolate(volume, valid, cx, cy, cz, b, size_x, size_y, size_z, stride_b, stride_z, stride_y, stride_x,
                     FIRST: tl.constexpr, WIDTH: tl.constexpr, LANES: tl.constexpr, WIDE: tl.constexpr,
                     SHIFT: tl.constexpr):
        """(rows, LANES) float32 channels FIRST .. FIRST + WIDTH of every sample, 0 in lanes past WIDTH
        (LANES = WIDTH rounded up to a power of two); the volume's element strides are given, its
        channels are adjacent, and ``volume`` points at its channel SHIFT (`aligned_features`)."""
        lane = tl.arange(0, LANES)
        c = FIRST + lane
        channel_ok = lane < WIDTH
        acc = tl.zeros((cx.shape[0], LANES), dtype=tl.float32)
        for index in tl.static_range(8):
            ix, iy, iz, wx, wy, wz, inside = _corner(cx, cy, cz, size_x, size_y, size_z, valid,
                                                     index & 1, (index >> 1) & 1, (index >> 2) & 1, WIDE)
            offset = _offset(b, ix, iy, iz, stride_b, stride_z, stride_y, stride_x, WIDE)
            mask = inside[:, None] & channel_ok[None, :]
            values = tl.load(volume + offset[:, None] + (c - SHIFT)[None, :], mask=mask, other=0.0)
            acc += (wx * wy * wz)[:, None] * values.to(tl.float32)
        return acc

    @triton.jit
    def _gather_block(volume, out, out_rest, m, valid, cx, cy, cz, b, size_x, size_y, size_z,
                      stride_b, stride_z, stride_y, stride_x, channels,
                      FIRST: tl.constexpr, WIDTH: tl.constexpr, LANES: tl.constexpr, WIDE: tl.constexpr,
                      SPLIT: tl.constexpr, SHIFT: tl.constexpr):
        """Write channels FIRST .. FIRST + WIDTH of every sample to ``out`` ((M, channels) rows), or with
        SPLIT channel 0 to ``out`` (M,) and the others to ``out_rest`` ((M, channels - 1) rows)."""
        acc = _interpolate(volume, valid, cx, cy, cz, b, size_x, size_y, size_z, stride_b, stride_z, stride_y,
                           stride_x, FIRST, WIDTH, LANES, WIDE, SHIFT)
        c = FIRST + tl.arange(0, LANES)
        rows = m.to(tl.int64 if WIDE else tl.int32)
        mask = valid[:, None] & (c < FIRST + WIDTH)[None, :]
        if SPLIT:
            tl.store(out_rest + rows[:, None] * (channels - 1) + (c - 1)[None, :], acc, mask=mask & (c >= 1)[None, :])
            if FIRST == 0:
                tl.store(out + rows, tl.sum(tl.where((c == 0)[None, :], acc, 0.0), axis=1), mask=valid)
        else:
            tl.store(out + rows[:, None] * channels + c[None, :], acc, mask=mask)

    @triton.jit
    def _forward_kernel(volume, coords, batch_index, kept, out, out_rest, samples,
                        size_x, size_y, size_z, stride_b, stride_z, stride_y, stride_x, channels,
                        FIRST: tl.constexpr, HEAD: tl.constexpr, TAIL: tl.constexpr, TAIL_LANES: tl.constexpr,
                        WIDE: tl.constexpr, SPLIT: tl.constexpr, SHIFT: tl.constexpr, KEPT: tl.constexpr,
                        BLOCK_M: tl.constexpr):
        # channels FIRST .. FIRST + HEAD + TAIL of the volume's (`channel_split`; FIRST > 0: a culled march's
        # feature pass; HEAD = 1: `density_first_split`)
        m, valid, cx, cy, cz, b = _load_samples(coords, batch_index, kept, samples, KEPT, BLOCK_M)
        _gather_block(volume, out, out_rest, m, valid, cx, cy, cz, b, size_x, size_y, size_z, stride_b, stride_z,
                      stride_y, stride_x, channels, FIRST, HEAD, HEAD, WIDE, SPLIT, SHIFT)
        if TAIL > 0:
            _gather_block(volume, out, out_rest, m, valid, cx, cy, cz, b, size_x, size_y, size_z, stride_b, stride_z,
                          stride_y, stride_x, channels, FIRST + HEAD, TAIL, TAIL_LANES, WIDE, SPLIT, SHIFT)

    @triton.jit
    def _load_grad_block(grad_out, grad_rest, m, valid, channels, FIRST: tl.constexpr, WIDTH: tl.constexpr,
                         LANES: tl.constexpr, WIDE: tl.constexpr, SPLIT: tl.constexpr):
        """(rows, LANES) float32 output gradient of channels FIRST .. FIRST + WIDTH (0 in the other lanes),
        from ``grad_out`` ((M, channels) rows), or with SPLIT channel 0 from ``grad_out`` (M,) and the others
        from ``grad_rest`` ((M, channels - 1) rows), each in its own dtype."""
        c = FIRST + tl.arange(0, LANES)
        rows = m.to(tl.int64 if WIDE else tl.int32)
        mask = valid[:, None] & (c < FIRST + WIDTH)[None, :]
        if SPLIT:
            g = tl.load(grad_rest + rows[:, None] * (channels - 1) + (c - 1)[None, :], mask=mask & (c >= 1)[None, :],
                        other=0.0).to(tl.float32)
            if FIRST == 0:
                density = tl.load(grad_out + rows, mask=valid, other=0.0).to(tl.float32)
                g = tl.where((c == 0)[None, :], density[:, None], g)
        else:
            g = tl.load(grad_out + rows[:, None] * channels + c[None, :], mask=mask, other=0.0).to(tl.float32)
        return g

    @triton.jit
    def _scatter_block(volume, g, grad_block, valid, cx, cy, cz, b, size_x, size_y, size_z,
                       stride_b, stride_z, stride_y, stride_x, row_b, row_z, row_y, row_x,
                       NEED_COORDS: tl.constexpr, FIRST: tl.constexpr, WIDTH: tl.constexpr, LANES: tl.constexpr,
                       WIDE: tl.constexpr, SHIFT: tl.constexpr):
        """Scatter the (rows, LANES) gradient ``g`` of channels FIRST .. FIRST + WIDTH into ``grad_block``
        (float32 rows of WIDTH channels at row strides row_*; relaxed vector atomics); return their
        share of the coordinate gradient (zeros unless NEED_COORDS; the volume, pointed at its channel
        SHIFT, read at strides stride_*)."""
        lane = tl.arange(0, LANES)
        c = FIRST + lane
        channel_ok = lane < WIDTH
        gx = tl.zeros((cx.shape[0],), dtype=tl.float32)
        gy = tl.zeros((cx.shape[0],), dtype=tl.float32)
        gz = tl.zeros((cx.shape[0],), dtype=tl.float32)
        for index in tl.static_range(8):
            ix, iy, iz, wx, wy, wz, inside = _corner(cx, cy, cz, size_x, size_y, size_z, valid,
                                                     index & 1, (index >> 1) & 1, (index >> 2) & 1, WIDE)
            row = _offset(b, ix, iy, iz, row_b, row_z, row_y, row_x, WIDE)
            mask = inside[:, None] & channel_ok[None, :]
            tl.atomic_add(grad_block + row[:, None] * WIDTH + lane[None, :], (wx * wy * wz)[:, None] * g, mask=mask,
                          sem="relaxed")
            if NEED_COORDS:
                offset = _offset(b, ix, iy, iz, stride_b, stride_z, stride_y, stride_x, WIDE)
                values = tl.load(volume + offset[:, None] + (c - SHIFT)[None, :], mask=mask, other=0.0).to(tl.float32)
                dot = tl.where(inside, tl.sum(values * g, axis=1), 0.0)
                # d(weight)/d(coordinate) = +-1 times the other two axis factors
                gx += dot * (wy * wz if index & 1 else -(wy * wz))
                gy += dot * (wx * wz if (index >> 1) & 1 else -(wx * wz))
                gz += dot * (wx * wy if (index >> 2) & 1 else -(wx * wy))
        return gx, gy, gz

    @triton.jit
    def _backward_kernel(volume, coords, batch_index, kept, grad_out, grad_rest,
                         grad_head, grad_tail, grad_coords, samples, size_x, size_y, size_z, stride_b, stride_z,
                         stride_y, stride_x,
                         row_b, row_z, row_y, row_x, channels,
                         NEED_COORDS: tl.constexpr, FIRST: tl.constexpr, HEAD: tl.constexpr, TAIL: tl.constexpr,
                         TAIL_LANES: tl.constexpr, WIDE: tl.constexpr, SPLIT: tl.constexpr, SHIFT: tl.constexpr,
                         KEPT: tl.constexpr, BLOCK_M: tl.constexpr):
        m, valid, cx, cy, cz, b = _load_samples(coords, batch_index, kept, samples, KEPT, BLOCK_M)
        g = _load_grad_block(grad_out, grad_rest, m, valid, channels, FIRST, HEAD, HEAD, WIDE, SPLIT)
        gx, gy, gz = _scatter_block(volume, g, grad_head, valid, cx, cy, cz, b, size_x, size_y, size_z,
                                    stride_b, stride_z, stride_y, stride_x, row_b, row_z, row_y, row_x,
                                    NEED_COORDS, FIRST, HEAD, HEAD, WIDE, SHIFT)
        if TAIL > 0:
            g = _load_grad_block(grad_out, grad_rest, m, valid, channels, FIRST + HEAD, TAIL, TAIL_LANES, WIDE,
                                 SPLIT)
            tx, ty, tz = _scatter_block(volume, g, grad_tail, valid, cx, cy, cz, b, size_x, size_y, size_z,
                                        stride_b, stride_z, stride_y, stride_x, row_b, row_z, row_y, row_x,
                                        NEED_COORDS, FIRST + HEAD, TAIL, TAIL_LANES, WIDE, SHIFT)
            gx += tx
            gy += ty
            gz += tz
        if NEED_COORDS:
            tl.store(grad_coords + m * 3, gx, mask=valid)
            tl.store(grad_coords + m * 3 + 1, gy, mask=valid)
            tl.store(grad_coords + m * 3 + 2, gz, mask=valid)

    # On a GPU, rows per program and warps are tuned once per channel split (the interpreter runs the
    # plain kernels). The backward accumulates with atomics, so its trials start from zeroed gradients.
    # Up to ~16 rows x channels per thread: compiled for sm_90, larger tiles spill registers.
    _TUNING = [
        triton.Config({"BLOCK_M": rows}, num_warps=warps)
        for rows, warps in ((32, 2), (32, 4), (32, 8), (64, 4), (64, 8), (128, 4), (128, 8), (256, 8))
    ]
    # The forward holds all 8 corner rows in registers: at more than 16 rows per warp it spills.
    _FORWARD_TUNING = [config for config in _TUNING if config.kwargs["BLOCK_M"] <= 16 * config.num_warps]
    # tuned per channel block too: a culled march's density (1 channel) and feature passes share `channels`
    _forward_tuned = triton.autotune(_FORWARD_TUNING, key=["channels", "FIRST", "HEAD", "WIDE", "SPLIT", "SHIFT",
                                                           "KEPT"])(_forward_kernel)
    _backward_tuned = triton.autotune(
        _TUNING, key=["channels", "FIRST", "HEAD", "NEED_COORDS", "WIDE", "SPLIT", "SHIFT", "KEPT"],
        reset_to_zero=["grad_head", "grad_tail", "grad_coords"]
    )(_backward_kernel)

    @triton.jit
    def _join_kernel(first, rest, joined, total, channels, pitch, FIRST: tl.constexpr, REST: tl.constexpr,
                     BLOCK: tl.constexpr, WIDE: tl.constexpr):
        """joined[n, c] = first[n, c] for c < FIRST, else rest[n, c - FIRST]: (N, channels) rows written
        whole (coalesced; rows ``pitch`` elements apart), cast to ``joined``'s dtype; the sources are
        float32 rows of FIRST / REST."""
        i = tl.program_id(0).to(tl.int64 if WIDE else tl.int32) * BLOCK + tl.arange(0, BLOCK)
        valid = i < total
        row = i // channels
        c = i - row * channels
        in_first = c < FIRST
        value = tl.load(first + row * FIRST + c, mask=valid & in_first, other=0.0)
        if REST > 0:
            value = tl.where(in_first, value, tl.load(rest + row * REST + (c - FIRST), mask=valid & ~in_first,
                                                      other=0.0))
        tl.store(joined + row * pitch + c, value, mask=valid)


def _launch(kernel: str, samples: int, *args: object, **constants: object) -> None:
    """Run the ``kernel`` ("forward" / "backward") over ``samples`` samples: tuned on a GPU, plain when interpreted."""
    require_triton("RenderConfig.sampler 'trilinear_triton'", "'trilinear_compiled' or 'trilinear'")
    if interpreting():
        plain = _forward_kernel if kernel == "forward" else _backward_kernel
        plain[(triton.cdiv(samples, BLOCK),)](*args, **constants, BLOCK_M=BLOCK)
        return
    tuned = _forward_tuned if kernel == "forward" else _backward_tuned
    tuned[lambda meta: (triton.cdiv(samples, meta["BLOCK_M"]),)](*args, **constants)


def _shape_args(volume: Tensor) -> tuple[int, int, int, int, int, int, int]:
    """(size_x, size_y, size_z, stride_b, stride_z, stride_y, stride_x) of a (B, Z, Y, X, C) volume
    whose channels are adjacent, strides in elements."""
    _, size_z, size_y, size_x, _ = volume.shape
    return (size_x, size_y, size_z, *volume.stride()[:4])


def channel_split(channels: int, first: int = 0) -> dict[str, int]:
    """Exact power-of-two channel blocks of channels ``first`` .. ``first + channels`` of a volume: HEAD
    (the largest power of two <= C) and a TAIL of the rest; FIRST is ``first``.

    C = 33 (density + 32 features) runs as 32 + 1 lanes instead of 64 with 31 masked; the
    tail is padded to TAIL_LANES, a power of two (C = 7: 4 + 3 in 4 lanes). The backward scatters
    each block into float32 rows of exactly its width (HEAD: 16-byte aligned rows, 4-wide vector
    reductions; 32 channels = one 128-byte line a row; one (N, 36) buffer measured slower).
    """
    if channels <= 0:
        raise ValueError(f"the Triton sampler needs at least one channel, got {channels}")
    head = 1 << (channels.bit_length() - 1)
    tail = channels - head
    return {"FIRST": first, "HEAD": head, "TAIL": tail, "TAIL_LANES": 1 << max(0, tail - 1).bit_length()}


def aligned_features(volume: Tensor) -> bool:
    """Whether the volume's feature channels 1.. start 16 bytes aligned in every voxel row and are a power of
    two of at least 16 bytes (the rows of `RenderConfig.volume_row_bytes`, padded in front of the density for
    this): then the kernels are handed a pointer to channel 1 (SHIFT = 1) and Triton, which aligns a row's
    loads only from its pointer arguments and their 16-divisible strides, reads the features with 16-byte
    loads (compiled for sm_90: 4 a corner for 32 bf16 features where a row read from channel 1 of the
    volume's own pointer takes 32 two-byte loads, `benchmarks/triton_compile_check.py --shift`)."""
    features, size = volume.shape[-1] - 1, volume.element_size()
    if features < 1 or features & (features - 1) or features * size < 16:
        return False
    strides = [stride for stride, extent in zip(volume.stride()[:-1], volume.shape[:-1]) if extent > 1]
    return (volume.data_ptr() + size) % 16 == 0 and all(stride * size % 16 == 0 for stride in strides)


def density_first_split(channels: int) -> dict[str, int]:
    """Channel blocks of a whole-volume read with `aligned_features`: the density alone (HEAD = 1), then the
    C - 1 features in one exact block that starts at the aligned channel 1."""
    return {"FIRST": 0, "HEAD": 1, "TAIL": channels - 1, "TAIL_LANES": channels - 1}


def _read_pointer(volume: Tensor) -> tuple[Tensor, int]:
    """The tensor whose pointer the kernels read the volume from, and its first channel (SHIFT): channel 1
    where `aligned_features`, else the volume itself (channel 0)."""
    shift = int(aligned_features(volume))
    return volume[..., shift:], shift


def _read_blocks(volume: Tensor) -> tuple[Tensor, dict[str, int]]:
    """`_read_pointer` for a whole-volume read, with its channel blocks and SHIFT: `density_first_split` from
    channel 1, else `channel_split`."""
    pointer, shift = _read_pointer(volume)
    blocks = density_first_split(volume.shape[-1]) if shift else channel_split(volume.shape[-1])
    return pointer, {**blocks, "SHIFT": shift}


def _wide(*tensors: Tensor) -> bool:
    """Whether offsets into any of ``tensors`` (elements, strides included) can pass 2^31 - 1: then they are 64-bit."""
    return any(1 + sum((size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride())) >= 2**31
               for tensor in tensors if tensor.numel())


def _join_channels(head: Tensor, tail: Tensor, joined: Tensor) -> Tensor:
    """Write float32 gradient rows of the first channels (N, c) and the rest (N, C - c), in `volume_rows`
    order, into the gradient ``joined`` (from `gradient_like`) and return it (the sampler's HEAD / TAIL,
    the fused march's density / features): one kernel writing whole rows (0.15 ms for the paper-size
    volume on an H200, where two strided copies into the rows' column blocks took 0.30 ms)."""
    rows = volume_rows(joined)
    total = rows.numel()
    if total:
        grid = (triton.cdiv(total, JOIN_BLOCK),)
        _join_kernel[grid](head.contiguous(), tail.contiguous(), rows, total, rows.shape[1], rows.stride(0),
                           FIRST=head.shape[1], REST=tail.shape[1], BLOCK=JOIN_BLOCK, WIDE=_wide(rows), num_warps=4)
    return joined


def _zeroed_rows(volume: Tensor, widths: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Zeroed float32 (N, w) gradient rows for the volume's N voxels, one block per channel block of ``widths``
    (summing to its C), from one fill: what the backward kernels scatter into and `_join_channels` joins."""
    voxels = volume.numel() // volume.shape[-1]
    zeros = torch.zeros(voxels * sum(widths), device=volume.device, dtype=torch.float32)
    first, rest = zeros.split([voxels * width for width in widths])
    return first.view(voxels, widths[0]), rest.view(voxels, widths[1])


def _adjacent_channels(volume: Tensor) -> Tensor:
    """The volume itself if its channels are adjacent in memory (any other strides), else a contiguous copy."""
    return volume if volume.stride(-1) == 1 or volume.shape[-1] == 1 else volume.contiguous()


@functools.lru_cache(maxsize=64)
def _frame(pc_range: tuple[float, ...], grid_size: tuple[int, ...]) -> tuple[float, ...]:
    lower = torch.tensor(pc_range[:3], dtype=torch.float32)
    counts = torch.tensor((grid_size[2], grid_size[1], grid_size[0]), dtype=torch.float32)  # x, y, z
    cell = (torch.tensor(pc_range[3:], dtype=torch.float32) - lower) / counts
    return (*lower.tolist(), *cell.tolist())


def voxel_frame(pc_range: Sequence[float], grid_size: Sequence[int]) -> tuple[float, ...]:
    """(lower_x, lower_y, lower_z, cell_x, cell_y, cell_z) of a (Z, Y, X) volume over ``pc_range``: what the
    rays are mapped with (`ray_voxel_rows`), in float32 as `trilinear.metric_to_voxel` computes them
    (once per range and grid)."""
    return _frame(tuple(float(value) for value in pc_range), tuple(int(size) for size in grid_size))


@functools.lru_cache(maxsize=64)
def _frame_scale_shift(frame: tuple[float, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """1 / cell and -lower / cell - 0.5 per axis on ``device`` (made once: no host copy per call)."""
    lower = torch.tensor(frame[:3], dtype=torch.float32)
    scale = 1.0 / torch.tensor(frame[3:], dtype=torch.float32)
    return scale.to(device), (-lower * scale - 0.5).to(device)


def ray_voxel_rows(origins: Tensor, directions: Tensor, batch_index: Tensor, frame: Sequence[float]) -> Tensor:
    """(R, 8) float32 rows (o'_x, o'_y, o'_z, b, d'_x, d'_y, d'_z, 0) of rays in a volume's voxel frame
    (`voxel_frame`): the point o + t d has voxel coordinates o' + t d' (o' = (o - lower) / cell - 0.5,
    d' = d / cell); b is the ray's batch element (exact in float32 below 2^24).

    Why: the kernels then compute a sample's coordinates with one FMA per axis from one 32-byte row of
    its ray, instead of 7 gathers from three tensors and 3 divisions per sample (the same coordinates
    as `trilinear.metric_to_voxel` of the point up to float32 rounding). Four small kernels per call.
    """
    scale, shift = _frame_scale_shift(tuple(float(value) for value in frame), origins.device)
    rows = torch.empty(origins.shape[0], RAY_ROW, dtype=torch.float32, device=origins.device)
    torch.addcmul(shift, origins.float(), scale, out=rows[:, :3])
    rows[:, 3] = batch_index
    torch.mul(directions.float(), scale, out=rows[:, 4:7])
    rows[:, 7] = 0.0
    return rows


class _TritonTrilinear(torch.autograd.Function):
    """Autograd wrapper of the two kernels: the volume is differentiated, and the coordinates when they
    require it (`triton_sample_along_rays` makes them without). With ``split`` the values come
    out as channel 0 (M,) and the others (M, C - 1), and the backward reads their gradients as they
    are (no (M, C) gradient is assembled from them)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, volume: Tensor, coords: Tensor, batch_index: Tensor, split: bool
    ) -> Tensor | tuple[Tensor, Tensor]:
        samples, channels = coords.shape[0], volume.shape[-1]
        empty = {"device": volume.device, "dtype": volume.dtype}
        out = torch.empty((samples,) if split else (samples, channels), **empty)
        out_rest = torch.empty(samples, channels - 1, **empty) if split else out
        if samples:
            pointer, blocks = _read_blocks(volume)
            _launch("forward", samples, pointer, coords, batch_index, batch_index, out, out_rest, samples,
                    *_shape_args(volume), channels, **blocks, WIDE=_wide(volume, out, out_rest), SPLIT=split, KEPT=False)
        # the tensors through save_for_backward (autograd then notices one changed in place before the backward)
        ctx.save_for_backward(volume, coords, batch_index)
        ctx.split = split  # type: ignore[attr-defined]
        return (out, out_rest) if split else out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor, grad_rest: Tensor | None = None
    ) -> tuple[Tensor | None, Tensor | None, None, None]:
        volume, coords, batch_index = ctx.saved_tensors  # type: ignore[attr-defined]
        samples, channels = coords.shape[0], volume.shape[-1]
        need_coords = bool(ctx.needs_input_grad[1])  # type: ignore[attr-defined]
        pointer, blocks = _read_blocks(volume)  # the forward's blocks (the coordinates' gradient reads the volume)
        gradient = gradient_like(volume)  # the volume's layout where it is dense: no reordering copy later
        grad_head, grad_tail = _zeroed_rows(volume, (blocks["HEAD"], blocks["TAIL"]))
        grad_coords = torch.zeros(samples if need_coords else 0, 3, device=volume.device, dtype=torch.float32)
        grad_out = grad_out.contiguous()
        grad_rest = grad_out if grad_rest is None else grad_rest.contiguous()
        if samples:
            _launch("backward", samples, pointer, coords, batch_index, batch_index, grad_out, grad_rest, grad_head,
                    grad_tail, grad_coords, samples, *_shape_args(volume), *row_strides(gradient), channels,
                    NEED_COORDS=need_coords, **blocks, WIDE=_wide(volume, grad_out, grad_rest, gradient),
                    SPLIT=ctx.split, KEPT=False)  # type: ignore[attr-defined]
        grad_volume = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            grad_volume = _join_channels(grad_head, grad_tail, gradient)  # the rows the kernel scattered to
        return grad_volume, grad_coords.to(coords.dtype) if need_coords else None, None, None


def _checked_volume(volume: Tensor) -> Tensor:
    """The volume as the kernels read it (adjacent channels), after the checks every entry point makes."""
    if volume.dtype == torch.float64:
        raise ValueError("the Triton sampler accumulates in float32; use sampler 'trilinear' for float64")
    check_triton_device(volume, "the Triton sampler", "sampler 'trilinear'")
    return _adjacent_channels(volume)


def triton_trilinear_sample(volume: Tensor, coords: Tensor, batch_index: Tensor) -> Tensor:
    """`trilinear.trilinear_sample` through the Triton kernels (float32 / bf16 / fp16 volumes).

    Args:
        volume: (B, Z, Y, X, C) channels-last values; any strides with adjacent channels (e.g. the
            permuted storage of `RenderNetwork.volume`, or a channel slice of it) are read in place.
        coords: (M, 3) continuous (ix, iy, iz) voxel coordinates.
        batch_index: (M,) batch element of each sample.

    Returns:
        (M, C) in the volume's dtype, accumulated in float32.
    """
    coords = coords.contiguous()
    return _TritonTrilinear.apply(_checked_volume(volume), coords, batch_index.to(torch.int64).contiguous(), False)


def triton_sample_along_rays(
    volume: Tensor, origins: Tensor, directions: Tensor, batch_index: Tensor, ray_index: Tensor, t: Tensor,
    pc_range: Sequence[float], split: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The volume at the points o_r + t d_r of ray samples, their voxel coordinates made by one kernel.

    The same values as `triton_trilinear_sample` at ``metric_to_voxel(origins[ray_index] + t[:, None] *
    directions[ray_index])`` (up to float32 rounding of the point), without the ~10 torch kernels of
    those points, coordinates and per-sample batch elements: `ray_voxel_rows` (four small kernels) and a
    points kernel write the (M, 3) coordinates and (M,) batch elements. The ray geometry is data: it is
    not differentiated (only the volume is).

    Args:
        volume: (B, Z, Y, X, C) over ``pc_range``, as in `triton_trilinear_sample`.
        origins, directions: (R, 3) metric rays.
        batch_index: (R,) batch element of each ray.
        ray_index: (M,) the ray of each sample; t: (M,) its distance along the ray.
        pc_range: (x0, y0, z0, x1, y1, z1) the volume covers.
        split: return channel 0 (M,) and channels 1.. (M, C - 1) as two dense tensors (the renderer's
            density and colour features, `volume_layout.split_density` of the (M, C) result, without its
            strided columns and the (M, C) gradient its backward assembles).

    Returns:
        (M, C) in the volume's dtype, accumulated in float32; with ``split`` the two parts.
    """
    volume = _checked_volume(volume)
    coords, sample_batch = _ray_sample_points(volume, origins, directions, batch_index, ray_index, t, pc_range,
                                              "triton_sample_along_rays")
    return _TritonTrilinear.apply(volume, coords, sample_batch, split)


def _ray_sample_points(
    volume: Tensor, origins: Tensor, directions: Tensor, batch_index: Tensor, ray_index: Tensor, t: Tensor,
    pc_range: Sequence[float], caller: str,
) -> tuple[Tensor, Tensor]:
    """(M, 3) float32 voxel coordinates and (M,) int32 batch elements of the samples (`ray_voxel_rows` and
    one points kernel); the rays must not require gradients (``caller`` names the entry point that refuses)."""
    if origins.requires_grad or directions.requires_grad or t.requires_grad:
        raise ValueError(f"{caller} does not differentiate the rays; sample metric_to_voxel "
                         "coordinates with triton_trilinear_sample to get their gradient")
    rows = ray_voxel_rows(origins, directions, batch_index, voxel_frame(pc_range, volume.shape[1:4]))
    # the points first (one small kernel), then the kernels at coordinates: sampler fwd + bwd 1.49 GPU ms
    # against 1.71 with each sample's ray read inside them (H200, 1.54 M samples; benchmarks/RESULTS.md)
    samples = t.shape[0]
    coords = torch.empty(samples, 3, device=volume.device, dtype=torch.float32)
    sample_batch = torch.empty(samples, device=volume.device, dtype=torch.int32)
    if samples:
        _points_kernel[(triton.cdiv(samples, POINTS_BLOCK),)](ray_index.contiguous(), t.float().contiguous(), rows,
                                                               coords, sample_batch, samples, BLOCK_M=POINTS_BLOCK,
                                                               WIDE=_wide(coords), num_warps=4)
    return coords, sample_batch


class _CulledTrilinear(torch.autograd.Function):
    """A culled colour march's two sampling passes over one volume: channel 0 (density) at every sample, then
    channels 1.. (features) at the samples ``choose`` picks from those densities. Both read the whole volume
    in place and scatter into one float32 gradient (density and feature rows, joined once), where sampling
    the channel slices ``volume[..., :1]`` and ``volume[..., 1:]`` apart gives two gradients of the whole
    volume for autograd to zero-fill, copy into and add, in a layout other than the volume's."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, volume: Tensor, coords: Tensor, sample_batch: Tensor,
        choose: Callable[[Tensor], Tensor],
    ) -> tuple[Tensor, Tensor, Tensor]:
        samples, channels = coords.shape[0], volume.shape[-1]
        empty = {"device": volume.device, "dtype": volume.dtype}
        density = torch.empty(samples, **empty)
        if samples:
            _launch("forward", samples, volume, coords, sample_batch, sample_batch, density, density, samples,
                    *_shape_args(volume), channels, **channel_split(1), WIDE=_wide(volume, density), SPLIT=True,
                    SHIFT=0, KEPT=False)
        kept = choose(density).contiguous()
        features = torch.empty(kept.shape[0], channels - 1, **empty)
        if kept.shape[0]:  # the kept samples' coordinates read through ``kept`` (KEPT): no gathered copies
            pointer, shift = _read_pointer(volume)  # from channel 1 where that aligns the rows' loads
            _launch("forward", kept.shape[0], pointer, coords, sample_batch, kept, density, features,
                    kept.shape[0], *_shape_args(volume), channels, **channel_split(channels - 1, first=1),
                    WIDE=_wide(volume, features), SPLIT=True, SHIFT=shift, KEPT=True)
        ctx.save_for_backward(volume, coords, sample_batch, kept)
        ctx.mark_non_differentiable(kept)
        return density, features, kept

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_density: Tensor | None, grad_features: Tensor | None,
        _grad_kept: Tensor | None,
    ) -> tuple[Tensor | None, None, None, None]:
        volume, coords, sample_batch, kept = ctx.saved_tensors  # type: ignore[attr-defined]
        if not ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            return None, None, None, None
        channels = volume.shape[-1]
        gradient = gradient_like(volume)
        density_rows, feature_rows = _zeroed_rows(volume, (1, channels - 1))
        no_coords = torch.zeros(0, 3, device=volume.device, dtype=torch.float32)
        strides = (*_shape_args(volume), *row_strides(gradient), channels)
        for grad, count, pass_rows, blocks, indexed in (
            (grad_density, coords.shape[0], density_rows, channel_split(1), False),
            (grad_features, kept.shape[0], feature_rows, channel_split(channels - 1, first=1), True),
        ):
            if grad is None or not count:
                continue
            grad = grad.contiguous()  # the pass reads it as its density (M,) or feature rows (K, C - 1)
            # NEED_COORDS off: the volume is not read (SHIFT 0)
            _launch("backward", count, volume, coords, sample_batch, kept, grad, grad, pass_rows, pass_rows, no_coords,
                    count, *strides, NEED_COORDS=False, **blocks, WIDE=_wide(volume, grad, gradient), SPLIT=True,
                    SHIFT=0, KEPT=indexed)
        return _join_channels(density_rows, feature_rows, gradient), None, None, None


def culled_in_one_node(channels: int) -> bool:
    """Whether `triton_sample_culled` takes a volume of ``channels`` (1 + Cf): its feature pass is one exact
    channel block, so Cf must be a power of two."""
    features = channels - 1
    return features >= 1 and features & (features - 1) == 0


def triton_sample_culled(
    volume: Tensor, origins: Tensor, directions: Tensor, batch_index: Tensor, ray_index: Tensor, t: Tensor,
    pc_range: Sequence[float], choose: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor, Tensor]:
    """A culled colour march's samples (`RenderConfig.color_cull`): the density of every sample along the
    rays, then the colour features of those ``choose`` keeps, through one autograd node (`_CulledTrilinear`).

    Args:
        volume, origins, directions, batch_index, ray_index, t, pc_range: as in `triton_sample_along_rays`;
            the volume's feature channels C - 1 must be a power of two (one exact channel block).
        choose: (M,) densities -> (K,) ascending int64 indices of the samples to colour (no gradient).

    Returns:
        density (M,), features (K, C - 1), both in the volume's dtype, and the kept indices (K,).
    """
    volume = _checked_volume(volume)
    if not culled_in_one_node(volume.shape[-1]):
        raise ValueError(f"triton_sample_culled needs a power-of-two number of feature channels, got "
                         f"{volume.shape[-1] - 1} (volume of {volume.shape[-1]} channels); sample volume[..., :1] and "
                         "volume[..., 1:] apart")
    coords, sample_batch = _ray_sample_points(volume, origins, directions, batch_index, ray_index, t, pc_range,
                                              "triton_sample_culled")
    return _CulledTrilinear.apply(volume, coords, sample_batch, choose)
