"""Greedy non-maximum suppression for BEV detections, in plain torch: circle NMS and rotated-IoU NMS.

Circle NMS is CenterPoint's: a box suppresses lower-scoring boxes whose centres
lie within a squared distance threshold (CenterPoint calls it ``min_radius`` but
compares it with the *squared* centre distance, in m^2; we keep its numbers and
its meaning). Rotated NMS suppresses by the IoU of the rotated BEV footprints.

The work is split so that many candidate sets share one trip to the host:
`circle_suppression` / `rotated_suppression` test every pair inside each of S
independent blocks of candidates at once on the device (the detection head's
blocks are its (sample, task group) pairs), `pack_rows` packs the matrices eight
flags a byte for the copy, and `greedy_walk` runs the greedy pass of one block on
the host. `circle_nms` / `rotated_nms` are one block each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nsmae_lightning.models.device_constants import device_constant

# Tolerance (metres) for "on the edge" tests in polygon clipping.
_EDGE_TOLERANCE = 1e-6
# Pairs tested at once, (on the CPU, on an accelerator). Rotated IoU holds (pairs, 24, 2) float64
# points and their intermediates, a few kB a pair; the circle test a few doubles a pair. On an
# accelerator big chunks save launches (rotated: 128 rows of 1024, the memory of the unbatched NMS);
# on the CPU small ones stay in cache: 6 circle blocks of 1000 took 128 / 142 / 182 ms at 2^18 /
# 2^20 / 2^22 pairs, 2 rotated blocks of 400 692 / 874 / 981 ms at 2^13 / 2^15 / 2^17 (2 cores).
_ROTATED_PAIRS_PER_CHUNK = (1 << 13, 1 << 17)
_CIRCLE_PAIRS_PER_CHUNK = (1 << 18, 1 << 22)

# (rows (P, R, D), columns (P, N, D), per-block thresholds (P,)) -> bool (P, R, N): row suppresses column.
PairTest = Callable[[Tensor, Tensor, Tensor], Tensor]


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """z-component of the 2D cross product over the last axis."""
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def bev_corners(boxes_bev: Tensor) -> Tensor:
    """Counter-clockwise corners (..., 4, 2) of BEV boxes (..., 5) = x, y, l, w, yaw (l along the heading)."""
    half_l, half_w = boxes_bev[..., 2:3] / 2, boxes_bev[..., 3:4] / 2
    corner_signs = ((1, 1), (-1, 1), (-1, -1), (1, -1))
    local = torch.stack([torch.cat([sign_l * half_l, sign_w * half_w], -1) for sign_l, sign_w in corner_signs], -2)
    cos_yaw, sin_yaw = boxes_bev[..., 4].cos()[..., None], boxes_bev[..., 4].sin()[..., None]
    rotated_x = local[..., 0] * cos_yaw - local[..., 1] * sin_yaw
    rotated_y = local[..., 0] * sin_yaw + local[..., 1] * cos_yaw
    return torch.stack([rotated_x, rotated_y], dim=-1) + boxes_bev[..., None, :2]


def _inside_convex(points: Tensor, polygons: Tensor) -> Tensor:
    """Whether points (..., P, 2) lie inside (or on) CCW quadrilaterals (..., 4, 2), broadcast -> (..., P)."""
    edges = polygons.roll(-1, dims=-2) - polygons  # (..., 4, 2)
    offsets = points[..., :, None, :] - polygons[..., None, :, :]  # (..., P, 4, 2)
    return (_cross(edges[..., None, :, :], offsets) >= -_EDGE_TOLERANCE).all(dim=-1)


def _edge_intersections(corners_a: Tensor, corners_b: Tensor) -> tuple[Tensor, Tensor]:
    """Crossing points of every edge of A (..., 4, 2) with every edge of B: points (..., 16, 2), valid (..., 16)."""
    start_a, start_b = corners_a[..., :, None, :], corners_b[..., None, :, :]  # (..., 4, 1, 2), (..., 1, 4, 2)
    direction_a = corners_a.roll(-1, dims=-2)[..., :, None, :] - start_a
    direction_b = corners_b.roll(-1, dims=-2)[..., None, :, :] - start_b
    denominator = _cross(direction_a, direction_b)  # (..., 4, 4)
    parallel = denominator.abs() < 1e-12
    safe_denominator = torch.where(parallel, torch.ones_like(denominator), denominator)
    offset = start_b - start_a
    along_a = _cross(offset, direction_b) / safe_denominator
    along_b = _cross(offset, direction_a) / safe_denominator
    valid = ~parallel & (along_a >= 0) & (along_a <= 1) & (along_b >= 0) & (along_b <= 1)
    points = start_a + along_a[..., None] * direction_a  # (..., 4, 4, 2)
    return points.flatten(-3, -2), valid.flatten(-2, -1)


def _convex_area(points: Tensor, valid: Tensor) -> Tensor:
    """Area of the convex hull-ordered polygon of the valid points (..., P, 2) -> (...).

    The valid points of an intersection of convex polygons are the intersection's
    vertices; sorting them by angle around their mean orders them, and the shoelace
    formula gives the area. Invalid points are replaced by the first sorted vertex,
    so they add zero area.
    """
    count = valid.sum(-1, keepdim=True).clamp(min=1)  # (..., 1)
    centre = (points * valid[..., None]).sum(-2) / count  # (..., 2)
    relative = points - centre[..., None, :]
    angle = torch.atan2(relative[..., 1], relative[..., 0])
    angle = torch.where(valid, angle, torch.full_like(angle, 10.0))  # invalid points sort last
    order = angle.argsort(dim=-1)
    ordered = relative.gather(-2, order[..., None].expand_as(relative))
    ordered_valid = valid.gather(-1, order)
    ordered = torch.where(ordered_valid[..., None], ordered, ordered[..., :1, :])
    return 0.5 * _cross(ordered, ordered.roll(-1, dims=-2)).sum(-1).abs()


def footprint_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU of the rotated BEV footprints of boxes (..., 5) and (..., 5) (x, y, l, w, yaw), broadcast -> (...).

    Computed in float64, returned in the boxes' dtype.
    """
    corners_a, corners_b = bev_corners(boxes_a.double()), bev_corners(boxes_b.double())
    pairs = torch.broadcast_shapes(corners_a.shape, corners_b.shape)  # (..., 4, 2)
    crossing_points, crossing_valid = _edge_intersections(corners_a, corners_b)
    points = torch.cat([corners_a.expand(pairs), corners_b.expand(pairs), crossing_points], dim=-2)  # (..., 24, 2)
    valid = torch.cat([_inside_convex(corners_a, corners_b), _inside_convex(corners_b, corners_a), crossing_valid], dim=-1)
    intersection = _convex_area(points, valid)
    area_a = (boxes_a[..., 2] * boxes_a[..., 3]).double()
    area_b = (boxes_b[..., 2] * boxes_b[..., 3]).double()
    union = (area_a + area_b - intersection).clamp(min=1e-12)
    return (intersection / union).to(boxes_a.dtype)


