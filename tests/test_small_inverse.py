"""Closed-form inverses of intrinsics and affine calibration transforms (models/small_inverse.py)."""

from __future__ import annotations

import math

import pytest
import torch

from nsmae_lightning.models.small_inverse import affine_inverse, inverse_3x3


def _rotation(yaw: float, pitch: float) -> torch.Tensor:
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    about_z = torch.tensor([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    about_x = torch.tensor([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]], dtype=torch.float64)
    return about_z @ about_x


def test_inverse_3x3_matches_linalg_on_a_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    matrices = torch.randn(5, 2, 3, 3, generator=generator, dtype=torch.float64) + 3 * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(inverse_3x3(matrices), torch.linalg.inv(matrices), rtol=0, atol=1e-12)


def test_inverse_3x3_of_nuscenes_like_intrinsics_in_float32() -> None:
    intrinsics = torch.tensor([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
    inverse = inverse_3x3(intrinsics)
    # hand inverse: [[1/f, 0, -cx/f], [0, 1/f, -cy/f], [0, 0, 1]]
    expected = torch.tensor([[1 / 1266.4, 0.0, -816.3 / 1266.4], [0.0, 1 / 1266.4, -491.5 / 1266.4], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(inverse, expected, rtol=1e-6, atol=1e-7)
    assert inverse.dtype == torch.float32


def test_affine_inverse_of_scaled_rigid_and_image_transforms() -> None:
    cam2lidar = torch.eye(4, dtype=torch.float64)
    cam2lidar[:3, :3] = 1.05 * _rotation(0.7, -0.2)  # LiDAR augmentation scales the rigid transform
    cam2lidar[:3, 3] = torch.tensor([1.5, -0.3, 1.8], dtype=torch.float64)
    img_aug = torch.eye(4, dtype=torch.float64)
    img_aug[:2, :2] = 0.48 * torch.tensor([[math.cos(0.1), -math.sin(0.1)], [math.sin(0.1), math.cos(0.1)]])
    img_aug[:2, 3] = torch.tensor([-12.0, -40.5], dtype=torch.float64)
    img_aug[0, :] *= -1  # horizontal flip
    img_aug[0, 3] += 703
    matrices = torch.stack([cam2lidar, img_aug])
    inverse = affine_inverse(matrices)
    torch.testing.assert_close(inverse, torch.linalg.inv(matrices), rtol=0, atol=1e-12)
    torch.testing.assert_close(inverse[:, 3], matrices[:, 3])  # the last row stays (0, 0, 0, 1)


def test_affine_inverse_ignores_autocast() -> None:
    transform = torch.eye(4)
    transform[:3, 3] = torch.tensor([1234.5, -678.25, 3.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inverse = affine_inverse(transform)
    assert inverse.dtype == torch.float32
    assert inverse[:3, 3].tolist() == [-1234.5, 678.25, -3.0]  # exact: bfloat16 would give -1232.0


@pytest.mark.parametrize(("function", "shape"), [(inverse_3x3, (4, 4)), (affine_inverse, (3, 3))])
def test_wrong_shapes_are_named(function: object, shape: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=r"expects \(\.\.\., [34], [34]\) matrices, got"):
        function(torch.eye(shape[0]))  # type: ignore[operator]
