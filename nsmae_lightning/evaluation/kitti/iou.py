"""Box overlaps in the KITTI convention: image 2D, rotated bird's-eye-view and 3D (numba, CPU).

Geometry follows KITTI's rectified camera frame: x right, y down, z forward. A box's
bird's-eye view lives in the x-z plane; at ``rotation_y = 0`` its length ``l`` lies along x
and its width ``w`` along z, and a point ``(u, v)`` of the box frame maps to
``x = cx + cos(ry) u + sin(ry) v``, ``z = cz - sin(ry) u + cos(ry) v`` (KITTI's R_y). The
3D location is the bottom centre, so a box spans ``y - h .. y`` vertically.

Every kernel works per frame on flat arrays (boxes of all frames concatenated, with
offsets), so a whole split is one numba call; the pairwise-matrix helpers are the same
kernel over one frame.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# Metric kinds understood by :func:`frames_overlaps`.
IMAGE_IOU = 0
BEV_IOU = 1
BOX3D_IOU = 2
IMAGE_OVER_FIRST_AREA = 3

# A convex quadrilateral clipped by four half-planes has at most 8 vertices.
_MAX_VERTICES = 16


@numba.njit(cache=True)
def _rectangle_corners(
    center_x: float, center_z: float, length: float, width: float, ry: float, out: np.ndarray
) -> None:
    """Write the 4 BEV corners (counter-clockwise in x-z) of a box into ``out`` (4, 2)."""
    cos_ry = math.cos(ry)
    sin_ry = math.sin(ry)
    half_l = 0.5 * length
    half_w = 0.5 * width
    local_u = (-half_l, half_l, half_l, -half_l)
    local_v = (-half_w, -half_w, half_w, half_w)
    for corner in range(4):
        out[corner, 0] = center_x + cos_ry * local_u[corner] + sin_ry * local_v[corner]
        out[corner, 1] = center_z - sin_ry * local_u[corner] + cos_ry * local_v[corner]


@numba.njit(cache=True)
def _convex_intersection_area(
    subject: np.ndarray, clipper: np.ndarray, buffer_in: np.ndarray, buffer_out: np.ndarray
) -> float:
    """Area of the intersection of two counter-clockwise quadrilaterals (Sutherland-Hodgman).

    Args:
        subject: (4, 2) corners of the polygon being clipped.
        clipper: (4, 2) corners of the clipping polygon.
        buffer_in, buffer_out: (_MAX_VERTICES, 2) scratch space.
    """
    count = 4
    buffer_in[:4] = subject
    for edge in range(4):
        start_x, start_z = clipper[edge, 0], clipper[edge, 1]
        edge_x = clipper[(edge + 1) % 4, 0] - start_x
        edge_z = clipper[(edge + 1) % 4, 1] - start_z
        kept = 0
        for vertex in range(count):
            previous = (vertex + count - 1) % count
            current_side = edge_x * (buffer_in[vertex, 1] - start_z) - edge_z * (buffer_in[vertex, 0] - start_x)
            previous_side = edge_x * (buffer_in[previous, 1] - start_z) - edge_z * (buffer_in[previous, 0] - start_x)
            if (current_side >= 0.0) != (previous_side >= 0.0):
                fraction = previous_side / (previous_side - current_side)
                for axis in range(2):
                    previous_value = buffer_in[previous, axis]
                    buffer_out[kept, axis] = previous_value + fraction * (buffer_in[vertex, axis] - previous_value)
                kept += 1
            if current_side >= 0.0:
                buffer_out[kept, 0] = buffer_in[vertex, 0]
                buffer_out[kept, 1] = buffer_in[vertex, 1]
                kept += 1
        count = kept
        if count < 3:
            return 0.0
        buffer_in[:count] = buffer_out[:count]
    twice_area = 0.0
    for vertex in range(count):
        following = (vertex + 1) % count
        twice_area += buffer_in[vertex, 0] * buffer_in[following, 1] - buffer_in[following, 0] * buffer_in[vertex, 1]
    return 0.5 * abs(twice_area)


@numba.njit(cache=True)
def _bev_intersection_area(
    box: tuple[float, float, float, float, float], query: tuple[float, float, float, float, float],
    corners_box: np.ndarray, corners_query: np.ndarray, buffer_in: np.ndarray, buffer_out: np.ndarray,
) -> float:
    """BEV overlap area of two ``(x, z, l, w, ry)`` boxes; 0 for degenerate sizes."""
    x, z, length, width, ry = box
    query_x, query_z, query_length, query_width, query_ry = query
    if length <= 0.0 or width <= 0.0 or query_length <= 0.0 or query_width <= 0.0:
        return 0.0
    reach = 0.5 * (math.hypot(length, width) + math.hypot(query_length, query_width))
    if math.hypot(x - query_x, z - query_z) >= reach:
        return 0.0
    _rectangle_corners(x, z, length, width, ry, corners_box)
    _rectangle_corners(query_x, query_z, query_length, query_width, query_ry, corners_query)
    return _convex_intersection_area(corners_box, corners_query, buffer_in, buffer_out)


@numba.njit(cache=True)
def _image_overlap(box: np.ndarray, query: np.ndarray, over_first_area: bool) -> float:
    """2D overlap of ``(x1, y1, x2, y2)`` boxes: IoU, or intersection / area of ``box``."""
    inter_w = min(box[2], query[2]) - max(box[0], query[0])
    inter_h = min(box[3], query[3]) - max(box[1], query[1])
    if inter_w <= 0.0 or inter_h <= 0.0:
        return 0.0
    intersection = inter_w * inter_h
    box_area = (box[2] - box[0]) * (box[3] - box[1])
    if over_first_area:
        denominator = box_area
    else:
        denominator = box_area + (query[2] - query[0]) * (query[3] - query[1]) - intersection
    return intersection / denominator if denominator > 0.0 else 0.0


@numba.njit(cache=True)
def _pair_overlap(
    kind: int, box: np.ndarray, query: np.ndarray, corners_box: np.ndarray, corners_query: np.ndarray,
    buffer_in: np.ndarray, buffer_out: np.ndarray,
) -> float:
    """One overlap value of ``kind`` (see the module constants)."""
    if kind == IMAGE_IOU or kind == IMAGE_OVER_FIRST_AREA:
        return _image_overlap(box, query, kind == IMAGE_OVER_FIRST_AREA)
    if kind == BEV_IOU:
        intersection = _bev_intersection_area(
            (box[0], box[1], box[2], box[3], box[4]), (query[0], query[1], query[2], query[3], query[4]),
            corners_box, corners_query, buffer_in, buffer_out,
        )
        union = box[2] * box[3] + query[2] * query[3] - intersection
        return intersection / union if intersection > 0.0 else 0.0
    # BOX3D_IOU: (x, y, z, h, w, l, ry), y = bottom, box spans y - h .. y.
    vertical = min(box[1], query[1]) - max(box[1] - box[3], query[1] - query[3])
    if vertical <= 0.0:
        return 0.0
    bev_area = _bev_intersection_area(
        (box[0], box[2], box[5], box[4], box[6]), (query[0], query[2], query[5], query[4], query[6]),
        corners_box, corners_query, buffer_in, buffer_out,
    )
    intersection = vertical * bev_area
    union = box[3] * box[4] * box[5] + query[3] * query[4] * query[5] - intersection
    return intersection / union if intersection > 0.0 else 0.0


@numba.njit(cache=True)
def _frames_overlaps(
    kind: int, boxes: np.ndarray, box_offsets: np.ndarray, queries: np.ndarray, query_offsets: np.ndarray
) -> np.ndarray:
    """Flat per-frame overlap matrices (see :func:`frames_overlaps`)."""
    num_frames = len(box_offsets) - 1
    total = 0
    for frame in range(num_frames):
        total += (box_offsets[frame + 1] - box_offsets[frame]) * (query_offsets[frame + 1] - query_offsets[frame])
    overlaps = np.zeros(total)
    corners_box = np.empty((4, 2))
    corners_query = np.empty((4, 2))
    buffer_in = np.empty((_MAX_VERTICES, 2))
    buffer_out = np.empty((_MAX_VERTICES, 2))
    position = 0
    for frame in range(num_frames):
        for box_index in range(box_offsets[frame], box_offsets[frame + 1]):
            for query_index in range(query_offsets[frame], query_offsets[frame + 1]):
                overlaps[position] = _pair_overlap(
                    kind, boxes[box_index], queries[query_index], corners_box, corners_query, buffer_in, buffer_out
                )
                position += 1
    return overlaps


def frames_overlaps(
    kind: int, boxes: np.ndarray, box_offsets: np.ndarray, queries: np.ndarray, query_offsets: np.ndarray
) -> np.ndarray:
    """Overlap matrices of every frame, concatenated row-major.

    Args:
        kind: ``IMAGE_IOU``, ``IMAGE_OVER_FIRST_AREA`` (boxes ``x1, y1, x2, y2``), ``BEV_IOU``
            (boxes ``x, z, l, w, ry``) or ``BOX3D_IOU`` (boxes ``x, y, z, h, w, l, ry``).
        boxes: (B, C) boxes of all frames, frame f at rows ``box_offsets[f]:box_offsets[f+1]``.
        box_offsets: (F + 1,) int64 row offsets into ``boxes``.
        queries: (Q, C) query boxes, laid out like ``boxes``.
        query_offsets: (F + 1,) int64 row offsets into ``queries``.

    Returns:
        (sum_f n_box_f * n_query_f,) float64; frame f's matrix is (n_box_f, n_query_f).
    """
    widths = {IMAGE_IOU: 4, IMAGE_OVER_FIRST_AREA: 4, BEV_IOU: 5, BOX3D_IOU: 7}
    if kind not in widths:
        raise ValueError(f"unknown overlap kind {kind}")
    for label, array in (("boxes", boxes), ("queries", queries)):
        if np.ndim(array) != 2 or np.shape(array)[1] != widths[kind]:
            raise ValueError(f"{label} must be (N, {widths[kind]}) for overlap kind {kind}, got {np.shape(array)}")
    if len(box_offsets) != len(query_offsets):
        raise ValueError("box_offsets and query_offsets must cover the same frames")
    return _frames_overlaps(
        kind,
        np.ascontiguousarray(boxes, dtype=np.float64),
        np.ascontiguousarray(box_offsets, dtype=np.int64),
        np.ascontiguousarray(queries, dtype=np.float64),
        np.ascontiguousarray(query_offsets, dtype=np.int64),
    )


def _pairwise(kind: int, boxes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(N, K) overlap matrix of one frame."""
    num_boxes, num_queries = len(boxes), len(queries)
    flat = frames_overlaps(
        kind,
        np.asarray(boxes, dtype=np.float64).reshape(num_boxes, -1),
        np.array([0, num_boxes]),
        np.asarray(queries, dtype=np.float64).reshape(num_queries, -1),
        np.array([0, num_queries]),
    )
    return flat.reshape(num_boxes, num_queries)


def image_box_iou(boxes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(N, K) IoU of 2D image boxes ``x1, y1, x2, y2`` (N, 4) and (K, 4)."""
    return _pairwise(IMAGE_IOU, boxes, queries)


def image_box_overlap_over_first(boxes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(N, K) intersection / area of ``boxes[n]``: KITTI's DontCare criterion."""
    return _pairwise(IMAGE_OVER_FIRST_AREA, boxes, queries)


def bev_box_iou(boxes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(N, K) rotated BEV IoU of ``x, z, l, w, ry`` boxes (N, 5) and (K, 5), camera x-z plane."""
    return _pairwise(BEV_IOU, boxes, queries)


def box3d_iou(boxes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(N, K) 3D IoU of ``x, y, z, h, w, l, ry`` boxes (label-file order, y = bottom, down)."""
    return _pairwise(BOX3D_IOU, boxes, queries)
