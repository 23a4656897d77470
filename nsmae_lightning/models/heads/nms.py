"""Greedy non-maximum suppression for BEV detections, in plain torch: circle NMS and rotated-IoU NMS.

Circle NMS is CenterPoint's: a box suppresses lower-scoring boxes whose centres
lie within a squared distance threshold (CenterPoint calls it ``min_radius`` but
compares it with the *squared* centre distance, in m^2; we keep its numbers and
its meaning). Rotated NMS suppresses by the IoU of the rotated BEV footprints.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

# Tolerance (metres) for "on the edge" tests in polygon clipping.
_EDGE_TOLERANCE = 1e-6


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """z-component of the 2D cross product over the last axis."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def bev_corners(boxes_bev: Tensor) -> Tensor:
    """Counter-clockwise corners (N, 4, 2) of BEV boxes (N, 5) = x, y, l, w, yaw (l along the heading)."""
    half_l, half_w = boxes_bev[:, 2:3] / 2, boxes_bev[:, 3:4] / 2
    corner_signs = ((1, 1), (-1, 1), (-1, -1), (1, -1))
    local = torch.stack([torch.cat([sign_l * half_l, sign_w * half_w], 1) for sign_l, sign_w in corner_signs], 1)  # (N, 4, 2)
    cos_yaw, sin_yaw = boxes_bev[:, 4].cos()[:, None], boxes_bev[:, 4].sin()[:, None]
    rotated_x = local[..., 0] * cos_yaw - local[..., 1] * sin_yaw
    rotated_y = local[..., 0] * sin_yaw + local[..., 1] * cos_yaw
    return torch.stack([rotated_x, rotated_y], dim=-1) + boxes_bev[:, None, :2]


def _inside_convex(points: Tensor, polygons: Tensor) -> Tensor:
    """Whether points (N, M, P, 2) lie inside (or on) CCW quadrilaterals polygons (N, M, 4, 2) -> (N, M, P)."""
    edges = polygons.roll(-1, dims=2) - polygons  # (N, M, 4, 2)
    offsets = points[:, :, :, None, :] - polygons[:, :, None, :, :]  # (N, M, P, 4, 2)
    return (_cross(edges[:, :, None], offsets) >= -_EDGE_TOLERANCE).all(dim=-1)


def _edge_intersections(corners_a: Tensor, corners_b: Tensor) -> tuple[Tensor, Tensor]:
    """Crossing points of every edge of A with every edge of B: points (N, M, 16, 2), valid (N, M, 16)."""
    start_a, start_b = corners_a[:, :, :, None, :], corners_b[:, :, None, :, :]  # (N, M, 4, 1, 2), (N, M, 1, 4, 2)
    direction_a = corners_a.roll(-1, dims=2)[:, :, :, None, :] - start_a
    direction_b = corners_b.roll(-1, dims=2)[:, :, None, :, :] - start_b
    denominator = _cross(direction_a, direction_b)  # (N, M, 4, 4)
    parallel = denominator.abs() < 1e-12
    safe_denominator = torch.where(parallel, torch.ones_like(denominator), denominator)
    offset = start_b - start_a
    along_a = _cross(offset, direction_b) / safe_denominator
    along_b = _cross(offset, direction_a) / safe_denominator
    valid = ~parallel & (along_a >= 0) & (along_a <= 1) & (along_b >= 0) & (along_b <= 1)
    points = start_a + along_a[..., None] * direction_a  # (N, M, 4, 4, 2)
    return points.flatten(2, 3), valid.flatten(2, 3)


def _convex_area(points: Tensor, valid: Tensor) -> Tensor:
    """Area of the convex hull-ordered polygon of the valid points (N, M, P, 2) -> (N, M).

    The valid points of an intersection of convex polygons are the intersection's
    vertices; sorting them by angle around their mean orders them, and the shoelace
    formula gives the area. Invalid points are replaced by the first sorted vertex,
    so they add zero area.
    """
    count = valid.sum(-1, keepdim=True).clamp(min=1)  # (N, M, 1)
    centre = (points * valid[..., None]).sum(-2) / count  # (N, M, 2)
    relative = points - centre[:, :, None, :]
    angle = torch.atan2(relative[..., 1], relative[..., 0])
    angle = torch.where(valid, angle, torch.full_like(angle, 10.0))  # invalid points sort last
    order = angle.argsort(dim=-1)
    ordered = relative.gather(2, order[..., None].expand_as(relative))
    ordered_valid = valid.gather(2, order)
    ordered = torch.where(ordered_valid[..., None], ordered, ordered[:, :, :1, :])
    return 0.5 * _cross(ordered, ordered.roll(-1, dims=2)).sum(-1).abs()


