"""The sensor rig: a nuScenes-like LiDAR and six cameras on the ego vehicle, and pose helpers.

Ego frame: x forward, y left, z up, origin on the ground under the rear axle.
Camera frame: x right, y down, z forward. As in nuScenes, LIDAR_TOP is mounted
yawed by -90 degrees, so the LiDAR's +y points forward and +x to the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nsmae_lightning.constants import CAMERAS

LIDAR_TRANSLATION: tuple[float, float, float] = (0.943713, 0.0, 1.84023)
LIDAR_YAW: float = -np.pi / 2
NUSCENES_IMAGE_WIDTH = 1600
NUSCENES_IMAGE_HEIGHT = 900
# cam axes (x right, y down, z forward) -> ego axes of a camera looking along ego +x
CAMERA_AXES_TO_EGO = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class CameraMount:
    """Where a camera sits on the ego and what it sees, at nuScenes' 1600x900.

    Attributes:
        translation: camera centre in the ego frame (metres).
        yaw_deg: viewing direction, counter-clockwise from ego +x.
        focal: focal length in pixels at 1600x900.
        time_offset: seconds between the keyframe LiDAR timestamp and this camera's
            exposure (nuScenes triggers each camera when the LiDAR sweeps across it).
    """

    translation: tuple[float, float, float]
    yaw_deg: float
    focal: float
    time_offset: float


CAMERA_MOUNTS: dict[str, CameraMount] = {
    "CAM_FRONT": CameraMount((1.70, 0.016, 1.51), 0.0, 1266.4, 0.012),
    "CAM_FRONT_RIGHT": CameraMount((1.55, -0.49, 1.50), -55.0, 1260.8, 0.020),
    "CAM_FRONT_LEFT": CameraMount((1.52, 0.49, 1.51), 55.0, 1272.6, 0.004),
    "CAM_BACK": CameraMount((0.03, 0.0, 1.58), 180.0, 809.2, 0.037),
    "CAM_BACK_LEFT": CameraMount((1.04, 0.48, 1.56), 110.0, 1256.7, -0.004),
    "CAM_BACK_RIGHT": CameraMount((1.04, -0.48, 1.56), -110.0, 1259.5, 0.029),
}
assert tuple(CAMERA_MOUNTS) == CAMERAS


def rotation_z(yaw: float) -> np.ndarray:
    """3x3 rotation by ``yaw`` radians about +z."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_quaternion(yaw: float) -> list[float]:
    """nuScenes quaternion [w, x, y, z] of a rotation by ``yaw`` about +z."""
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def rotation_quaternion(rotation: np.ndarray) -> list[float]:
    """nuScenes quaternion [w, x, y, z] of a 3x3 rotation matrix (w >= 0)."""
    m = rotation
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    if q[0] < 0:
        q = [-v for v in q]
    return [float(v) for v in q]


def transform(rotation: np.ndarray, translation: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def lidar_to_ego() -> np.ndarray:
    """4x4 LIDAR_TOP -> ego transform."""
    return transform(rotation_z(LIDAR_YAW), LIDAR_TRANSLATION)


def camera_to_ego(camera: str) -> np.ndarray:
    """4x4 camera -> ego transform of one of the six cameras."""
    mount = CAMERA_MOUNTS[camera]
    return transform(rotation_z(np.deg2rad(mount.yaw_deg)) @ CAMERA_AXES_TO_EGO, mount.translation)


def camera_intrinsics(camera: str, height: int, width: int) -> np.ndarray:
    """3x3 pinhole matrix of a camera at ``height`` x ``width`` (nuScenes' scaled to the image size)."""
    return pinhole(CAMERA_MOUNTS[camera].focal, height, width, NUSCENES_IMAGE_HEIGHT, NUSCENES_IMAGE_WIDTH)


def pinhole(focal: float, height: int, width: int, reference_height: int, reference_width: int) -> np.ndarray:
    """Pinhole matrix of a lens with ``focal`` pixels at a reference size, rescaled to ``height`` x ``width``."""
    scale_x, scale_y = width / reference_width, height / reference_height
    return np.array(
        [
            [focal * scale_x, 0.0, width / 2.0],
            [0.0, focal * scale_y, height / 2.0],
            [0.0, 0.0, 1.0],
        ]
    )


def lidar_ray_directions(
    beams: int, fov_up: float, fov_down: float, azimuth_resolution: float, phase: float
) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions of one LiDAR revolution in the LiDAR frame and each ray's ring index.

    Args:
        beams: number of rings.
        fov_up: elevation of the top ring (degrees).
        fov_down: elevation of the bottom ring (degrees).
        azimuth_resolution: degrees between firings.
        phase: azimuth of the first firing (degrees).

    Returns:
        directions (beams * A, 3) and ring (beams * A,) with ring 0 the lowest beam.
    """
    elevations = np.deg2rad(np.linspace(fov_down, fov_up, beams))  # ring 0 = lowest
    azimuths = np.deg2rad(np.arange(0.0, 360.0, azimuth_resolution) + phase)
    elevation_grid, azimuth_grid = np.meshgrid(elevations, azimuths, indexing="ij")  # (beams, A)
    directions = np.stack(
        [
            np.cos(elevation_grid) * np.cos(azimuth_grid),
            np.cos(elevation_grid) * np.sin(azimuth_grid),
            np.sin(elevation_grid),
        ],
        axis=-1,
    ).reshape(-1, 3)
    ring = np.repeat(np.arange(beams), len(azimuths))
    return directions, ring
