"""What volume rendering returns, and the last step every compositor shares.

The dense compositor (`rendering.composite`) and the packed ones (`composite_packed`,
`composite_triton`) all reduce a ray's samples to three float32 sums: opacity
sum_i w_i, depth sum_i w_i t_i and colour sum_i w_i c_i. Background and depth
normalisation act on those sums only, so they live here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class RenderedRays:
    """Volume-rendering results of a ray bundle (float32).

    Attributes:
        depth: (R,) rendered distance along each ray (eq. 4).
        opacity: (R,) sum_i w_i.
        rgb: (R, 3) rendered colour (eq. 2), or None for depth-only views.
        colored_fraction: the share of the samples whose colour was evaluated, when
            `RenderConfig.color_cull` left some out; None when every sample's was.
    """

    depth: Tensor
    opacity: Tensor
    rgb: Tensor | None
    colored_fraction: float | None = None


def finish_rendering(
    opacity: Tensor, depth: Tensor, color: Tensor | None, background: float, normalize_depth: bool
) -> RenderedRays:
    """Rendered rays from the per-ray weight sums (float32).

    Args:
        opacity: (R,) sum_i w_i.
        depth: (R,) sum_i w_i t_i.
        color: (R, 3) sum_i w_i c_i, or None.
        background: colour seen through the leftover transmittance.
        normalize_depth: divide depth by the opacity.
    """
    if normalize_depth:
        depth = depth / opacity.clamp_min(1e-6)
    if color is not None:
        # 1 - sum_i w_i = exp(-sum_i sigma_i delta): the light that passes every sample.
        color = color + (1.0 - opacity).unsqueeze(-1) * background
    return RenderedRays(depth=depth, opacity=opacity, rgb=color)
