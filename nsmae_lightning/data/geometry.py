"""Small SE(3) helpers: 4x4 homogeneous transforms from nuScenes poses, applied to points."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyquaternion import Quaternion


def pose_matrix(rotation_wxyz: Sequence[float], translation: Sequence[float]) -> np.ndarray:
    """The 4x4 transform of a nuScenes pose record (child frame -> parent frame).

    Args:
        rotation_wxyz: unit quaternion (w, x, y, z), as stored in `ego_pose` / `calibrated_sensor`.
        translation: (x, y, z) of the child origin in the parent frame.

    Returns:
        float64 (4, 4) matrix mapping child-frame homogeneous points to the parent frame.
    """
    matrix = np.eye(4)
    matrix[:3, :3] = Quaternion(list(rotation_wxyz)).rotation_matrix
    matrix[:3, 3] = np.asarray(translation, dtype=np.float64)
    return matrix


def transform_points(matrix: np.ndarray, points_xyz: np.ndarray) -> np.ndarray:
    """Apply a 4x4 homogeneous transform to (P, 3) points, keeping their dtype."""
    transformed = points_xyz.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    return transformed.astype(points_xyz.dtype)


def rotation_z(angle: float) -> np.ndarray:
    """The 4x4 rotation by `angle` radians counter-clockwise about +z."""
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    matrix = np.eye(4)
    matrix[:2, :2] = [[cos_a, -sin_a], [sin_a, cos_a]]
    return matrix


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap angles (radians) into [-pi, pi)."""
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(M, 8, 3) corners of 9-dof boxes (x, y, z, l, w, h, yaw, ...): l along the heading, z up.

    Corner k has signs ``(+-l/2, +-w/2, +-h/2)`` with the x sign from bit 2, y from bit 1
    and z from bit 0 of k, rotated by yaw about +z and moved to the centre.
    """
    boxes = np.atleast_2d(np.asarray(boxes, dtype=np.float64))
    signs = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])  # (8, 3)
    local = signs[None] * boxes[:, None, 3:6]  # (M, 8, 3)
    cos_yaw, sin_yaw = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    rotated_x = local[..., 0] * cos_yaw - local[..., 1] * sin_yaw
    rotated_y = local[..., 0] * sin_yaw + local[..., 1] * cos_yaw
    return np.stack([rotated_x, rotated_y, local[..., 2]], axis=-1) + boxes[:, None, :3]
