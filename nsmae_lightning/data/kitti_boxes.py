"""KITTI label boxes (rectified camera frame) <-> 9-dof LiDAR-frame boxes, and their image boxes.

A KITTI label gives ``h w l``, the bottom centre ``x y z`` in camera-rect coordinates
(y points down) and the yaw ``rotation_y`` about the camera y axis; at ``rotation_y = 0``
the object heads along camera +x. Our boxes are ``x, y, z, l, w, h, yaw, vx, vy`` in the
velodyne frame with the centre in the middle of the box and yaw about +z. Both
directions live here so that reading labels and writing predictions are exact inverses.
"""

from __future__ import annotations

import numpy as np

from nsmae_lightning.data.geometry import box_corners, transform_points, wrap_angle

# Projected corners nearer than this (m) are clamped to it, so a box reaching behind the
# camera still gives a finite (clipped) image box.
MIN_PROJECTION_DEPTH = 0.1


def camera_to_lidar_boxes(
    dimensions: np.ndarray, location: np.ndarray, rotation_y: np.ndarray, rect2lidar: np.ndarray
) -> np.ndarray:
    """KITTI label boxes -> float64 (M, 9) LiDAR-frame boxes (velocity 0).

    Args:
        dimensions: (M, 3) ``h, w, l`` in metres.
        location: (M, 3) bottom centres in the rectified camera frame.
        rotation_y: (M,) yaw about camera y in radians.
        rect2lidar: (4, 4) camera-rect -> velodyne transform.
    """
    dimensions = np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)
    location = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    rotation_y = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
    height, width, length = dimensions[:, 0], dimensions[:, 1], dimensions[:, 2]
    centre_rect = location - np.stack([np.zeros_like(height), height / 2.0, np.zeros_like(height)], axis=1)
    centre = transform_points(rect2lidar, centre_rect)
    heading_rect = np.stack([np.cos(rotation_y), np.zeros_like(rotation_y), -np.sin(rotation_y)], axis=1)
    heading = heading_rect @ rect2lidar[:3, :3].T  # (M, 3) in the velodyne frame
    yaw = np.arctan2(heading[:, 1], heading[:, 0])
    zeros = np.zeros_like(yaw)
    return np.column_stack([centre, length, width, height, yaw, zeros, zeros])


def lidar_to_camera_boxes(boxes: np.ndarray, rect2lidar: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LiDAR-frame boxes (M, 9) -> KITTI ``(dimensions h w l, bottom-centre location, rotation_y)``.

    The inverse of :func:`camera_to_lidar_boxes` (velocities are dropped).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 9)
    lidar2rect = np.linalg.inv(rect2lidar)
    length, width, height = boxes[:, 3], boxes[:, 4], boxes[:, 5]
    centre_rect = transform_points(lidar2rect, boxes[:, :3])
    location = centre_rect + np.stack([np.zeros_like(height), height / 2.0, np.zeros_like(height)], axis=1)
    heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(len(boxes))], axis=1)
    heading_rect = heading @ lidar2rect[:3, :3].T
    rotation_y = np.arctan2(-heading_rect[:, 2], heading_rect[:, 0])
    return np.stack([height, width, length], axis=1), location, rotation_y


def observation_angle(location: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """KITTI alpha: the yaw seen along the camera ray through the box, wrapped to [-pi, pi).

    Args:
        location: (M, 3) positions in the rectified camera frame (x right, z forward).
        rotation_y: (M,) yaw about camera y.
    """
    return wrap_angle(np.asarray(rotation_y) - np.arctan2(location[:, 0], location[:, 2]))


def image_boxes(
    boxes: np.ndarray, intrinsics: np.ndarray, cam2lidar: np.ndarray, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The 2D boxes of LiDAR-frame boxes in a camera image, as KITTI labels carry them.

    The eight corners are projected (depth clamped at MIN_PROJECTION_DEPTH), enclosed
    and clipped to the image, as OpenPCDet's KITTI writer does.

    Args:
        boxes: (M, 9) LiDAR-frame boxes.
        intrinsics: (3, 3) camera matrix.
        cam2lidar: (4, 4) camera -> LiDAR transform (so ``K @ inv(cam2lidar)`` projects).
        image_size: (W, H) of the image in pixels.

    Returns:
        float64 (M, 4) ``x1, y1, x2, y2`` and (M,) bool, True where the clipped box has an
        area (the object is in the image).
    """
    corners = box_corners(np.asarray(boxes, dtype=np.float64).reshape(-1, 9))  # (M, 8, 3)
    camera = transform_points(np.linalg.inv(cam2lidar), corners.reshape(-1, 3)).reshape(-1, 8, 3)
    depth = np.maximum(camera[..., 2:3], MIN_PROJECTION_DEPTH)
    pixels = (camera / depth) @ np.asarray(intrinsics, dtype=np.float64).T  # (M, 8, 3), last column 1
    width, height = image_size
    low = np.clip(pixels[..., :2].min(axis=1), 0.0, [width, height])
    high = np.clip(pixels[..., :2].max(axis=1), 0.0, [width, height])
    in_image = (high[:, 0] > low[:, 0]) & (high[:, 1] > low[:, 1])
    return np.concatenate([low, high], axis=1), in_image
