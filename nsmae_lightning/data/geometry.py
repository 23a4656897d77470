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
