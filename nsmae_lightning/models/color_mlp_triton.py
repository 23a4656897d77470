"""The colour MLP over every ray sample as one Triton forward and one backward kernel.

Why: in torch the MLP c = sigmoid(W3 relu(W2 relu(W1f f + p_r) + b2) + b3) is five GEMMs and
a dozen element-wise kernels over ~1.5 M rows per step, each writing or reading (M, 64)
activations, and its output layer (N = 3) and weight gradients (K = M) are shapes cuBLAS is
slow at: 4.4 ms fwd+bwd on an H200 for 1.5 M samples (benchmarks/RESULTS.md), the largest
piece of the march. Here a program owns BLOCK_M rows and keeps every activation of them in
registers:

- forward: x (BLOCK_M, Cf), the ray's first-layer bias p_r, three `tl.dot`s, sigmoid; only
  the (M, 3) colours are written;
- backward (persistent programs, each looping over many row blocks): the forward is
  recomputed, then dz3 = dc c (1 - c), dz2 = [h2 > 0] dz3 W3, dz1 = [h1 > 0] dz2 W2,
  df = dz1 W1f is written per row; dW1f = x^T dz1, dW2 = h1^T dz2, dW3 = h2^T dz3, db2, db3
  accumulate in registers and are added to global memory once per program; dp_r, the sum of
  dz1 over a ray's samples, is reduced inside the block per run of equal ray index (a one-hot
  `tl.dot`) and added once per run, not once per sample. `BACKWARD_PARTS` (1, 2) splits it in two launches
  (the per-row gradients, then the weights'), each recomputing the forward with fewer live registers.

The split first layer W1 [f, enc(d)] + b1 = W1f f + p_r (p_r = W1e enc(d_r) + b1, one float32
row per ray, differentiated by autograd) is `RenderNetwork.color`'s; the kernels see K = Cf.
Operands are in the autocast dtype (else the features'), accumulation and the activations'
bias adds in float32, as the fused march (`march_fused_triton`). Ray indices may come in any
order (equal ones need not be adjacent; adjacent ones are merely summed in fewer atomics).

Supported: `RenderConfig.mlp_layers == 2` (Linear-ReLU-Linear-ReLU-Linear to 3) with
feature_channels and mlp_hidden up to 128. On a CPU, ``TRITON_INTERPRET=1`` runs the kernels in
Triton's interpreter (how the tests compare them with the torch MLP).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from nsmae_lightning.models.march_fused_triton import (
    color_layers,
    launch_persistent,
    mlp_compute_dtype,
    mlp_constants,
    mlp_shape_problem,
)
from nsmae_lightning.models.trilinear_triton import check_triton_device, interpreting, require_triton, triton

if TYPE_CHECKING:
    from nsmae_lightning.models.rendering import RenderNetwork

INTERPRETER_BLOCK = 16  # rows per program in the interpreter (tl.dot's minimum)
INTERPRETER_PROGRAMS = 2  # persistent backward programs there: blocks per program > 1 and cross-program sums
# The backward as one launch (PART 0: every gradient) or two, (1, 2): the per-row gradients, then the weights',
# each recomputing the forward and the deltas with fewer live registers (compiled for an H200 with triton 3.6.0:
# 149 and 231 registers a thread at 32 rows x 4 warps against 250 for both; benchmarks/color_mlp_backward.py
# times them)
BACKWARD_PARTS: tuple[int, ...] = (0,)

if triton is not None:
    import triton.language as tl

    OUT_LANES = tl.constexpr(16)  # the 3 colours padded to tl.dot's smallest width (a global the kernels read)

    from nsmae_lightning.models.march_fused_triton import _dot

    @triton.jit
    def _weights(w1, w2, b2, w3, b3, FEATURES: tl.constexpr, FEATURE_LANES: tl.constexpr, HIDDEN: tl.constexpr,
                 HIDDEN_LANES: tl.constexpr, TRANSPOSED: tl.constexpr):
        """The layers' weights as the forward multiplies them (W1f^T, W2^T, W3^T: (in, out), W3^T in 3 of
        OUT_LANES columns) and the float32 biases b2, b3; with TRANSPOSED also W1f, W2, W3 (out, in) as the
        backward multiplies them, loaded in that layout (a register `tl.trans` costs a trip through shared
        memory in every block)."""
        feature = tl.arange(0, FEATURE_LANES)
        hidden = tl.arange(0, HIDDEN_LANES)
        out = tl.arange(0, OUT_LANES)
        feature_ok = feature < FEATURES
        hidden_ok = hidden < HIDDEN
        out_ok = out < 3
        w1t = tl.load(w1 + hidden[None, :] * FEATURES + feature[:, None], mask=feature_ok[:, None] & hidden_ok[None, :],
                      other=0.0)
        w2t = tl.load(w2 + hidden[None, :] * HIDDEN + hidden[:, None], mask=hidden_ok[:, None] & hidden_ok[None, :],
                      other=0.0)
        w3t = tl.load(w3 + out[None, :] * HIDDEN + hidden[:, None], mask=hidden_ok[:, None] & out_ok[None, :], other=0.0)
        bias2 = tl.load(b2 + hidden, mask=hidden_ok, other=0.0).to(tl.float32)
        bias3 = tl.load(b3 + out, mask=out_ok, other=0.0).to(tl.float32)
        w1n = w1t
        w2n = w2t
        w3n = w3t
        if TRANSPOSED:
            w1n = tl.load(w1 + hidden[:, None] * FEATURES + feature[None, :],
                          mask=hidden_ok[:, None] & feature_ok[None, :], other=0.0)
            w2n = tl.load(w2 + hidden[:, None] * HIDDEN + hidden[None, :], mask=hidden_ok[:, None] & hidden_ok[None, :],
                          other=0.0)
            w3n = tl.load(w3 + out[:, None] * HIDDEN + hidden[None, :], mask=out_ok[:, None] & hidden_ok[None, :],
                          other=0.0)
        return w1t, w2t, w3t, bias2, bias3, w1n, w2n, w3n

    @triton.jit
    def _layers(features, feature_stride, ray_index, ray_bias, w1t, w2t, w3t, bias2, bias3, rows, valid,
                FEATURES: tl.constexpr, FEATURE_LANES: tl.constexpr, HIDDEN: tl.constexpr,
                HIDDEN_LANES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
        """The forward of BLOCK_M rows (weights from `_weights`): their input, ray, activations and colours
        (padded lanes: zero activations; colour lanes >= 3 are sigmoid(0) and never stored)."""
        compute = w1t.dtype
        feature = tl.arange(0, FEATURE_LANES)
        hidden = tl.arange(0, HIDDEN_LANES)
        x = tl.load(features + rows[:, None].to(tl.int64) * feature_stride + feature[None, :],
                    mask=valid[:, None] & (feature < FEATURES)[None, :], other=0.0).to(compute)
        ray = tl.load(ray_index + rows, mask=valid, other=0)
        bias1 = tl.load(ray_bias + ray[:, None].to(tl.int64) * HIDDEN + hidden[None, :],
                        mask=valid[:, None] & (hidden < HIDDEN)[None, :], other=0.0)
        h1 = tl.maximum(_dot(x, w1t, PRECISION, UPCAST) + bias1, 0.0).to(compute)
        h2 = tl.maximum(_dot(h1, w2t, PRECISION, UPCAST) + bias2[None, :], 0.0).to(compute)
        color = tl.sigmoid(_dot(h2, w3t, PRECISION, UPCAST) + bias3[None, :])
        return x, ray, h1, h2, color

    @triton.jit
    def _forward_kernel(features, feature_stride, ray_index, ray_bias, w1, w2, b2, w3, b3, color_out, rows_total,
                        FEATURES: tl.constexpr, FEATURE_LANES: tl.constexpr, HIDDEN: tl.constexpr,
                        HIDDEN_LANES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
                        BLOCK_M: tl.constexpr):
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        valid = rows < rows_total
        w1t, w2t, w3t, bias2, bias3 = _weights(w1, w2, b2, w3, b3, FEATURES, FEATURE_LANES, HIDDEN, HIDDEN_LANES,
                                               False)[:5]
        color = _layers(features, feature_stride, ray_index, ray_bias, w1t, w2t, w3t, bias2, bias3, rows, valid,
                        FEATURES, FEATURE_LANES, HIDDEN, HIDDEN_LANES, PRECISION, UPCAST)[4]
        out = tl.arange(0, OUT_LANES)
        tl.store(color_out + rows[:, None].to(tl.int64) * 3 + out[None, :], color.to(color_out.dtype.element_ty),
                 mask=valid[:, None] & (out < 3)[None, :])

    @triton.jit
    def _backward_kernel(features, feature_stride, ray_index, ray_bias, w1, w2, b2, w3, b3, grad_color,
                         grad_features, grad_bias, grad_w1, grad_w2, grad_b2, grad_w3, grad_b3, rows_total,
                         FEATURES: tl.constexpr, FEATURE_LANES: tl.constexpr, HIDDEN: tl.constexpr,
                         HIDDEN_LANES: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
                         BLOCK_M: tl.constexpr, PROGRAMS_PER_SM: tl.constexpr, PART: tl.constexpr):
        # PROGRAMS_PER_SM: read by the launch grid only (`launch_persistent`), tuned with BLOCK_M and the warps.
        # PART 0: every gradient; 1: the per-row ones (features, ray bias); 2: the weights' (fewer live registers
        # in each of the two launches, the forward and the deltas computed in both)
        compute = w1.dtype.element_ty
        feature = tl.arange(0, FEATURE_LANES)
        hidden = tl.arange(0, HIDDEN_LANES)
        out = tl.arange(0, OUT_LANES)
        slot = tl.arange(0, BLOCK_M)
        feature_ok = feature < FEATURES
        hidden_ok = hidden < HIDDEN
        out_ok = out < 3
        # this program's share of the weight gradients, in registers until the end
        acc_w1 = tl.zeros((FEATURE_LANES, HIDDEN_LANES), dtype=tl.float32)  # dW1f^T
        acc_w2 = tl.zeros((HIDDEN_LANES, HIDDEN_LANES), dtype=tl.float32)  # dW2^T
        acc_w3 = tl.zeros((HIDDEN_LANES, OUT_LANES), dtype=tl.float32)  # dW3^T
        acc_b2 = tl.zeros((HIDDEN_LANES,), dtype=tl.float32)
        acc_b3 = tl.zeros((OUT_LANES,), dtype=tl.float32)
        # the weights once per program, in both layouts (0.93 -> 0.70 ms on an H200 against reloading and
        # transposing them in every block; benchmarks/RESULTS.md, 2026-12-03)
        w1t, w2t, w3t, bias2, bias3, w1n, w2n, w3n = _weights(w1, w2, b2, w3, b3, FEATURES, FEATURE_LANES, HIDDEN,
                                                              HIDDEN_LANES, True)
        for block in range(tl.program_id(0), tl.cdiv(rows_total, BLOCK_M), tl.num_programs(0)):
            rows = block * BLOCK_M + slot
            valid = rows < rows_total
            x, ray, h1, h2, color = _layers(features, feature_stride, ray_index, ray_bias, w1t, w2t, w3t, bias2, bias3,
                                            rows, valid, FEATURES, FEATURE_LANES, HIDDEN, HIDDEN_LANES, PRECISION,
                                            UPCAST)
            upstream = tl.load(grad_color + rows[:, None].to(tl.int64) * 3 + out[None, :],
                               mask=valid[:, None] & out_ok[None, :], other=0.0).to(tl.float32)
            dz3 = upstream * color * (1.0 - color)  # zero on padded rows and lanes (upstream is)
            if PART != 1:
                acc_b3 += tl.sum(dz3, axis=0)
            dz3 = dz3.to(compute)
            if PART != 1:
                acc_w3 += _dot(tl.trans(h2), dz3, PRECISION, UPCAST)
            dz2 = tl.where(h2 > 0.0, _dot(dz3, w3n, PRECISION, UPCAST), 0.0)
            if PART != 1:
                acc_b2 += tl.sum(dz2, axis=0)
            dz2 = dz2.to(compute)
            if PART != 1:
                acc_w2 += _dot(tl.trans(h1), dz2, PRECISION, UPCAST)
            dz1 = tl.where(h1 > 0.0, _dot(dz2, w2n, PRECISION, UPCAST), 0.0).to(compute)
            if PART != 1:
                acc_w1 += _dot(tl.trans(x), dz1, PRECISION, UPCAST)
            if PART != 2:
                grad_x = _dot(dz1, w1n, PRECISION, UPCAST)
                tl.store(grad_features + rows[:, None].to(tl.int64) * FEATURES + feature[None, :],
                         grad_x.to(grad_features.dtype.element_ty), mask=valid[:, None] & feature_ok[None, :])
                # dp_r: rows in runs of equal ray index; run k of the block sums its rows' dz1 (one-hot dot)
                previous = tl.load(ray_index + rows - 1, mask=valid & (slot > 0), other=-1)
                run = tl.cumsum((ray != previous).to(tl.int32), axis=0) - 1  # (BLOCK_M,) 0-based run of each row
                run = tl.where(valid, run, BLOCK_M)  # padded rows in no run
                member = slot[:, None] == run[None, :]  # (runs, rows)
                run_sum = _dot(tl.where(member, 1.0, 0.0).to(compute), dz1, PRECISION, UPCAST)  # (runs, HIDDEN_LANES)
                run_ray = tl.max(tl.where(member, ray.to(tl.int32)[None, :], -1), axis=1)  # each run's ray, -1 if none
                tl.atomic_add(grad_bias + run_ray[:, None].to(tl.int64) * HIDDEN + hidden[None, :], run_sum,
                              mask=(run_ray >= 0)[:, None] & hidden_ok[None, :], sem="relaxed")
        if PART != 1:  # one add per weight per program
            tl.atomic_add(grad_w1 + hidden[None, :] * FEATURES + feature[:, None], acc_w1,
                          mask=feature_ok[:, None] & hidden_ok[None, :], sem="relaxed")
            tl.atomic_add(grad_w2 + hidden[None, :] * HIDDEN + hidden[:, None], acc_w2,
                          mask=hidden_ok[:, None] & hidden_ok[None, :], sem="relaxed")
            tl.atomic_add(grad_w3 + out[None, :] * HIDDEN + hidden[:, None], acc_w3,
                          mask=hidden_ok[:, None] & out_ok[None, :], sem="relaxed")
            tl.atomic_add(grad_b2 + hidden, acc_b2, mask=hidden_ok, sem="relaxed")
            tl.atomic_add(grad_b3 + out, acc_b3, mask=out_ok, sem="relaxed")

    _TUNING = [triton.Config({"BLOCK_M": rows}, num_warps=warps) for rows, warps in ((32, 4), (64, 4), (64, 8), (128, 8))]
    # The backward holds the weights, their gradients and a block's activations: 255 registers a thread at
    # 32 rows x 4 warps (2 programs of 4 warps per SM). Its resident warps per SM are kept near 8 (rows,
    # warps, programs per SM); measured 2026-12-03: 32 x 2 x 4 fastest on an H200, 64 rows and more slower.
    # 64 rows x 4 warps compiled to an out-of-range shared-memory access at a `tl.dot` (illegal address
    # while autotuning inside a march on an H200: benchmarks/RESULTS.md, ninth session): not tuned. 32 x 4 x 3:
    # for the split backward's per-row part (149 registers: three programs of 4 warps fit an SM).
    _BACKWARD_TUNING = [triton.Config({"BLOCK_M": rows, "PROGRAMS_PER_SM": programs}, num_warps=warps)
                        for rows, warps, programs in ((16, 2, 4), (32, 2, 4), (32, 2, 2), (32, 4, 2), (32, 4, 3))]
    _KEY = ["FEATURES", "HIDDEN", "PRECISION"]
    _forward_tuned = triton.autotune(_TUNING, key=_KEY)(_forward_kernel)
    # the gradients each PART adds into (the autotuner zeroes them between trials): a part's tuning must
    # not zero what the other part has added already, so each part has its own autotuner
    _PART_SUMS = {1: ["grad_bias"], 2: ["grad_w1", "grad_w2", "grad_b2", "grad_w3", "grad_b3"]}
    _PART_SUMS[0] = _PART_SUMS[1] + _PART_SUMS[2]
    _backward_tuned = {part: triton.autotune(_BACKWARD_TUNING, key=_KEY, reset_to_zero=sums)(_backward_kernel)
                       for part, sums in _PART_SUMS.items()}


def _launch(kernel: str, rows: int, device: torch.device, *args: object, part: int = 0, **constants: object) -> None:
    """Run ``kernel`` ("forward": a program per row block; "backward": persistent programs, its ``part``) over
    ``rows``."""
    backward = {"PART": part} if kernel == "backward" else {}
    launch_persistent((_forward_kernel, _backward_kernel, _forward_tuned, _backward_tuned[part]), "BLOCK_M",
                      {"BLOCK_M": INTERPRETER_BLOCK}, INTERPRETER_PROGRAMS, kernel, rows, device, *args,
                      **({"PROGRAMS_PER_SM": 0} if kernel == "backward" and interpreting() else {}), **backward,
                      **constants)


class _ColorMLP(torch.autograd.Function):
    """Autograd wrapper of the two kernels: (M, 3) colours of the samples."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, features: Tensor, ray_bias: Tensor, w1: Tensor, w2: Tensor,
        b2: Tensor, w3: Tensor, b3: Tensor, ray_index: Tensor, compute: torch.dtype,
    ) -> Tensor:
        rows = features.shape[0]
        weights = [weight.detach().to(compute).contiguous() for weight in (w1, w2, b2, w3, b3)]
        color = torch.empty(rows, 3, device=features.device, dtype=compute)
        constants = mlp_constants(w1.shape[1], w2.shape[0], compute)
        if rows:
            _launch("forward", rows, features.device, features, features.stride(0), ray_index, ray_bias, *weights,
                    color, rows, **constants)
        ctx.save_for_backward(features, ray_bias, ray_index, *weights)
        ctx.compute = compute  # type: ignore[attr-defined]
        ctx.dtypes = [weight.dtype for weight in (w1, w2, b2, w3, b3)]  # type: ignore[attr-defined]
        ctx.feature_dtype = features.dtype  # type: ignore[attr-defined]
        return color

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_color: Tensor
    ) -> tuple[Tensor | None, ...]:
        features, ray_bias, ray_index, *weights = ctx.saved_tensors  # type: ignore[attr-defined]
        rows, width = features.shape
        grad_features = torch.empty(rows, width, device=features.device, dtype=ctx.feature_dtype)  # type: ignore[attr-defined]
        # the ray-bias and weight gradients the kernel adds into: views of one zeroed float32 buffer (one fill)
        shapes = [ray_bias.shape, *(weight.shape for weight in weights)]
        flat = torch.zeros(sum(shape.numel() for shape in shapes), device=features.device, dtype=torch.float32)
        grad_bias, *grads = [part.view(shape) for part, shape in
                             zip(flat.split([shape.numel() for shape in shapes]), shapes)]
        constants = mlp_constants(width, weights[1].shape[0], ctx.compute)  # type: ignore[attr-defined]
        for part in BACKWARD_PARTS if rows else ():
            _launch("backward", rows, features.device, features, features.stride(0), ray_index, ray_bias, *weights,
                    grad_color.contiguous(), grad_features, grad_bias, *grads, rows, part=part, **constants)
        grad_weights = [grad.to(dtype) for grad, dtype in zip(grads, ctx.dtypes)]  # type: ignore[attr-defined]
        return (grad_features, grad_bias, *grad_weights, None, None)