def rotated_iou_bev(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU of the rotated BEV footprints of boxes (N, 5) and (M, 5) (x, y, l, w, yaw) -> (N, M)."""
    return footprint_iou(boxes_a[:, None], boxes_b[None])


def concatenate(parts: Sequence[Tensor], dim: int = 0) -> Tensor:
    """torch.cat, without the copy when there is a single part."""
    return parts[0] if len(parts) == 1 else torch.cat(list(parts), dim)


def _within_blocks(items: Tensor, thresholds: Tensor, pair_test: PairTest, chunk_pairs: tuple[int, int]) -> Tensor:
    """The pair test between all candidates of each block: items (S, N, D) -> bool (S, N, N).

    Only pairs inside a block are tested. A chunk holds whole blocks when a block's N^2 pairs
    fit in the chunk (``chunk_pairs``: on the CPU, on an accelerator), else rows of one block:
    either way slices, no index tensors.
    """
    blocks, size = items.shape[:2]
    if blocks == 0 or size == 0:
        return torch.zeros(blocks, size, size, dtype=torch.bool, device=items.device)
    pairs_per_chunk = chunk_pairs[0] if items.device.type == "cpu" else chunk_pairs[1]
    blocks_per_chunk = pairs_per_chunk // (size * size)
    if blocks_per_chunk >= 1:
        spans = [(start, start + blocks_per_chunk, 0, size) for start in range(0, blocks, blocks_per_chunk)]
    else:
        rows = max(1, pairs_per_chunk // size)
        spans = [(block, block + 1, row, row + rows) for block in range(blocks) for row in range(0, size, rows)]
    parts = [
        pair_test(items[first:last, row:end], items[first:last], thresholds[first:last]).reshape(-1, size)
        for first, last, row, end in spans
    ]
    return concatenate(parts).reshape(blocks, size, size)


def _within_squared_distance(rows: Tensor, columns: Tensor, thresholds: Tensor) -> Tensor:
    """Circle test: squared centre distance (float64) <= the block's threshold."""
    return ((rows[:, :, None] - columns[:, None]) ** 2).sum(-1) <= thresholds[:, None, None]


def _overlapping(rows: Tensor, columns: Tensor, thresholds: Tensor) -> Tensor:
    """Rotated test: footprint IoU > the block's threshold (compared in the boxes' dtype)."""
    return footprint_iou(rows[:, :, None], columns[:, None]) > thresholds[:, None, None]


def circle_suppression(centers_xy: Tensor, squared_distance_thresholds: Sequence[float]) -> Tensor:
    """Circle-NMS pair tests inside each block: centres (S, N, 2), one threshold (m^2) per block -> bool (S, N, N).

    ``[s, i, j]`` is True where centre i of block s suppresses centre j of it (distance^2 <= threshold).
    """
    centers = centers_xy.double()
    thresholds = device_constant(tuple(squared_distance_thresholds), centers.device, torch.float64)
    return _within_blocks(centers, thresholds, _within_squared_distance, _CIRCLE_PAIRS_PER_CHUNK)


def rotated_suppression(boxes_bev: Tensor, iou_thresholds: Sequence[float]) -> Tensor:
    """Rotated-NMS pair tests inside each block: boxes (S, N, 5) x, y, l, w, yaw, one IoU threshold per block.

    Returns bool (S, N, N), ``[s, i, j]`` True where box i of block s suppresses box j of it (IoU > threshold).
    """
    thresholds = device_constant(tuple(iou_thresholds), boxes_bev.device, boxes_bev.dtype)
    return _within_blocks(boxes_bev, thresholds, _overlapping, _ROTATED_PAIRS_PER_CHUNK)


def pack_rows(flags: Tensor) -> Tensor:
    """Pack bool (..., N) into uint8 (..., ceil(N / 8)), eight flags a byte, for a copy to the host an eighth the size.

    Column j is bit j % 8 of byte j // 8, as numpy's ``packbits(..., bitorder="little")``.
    """
    padded = F.pad(flags, (0, -flags.shape[-1] % 8)) if flags.shape[-1] % 8 else flags
    weights = device_constant((1, 2, 4, 8, 16, 32, 64, 128), flags.device, torch.uint8)
    return (padded.unflatten(-1, (-1, 8)) * weights).sum(-1, dtype=torch.uint8)


def _bitset(packed: np.ndarray) -> int:
    """A `pack_rows` row as a Python int: bit j set where column j is."""
    return int.from_bytes(packed.tobytes(), "little")


def greedy_walk(suppressed: np.ndarray, candidates: np.ndarray, post_max_size: int) -> list[int]:
    """Greedy NMS over one block on the host: keep the best remaining candidate, drop those it suppresses, repeat.

    Same result as testing each kept box against the rest in turn, from a matrix computed once. The
    remaining candidates are an int bitset, so a step costs a few big-int operations per kept box.

    Args:
        suppressed: uint8 (N, ceil(N / 8)), `pack_rows` of the bool matrix in descending score
            order: bit j of row i set where candidate i suppresses candidate j (j < i is never read:
            no candidate before i remains when i is kept).
        candidates: uint8 (ceil(N / 8),), `pack_rows` of the positions that take part (not those
            below the score threshold, nor padding).
        post_max_size: at most this many are kept.

    Returns:
        the kept positions, ascending (by descending score).
    """
    remaining = _bitset(candidates)
    kept: list[int] = []
    while remaining and len(kept) < post_max_size:
        position = (remaining & -remaining).bit_length() - 1  # lowest position left = best score left
        kept.append(position)
        remaining &= ~(_bitset(suppressed[position]) | (1 << position))
    return kept


def _greedy_nms(scores: Tensor, items: Tensor, suppression: Callable[[Tensor], Tensor], post_max_size: int) -> Tensor:
    """Greedy NMS of one candidate set: the pair tests on the device, then one copy and the host walk.

    Args:
        scores: (N,) detection scores.
        items: (N, D) what ``suppression`` tests, in the scores' order.
        suppression: items of one block in score order (1, N, D) -> bool (1, N, N).
        post_max_size: at most this many boxes are kept.

    Returns:
        int64 indices of the kept boxes, by descending score.
    """
    order = scores.argsort(descending=True, stable=True)
    count = order.numel()
    if count == 0 or post_max_size <= 0:
        return torch.zeros(0, dtype=torch.int64, device=scores.device)
    suppressed = pack_rows(suppression(items[order][None])[0]).cpu().numpy()  # (N, ceil(N / 8)) in score order
    kept = greedy_walk(suppressed, np.packbits(np.ones(count, dtype=bool), bitorder="little"), post_max_size)
    return order[torch.as_tensor(kept, device=order.device)]


def circle_nms(centers_xy: Tensor, scores: Tensor, squared_distance_threshold: float, post_max_size: int) -> Tensor:
    """CenterPoint's circle NMS on BEV centres (N, 2): suppress where squared distance <= threshold (m^2)."""
    return _greedy_nms(
        scores, centers_xy, lambda centers: circle_suppression(centers, (squared_distance_threshold,)), post_max_size
    )


def rotated_nms(boxes_bev: Tensor, scores: Tensor, iou_threshold: float, post_max_size: int) -> Tensor:
    """NMS on rotated BEV footprints (N, 5) = x, y, l, w, yaw: suppress where IoU > threshold."""
    return _greedy_nms(scores, boxes_bev, lambda boxes: rotated_suppression(boxes, (iou_threshold,)), post_max_size)
