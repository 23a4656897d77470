"""Volume rendering (eqs. 2 and 4) over packed, ragged per-ray sample segments, in torch.

The dense compositor pads every ray to S samples and scatters per-sample sigma and rgb
into (R, S) tensors first; here the M real samples stay a flat ray-major list
(`ray_samples.PackedSamples`). The exclusive optical depth of sample i of ray r is a
difference of one global prefix sum, E_i = P_i - P_{offsets[r]}; that prefix sum runs
in float64 because it spans all rays (in float32 a bundle's total of ~1e6 would leave
E_i only ~0.1 of precision). The per-ray sums are `index_add`s. Autograd
differentiates it all, which makes this the reference for the Triton kernels
(`composite_triton`) and the fallback where triton is missing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nsmae_lightning.models.ray_samples import PackedSamples
from nsmae_lightning.models.rendered_rays import RenderedRays, finish_rendering


def _segment_sum(values: Tensor, ray_index: Tensor, ray_count: int) -> Tensor:
    """(M, ...) per-sample values -> (R, ...) per-ray sums."""
    return values.new_zeros(ray_count, *values.shape[1:]).index_add(0, ray_index, values)


def packed_weights(sigma: Tensor, samples: PackedSamples, step: float) -> Tensor:
    """(M,) float32 compositing weights w_i = T_i (1 - exp(-sigma_i delta)) of packed samples (eq. 2),
    differentiable, whatever autocast says.

    Args:
        sigma: (M,) non-negative densities of the samples (any float dtype, may be strided).
        samples: where the samples lie (ray_index, offsets).
        step: delta between samples.
    """
    with torch.autocast(device_type=sigma.device.type, enabled=False):
        optical_depth = sigma.float() * step  # (M,)
        prefix = torch.cat([optical_depth.new_zeros(1, dtype=torch.float64), torch.cumsum(optical_depth.double(), 0)])
        start = prefix[samples.offsets[:-1]][samples.ray_index]  # P at each sample's ray start
        exclusive = (prefix[:-1] - start).float()  # sum_{j<i} sigma_j delta on the sample's own ray
        return torch.exp(-exclusive) * (1.0 - torch.exp(-optical_depth))


def composite_packed(
    sigma: Tensor, samples: PackedSamples, step: float, rgb: Tensor | None, background: float, normalize_depth: bool
) -> RenderedRays:
    """Discrete volume rendering of packed samples in float32, whatever autocast says.

    Args:
        sigma: (M,) non-negative densities of the samples (any float dtype, may be strided).
        samples: where the samples lie (ray_index, t, offsets).
        step: delta between samples.
        rgb: (M, 3) colours, or None.
        background: colour seen through the leftover transmittance.
        normalize_depth: divide depth by the opacity sum_i w_i.

    Returns:
        Rendered depth, opacity and colour of the R = len(offsets) - 1 rays.
    """
    ray_count = samples.offsets.shape[0] - 1
    with torch.autocast(device_type=sigma.device.type, enabled=False):
        weights = packed_weights(sigma, samples, step)
        opacity = _segment_sum(weights, samples.ray_index, ray_count)
        depth = _segment_sum(weights * samples.t.float(), samples.ray_index, ray_count)
        color = None
        if rgb is not None:
            color = _segment_sum(weights.unsqueeze(-1) * rgb.float(), samples.ray_index, ray_count)
        return finish_rendering(opacity, depth, color, background, normalize_depth)
