"""`ray_samples.pack_samples`'s two per-ray steps as one Triton kernel each (CUDA).

Why: in torch, counting each ray's samples (`ray_samples.sample_counts`: an estimate and two
corrections each way) is ~30 element-wise kernels over the rays, and listing the samples
(ray of each, position on its ray, t) another ~8; the march is host-bound (~200 launches per
render call on an H200, benchmarks/RESULTS.md), so each launch costs wall time, not the GPU work.
Here both are one kernel, with bitwise the results of the torch code: the same float32
operations in the same order, t = near + step * i rounded after the product and after the sum
(``enable_fp_fusion=False``: no fused multiply-add).

On a CPU, ``TRITON_INTERPRET=1`` runs the kernels in Triton's interpreter (how the tests
compare them with the torch code bit for bit).
"""

from __future__ import annotations

import torch
from torch import Tensor

from nsmae_lightning.models.trilinear_triton import check_triton_device, interpreting, require_triton, triton

BLOCK_RAYS = 128  # rays per program of the count
LIST_RAYS = 32  # rays per program of the listing; CHUNK samples of theirs written at a time
LIST_CHUNK = 256

if triton is not None:
    import triton.language as tl

    @triton.jit
    def _position(near, step, index):
        """t = near + step * index, as `ray_samples.sample_positions` (float32, product rounded first)."""
        return near + step * index.to(tl.float32)

    @triton.jit
    def _count_kernel(near, far, cap, counts, rays, step, BLOCK: tl.constexpr):
        """counts[r] = #{i < cap : near_r + i * step < far_r}: `ray_samples.sample_counts`, step for step."""
        r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        valid = r < rays
        start = tl.load(near + r, mask=valid, other=0.0)
        end = tl.load(far + r, mask=valid, other=0.0)
        limit = tl.load(cap)  # 0-dim int64
        estimate = tl.math.ceil((end - start) / step)
        estimate = tl.where(estimate != estimate, 0.0, estimate)  # nan_to_num: NaN -> 0 (+inf meets the cap below)
        estimate = tl.minimum(tl.maximum(estimate, 0.0), limit.to(tl.float32)).to(tl.int64)
        for _ in tl.static_range(2):
            last_inside = _position(start, step, estimate - 1) < end
            estimate = tl.where((estimate > 0) & ~last_inside, estimate - 1, estimate)
            next_inside = _position(start, step, estimate) < end
            estimate = tl.where((estimate < limit) & next_inside, estimate + 1, estimate)
        tl.store(counts + r, estimate, mask=valid)

    @triton.jit
    def _list_kernel(near, offsets, ray_index, sample_index, t, rays, step, BLOCK: tl.constexpr,
                     CHUNK: tl.constexpr):
        """The samples of BLOCK rays, their ray, i and t (`ray_samples.pack_samples`), written CHUNK samples
        at a time over the block's contiguous range offsets[r0] .. offsets[r0 + BLOCK]: coalesced stores, the
        ray of each sample found among the block's ray ends. (The first version looped over i up to the
        longest ray's count and stored 128 rays' i-th samples at once, a sector each: 2.0 GPU ms at 12.3 M
        samples on an H100, benchmarks/RESULTS.md fifteenth session.)"""
        r0 = tl.program_id(0) * BLOCK
        lanes = tl.arange(0, BLOCK)
        first = tl.load(offsets + r0)
        last = tl.load(offsets + tl.minimum(r0 + BLOCK, rays))
        # each ray's end within the block, 32-bit (a block's samples number at most BLOCK x the cap)
        ends = (tl.load(offsets + r0 + lanes + 1, mask=r0 + lanes < rays, other=last) - first).to(tl.int32)
        for start in range(first, last, CHUNK):
            s = start + tl.arange(0, CHUNK)
            here = s < last
            local = (s - first).to(tl.int32)
            # the ray of sample s: r0 + the number of the block's rays that end at or before it
            ray = r0 + tl.sum((ends[None, :] <= local[:, None]).to(tl.int32), axis=1)
            i = s - tl.load(offsets + ray, mask=here, other=0)
            tl.store(ray_index + s, ray.to(tl.int64), mask=here)
            tl.store(sample_index + s, i, mask=here)
            tl.store(t + s, _position(tl.load(near + ray, mask=here, other=0.0), step, i), mask=here)


def _launch(kernel: object, rays: int, *args: object, block: int = BLOCK_RAYS, **constants: int) -> None:
    """One program per ``block`` rays, float32 products and sums rounded separately."""
    grid = (triton.cdiv(rays, block),)
    options = {} if interpreting() else {"enable_fp_fusion": False}
    kernel[grid](*args, BLOCK=block, **constants, **options)  # type: ignore[index]


def _checked(near: Tensor) -> None:
    require_triton("pack_samples' kernels", "pack_samples(..., kernels=False)")
    check_triton_device(near, "pack_samples' kernels", "pack_samples(..., kernels=False)")


def sample_counts_triton(near: Tensor, far: Tensor, step: float, cap: Tensor) -> Tensor:
    """`ray_samples.sample_counts` in one kernel: (R,) int64, bitwise the same."""
    _checked(near)
    near, far = near.float().contiguous(), far.float().contiguous()
    counts = torch.empty(near.shape[0], dtype=torch.int64, device=near.device)
    if near.shape[0]:
        _launch(_count_kernel, near.shape[0], near, far, cap.to(torch.int64), counts, near.shape[0], float(step))
    return counts


def list_samples_triton(near: Tensor, offsets: Tensor, step: float, total: int) -> tuple[Tensor, ...]:
    """(ray_index, sample_index, t) of the samples `pack_samples` lists, (total,) each, in one kernel."""
    _checked(near)
    near = near.float().contiguous()
    ray_index = torch.empty(total, dtype=torch.int64, device=near.device)
    sample_index = torch.empty(total, dtype=torch.int64, device=near.device)
    t = torch.empty(total, dtype=torch.float32, device=near.device)
    if total:
        _launch(_list_kernel, near.shape[0], near, offsets.contiguous(), ray_index, sample_index, t, near.shape[0],
                float(step), block=LIST_RAYS, CHUNK=LIST_CHUNK)
    return ray_index, sample_index, t
