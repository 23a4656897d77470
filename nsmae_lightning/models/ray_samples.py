"""Ray samples in packed (ray-major, ragged) form, without a dense (rays x samples) grid.

The dense march builds t = near + i * delta for every ray and every i < S, keeps the
samples with t < far (`torch.nonzero`) and scatters per-sample values back into
(R, S) tensors. Because t grows with i, the kept samples of a ray are always the
prefix i < n_r; knowing n_r per ray is enough to list them (`repeat_interleave`) and
to composite them as segments. `pack_samples` yields exactly the samples, in the same
order and with bitwise the same t, as the dense march's `nonzero`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class PackedSamples:
    """The samples of R rays, ray-major.

    Attributes:
        ray_index: (M,) int64 ray of each sample (non-decreasing).
        sample_index: (M,) int64 position i of each sample on its ray.
        t: (M,) float32 distance of each sample from its ray's origin (near + i * delta).
        offsets: (R + 1,) int64: the samples of ray r are offsets[r] .. offsets[r + 1] - 1.
        width: S of the dense march's (R, S) grid (every sample_index is below it).
    """

    ray_index: Tensor
    sample_index: Tensor
    t: Tensor
    offsets: Tensor
    width: int


def samples_per_ray_cap(near: Tensor, far: Tensor, step: float, max_samples: int) -> Tensor:
    """S of the march: enough samples for the longest ray, at most ``max_samples``, at least 1; a 0-dim
    int64 tensor on the rays' device, so nothing waits for it (the longest length in float64 over
    ``step``: the double arithmetic of ``math.ceil(float(longest) / step)``)."""
    longest = (far - near).clamp_min(0.0).amax().double() if near.numel() else near.new_zeros((), dtype=torch.float64)
    return torch.ceil(longest / step).clamp(1, max_samples).to(torch.int64)


def sample_positions(near: Tensor, step: float, index: Tensor) -> Tensor:
    """t = near + index * step, computed as the dense march computes it (bitwise equal)."""
    return near + step * index


def sample_counts(near: Tensor, far: Tensor, step: float, cap: Tensor) -> Tensor:
    """(R,) int64 n_r = #{i < cap : near + i * step < far}, ``cap`` a 0-dim int64 tensor (`samples_per_ray_cap`).

    ceil((far - near) / step) is off by at most one from the float32 test the dense
    march applies; two corrections in each direction make the count exact.
    """
    # clamp_min + minimum, not clamp(0, cap): a tensor bound of clamp is read on the host
    estimate = torch.ceil((far - near) / step).nan_to_num(0.0).clamp_min(0).minimum(cap).to(torch.int64)
    for _ in range(2):
        last_inside = sample_positions(near, step, estimate - 1) < far
        estimate = torch.where((estimate > 0) & ~last_inside, estimate - 1, estimate)
        next_inside = sample_positions(near, step, estimate) < far
        estimate = torch.where((estimate < cap) & next_inside, estimate + 1, estimate)
    return estimate


def _use_kernels(near: Tensor, kernels: bool | None) -> bool:
    """Whether `pack_samples` runs `ray_samples_triton`'s kernels: as asked, else on CUDA when triton is there."""
    if kernels is not None:
        return kernels
    from nsmae_lightning.models.trilinear_triton import triton  # None without the optional package

    return near.is_cuda and triton is not None


def pack_samples(near: Tensor, far: Tensor, step: float, max_samples: int, kernels: bool | None = None) -> PackedSamples:
    """The march's samples of rays with entry ``near`` and exit ``far`` (R,), at spacing ``step``.

    One host sync, as the dense march's `nonzero` has: S and the sample total are read together.
    ``kernels``: count and list the samples in `ray_samples_triton`'s two kernels (bitwise the same
    result, ~35 fewer launches); None = on CUDA when triton is installed.
    """
    cap = samples_per_ray_cap(near, far, step, max_samples)
    use_kernels = _use_kernels(near, kernels)
    if use_kernels:
        from nsmae_lightning.models.ray_samples_triton import list_samples_triton, sample_counts_triton

        counts = sample_counts_triton(near, far, step, cap)
    else:
        counts = sample_counts(near, far, step, cap)
    offsets = torch.zeros(counts.shape[0] + 1, dtype=torch.int64, device=near.device)
    torch.cumsum(counts, dim=0, out=offsets[1:])
    width, total = torch.stack([cap, offsets[-1]]).tolist()
    if use_kernels:
        ray_index, sample_index, t = list_samples_triton(near, offsets, step, total)
        return PackedSamples(ray_index=ray_index, sample_index=sample_index, t=t, offsets=offsets, width=width)
    rays = torch.arange(counts.shape[0], device=near.device)
    ray_index = torch.repeat_interleave(rays, counts, output_size=total)
    sample_index = torch.arange(total, device=near.device) - offsets[ray_index]
    return PackedSamples(
        ray_index=ray_index,
        sample_index=sample_index,
        t=sample_positions(near[ray_index], step, sample_index),
        offsets=offsets,
        width=width,
    )
