"""Box overlaps of the KITTI evaluator against hand values and a shapely reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from nsmae_lightning.evaluation.kitti.iou import (
    BEV_IOU,
    bev_box_iou,
    box3d_iou,
    frames_overlaps,
    image_box_iou,
    image_box_overlap_over_first,
)


def _bev_polygon(x: float, z: float, length: float, width: float, ry: float) -> Polygon:
    """Shapely footprint of a box with KITTI's R_y: (u, v) -> (x + cos u + sin v, z - sin u + cos v)."""
    corners = []
    for u, v in ((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)):
        u, v = u * length, v * width
        corners.append((x + math.cos(ry) * u + math.sin(ry) * v, z - math.sin(ry) * u + math.cos(ry) * v))
    return Polygon(corners)


def _random_bev_boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 5) boxes x, z, l, w, ry packed close enough to overlap often."""
    return np.column_stack([
        rng.uniform(0.0, 3.0, count),
        rng.uniform(0.0, 3.0, count),
        rng.uniform(0.5, 4.0, count),
        rng.uniform(0.5, 2.5, count),
        rng.uniform(-math.pi, math.pi, count),
    ])


def test_bev_iou_matches_shapely_on_random_rotated_boxes() -> None:
    rng = np.random.default_rng(0)
    boxes, queries = _random_bev_boxes(rng, 25), _random_bev_boxes(rng, 20)
    ours = bev_box_iou(boxes, queries)
    reference = np.zeros_like(ours)
    for row, box in enumerate(boxes):
        for column, query in enumerate(queries):
            first, second = _bev_polygon(*box), _bev_polygon(*query)
            reference[row, column] = first.intersection(second).area / first.union(second).area
    assert (reference > 0.05).sum() > 100  # the test really exercises overlaps
    np.testing.assert_allclose(ours, reference, atol=1e-9)


def test_3d_iou_matches_shapely_times_vertical_overlap() -> None:
    rng = np.random.default_rng(1)
    bev_boxes, bev_queries = _random_bev_boxes(rng, 15), _random_bev_boxes(rng, 12)
    heights_b, heights_q = rng.uniform(0.5, 2.0, 15), rng.uniform(0.5, 2.0, 12)
    bottoms_b, bottoms_q = rng.uniform(1.0, 2.5, 15), rng.uniform(1.0, 2.5, 12)
    # label order x, y, z, h, w, l, ry with y the bottom (camera y points down)
    boxes = np.column_stack([bev_boxes[:, 0], bottoms_b, bev_boxes[:, 1], heights_b, bev_boxes[:, 3],
                             bev_boxes[:, 2], bev_boxes[:, 4]])
    queries = np.column_stack([bev_queries[:, 0], bottoms_q, bev_queries[:, 1], heights_q, bev_queries[:, 3],
                               bev_queries[:, 2], bev_queries[:, 4]])
    ours = box3d_iou(boxes, queries)
    for row in range(15):
        for column in range(12):
            area = _bev_polygon(*bev_boxes[row]).intersection(_bev_polygon(*bev_queries[column])).area
            vertical = max(0.0, min(bottoms_b[row], bottoms_q[column])
                           - max(bottoms_b[row] - heights_b[row], bottoms_q[column] - heights_q[column]))
            intersection = area * vertical
            volumes = (heights_b[row] * bev_boxes[row, 2] * bev_boxes[row, 3]
                       + heights_q[column] * bev_queries[column, 2] * bev_queries[column, 3])
            assert ours[row, column] == pytest.approx(intersection / (volumes - intersection), abs=1e-9)
    assert (ours > 0.05).sum() > 20


def test_bev_convention_length_along_camera_x_at_zero_yaw() -> None:
    box = np.array([[0.0, 0.0, 4.0, 2.0, 0.0]])  # spans x -2..2, z -1..1
    inside_along_x = np.array([[1.5, 0.0, 1.0, 1.0, 0.0]])  # x 1..2, z -0.5..0.5: fully inside
    assert bev_box_iou(box, inside_along_x)[0, 0] == pytest.approx(1.0 / 8.0)
    crossed = np.array([[0.0, 0.0, 4.0, 2.0, math.pi / 2], [0.0, 0.0, 4.0, 2.0, math.pi]])
    # quarter turn: 2 x 2 overlap of two 8 m^2 boxes; half turn: the same footprint
    np.testing.assert_allclose(bev_box_iou(box, crossed), [[4.0 / 12.0, 1.0]], atol=1e-12)


def test_3d_iou_vertical_overlap_uses_bottom_location() -> None:
    box = np.array([[0.0, 2.0, 0.0, 2.0, 2.0, 4.0, 0.0]])  # spans y 0..2
    lifted = np.array([[0.0, 1.0, 0.0, 2.0, 2.0, 4.0, 0.0]])  # spans y -1..1: half the height shared
    assert box3d_iou(box, lifted)[0, 0] == pytest.approx(8.0 / (16.0 + 16.0 - 8.0))
    above = np.array([[0.0, 0.0, 0.0, 2.0, 2.0, 4.0, 0.0]])  # spans y -2..0: touches only
    assert box3d_iou(box, above)[0, 0] == 0.0


def test_image_iou_and_overlap_over_first_area() -> None:
    boxes = np.array([[0.0, 0.0, 10.0, 10.0]])
    queries = np.array([[5.0, 5.0, 15.0, 15.0], [20.0, 0.0, 30.0, 10.0], [0.0, 0.0, 20.0, 20.0]])
    np.testing.assert_allclose(image_box_iou(boxes, queries), [[25.0 / 175.0, 0.0, 100.0 / 400.0]])
    np.testing.assert_allclose(image_box_overlap_over_first(boxes, queries), [[0.25, 0.0, 1.0]])


def test_degenerate_boxes_give_zero_and_frames_stay_apart() -> None:
    dontcare_like = np.array([[-1000.0, -1000.0, -1.0, -1.0, -10.0]])
    assert bev_box_iou(dontcare_like, dontcare_like)[0, 0] == 0.0
    boxes = np.array([[0.0, 0.0, 4.0, 2.0, 0.0], [0.0, 0.0, 4.0, 2.0, 0.0]])
    flat = frames_overlaps(BEV_IOU, boxes, np.array([0, 1, 2]), boxes, np.array([0, 1, 2]))
    np.testing.assert_allclose(flat, [1.0, 1.0])  # one 1x1 matrix per frame, no cross-frame pairs
    with pytest.raises(ValueError, match="must be"):
        frames_overlaps(BEV_IOU, boxes[:, :4], np.array([0, 2]), boxes, np.array([0, 2]))