def rotated_iou_bev(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU of the rotated BEV footprints of boxes (N, 5) and (M, 5) (x, y, l, w, yaw) -> (N, M)."""
    corners_a = bev_corners(boxes_a.double())[:, None].expand(-1, boxes_b.shape[0], -1, -1)  # (N, M, 4, 2)
    corners_b = bev_corners(boxes_b.double())[None].expand(boxes_a.shape[0], -1, -1, -1)
    crossing_points, crossing_valid = _edge_intersections(corners_a, corners_b)
    points = torch.cat([corners_a, corners_b, crossing_points], dim=2)  # (N, M, 24, 2)
    valid = torch.cat([_inside_convex(corners_a, corners_b), _inside_convex(corners_b, corners_a), crossing_valid], dim=2)
    intersection = _convex_area(points, valid)
    area_a = (boxes_a[:, 2] * boxes_a[:, 3]).double()[:, None]
    area_b = (boxes_b[:, 2] * boxes_b[:, 3]).double()[None, :]
    union = (area_a + area_b - intersection).clamp(min=1e-12)
    return (intersection / union).to(boxes_a.dtype)


# Rows of the pairwise test computed at once (rotated IoU holds (rows, N, 24, 2) float64 points).
_ROW_CHUNK = 128


def _greedy_nms(scores: Tensor, suppression: Callable[[Tensor, Tensor], Tensor], post_max_size: int) -> Tensor:
    """Greedy NMS: keep the best remaining box, drop those it suppresses, repeat.

    The pairwise test runs once on the device for all candidates (in row chunks); the
    greedy pass then walks that boolean matrix on the host, one sync in all instead of
    one per kept box. Same result as testing each kept box against the rest in turn.

    Args:
        scores: (N,) detection scores.
        suppression: (rows (R,), columns (C,)) candidate indices -> bool (R, C), True where
            the row box suppresses the column box.
        post_max_size: at most this many boxes are kept.

    Returns:
        int64 indices of the kept boxes, by descending score.
    """
    order = scores.argsort(descending=True, stable=True)
    count = order.numel()
    if count == 0 or post_max_size <= 0:
        return torch.zeros(0, dtype=torch.int64, device=scores.device)
    matrix = torch.cat([suppression(order[start : start + _ROW_CHUNK], order) for start in range(0, count, _ROW_CHUNK)])
    suppressed = matrix.cpu().numpy()  # (N, N) in score order
    alive = np.ones(count, dtype=bool)
    kept: list[int] = []
    for position in range(count):
        if not alive[position]:
            continue
        kept.append(position)
        if len(kept) == post_max_size:
            break
        alive[position + 1 :] &= ~suppressed[position, position + 1 :]
    return order[torch.as_tensor(kept, device=order.device)]


def circle_nms(centers_xy: Tensor, scores: Tensor, squared_distance_threshold: float, post_max_size: int) -> Tensor:
    """CenterPoint's circle NMS on BEV centres (N, 2): suppress where squared distance <= threshold (m^2)."""
    centers = centers_xy.double()

    def suppression(rows: Tensor, columns: Tensor) -> Tensor:
        return ((centers[rows][:, None] - centers[columns][None]) ** 2).sum(-1) <= squared_distance_threshold

    return _greedy_nms(scores, suppression, post_max_size)


def rotated_nms(boxes_bev: Tensor, scores: Tensor, iou_threshold: float, post_max_size: int) -> Tensor:
    """NMS on rotated BEV footprints (N, 5) = x, y, l, w, yaw: suppress where IoU > threshold."""

    def suppression(rows: Tensor, columns: Tensor) -> Tensor:
        return rotated_iou_bev(boxes_bev[rows], boxes_bev[columns]) > iou_threshold

    return _greedy_nms(scores, suppression, post_max_size)
