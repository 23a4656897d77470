"""The colour march (sampling + colour MLP + compositing) as one Triton forward and one backward kernel.

Why: after the Triton sampler and compositor, the packed march still writes and reads
every per-sample intermediate (values (M, 1 + Cf), MLP activations, rgb) between
separate kernels, and the colour MLP runs as generic GEMMs on them. Here a program owns
BLOCK_R whole rays and walks them in chunks of BLOCK_S samples; a chunk is one tile of
BLOCK_R * BLOCK_S rows that never leaves registers:

1. sample points x = o + t d -> voxel coordinates (one FMA per axis from the ray's
   `trilinear_triton.ray_voxel_rows` row, as the sampler along rays computes them);
2. trilinear reads of density and the Cf features (`trilinear_triton._interpolate`);
3. colour MLP c = sigmoid(W3 relu(W2 relu(W1f f + p_r) + b2) + b3) with `tl.dot`
   (bf16 / fp16 / fp32 operands as the autocast dtype says, fp32 accumulation);
4. compositing along each ray with fp32 transmittance and weights (the helpers of
   `composite_triton`: a within-chunk cumsum plus a per-ray carry).

The view direction is constant along a ray, so the first layer is split:
W1 [f, enc(d)] + b1 = W1f f + p_r with p_r = W1e enc(d_r) + b1, one (R, H) float32 row
per ray computed in torch (autograd takes W1e and b1 from dp_r). The kernels therefore
see only K = Cf inputs per sample instead of the 59 of [f, enc(d)], and any direction
encoding (or none, use_view_dir=False) works unchanged.

Backward (analytic, nothing per sample stored by the forward): each tile is recomputed;
the compositing backward with the forward totals (see `composite_triton`) gives
dL/da_i and dL/dc_i = w_i g_C, then
    dz3 = dc * c (1 - c),  dh2 = dz3 W3,  dz2 = dh2 [h2 > 0],  dh1 = dz2 W2,
    dz1 = dh1 [h1 > 0],    df = dz1 W1f,  dp_r = sum over the ray's samples of dz1,
and df, dL/dsigma = dL/da delta are scattered into float32 volume gradients with
relaxed vector atomics (`trilinear_triton._scatter_block`). Weight and bias gradients
(dW1f = dz1^T f, dW2 = dz2^T h1, dW3, db2, db3) accumulate in registers of persistent
programs, each looping over many ray blocks, and are added to global memory once per
program, not once per tile. dp_r is written once per ray (rays never straddle programs).

March 'fused_mlp_triton' runs the same kernels with SAMPLED set: the separate sampler (e.g. the
Triton one) has written each sample's (1 + Cf) values, step 2 reads that row instead of eight
voxels, and the backward writes the row's gradient (one owner per row, no atomics) for the
sampler's own backward to scatter. Why: the in-kernel sampling holds coordinates, eight corner
weights and their gathers / atomics beside the MLP's tiles, and the 'fused_triton' kernels spill.

Supported: the colour MLP of `RenderConfig.mlp_layers == 2` (Linear-ReLU-Linear-ReLU-Linear
to 3), any feature_channels and mlp_hidden up to 128 (padded to powers of two >= 16 for
`tl.dot`). Depth-only rays (no colour) do not come here: `render` sends them through the
packed march with the Triton compositor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from nsmae_lightning.models.ray_samples import PackedSamples
from nsmae_lightning.models.rays import RayBundle
from nsmae_lightning.models.rendered_rays import RenderedRays, finish_rendering
from nsmae_lightning.models.trilinear_triton import (
    _join_channels,
    _shape_args,
    _wide,
    _zeroed_rows,
    check_triton_device,
    interpreting,
    ray_voxel_rows,
    require_triton,
    triton,
    voxel_frame,
)
from nsmae_lightning.models.volume_layout import gradient_like, row_strides

if TYPE_CHECKING:
    from nsmae_lightning.models.rendering import RenderNetwork

# Interpreter tiles: 2 rays x 8 samples = 16 rows (tl.dot's minimum), and 2 persistent backward
# programs, so the tests cover rays longer than a chunk, blocks per program > 1 and cross-program sums.
INTERPRETER_BLOCKS = {"BLOCK_R": 2, "BLOCK_S": 8}
INTERPRETER_PROGRAMS = 2
MAX_WIDTH = 128  # widest feature / hidden layer the kernels hold in registers
PROGRAMS_PER_SM = 2  # persistent backward programs per streaming multiprocessor

if triton is not None:
    import triton.language as tl

    from nsmae_lightning.models.composite_triton import (
        _grad_optical_depth,
        _positions,
        _ray_block,
        _store_totals,
        _upstream,
        _weights,
    )
    from nsmae_lightning.models.trilinear_triton import _interpolate, _ray_coordinate, _scatter_block

    @triton.jit
    def _dot(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
        """a @ b with float32 accumulation. UPCAST (interpreter only: its bf16 / fp16 `tl.dot` returns
        garbage) multiplies the same rounded operands in float32, which is what the tensor cores compute."""
        if UPCAST:
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
        return tl.dot(a, b, input_precision=PRECISION)

    @triton.jit
    def _output_row(w3, hidden, hidden_ok, HIDDEN: tl.constexpr, J: tl.constexpr):
        """Row J of the last layer's weight, float32 (of its compute-dtype copy)."""
        return tl.load(w3 + J * HIDDEN + hidden, mask=hidden_ok, other=0.0).to(tl.float32)

    @triton.jit
    def _tile(volume, ray_rows, t, ray_bias, w1, w2, b2, w3, b3,
              r, start, length, first, step,
              size_x, size_y, size_z, stride_b, stride_z, stride_y, stride_x,
              row_b, row_z, row_y, row_x, channels,
              FEATURES: tl.constexpr, FEATURE_LANES: tl.constexpr, HIDDEN: tl.constexpr,
              HIDDEN_LANES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr, WIDE: tl.constexpr,
              SAMPLED: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
        """One chunk of BLOCK_R rays: positions, a = sigma delta (BLOCK_R, BLOCK_S), and per row (of
        BLOCK_R * BLOCK_S) the offset of its sample's row in a (M, channels) tensor, its voxel
        coordinates, MLP input / activations and colour. SAMPLED: ``volume`` is the sampler's
        (M, 1 + Cf) values, read by row (coordinates are then unused zeros)."""
        rows: tl.constexpr = BLOCK_R * BLOCK_S
        index, inside, distance = _positions(t, start, length, first, BLOCK_S)
        valid = tl.reshape(inside, (rows,))
        sample = tl.where(valid, tl.reshape(index, (rows,)), 0).to(tl.int64 if WIDE else tl.int32) * channels
        ray = tl.where(valid, tl.reshape(tl.broadcast_to(r[:, None], (BLOCK_R, BLOCK_S)), (rows,)), 0)
        feature = tl.arange(0, FEATURE_LANES)
        stored = volume.dtype.element_ty  # the separate sampler rounds its output to the volume dtype
        compute = w1.dtype.element_ty
        if SAMPLED:
            cx = tl.zeros((rows,), dtype=tl.float32)
            cy = cx
            cz = cx
            b = tl.zeros((rows,), dtype=tl.int64)
            density = tl.load(volume + sample, mask=valid, other=0.0).to(tl.float32)
            x = tl.load(volume + sample[:, None] + 1 + feature[None, :],
                        mask=valid[:, None] & (feature < FEATURES)[None, :], other=0.0).to(compute)
        else:
            t_row = tl.reshape(distance, (rows,))
            row = ray * 8  # RAY_ROW: the ray's `ray_voxel_rows` row
            cx = _ray_coordinate(ray_rows, row, t_row, valid, 0)
            cy = _ray_coordinate(ray_rows, row, t_row, valid, 1)
            cz = _ray_coordinate(ray_rows, row, t_row, valid, 2)
            b = tl.load(ray_rows + row + 3, mask=valid, other=0.0).to(tl.int64)
            density = _interpolate(volume, valid, cx, cy, cz, b, size_x, size_y, size_z, stride_b, stride_z,
                                   stride_y, stride_x, 0, 1, 1, WIDE, 0).to(stored).to(tl.float32)
            x = _interpolate(volume, valid, cx, cy, cz, b, size_x, size_y, size_z, stride_b, stride_z, stride_y,
                             stride_x, 1, FEATURES, FEATURE_LANES, WIDE, 0).to(stored).to(compute)
        a = tl.reshape(density, (BLOCK_R, BLOCK_S)) * step
        hidden = tl.arange(0, HIDDEN_LANES)
        hidden_ok = hidden < HIDDEN
        w1t = tl.load(w1 + hidden[None, :] * FEATURES + feature[:, None],
                      mask=(feature < FEATURES)[:, None] & hidden_ok[None, :], other=0.0)  # W1f^T (in, out)
        bias1 = tl.load(ray_bias + ray[:, None] * HIDDEN + hidden[None, :], mask=valid[:, None] & hidden_ok[None, :],
                        other=0.0)
        h1 = tl.maximum(_dot(x, w1t, PRECISION, UPCAST) + bias1, 0.0).to(compute)
        w2t = tl.load(w2 + hidden[None, :] * HIDDEN + hidden[:, None], mask=hidden_ok[:, None] & hidden_ok[None, :],
                      other=0.0)  # W2^T (in, out)
        bias2 = tl.load(b2 + hidden, mask=hidden_ok, other=0.0).to(tl.float32)
        h2 = tl.maximum(_dot(h1, w2t, PRECISION, UPCAST) + bias2[None, :], 0.0).to(compute).to(tl.float32)
        red = tl.sigmoid(tl.sum(h2 * _output_row(w3, hidden, hidden_ok, HIDDEN, 0)[None, :], axis=1)
                         + tl.load(b3).to(tl.float32))
        green = tl.sigmoid(tl.sum(h2 * _output_row(w3, hidden, hidden_ok, HIDDEN, 1)[None, :], axis=1)
                           + tl.load(b3 + 1).to(tl.float32))
        blue = tl.sigmoid(tl.sum(h2 * _output_row(w3, hidden, hidden_ok, HIDDEN, 2)[None, :], axis=1)
                          + tl.load(b3 + 2).to(tl.float32))
        return distance, a, valid, sample, cx, cy, cz, b, x, w1t, h1, w2t, h2, red, green, blue

    @triton.jit
    def _forward_kernel(volume, ray_rows, t, offsets, ray_bias, w1, w2, b2, w3, b3,
                        opacity, depth, color, rays, step,
                        size_x, size_y, size_z, stride_b, stride_z, stride_y, stride_x,
                        row_b, row_z, row_y, row_x, channels,
                        FEATURES: tl.constexpr, FEATURE_LANES: tl.constexpr, HIDDEN: tl.constexpr,
                        HIDDEN_LANES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr, WIDE: tl.constexpr,
                        SAMPLED: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
        r, ray_ok, start, length = _ray_block(offsets, rays, tl.program_id(0), BLOCK_R)
        carry = tl.zeros((BLOCK_R,), dtype=tl.float32)
        total_w = tl.zeros((BLOCK_R,), dtype=tl.float32)
        total_wt = tl.zeros((BLOCK_R,), dtype=tl.float32)
        total_r = tl.zeros((BLOCK_R,), dtype=tl.float32)
        total_g = tl.zeros((BLOCK_R,), dtype=tl.float32)
        total_b = tl.zeros((BLOCK_R,), dtype=tl.float32)
        for first in range(0, tl.max(length, axis=0), BLOCK_S):
            distance, a, _, _, _, _, _, _, _, _, _, _, _, red, green, blue = _tile(
                volume, ray_rows, t, ray_bias, w1, w2, b2, w3, b3,
                r, start, length, first, step,
                size_x, size_y, size_z, stride_b, stride_z, stride_y, stride_x,
                row_b, row_z, row_y, row_x, channels,
                FEATURES, FEATURE_LANES, HIDDEN, HIDDEN_LANES, PRECISION, UPCAST, WIDE, SAMPLED, BLOCK_R, BLOCK_S)
            _, w = _weights(a, carry)
            total_w += tl.sum(w, axis=1)
            total_wt += tl.sum(w * distance, axis=1)
            total_r += tl.sum(w * tl.reshape(red, (BLOCK_R, BLOCK_S)), axis=1)
            total_g += tl.sum(w * tl.reshape(green, (BLOCK_R, BLOCK_S)), axis=1)
            total_b += tl.sum(w * tl.reshape(blue, (BLOCK_R, BLOCK_S)), axis=1)
            carry += tl.sum(a, axis=1)
        _store_totals(opacity, depth, color, r, ray_ok, total_w, total_wt, total_r, total_g, total_b, True)

    @triton.jit
    def _color_grad(w, g, c, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
        """Per row: dL/dz of one colour channel's pre-sigmoid value, from dL/dc_i = w_i g_C."""
        return tl.reshape(w * g[:, None], (BLOCK_R * BLOCK_S,)) * c * (1.0 - c)

    @triton.jit
    def _backward_kernel(volume, ray_rows, t, offsets, ray_bias, w1, w2, b2, w3, b3,
                         opacity, depth, color, grad_opacity, grad_depth, grad_color,
                         grad_density, grad_features, grad_bias, grad_w1, grad_w2, grad_b2, grad_w3, grad_b3,
                         rays, step,
                         size_x, size_y, size_z, stride_b, stride_z, stride_y, stride_x,
                         row_b, row_z, row_y, row_x, channels,
                         FEATURES: tl.constexpr, FEATURE_LANES: tl.constexpr, HIDDEN: tl.constexpr,
                         HIDDEN_LANES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr, WIDE: tl.constexpr,
                         SAMPLED: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
        compute = w1.dtype.element_ty
        hidden = tl.arange(0, HIDDEN_LANES)
        hidden_ok = hidden < HIDDEN
        feature = tl.arange(0, FEATURE_LANES)
        w1_mask = (feature < FEATURES)[:, None] & hidden_ok[None, :]
        w3_red = _output_row(w3, hidden, hidden_ok, HIDDEN, 0)
        w3_green = _output_row(w3, hidden, hidden_ok, HIDDEN, 1)
        w3_blue = _output_row(w3, hidden, hidden_ok, HIDDEN, 2)
        # this program's share of the weight gradients, in registers until the end
        acc_w1 = tl.zeros((FEATURE_LANES, HIDDEN_LANES), dtype=tl.float32)  # dW1f^T
        acc_w2 = tl.zeros((HIDDEN_LANES, HIDDEN_LANES), dtype=tl.float32)  # dW2^T
        acc_b2 = tl.zeros((HIDDEN_LANES,), dtype=tl.float32)
        acc_w3_red = tl.zeros((HIDDEN_LANES,), dtype=tl.float32)
        acc_w3_green = tl.zeros((HIDDEN_LANES,), dtype=tl.float32)
        acc_w3_blue = tl.zeros((HIDDEN_LANES,), dtype=tl.float32)
        acc_b3_red = tl.zeros((BLOCK_R * BLOCK_S,), dtype=tl.float32)
        acc_b3_green = tl.zeros((BLOCK_R * BLOCK_S,), dtype=tl.float32)
        acc_b3_blue = tl.zeros((BLOCK_R * BLOCK_S,), dtype=tl.float32)
        for block in range(tl.program_id(0), tl.cdiv(rays, BLOCK_R), tl.num_programs(0)):
            r, ray_ok, start, length = _ray_block(offsets, rays, block, BLOCK_R)
            g_o, g_d, g_r, g_g, g_b, total = _upstream(grad_opacity, grad_depth, grad_color, opacity, depth, color,
                                                       r, ray_ok, True)
            carry = tl.zeros((BLOCK_R,), dtype=tl.float32)
            carry_wv = tl.zeros((BLOCK_R,), dtype=tl.float32)
            acc_bias = tl.zeros((BLOCK_R, HIDDEN_LANES), dtype=tl.float32)  # dp_r of these rays
            for first in range(0, tl.max(length, axis=0), BLOCK_S):
                distance, a, valid, sample, cx, cy, cz, b, x, w1t, h1, w2t, h2, red, green, blue = _tile(
                    volume, ray_rows, t, ray_bias, w1, w2, b2, w3, b3,
                    r, start, length, first, step,
                    size_x, size_y, size_z, stride_b, stride_z, stride_y, stride_x,
                    row_b, row_z, row_y, row_x, channels,
                    FEATURES, FEATURE_LANES, HIDDEN, HIDDEN_LANES, PRECISION, UPCAST, WIDE, SAMPLED, BLOCK_R, BLOCK_S)
                # compositing backward (forward totals trick)
                inclusive, w = _weights(a, carry)
                v = (g_o[:, None] + g_d[:, None] * distance + g_r[:, None] * tl.reshape(red, (BLOCK_R, BLOCK_S))
                     + g_g[:, None] * tl.reshape(green, (BLOCK_R, BLOCK_S))
                     + g_b[:, None] * tl.reshape(blue, (BLOCK_R, BLOCK_S)))
                grad_a, wv = _grad_optical_depth(inclusive, v, w, total, carry_wv)
                carry += tl.sum(a, axis=1)
                carry_wv += tl.sum(wv, axis=1)
                # MLP backward
                dz_red = _color_grad(w, g_r, red, BLOCK_R, BLOCK_S)
                dz_green = _color_grad(w, g_g, green, BLOCK_R, BLOCK_S)
                dz_blue = _color_grad(w, g_b, blue, BLOCK_R, BLOCK_S)
                acc_w3_red += tl.sum(h2 * dz_red[:, None], axis=0)
                acc_w3_green += tl.sum(h2 * dz_green[:, None], axis=0)
                acc_w3_blue += tl.sum(h2 * dz_blue[:, None], axis=0)
                acc_b3_red += dz_red
                acc_b3_green += dz_green
                acc_b3_blue += dz_blue
                dh2 = dz_red[:, None] * w3_red[None, :] + dz_green[:, None] * w3_green[None, :] \
                    + dz_blue[:, None] * w3_blue[None, :]
                dz2 = tl.where(h2 > 0.0, dh2, 0.0)
                acc_b2 += tl.sum(dz2, axis=0)
                dz2 = dz2.to(compute)
                acc_w2 += _dot(tl.trans(h1), dz2, PRECISION, UPCAST)
                dh1 = _dot(dz2, tl.trans(w2t), PRECISION, UPCAST)
                dz1 = tl.where(h1 > 0.0, dh1, 0.0)
                acc_bias += tl.sum(tl.reshape(dz1, (BLOCK_R, BLOCK_S, HIDDEN_LANES)), axis=1)
                dz1 = dz1.to(compute)
                acc_w1 += _dot(tl.trans(x), dz1, PRECISION, UPCAST)
                grad_x = _dot(dz1, tl.trans(w1t), PRECISION, UPCAST)  # (rows, FEATURE_LANES)
                grad_sigma = tl.where(valid, tl.reshape(grad_a * step, (BLOCK_R * BLOCK_S,)), 0.0)
                if SAMPLED:  # rows of the values' gradient (grad_density and grad_features are both it): one owner
                    written = grad_features.dtype.element_ty
                    tl.store(grad_features + sample[:, None] + 1 + feature[None, :], grad_x.to(written),
                             mask=valid[:, None] & (feature < FEATURES)[None, :])
                    tl.store(grad_density + sample, grad_sigma.to(written), mask=valid)
                else:  # volume gradients: features and density, relaxed vector atomics
                    _scatter_block(volume, grad_x, grad_features, valid, cx, cy, cz, b, size_x, size_y, size_z,
                                   stride_b, stride_z, stride_y, stride_x, row_b, row_z, row_y, row_x,
                                   False, 1, FEATURES, FEATURE_LANES, WIDE, 0)
                    _scatter_block(volume, grad_sigma[:, None], grad_density, valid, cx, cy, cz, b, size_x, size_y,
                                   size_z, stride_b, stride_z, stride_y, stride_x, row_b, row_z, row_y, row_x,
                                   False, 0, 1, 1, WIDE, 0)
            tl.store(grad_bias + r[:, None] * HIDDEN + hidden[None, :], acc_bias,
                     mask=ray_ok[:, None] & hidden_ok[None, :])
        # one add per weight per program
        tl.atomic_add(grad_w1 + hidden[None, :] * FEATURES + feature[:, None], acc_w1, mask=w1_mask, sem="relaxed")
        tl.atomic_add(grad_w2 + hidden[None, :] * HIDDEN + hidden[:, None], acc_w2,
                      mask=hidden_ok[:, None] & hidden_ok[None, :], sem="relaxed")
        tl.atomic_add(grad_b2 + hidden, acc_b2, mask=hidden_ok, sem="relaxed")
        tl.atomic_add(grad_w3 + hidden, acc_w3_red, mask=hidden_ok, sem="relaxed")
        tl.atomic_add(grad_w3 + HIDDEN + hidden, acc_w3_green, mask=hidden_ok, sem="relaxed")
        tl.atomic_add(grad_w3 + 2 * HIDDEN + hidden, acc_w3_blue, mask=hidden_ok, sem="relaxed")
        tl.atomic_add(grad_b3, tl.sum(acc_b3_red, axis=0), sem="relaxed")
        tl.atomic_add(grad_b3 + 1, tl.sum(acc_b3_green, axis=0), sem="relaxed")
        tl.atomic_add(grad_b3 + 2, tl.sum(acc_b3_blue, axis=0), sem="relaxed")

    # (rays, samples per chunk, warps): tiles of 64 and 128 rows, from one long ray to many short ones.
    # Compiled for sm_90 (benchmarks/triton_compile_check.py --kernels fused) all use 255 registers; the
    # backward spills ~2 KB per thread at 64 rows / 4 warps or 128 rows / 8 warps, 8 KB at 128 rows / 4 warps
    # (left out). Few tiles: each is compiled once per dtype on the first call.
    _TUNING = [
        triton.Config({"BLOCK_R": rays, "BLOCK_S": chunk}, num_warps=warps)
        for rays, chunk, warps in ((1, 64, 4), (2, 32, 4), (4, 16, 4), (2, 64, 8), (4, 32, 8))
    ]
    _KEY = ["FEATURES", "HIDDEN", "PRECISION", "WIDE", "SAMPLED"]
    _forward_tuned = triton.autotune(_TUNING, key=_KEY)(_forward_kernel)
    _backward_tuned = triton.autotune(
        _TUNING, key=_KEY,
        reset_to_zero=["grad_density", "grad_features", "grad_w1", "grad_w2", "grad_b2", "grad_w3", "grad_b3"],
    )(_backward_kernel)


def launch_persistent(kernels: tuple[object, object, object, object], block: str, interpreter_blocks: dict[str, int],
                      interpreter_programs: int, kernel: str, items: int, device: torch.device, *args: object,
                      **constants: object) -> None:
    """Run a forward / backward kernel pair over ``items`` (rays, rows): the forward one program per block
    of ``block`` items, the backward as persistent programs (at most PROGRAMS_PER_SM per multiprocessor, or
    the tuned config's own PROGRAMS_PER_SM, each looping over blocks). ``kernels`` = (forward, backward,
    autotuned forward, autotuned backward);
    in the interpreter the plain kernels run with ``interpreter_blocks`` and ``interpreter_programs``."""
    forward, backward, forward_tuned, backward_tuned = kernels
    if interpreting():
        plain = forward if kernel == "forward" else backward
        blocks = triton.cdiv(items, interpreter_blocks[block])
        programs = blocks if kernel == "forward" else min(blocks, interpreter_programs)
        plain[(programs,)](*args, **constants, **interpreter_blocks)  # type: ignore[index]
        return
    if kernel == "forward":
        forward_tuned[lambda meta: (triton.cdiv(items, meta[block]),)](*args, **constants)  # type: ignore[index]
        return
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    # a kernel whose tuning configs carry PROGRAMS_PER_SM (a constexpr it takes) gets that many per SM
    backward_tuned[lambda meta: (min(triton.cdiv(items, meta[block]),  # type: ignore[index]
                                     sms * meta.get("PROGRAMS_PER_SM", PROGRAMS_PER_SM)),)](*args, **constants)


def _launch(kernel: str, rays: int, device: torch.device, *args: object, **constants: object) -> None:
    """Run ``kernel`` ("forward": a program per ray block; "backward": persistent programs) over ``rays``."""
    launch_persistent((_forward_kernel, _backward_kernel, _forward_tuned, _backward_tuned), "BLOCK_R",
                      INTERPRETER_BLOCKS, INTERPRETER_PROGRAMS, kernel, rays, device, *args, **constants)


def _lanes(width: int) -> int:
    """A layer width padded to a power of two of at least 16 (`tl.dot`'s smallest operand)."""
    return max(16, 1 << max(0, width - 1).bit_length())


def mlp_shape_problem(what: str, mlp_layers: int, mlp_hidden: int, feature_channels: int) -> str | None:
    """Why the Triton colour-MLP kernels (of ``what``, e.g. "march 'fused_triton'") cannot run this MLP
    shape, or None if they can: Linear-ReLU-Linear-ReLU-Linear with widths up to MAX_WIDTH."""
    if mlp_layers != 2:
        return f"RenderConfig.{what} supports mlp_layers == 2 only, got {mlp_layers}"
    for name, width in (("mlp_hidden", mlp_hidden), ("feature_channels", feature_channels)):
        if width > MAX_WIDTH:
            return f"RenderConfig.{what} supports {name} <= {MAX_WIDTH}, got {width}"
    return None


def fused_march_problem(mlp_layers: int, mlp_hidden: int, feature_channels: int) -> str | None:
    """Why march 'fused_triton' cannot run this colour-MLP shape, or None if it can (RenderConfig checks this)."""
    return mlp_shape_problem("march 'fused_triton'", mlp_layers, mlp_hidden, feature_channels)


def mlp_compute_dtype(source: Tensor, what: str, fallback: str) -> torch.dtype:
    """The colour-MLP kernels' operand dtype for inputs like ``source``: autocast's when it is on, else
    ``source``'s; float64 (which the kernels do not take) is an error naming ``fallback``."""
    device_type = source.device.type
    compute = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else source.dtype
    if compute == torch.float64 or source.dtype == torch.float64:
        raise ValueError(f"{what} works in float32 / bf16 / fp16; use {fallback} for float64")
    return compute


def mlp_constants(features: int, hidden: int, compute: torch.dtype) -> dict[str, object]:
    """Compile-time constants of the colour-MLP kernels: layer widths, their padded lanes, the dot precision
    (fp32 operands stay fp32, "ieee" as torch's default matmul, not TF32) and the interpreter's upcast."""
    return {
        "FEATURES": features, "FEATURE_LANES": _lanes(features), "HIDDEN": hidden, "HIDDEN_LANES": _lanes(hidden),
        "PRECISION": "ieee" if compute == torch.float32 else "tf32",
        "UPCAST": interpreting() and compute != torch.float32,
    }


def color_layers(mlp: nn.Module) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
    """The three Linear layers of a Linear-ReLU-Linear-ReLU-Linear(3) colour MLP, or a clear error."""
    layers = list(mlp.children()) if isinstance(mlp, nn.Sequential) else []
    kinds = [type(layer) for layer in layers]
    if kinds != [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear] or layers[-1].out_features != 3:
        raise ValueError("march 'fused_triton' needs the colour MLP of RenderConfig.mlp_layers == 2 "
                         f"(Linear-ReLU-Linear-ReLU-Linear to 3), got {[kind.__name__ for kind in kinds]}")
    return layers[0], layers[2], layers[4]  # type: ignore[return-value]


class _FusedColorMarch(torch.autograd.Function):
    """Autograd wrapper of the two kernels: per-ray opacity, depth and colour sums."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, volume: Tensor, ray_bias: Tensor, w1: Tensor, w2: Tensor,
        b2: Tensor, w3: Tensor, b3: Tensor, ray_rows: Tensor, t: Tensor, offsets: Tensor, step: float,
        compute: torch.dtype,
    ) -> tuple[Tensor, Tensor, Tensor]:
        # ``volume``: (B, Z, Y, X, 1 + Cf), or the sampler's (M, 1 + Cf) values of the samples (SAMPLED)
        rays = offsets.shape[0] - 1
        weights = [weight.detach().to(compute).contiguous() for weight in (w1, w2, b2, w3, b3)]
        opacity = torch.empty(rays, device=volume.device, dtype=torch.float32)
        depth = torch.empty_like(opacity)
        color = torch.empty(rays, 3, device=volume.device, dtype=torch.float32)
        constants = _constants(volume, w1, w2, compute)
        if rays:
            _launch("forward", rays, volume.device, volume, ray_rows, t, offsets, ray_bias,
                    *weights, opacity, depth, color, rays, step, *_source_shape(volume), **constants)
        ctx.save_for_backward(volume, ray_bias, ray_rows, t, offsets, opacity, depth, color,
                              *weights)
        ctx.step, ctx.compute = step, compute  # type: ignore[attr-defined]
        ctx.dtypes = [weight.dtype for weight in (w1, w2, b2, w3, b3)]  # type: ignore[attr-defined]
        return opacity, depth, color

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_opacity: Tensor, grad_depth: Tensor, grad_color: Tensor
    ) -> tuple[Tensor | None, ...]:
        (volume, ray_bias, ray_rows, t, offsets, opacity, depth, color,
         *weights) = ctx.saved_tensors  # type: ignore[attr-defined]
        rays = offsets.shape[0] - 1
        features = volume.shape[-1] - 1
        w1, w2, b2, w3, b3 = weights
        zeros = {"device": volume.device, "dtype": torch.float32}
        constants = _constants(volume, w1, w2, ctx.compute)  # type: ignore[attr-defined]
        sampled = constants["SAMPLED"]
        if sampled:  # every row of the values is one sample's, written by the program of its ray
            grad_density = grad_features = torch.empty_like(volume)
        else:
            grad_density, grad_features = _zeroed_rows(volume, (1, features))
        grad_bias = torch.zeros(ray_bias.shape, **zeros)
        grads = [torch.zeros(weight.shape, **zeros) for weight in weights]
        if rays:
            _launch("backward", rays, volume.device, volume, ray_rows, t, offsets, ray_bias,
                    *weights, opacity, depth, color, grad_opacity.float().contiguous(),
                    grad_depth.float().contiguous(), grad_color.float().contiguous(), grad_density, grad_features,
                    grad_bias, *grads, rays, ctx.step, *_source_shape(volume),  # type: ignore[attr-defined]
                    **constants)
        grad_volume = grad_features if sampled else _join_channels(grad_density, grad_features, gradient_like(volume))
        grad_weights = [grad.to(dtype) for grad, dtype in zip(grads, ctx.dtypes)]  # type: ignore[attr-defined]
        return (grad_volume, grad_bias, *grad_weights, None, None, None, None, None)


def _source_shape(source: Tensor) -> tuple[int, ...]:
    """Sizes (x, y, z), element strides (b, z, y, x), gradient row strides (b, z, y, x) and channels of a
    dense volume (its gradient, `gradient_like`, has its layout); of (M, C) sampled values, (1, 1, 1), zeros
    and C."""
    if source.dim() == 2:
        return (1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, source.shape[1])
    return (*_shape_args(source), *row_strides(source), source.shape[-1])


def _constants(volume: Tensor, w1: Tensor, w2: Tensor, compute: torch.dtype) -> dict[str, object]:
    """The kernels' compile-time constants: `mlp_constants`, offset width, and whether ``volume`` is the
    sampler's (M, 1 + Cf) values (SAMPLED) instead of the volume."""
    return {"SAMPLED": volume.dim() == 2, **mlp_constants(w1.shape[1], w2.shape[0], compute), "WIDE": _wide(volume)}


def fused_color_march(
    volume: Tensor, rays: RayBundle, samples: PackedSamples, step: float, network: RenderNetwork,
    pc_range: tuple[float, ...], background: float, normalize_depth: bool, values: Tensor | None = None,
) -> RenderedRays:
    """Sampling, colour MLP and compositing of colour rays in one Triton kernel each way
    (march 'fused_triton'), or, given the sampler's ``values``, colour MLP and compositing
    (march 'fused_mlp_triton': the kernels read each sample's row instead of eight voxels,
    and write its gradient row instead of scattering into the volume).

    Renders the same as the packed march (`pack_samples`, the configured sampler,
    `network.color`, `composite_packed`); the MLP's operands are in the autocast dtype
    when autocast is on (else the volume's), accumulation and compositing in float32.

    Args:
        volume: (B, Z, Y, X, 1 + Cf) from `RenderNetwork.volume`.
        rays: the rays (origins, directions, batch_index are read).
        samples: their packed samples (t and offsets are read; t gets no gradient).
        step: delta between samples.
        network: the render network whose colour MLP and direction encoding are used.
        pc_range: (x0, y0, z0, x1, y1, z1) the volume covers.
        background: colour seen through the leftover transmittance.
        normalize_depth: divide depth by the opacity.
        values: (M, 1 + Cf) the volume sampled at ``samples`` (density first), or None.
    """
    require_triton("RenderConfig.march 'fused_triton'", "march 'packed_triton' or 'packed'")
    check_triton_device(volume, "march 'fused_triton'", "march 'packed'")
    first, second, last = color_layers(network.color_mlp)
    features = network.feature_channels
    problem = fused_march_problem(2, second.out_features, features)
    if problem is not None:
        raise ValueError(problem)
    if volume.dim() != 5 or volume.shape[-1] != 1 + features:
        raise ValueError(f"march 'fused_triton' needs a (B, Z, Y, X, 1 + {features}) volume, got {tuple(volume.shape)}")
    if values is not None and tuple(values.shape) != (samples.t.shape[0], 1 + features):
        raise ValueError(f"march 'fused_mlp_triton' needs ({samples.t.shape[0]}, 1 + {features}) sampled values, "
                         f"got {tuple(values.shape)}")
    compute = mlp_compute_dtype(volume, "march 'fused_triton'", "march 'packed'")
    ray_bias = network.ray_bias(rays.directions)  # p_r = W1e enc(d_r) + b1 (float32, differentiated by autograd)
    opacity, depth, color = _FusedColorMarch.apply(
        (volume if values is None else values).contiguous(), ray_bias.contiguous(), first.weight[:, :features], second.weight, second.bias,
        last.weight, last.bias, ray_voxel_rows(rays.origins, rays.directions, rays.batch_index,
                                               voxel_frame(pc_range, volume.shape[1:4])),
        samples.t.detach().float().contiguous(), samples.offsets.contiguous(), float(step), compute,
    )
    return finish_rendering(opacity, depth, color, background, normalize_depth)
