"""Closed-form inverses of the batch's small calibration matrices.

`torch.linalg.inv` / `solve` on a batch of 3x3 or 4x4 matrices runs an LU factorisation on CUDA
whose row-swap kernel (`laswp`) took ~0.5 ms per call: 50 calls were ~27 % of a pretraining step's
GPU time on the H200 (benchmarks/RESULTS.md, second session of 2026-12-02). The calibration
matrices are 3x3 intrinsics and affine 4x4 transforms (docs/conventions.md), whose inverses are a
few element-wise kernels.
"""

from __future__ import annotations

import torch
from torch import Tensor


def inverse_3x3(matrix: Tensor) -> Tensor:
    """Inverse of (..., 3, 3) matrices from the adjugate.

    With rows a, b, c, the inverse's columns are (b x c, c x a, a x b) / det, det = a . (b x c).
    Singular matrices give inf / nan entries, as a division by a zero determinant does.
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"inverse_3x3 expects (..., 3, 3) matrices, got {tuple(matrix.shape)}")
    a, b, c = matrix.unbind(-2)
    columns = torch.stack([torch.linalg.cross(b, c), torch.linalg.cross(c, a), torch.linalg.cross(a, b)], dim=-1)
    determinant = (a * columns[..., 0]).sum(-1)  # a . (b x c)
    return columns / determinant[..., None, None]


def affine_inverse(matrix: Tensor) -> Tensor:
    """Inverse of (..., 4, 4) affine transforms [A t; 0 0 0 1]: [A^-1, -A^-1 t; 0 0 0 1].

    `cam2lidar` (a rigid transform, scaled by LiDAR augmentation) and `img_aug` (resize, crop,
    flip, rotation of the pixel plane) have this form by the batch contract; the last row is
    taken as it is, not checked (a check would synchronise with the device).
    """
    if matrix.shape[-2:] != (4, 4):
        raise ValueError(f"affine_inverse expects (..., 4, 4) matrices, got {tuple(matrix.shape)}")
    linear_inverse = inverse_3x3(matrix[..., :3, :3])
    # element-wise, not `@`: autocast would round a matmul to bfloat16
    translation = -(linear_inverse * matrix[..., None, :3, 3]).sum(-1, keepdim=True)  # (..., 3, 1)
    return torch.cat([torch.cat([linear_inverse, translation], dim=-1), matrix[..., 3:, :]], dim=-2)