def color_mlp_problem(mlp_layers: int, mlp_hidden: int, feature_channels: int) -> str | None:
    """Why `color_mlp_triton` cannot run this colour-MLP shape, or None if it can (RenderConfig checks this)."""
    return mlp_shape_problem("color_mlp 'triton'", mlp_layers, mlp_hidden, feature_channels)


def color_mlp_triton(features: Tensor, directions: Tensor, ray_index: Tensor, network: RenderNetwork) -> Tensor:
    """``network.color`` of every sample, sigmoid(W3 relu(W2 relu(W1f f + p_r) + b2) + b3), in Triton kernels.

    Args:
        features: (M, Cf) sampled colour features (rows may be strided, e.g. a channel slice).
        directions: (R, 3) unit direction of each ray (its first-layer part p_r: `RenderNetwork.ray_bias`).
        ray_index: (M,) the ray of each sample.
        network: the render network whose colour MLP (Linear-ReLU-Linear-ReLU-Linear to 3) runs.

    Returns:
        (M, 3) colours in the compute dtype (autocast's, else the features').
    """
    require_triton("RenderConfig.color_mlp 'triton'", "color_mlp 'torch'")
    check_triton_device(features, "RenderConfig.color_mlp 'triton'", "color_mlp 'torch'")
    first, second, last = color_layers(network.color_mlp)
    rows, width = features.shape
    if features.stride(1) != 1:
        features = features.contiguous()
    problem = color_mlp_problem(2, second.out_features, width)
    if problem is not None:
        raise ValueError(problem)
    if width != network.feature_channels or ray_index.shape != (rows,):
        raise ValueError(f"color_mlp_triton needs ({rows}, {network.feature_channels}) features and ray_index "
                         f"({rows},), got {tuple(features.shape)} and {tuple(ray_index.shape)}")
    compute = mlp_compute_dtype(features, "RenderConfig.color_mlp 'triton'", "color_mlp 'torch'")
    ray_bias = network.ray_bias(directions)  # float32, differentiated by autograd
    return _ColorMLP.apply(features, ray_bias.contiguous(), first.weight[:, :width], second.weight, second.bias,
                           last.weight, last.bias, ray_index.contiguous(), compute)
