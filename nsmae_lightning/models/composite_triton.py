"""Packed volume rendering (eqs. 2 and 4) as two Triton kernels with an analytic backward.

Same results as `composite_packed.composite_packed` (float32 transmittance and weights),
but each program walks a block of rays through their ragged sample segments in chunks:
a within-chunk `tl.cumsum` plus a per-ray carry gives the exclusive optical depth, and
only the per-ray sums (opacity, depth, colour) are written. Nothing per sample is kept
for the backward.

Backward (the usual trick: walk each ray again, using the forward totals). With
a_i = sigma_i delta, T_i = exp(-sum_{j<i} a_j), w_i = T_i (1 - exp(-a_i)) and the
upstream gradients g_O, g_D, g_C of opacity, depth and colour, the loss is
L = sum_i w_i v_i with v_i = g_O + g_D t_i + g_C . c_i, so

    dL/dc_i = w_i g_C,    dL/da_i = T_{i+1} v_i - sum_{j>i} w_j v_j,

and sum_{j>i} w_j v_j = (g_O O + g_D D + g_C . C) - sum_{j<=i} w_j v_j needs only the
forward totals O, D, C and a running prefix. t is a constant of the rays (no gradient).
Background and depth normalisation act on the totals (`rendered_rays.finish_rendering`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nsmae_lightning.models.ray_samples import PackedSamples
from nsmae_lightning.models.rendered_rays import RenderedRays, finish_rendering
from nsmae_lightning.models.trilinear_triton import check_triton_device, interpreting, require_triton, triton

INTERPRETER_BLOCKS = {"BLOCK_R": 4, "BLOCK_S": 8}  # small tiles: the tests' rays are short

if triton is not None:
    import triton.language as tl

    @triton.jit
    def _ray_block(offsets, rays, block, BLOCK_R: tl.constexpr):
        """The rays of block ``block`` (BLOCK_R rays), their validity, first sample and sample count."""
        r = block * BLOCK_R + tl.arange(0, BLOCK_R)
        ray_ok = r < rays
        start = tl.load(offsets + r, mask=ray_ok, other=0)
        length = tl.load(offsets + r + 1, mask=ray_ok, other=0) - start
        return r, ray_ok, start, length

    @triton.jit
    def _slots(start, length, first, BLOCK_S: tl.constexpr):
        """Samples first .. first + BLOCK_S of every ray: (rays, BLOCK_S) index and mask."""
        s = first + tl.arange(0, BLOCK_S)
        return start[:, None] + s[None, :], s[None, :] < length[:, None]

    @triton.jit
    def _positions(t, start, length, first, BLOCK_S: tl.constexpr):
        """`_slots` and the samples' t (0 past the end)."""
        index, inside = _slots(start, length, first, BLOCK_S)
        distance = tl.load(t + index, mask=inside, other=0.0).to(tl.float32)
        return index, inside, distance

    @triton.jit
    def _optical_depth(sigma, sigma_stride, index, inside, step):
        """a = sigma delta of the samples at ``index`` (fp32, 0 where not ``inside``)."""
        return tl.load(sigma + index * sigma_stride, mask=inside, other=0.0).to(tl.float32) * step

    @triton.jit
    def _chunk(sigma, sigma_stride, t, start, length, first, step, BLOCK_S: tl.constexpr):
        """`_positions` plus a = sigma delta (fp32, 0 past the end)."""
        index, inside, distance = _positions(t, start, length, first, BLOCK_S)
        return index, inside, _optical_depth(sigma, sigma_stride, index, inside, step), distance

    @triton.jit
    def _weights(a, carry):
        """Inclusive optical depth (with the ray's carry from earlier chunks) and w_i = T_i (1 - exp(-a_i))."""
        inclusive = tl.cumsum(a, axis=1) + carry[:, None]
        return inclusive, tl.exp(-(inclusive - a)) * (1.0 - tl.exp(-a))

    @triton.jit
    def _store_totals(opacity, depth, color, r, ray_ok, total_w, total_wt, red, green, blue, HAS_RGB: tl.constexpr):
        """Write the per-ray sums O = sum_i w_i, D = sum_i w_i t_i and (HAS_RGB) C = sum_i w_i c_i."""
        tl.store(opacity + r, total_w, mask=ray_ok)
        tl.store(depth + r, total_wt, mask=ray_ok)
        if HAS_RGB:
            tl.store(color + r * 3, red, mask=ray_ok)
            tl.store(color + r * 3 + 1, green, mask=ray_ok)
            tl.store(color + r * 3 + 2, blue, mask=ray_ok)

    @triton.jit
    def _forward_kernel(sigma, sigma_stride, t, rgb, offsets, opacity, depth, color, rays, step,
                        HAS_RGB: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
        r, ray_ok, start, length = _ray_block(offsets, rays, tl.program_id(0), BLOCK_R)
        carry = tl.zeros((BLOCK_R,), dtype=tl.float32)
        total_w = tl.zeros((BLOCK_R,), dtype=tl.float32)
        total_wt = tl.zeros((BLOCK_R,), dtype=tl.float32)
        red = tl.zeros((BLOCK_R,), dtype=tl.float32)
        green = tl.zeros((BLOCK_R,), dtype=tl.float32)
        blue = tl.zeros((BLOCK_R,), dtype=tl.float32)
        for first in range(0, tl.max(length, axis=0), BLOCK_S):
            index, inside, a, distance = _chunk(sigma, sigma_stride, t, start, length, first, step, BLOCK_S)
            inclusive, w = _weights(a, carry)
            total_w += tl.sum(w, axis=1)
            total_wt += tl.sum(w * distance, axis=1)
            if HAS_RGB:
                red += tl.sum(w * tl.load(rgb + index * 3, mask=inside, other=0.0).to(tl.float32), axis=1)
                green += tl.sum(w * tl.load(rgb + index * 3 + 1, mask=inside, other=0.0).to(tl.float32), axis=1)
                blue += tl.sum(w * tl.load(rgb + index * 3 + 2, mask=inside, other=0.0).to(tl.float32), axis=1)
            carry += tl.sum(a, axis=1)
        _store_totals(opacity, depth, color, r, ray_ok, total_w, total_wt, red, green, blue, HAS_RGB)

    @triton.jit
    def _above_kernel(sigma, sigma_stride, offsets, above, rays, step, epsilon, BLOCK_R: tl.constexpr,
                      BLOCK_S: tl.constexpr):
        """above[i] = w_i > epsilon for every sample (the weights of `_forward_kernel`), as uint8."""
        r, ray_ok, start, length = _ray_block(offsets, rays, tl.program_id(0), BLOCK_R)
        carry = tl.zeros((BLOCK_R,), dtype=tl.float32)
        for first in range(0, tl.max(length, axis=0), BLOCK_S):
            index, inside = _slots(start, length, first, BLOCK_S)
            a = _optical_depth(sigma, sigma_stride, index, inside, step)
            w = _weights(a, carry)[1]
            tl.store(above + index, (w > epsilon).to(tl.uint8), mask=inside)
            carry += tl.sum(a, axis=1)

    @triton.jit
    def _load_rays(values, r, ray_ok, STRIDE: tl.constexpr, COLUMN: tl.constexpr):
        """Column COLUMN of a per-ray float32 tensor with STRIDE columns."""
        return tl.load(values + r * STRIDE + COLUMN, mask=ray_ok, other=0.0)

    @triton.jit
    def _upstream(grad_opacity, grad_depth, grad_color, opacity, depth, color, r, ray_ok, HAS_RGB: tl.constexpr):
        """Per-ray upstream gradients g_O, g_D, g_C (0 without colour) and the forward total
        g_O O + g_D D + g_C . C = sum_i w_i v_i."""
        g_o = _load_rays(grad_opacity, r, ray_ok, 1, 0)
        g_d = _load_rays(grad_depth, r, ray_ok, 1, 0)
        total = g_o * _load_rays(opacity, r, ray_ok, 1, 0) + g_d * _load_rays(depth, r, ray_ok, 1, 0)
        g_r = tl.zeros_like(g_o)
        g_g = tl.zeros_like(g_o)
        g_b = tl.zeros_like(g_o)
        if HAS_RGB:
            g_r = _load_rays(grad_color, r, ray_ok, 3, 0)
            g_g = _load_rays(grad_color, r, ray_ok, 3, 1)
            g_b = _load_rays(grad_color, r, ray_ok, 3, 2)
            total += (g_r * _load_rays(color, r, ray_ok, 3, 0) + g_g * _load_rays(color, r, ray_ok, 3, 1)
                      + g_b * _load_rays(color, r, ray_ok, 3, 2))
        return g_o, g_d, g_r, g_g, g_b, total

    @triton.jit
    def _grad_optical_depth(inclusive, v, w, total, carry_wv):
        """dL/da_i = T_{i+1} v_i - sum_{j>i} w_j v_j of a chunk, and its w_i v_i (for the next chunk's carry)."""
        wv = w * v
        later = total[:, None] - (tl.cumsum(wv, axis=1) + carry_wv[:, None])  # sum_{j>i} w_j v_j
        return tl.exp(-inclusive) * v - later, wv

    @triton.jit
    def _backward_kernel(sigma, sigma_stride, t, rgb, offsets, opacity, depth, color,
                         grad_opacity, grad_depth, grad_color, grad_sigma, grad_rgb, rays, step,
                         HAS_RGB: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
        r, ray_ok, start, length = _ray_block(offsets, rays, tl.program_id(0), BLOCK_R)
        g_o, g_d, g_r, g_g, g_b, total = _upstream(grad_opacity, grad_depth, grad_color, opacity, depth, color,
                                                   r, ray_ok, HAS_RGB)
        carry = tl.zeros((BLOCK_R,), dtype=tl.float32)
        carry_wv = tl.zeros((BLOCK_R,), dtype=tl.float32)
        for first in range(0, tl.max(length, axis=0), BLOCK_S):
            index, inside, a, distance = _chunk(sigma, sigma_stride, t, start, length, first, step, BLOCK_S)
            inclusive, w = _weights(a, carry)
            v = g_o[:, None] + g_d[:, None] * distance
            if HAS_RGB:
                v += g_r[:, None] * tl.load(rgb + index * 3, mask=inside, other=0.0).to(tl.float32)
                v += g_g[:, None] * tl.load(rgb + index * 3 + 1, mask=inside, other=0.0).to(tl.float32)
                v += g_b[:, None] * tl.load(rgb + index * 3 + 2, mask=inside, other=0.0).to(tl.float32)
                tl.store(grad_rgb + index * 3, w * g_r[:, None], mask=inside)
                tl.store(grad_rgb + index * 3 + 1, w * g_g[:, None], mask=inside)
                tl.store(grad_rgb + index * 3 + 2, w * g_b[:, None], mask=inside)
            grad_a, wv = _grad_optical_depth(inclusive, v, w, total, carry_wv)
            tl.store(grad_sigma + index, grad_a * step, mask=inside)
            carry += tl.sum(a, axis=1)
            carry_wv += tl.sum(wv, axis=1)

    # Rays per program x samples per chunk: one long-ray-per-program layout up to many short rays.
    _TUNING = [
        triton.Config({"BLOCK_R": rays, "BLOCK_S": chunk}, num_warps=warps)
        for rays, chunk, warps in (
            (1, 32, 1), (1, 64, 1), (1, 128, 2), (2, 32, 1), (4, 32, 1), (4, 64, 2),
            (8, 32, 2), (8, 64, 4), (16, 32, 4), (16, 16, 2), (32, 16, 4),
        )
    ]
    _forward_tuned = triton.autotune(_TUNING, key=["HAS_RGB"])(_forward_kernel)
    _backward_tuned = triton.autotune(_TUNING, key=["HAS_RGB"])(_backward_kernel)  # writes, no atomics
    _above_tuned = triton.autotune(_TUNING, key=[])(_above_kernel)


def _launch(kernel: str, rays: int, *args: object, **constants: object) -> None:
    """Run the ``kernel`` ("forward" / "backward" / "above") over ``rays`` rays: tuned on a GPU, plain when
    interpreted."""
    require_triton("RenderConfig.march 'packed_triton'", "march 'packed' or 'dense'")
    if interpreting():
        plain = {"forward": _forward_kernel, "backward": _backward_kernel, "above": _above_kernel}[kernel]
        plain[(triton.cdiv(rays, INTERPRETER_BLOCKS["BLOCK_R"]),)](*args, **constants, **INTERPRETER_BLOCKS)
        return
    tuned = {"forward": _forward_tuned, "backward": _backward_tuned, "above": _above_tuned}[kernel]
    tuned[lambda meta: (triton.cdiv(rays, meta["BLOCK_R"]),)](*args, **constants)


class _TritonComposite(torch.autograd.Function):
    """Autograd wrapper: per-ray opacity, depth and colour sums of packed samples."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, sigma: Tensor, rgb: Tensor, t: Tensor, offsets: Tensor,
        step: float, has_rgb: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        rays = offsets.shape[0] - 1
        opacity = torch.empty(rays, device=sigma.device, dtype=torch.float32)
        depth = torch.empty_like(opacity)
        color = torch.empty(rays, 3 if has_rgb else 0, device=sigma.device, dtype=torch.float32)
        if rays:
            _launch("forward", rays, sigma, sigma.stride(0), t, rgb, offsets, opacity, depth, color, rays, step,
                    HAS_RGB=has_rgb)
        ctx.save_for_backward(sigma, rgb, t, offsets, opacity, depth, color)
        ctx.step = step  # type: ignore[attr-defined]
        ctx.has_rgb = has_rgb  # type: ignore[attr-defined]
        return opacity, depth, color

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_opacity: Tensor, grad_depth: Tensor, grad_color: Tensor
    ) -> tuple[Tensor, Tensor | None, None, None, None, None]:
        sigma, rgb, t, offsets, opacity, depth, color = ctx.saved_tensors  # type: ignore[attr-defined]
        has_rgb: bool = ctx.has_rgb  # type: ignore[attr-defined]
        rays = offsets.shape[0] - 1
        # written in the inputs' dtypes by the kernel's stores (float32 rows and a cast afterwards: 0.11 GPU ms of
        # the culled render network's 12.9 at 12.3 M bf16 samples, H100, fifteenth session's profile)
        grad_sigma = torch.empty(sigma.shape, device=sigma.device, dtype=sigma.dtype)
        grad_rgb = torch.empty(rgb.shape, device=rgb.device, dtype=rgb.dtype)
        if rays:
            _launch("backward", rays, sigma, sigma.stride(0), t, rgb, offsets, opacity, depth, color,
                    grad_opacity.float().contiguous(), grad_depth.float().contiguous(),
                    grad_color.float().contiguous(), grad_sigma, grad_rgb, rays, ctx.step,  # type: ignore[attr-defined]
                    HAS_RGB=has_rgb)
        return grad_sigma, grad_rgb if has_rgb else None, None, None, None, None


def composite_triton(
    sigma: Tensor, samples: PackedSamples, step: float, rgb: Tensor | None, background: float, normalize_depth: bool
) -> RenderedRays:
    """`composite_packed.composite_packed` through the Triton kernels (same arguments, same results).

    Args:
        sigma: (M,) densities (any float dtype but float64; a strided column of the sampler's output is fine).
        samples: where the samples lie (t, offsets are read; t gets no gradient).
        step: delta between samples.
        rgb: (M, 3) colours, or None.
        background: colour seen through the leftover transmittance.
        normalize_depth: divide depth by the opacity.
    """
    if sigma.dim() != 1 or (rgb is not None and rgb.shape != (sigma.shape[0], 3)):
        raise ValueError(f"sigma must be (M,) and rgb (M, 3), got {tuple(sigma.shape)} and "
                         f"{None if rgb is None else tuple(rgb.shape)}")
    if sigma.dtype == torch.float64:
        raise ValueError("the Triton compositor works in float32; use march 'packed' for float64")
    if samples.t.requires_grad:
        raise ValueError("the Triton compositor treats sample distances t as constants; detach them first")
    check_triton_device(sigma, "march 'packed_triton'", "march 'packed'")
    colors = rgb.contiguous() if rgb is not None else sigma.new_zeros(0, 3)
    opacity, depth, color = _TritonComposite.apply(
        sigma, colors, samples.t.float().contiguous(), samples.offsets.contiguous(), float(step), rgb is not None
    )
    return finish_rendering(opacity, depth, color if rgb is not None else None, background, normalize_depth)


def weights_above(sigma: Tensor, samples: PackedSamples, step: float, epsilon: float) -> Tensor:
    """(M,) bool: whether each sample's compositing weight w_i exceeds ``epsilon`` (no gradient), in one kernel
    walking the rays as the compositor's forward does (its float32 weights), where `packed_weights` takes a
    dozen torch kernels over the samples (a float64 prefix sum among them). `color_cull.colored_samples`' test
    with the 'packed_triton' march."""
    check_triton_device(sigma, "weights_above", "composite_packed.packed_weights")
    above = torch.empty(sigma.shape[0], device=sigma.device, dtype=torch.uint8)
    rays = samples.offsets.shape[0] - 1
    if rays and sigma.shape[0]:
        _launch("above", rays, sigma.detach(), sigma.stride(0), samples.offsets.contiguous(), above, rays, float(step),
                float(epsilon))
    return above.view(torch.bool)
