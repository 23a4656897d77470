"""CenterPoint head: targets <-> decoding round trip, Gaussian radius, focal loss, NMS."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from nsmae_lightning.constants import DETECTION_CLASSES
from nsmae_lightning.models.heads import CenterPointHead, DetectionHeadConfig, TaskGroup
from nsmae_lightning.models.heads.box_coder import (
    CODE_SIZE,
    REGRESSION_HEADS,
    CenterPointBoxCoder,
    flatten_batch,
    gaussian_radius,
    gaussian_windows,
)
from nsmae_lightning.models.heads import nms
from nsmae_lightning.models.heads.detection import HEATMAP_EPS, HEATMAP_INIT_BIAS, gaussian_focal_loss
from nsmae_lightning.models.heads.nms import (
    circle_nms,
    circle_suppression,
    pack_rows,
    rotated_iou_bev,
    rotated_nms,
    rotated_suppression,
)

PC_RANGE = (-16.0, -12.0, -5.0, 16.0, 12.0, 3.0)
GRID_SHAPE = (24, 32)  # (Ny, Nx): 1 m cells


def tiny_config(**overrides: object) -> DetectionHeadConfig:
    """A small head over a 32 m x 24 m grid."""
    settings: dict[str, object] = dict(in_channels=8, shared_channels=8, head_channels=8, pc_range=PC_RANGE, max_objects=16)
    settings.update(overrides)
    return DetectionHeadConfig(**settings)  # type: ignore[arg-type]


def hand_built_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of several task groups, far apart, with yaws in (-pi, pi) and velocities."""
    boxes = torch.tensor(
        [
            [3.3, 4.7, -0.4, 4.5, 1.9, 1.6, 0.7, 2.0, -1.0],  # car
            [-10.2, -6.6, 0.3, 7.0, 2.6, 3.1, -2.9, 0.0, 0.5],  # truck
            [10.8, -8.1, 0.1, 0.5, 0.5, 0.9, 1.4, 0.0, 0.0],  # traffic_cone
            [-4.45, 8.05, -1.2, 0.7, 0.6, 1.8, -0.3, 0.8, 1.2],  # pedestrian
            [12.5, 9.5, 0.0, 11.0, 2.9, 3.5, 3.0, -4.0, 0.3],  # bus
        ]
    )
    names = ["car", "truck", "traffic_cone", "pedestrian", "bus"]
    labels = torch.tensor([DETECTION_CLASSES.index(name) for name in names])
    return boxes, labels


def ideal_predictions(head: CenterPointHead, boxes: torch.Tensor, labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Head outputs that a perfect network would give: logit +20 at centres, -20 elsewhere, exact codes."""
    predictions = []
    for task, (task_boxes, class_ids) in zip(head.config.tasks, head.split_by_task(boxes, labels)):
        targets = head.box_coder.encode(task_boxes, class_ids, len(task.class_names), GRID_SHAPE)
        heatmap = torch.where(targets.heatmap == 1.0, 20.0, -20.0)[None]
        codes = torch.zeros(CODE_SIZE, GRID_SHAPE[0] * GRID_SHAPE[1])
        codes[:, targets.indices[targets.mask]] = targets.box_targets[targets.mask].T
        codes = codes.reshape(1, CODE_SIZE, *GRID_SHAPE)
        split = dict(zip([name for name, _ in REGRESSION_HEADS], codes.split([size for _, size in REGRESSION_HEADS], 1)))
        predictions.append({"heatmap": heatmap, **split})
    return predictions


def sorted_by_x(boxes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    order = boxes[:, 0].argsort()
    return boxes[order], labels[order]


def test_split_by_task_groups_in_order_and_drops_ungrouped_labels() -> None:
    # two groups over four of the ten classes: the other labels belong to no group
    tasks = (TaskGroup(("pedestrian", "car")), TaskGroup(("bus",)))
    head = CenterPointHead(tiny_config(tasks=tasks))
    names = ["car", "truck", "pedestrian", "bus", "car", "traffic_cone", "pedestrian", "bus"]
    labels = torch.tensor([DETECTION_CLASSES.index(name) for name in names])
    boxes = torch.arange(len(names), dtype=torch.float32)[:, None].expand(-1, 9).contiguous()  # row i holds i
    (first_boxes, first_ids), (second_boxes, second_ids) = head.split_by_task(boxes, labels)
    assert first_boxes[:, 0].tolist() == [0.0, 2.0, 4.0, 6.0]  # input order kept
    assert first_ids.tolist() == [1, 0, 1, 0]  # car is the group's second class, pedestrian its first
    assert second_boxes[:, 0].tolist() == [3.0, 7.0] and second_ids.tolist() == [0, 0]
    empty = head.split_by_task(torch.zeros(0, 9), torch.zeros(0, dtype=torch.int64))
    assert [(b.shape, i.shape) for b, i in empty] == [((0, 9), (0,))] * 2
    # the batch at once (one size read): each sample grouped as on its own, an empty one included
    batch = head.split_batch_by_task([boxes, torch.zeros(0, 9), boxes.flip(0) + 10], [labels, labels[:0], labels.flip(0)])
    assert len(batch) == 3 and [(b.shape, i.shape) for b, i in batch[1]] == [((0, 9), (0,))] * 2
    assert batch[0][0][0][:, 0].tolist() == [0.0, 2.0, 4.0, 6.0] and batch[0][1][1].tolist() == [0, 0]
    assert batch[2][0][0][:, 0].tolist() == [16.0, 14.0, 12.0, 10.0] and batch[2][0][1].tolist() == [0, 1, 0, 1]
    assert batch[2][1][0][:, 0].tolist() == [17.0, 13.0]
    assert head.split_batch_by_task([], []) == []


@pytest.mark.parametrize("nms_type", ["circle", "rotated"])
def test_encode_decode_round_trip_recovers_boxes(nms_type: str) -> None:
    tasks = tuple(TaskGroup(group.class_names, nms_type, 0.2 if nms_type == "rotated" else group.nms_threshold)
                  for group in DetectionHeadConfig().tasks)
    head = CenterPointHead(tiny_config(tasks=tasks))
    boxes, labels = hand_built_boxes()
    decoded = head.decode(ideal_predictions(head, boxes, labels))
    assert len(decoded) == 1
    got_boxes, got_labels = sorted_by_x(decoded[0]["boxes"], decoded[0]["labels"])
    want_boxes, want_labels = sorted_by_x(boxes, labels)
    assert got_boxes.shape == (5, 9)
    torch.testing.assert_close(got_boxes, want_boxes, atol=1e-4, rtol=0)
    assert got_labels.tolist() == want_labels.tolist()
    assert torch.allclose(decoded[0]["scores"], torch.sigmoid(torch.tensor(20.0)))


def test_ideal_prediction_has_zero_regression_loss_and_gradients_flow() -> None:
    head = CenterPointHead(tiny_config())
    boxes, labels = hand_built_boxes()
    ideal = ideal_predictions(head, boxes, labels)
    ideal_losses = head.loss(ideal, [boxes], [labels])
    assert ideal_losses["loss_regression"].item() == 0.0
    assert ideal_losses["loss_heatmap"].item() < 1e-3  # only the Gaussian tails around centres

    features = torch.randn(2, 8, *GRID_SHAPE, requires_grad=True)
    losses = head.loss(head(features), [boxes, torch.zeros(0, 9)], [labels, torch.zeros(0, dtype=torch.int64)])
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and losses["loss_regression"] > 0
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_empty_frame_gives_negative_only_heatmap_loss() -> None:
    head = CenterPointHead(tiny_config())
    predictions = head(torch.randn(1, 8, *GRID_SHAPE))
    losses = head.loss(predictions, [torch.zeros(0, 9)], [torch.zeros(0, dtype=torch.int64)])
    expected_heatmap = sum(
        gaussian_focal_loss(task["heatmap"], torch.zeros_like(task["heatmap"])) for task in predictions
    )
    torch.testing.assert_close(losses["loss_heatmap"], expected_heatmap)
    assert losses["loss_regression"].item() == 0.0
    assert head.decode([{k: v.detach() for k, v in task.items()} for task in predictions])[0]["boxes"].shape[1] == 9


def test_targets_skip_boxes_off_the_grid_and_cap_max_objects() -> None:
    head = CenterPointHead(tiny_config(max_objects=2))
    boxes = torch.tensor([[30.0, 0, 0, 4, 2, 1.5, 0, 0, 0], [0.5, 0.5, 0, 4, 2, 1.5, 0, 0, 0], [5.5, 0.5, 0, 4, 2, 1.5, 0, 0, 0]])
    targets = head.box_coder.encode(boxes, torch.zeros(3, dtype=torch.int64), 1, GRID_SHAPE)
    assert targets.mask.tolist() == [False, True]
    assert targets.indices[1].item() == 12 * 32 + 16
    assert targets.heatmap.max().item() == 1.0 and (targets.heatmap == 1.0).sum().item() == 1
    torch.testing.assert_close(targets.box_targets[1, :2], torch.tensor([0.5, 0.5]))


def test_bad_boxes_and_labels_raise() -> None:
    head = CenterPointHead(tiny_config())
    with pytest.raises(ValueError, match="positive"):
        head.box_coder.encode(torch.tensor([[0.0, 0, 0, 0, 1, 1, 0, 0, 0]]), torch.zeros(1, dtype=torch.int64), 1, GRID_SHAPE)
    good, spoiled = torch.tensor([[0.5, 0.5, 0, 4, 2, 1.5, 0, 0, 0]]), torch.tensor([[float("nan"), 0, 0, 4, 2, 1.5, 0, 0, 0]])
    with pytest.raises(ValueError, match="finite"):  # a non-finite box in the batch's second sample, off the grid
        head.box_coder.encode_batch([good, spoiled], [torch.zeros(1, dtype=torch.int64)] * 2, 1, GRID_SHAPE)
    predictions = head(torch.randn(1, 8, *GRID_SHAPE))
    with pytest.raises(ValueError, match="class_names"):
        head.loss(predictions, [torch.zeros(1, 9)], [torch.tensor([10])])
    with pytest.raises(ValueError, match="nms_type"):
        tiny_config(tasks=(TaskGroup(("car",), "box"),))
    with pytest.raises(ValueError, match="not in class_names"):
        tiny_config(tasks=(TaskGroup(("lorry",)),))


def test_gaussian_radius_matches_centernet_formula() -> None:
    # 10 x 10 cells, overlap 0.1: the third case wins, (-4 + sqrt(160)) / 2.
    radius = gaussian_radius(torch.tensor([10.0], dtype=torch.float64), torch.tensor([10.0], dtype=torch.float64), 0.1)
    assert radius.item() == pytest.approx((-4.0 + math.sqrt(160.0)) / 2.0, abs=1e-12)
    # 4 x 2 cells, overlap 0.7: r3 = (-8.4 + sqrt(8.4^2 + 4 * 2.8 * 2.4)) / 2.
    radius = gaussian_radius(torch.tensor([4.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64), 0.7)
    assert radius.item() == pytest.approx((-8.4 + math.sqrt(8.4**2 + 4 * 2.8 * 2.4)) / 2.0, abs=1e-12)


def test_gaussian_windows_peak_one_with_per_box_radius() -> None:
    dx, dy, values = gaussian_windows(torch.tensor([2, 1]))
    assert dx.shape == (25,) and values.shape == (2, 25)
    centre = ((dx == 0) & (dy == 0)).nonzero().item()
    assert values[0, centre].item() == 1.0 and values[1, centre].item() == 1.0
    right = ((dx == 1) & (dy == 0)).nonzero().item()
    assert values[0, right].item() == pytest.approx(math.exp(-1.0 / (2 * (5 / 6) ** 2)), rel=1e-6)
    assert values[1, right].item() == pytest.approx(math.exp(-1.0 / (2 * (3 / 6) ** 2)), rel=1e-6)
    assert (values[1, (dx.abs() == 2) | (dy.abs() == 2)] == 0).all()  # outside radius 1


def reference_targets(coder: CenterPointBoxCoder, boxes: torch.Tensor, class_ids: torch.Tensor, num_classes: int,
                      grid_shape: tuple[int, int]) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """Box-by-box CenterPoint targets as mmdet3d's CenterHead.get_targets_single draws them (the reference)."""
    num_y, num_x = grid_shape
    cell_x, cell_y = coder.cell_size(grid_shape)
    heatmap = torch.zeros(num_classes, num_y, num_x)
    indices = torch.zeros(coder.max_objects, dtype=torch.int64)
    mask = torch.zeros(coder.max_objects, dtype=torch.bool)
    box_targets = torch.zeros(coder.max_objects, CODE_SIZE)
    for slot in range(min(len(boxes), coder.max_objects)):
        x, y, z, length, width, height, yaw, vx, vy = boxes[slot].double().tolist()
        coord_x, coord_y = (x - coder.pc_range[0]) / cell_x, (y - coder.pc_range[1]) / cell_y
        ix, iy = math.floor(coord_x), math.floor(coord_y)
        if not (0 <= ix < num_x and 0 <= iy < num_y):
            continue
        size = torch.tensor([length / cell_x], dtype=torch.float64), torch.tensor([width / cell_y], dtype=torch.float64)
        radius = max(coder.min_radius, int(gaussian_radius(*size, coder.gaussian_overlap).item()))
        sigma = (2 * radius + 1) / 6.0
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2.0 * sigma**2))
        kernel[kernel < torch.finfo(torch.float32).eps] = 0.0
        for ky in range(-radius, radius + 1):
            for kx in range(-radius, radius + 1):
                if 0 <= iy + ky < num_y and 0 <= ix + kx < num_x:
                    cell = heatmap[int(class_ids[slot]), iy + ky, ix + kx]
                    heatmap[int(class_ids[slot]), iy + ky, ix + kx] = max(cell, kernel[ky + radius, kx + radius])
        indices[slot], mask[slot] = iy * num_x + ix, True
        box_targets[slot] = torch.tensor([coord_x - ix, coord_y - iy, z, math.log(length), math.log(width),
                                          math.log(height), math.sin(yaw), math.cos(yaw), vx, vy])  # fmt: skip
    return heatmap, indices, mask, box_targets


def test_batched_targets_equal_the_box_by_box_reference() -> None:
    coder = CenterPointBoxCoder(PC_RANGE, gaussian_overlap=0.1, min_radius=1, max_objects=12)
    generator = torch.Generator().manual_seed(0)
    batch_boxes, batch_ids = [], []
    for count in (15, 0, 6):  # more boxes than slots, an empty sample, overlapping boxes
        centre = (torch.rand(count, 2, generator=generator) - 0.5) * torch.tensor([40.0, 30.0])  # some off the grid
        size = 0.4 + 6 * torch.rand(count, 3, generator=generator)
        rest = torch.randn(count, 4, generator=generator)
        batch_boxes.append(torch.cat([centre, rest[:, :1], size, rest[:, 1:]], 1))
        batch_ids.append(torch.randint(0, 3, (count,), generator=generator))
    batched = coder.encode_batch(batch_boxes, batch_ids, 3, GRID_SHAPE)
    for index, (boxes, ids) in enumerate(zip(batch_boxes, batch_ids)):
        heatmap, indices, mask, box_targets = reference_targets(coder, boxes, ids, 3, GRID_SHAPE)
        assert torch.equal(batched.heatmap[index], heatmap)
        assert torch.equal(batched.indices[index], indices) and torch.equal(batched.mask[index], mask)
        torch.testing.assert_close(batched.box_targets[index], box_targets, rtol=0, atol=1e-6)
    assert batched.mask[0].sum() < 12 and batched.heatmap[0].max() == 1.0  # some of the 12 kept slots are off the grid
    assert not batched.mask[1].any() and batched.heatmap[1].sum() == 0


def test_overlapping_gaussians_keep_the_maximum_and_clip_at_borders() -> None:
    coder = CenterPointBoxCoder(PC_RANGE, gaussian_overlap=0.1, min_radius=2, max_objects=4)
    # Two small boxes in neighbouring corner cells (0, 0) and (1, 0): radius = min_radius = 2.
    boxes = torch.tensor([[-15.5, -11.5, 0, 0.5, 0.5, 1, 0, 0, 0], [-14.5, -11.5, 0, 0.5, 0.5, 1, 0, 0, 0]])
    heatmap = coder.encode(boxes, torch.zeros(2, dtype=torch.int64), 1, GRID_SHAPE).heatmap[0]
    assert heatmap[0, 0].item() == 1.0 and heatmap[0, 1].item() == 1.0
    assert heatmap[0, 2].item() == pytest.approx(math.exp(-1.0 / (2 * (5 / 6) ** 2)), rel=1e-6)
    assert heatmap[:, 4:].sum().item() == 0.0


def test_focal_loss_is_finite_for_extreme_bf16_logits() -> None:
    logits = torch.tensor([[[[-1e4, 1e4, 0.0, 60.0]]]], dtype=torch.bfloat16, requires_grad=True)
    targets = torch.tensor([[[[1.0, 0.0, 0.5, 1.0]]]], dtype=torch.bfloat16)
    loss = gaussian_focal_loss(logits, targets)
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad.float()).all()
    low, high = HEATMAP_EPS, 1.0 - HEATMAP_EPS
    expected = (
        -math.log(low) * high**2  # positive at p = eps
        + -math.log(1 - high) * high**2  # negative (target 0) at p = 1 - eps
        + -math.log(0.5) * 0.25 * 0.5**4  # target 0.5 at p = 0.5
        + -math.log(high) * low**2  # positive at p = 1 - eps
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_head_forward_and_loss_under_bf16_autocast() -> None:
    head = CenterPointHead(tiny_config())
    boxes, labels = hand_built_boxes()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        predictions = head(torch.randn(1, 8, *GRID_SHAPE) * 1e3)
        losses = head.loss(predictions, [boxes], [labels])
    assert all(torch.isfinite(value) for value in losses.values())
    assert [tuple(task[name].shape[1:2]) for task in predictions[:1] for name in ("heatmap", "reg", "dim")] == [(1,), (2,), (3,)]


def test_circle_nms_suppresses_within_squared_radius() -> None:
    centers = torch.tensor([[0.0, 0.0], [1.5, 0.0], [2.5, 0.0], [10.0, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # 1.5^2 = 2.25 <= 4 suppressed; 2.5^2 = 6.25 > 4 kept.
    assert circle_nms(centers, scores, 4.0, post_max_size=10).tolist() == [0, 2, 3]
    assert circle_nms(centers, scores, 4.0, post_max_size=2).tolist() == [0, 2]
    assert circle_nms(torch.zeros(0, 2), torch.zeros(0), 4.0, 10).numel() == 0


def test_rotated_iou_and_nms_on_hand_built_boxes() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 2.0, 2.0, 0.0],
            [1.0, 0.0, 2.0, 2.0, 0.0],  # IoU with box 0: 2 / 6
            [0.0, 0.0, 2.0, 2.0, math.pi / 4],  # IoU with box 0: octagon 8(sqrt2 - 1) / (8 - that)
            [5.0, 5.0, 1.0, 1.0, 0.3],  # disjoint
            [0.0, 0.0, 2.0, 2.0, math.pi / 2],  # same footprint as box 0
        ]
    )
    iou = rotated_iou_bev(boxes, boxes)
    octagon = 8.0 * (math.sqrt(2.0) - 1.0)
    assert iou[0, 1].item() == pytest.approx(1.0 / 3.0, abs=1e-6)
    assert iou[0, 2].item() == pytest.approx(octagon / (8.0 - octagon), abs=1e-6)
    assert iou[0, 3].item() == 0.0 and iou[0, 4].item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(iou, iou.T)
    scores = torch.tensor([0.5, 0.9, 0.8, 0.7, 0.6])
    # box 1 first; suppresses 0 (1/3 > 0.3) and 4 (1/3); box 2 kept (IoU with 1 is 0.296); 3 kept.
    assert rotated_nms(boxes, scores, iou_threshold=0.3, post_max_size=10).tolist() == [1, 2, 3]


def _one_box_at_a_time(scores: torch.Tensor, suppresses_pair: Any, post_max_size: int) -> list[int]:
    """Reference greedy NMS: take the best remaining box, drop what it suppresses, repeat."""
    remaining = scores.argsort(descending=True, stable=True).tolist()
    kept: list[int] = []
    while remaining and len(kept) < post_max_size:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [other for other in remaining if not suppresses_pair(best, other)]
    return kept


@pytest.mark.parametrize("seed", range(6))
def test_matrix_nms_equals_one_box_at_a_time(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    count = 300  # more than one chunk of the rotated pair test
    boxes = torch.cat([torch.rand(count, 2, generator=generator) * 30, 0.5 + torch.rand(count, 2, generator=generator) * 4,
                       torch.rand(count, 1, generator=generator) * 6.3], dim=1)
    scores = torch.rand(count, generator=generator).round(decimals=2)  # ties, resolved by the stable sort
    iou = rotated_iou_bev(boxes, boxes)
    for post_max_size in (500, 17):
        expected = _one_box_at_a_time(scores, lambda a, b: bool(iou[a, b] > 0.2), post_max_size)
        assert rotated_nms(boxes, scores, 0.2, post_max_size).tolist() == expected
        distance = ((boxes[:, None, :2] - boxes[None, :, :2]) ** 2).sum(-1).double()
        expected = _one_box_at_a_time(scores, lambda a, b: bool(distance[a, b] <= 4.0), post_max_size)
        assert circle_nms(boxes[:, :2], scores, 4.0, post_max_size).tolist() == expected


def test_pack_rows_matches_numpy_packbits() -> None:
    flags = torch.rand(3, 5, 13, generator=torch.Generator().manual_seed(0)) > 0.5  # 13: a padded last byte
    packed = pack_rows(flags)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 5, 2)
    assert (packed.numpy() == np.packbits(flags.numpy(), axis=-1, bitorder="little")).all()
    assert pack_rows(torch.zeros(2, 0, dtype=torch.bool)).shape == (2, 0)


def random_boxes_bev(count: int, generator: torch.Generator, spread: float = 12.0) -> torch.Tensor:
    """(count, 5) x, y, l, w, yaw: crowded enough that many pairs overlap."""
    return torch.cat([torch.rand(count, 2, generator=generator) * spread, 0.5 + torch.rand(count, 2, generator=generator) * 4,
                      torch.rand(count, 1, generator=generator) * 6.3], dim=1)  # fmt: skip


@pytest.mark.parametrize("chunk_pairs", [(7, 7), (40, 40), (10**6, 10**6)])  # rows of a block, whole blocks, all
def test_block_suppression_tests_only_pairs_inside_each_block_whatever_the_chunks(
    chunk_pairs: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nms, "_CIRCLE_PAIRS_PER_CHUNK", chunk_pairs)
    monkeypatch.setattr(nms, "_ROTATED_PAIRS_PER_CHUNK", chunk_pairs)
    generator = torch.Generator().manual_seed(1)
    boxes = torch.stack([random_boxes_bev(6, generator) for _ in range(4)])  # 4 blocks of 6
    thresholds = (4.0, 9.0, 1.0, 2.0)
    circle, rotated = circle_suppression(boxes[..., :2], thresholds), rotated_suppression(boxes, (0.1, 0.2, 0.0, 0.3))
    assert circle.shape == rotated.shape == (4, 6, 6)
    for block in range(4):
        centres = boxes[block, :, :2].double()
        distance = ((centres[:, None] - centres[None]) ** 2).sum(-1)
        assert torch.equal(circle[block], distance <= thresholds[block])
        assert torch.equal(rotated[block], rotated_iou_bev(boxes[block], boxes[block]) > (0.1, 0.2, 0.0, 0.3)[block])
    assert circle_suppression(torch.zeros(3, 0, 2), (1.0,) * 3).shape == (3, 0, 0)


def reference_decode(head: CenterPointHead, preds: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """Decoding one sample and one task group at a time, as the head did before batching (the reference)."""
    decoded = []
    for sample in range(preds[0]["heatmap"].shape[0]):
        boxes, scores, labels = [], [], []
        for task, task_preds, task_labels in zip(head.config.tasks, preds, head.task_labels):
            regression = torch.cat([task_preds[name] for name, _ in REGRESSION_HEADS], dim=1)
            task_boxes, task_scores, class_ids = head.box_coder.decode(
                task_preds["heatmap"][sample], regression[sample], head.config.top_k, head.config.score_threshold
            )
            if task.nms_type == "circle":
                keep = circle_nms(task_boxes[:, :2], task_scores, task.nms_threshold, head.config.post_max_size)
            else:
                keep = rotated_nms(task_boxes[:, [0, 1, 3, 4, 6]], task_scores, task.nms_threshold, head.config.post_max_size)
            boxes.append(task_boxes[keep])
            scores.append(task_scores[keep])
            labels.append(torch.tensor(task_labels, dtype=torch.int64)[class_ids[keep]])
        decoded.append({"boxes": torch.cat(boxes), "scores": torch.cat(scores), "labels": torch.cat(labels)})
    return decoded


def random_predictions(head: CenterPointHead, batch: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Head outputs around the initial heatmap bias (about half the cells above a 0.1 threshold), random codes."""
    generator = torch.Generator().manual_seed(seed)
    predictions = []
    for task in head.config.tasks:
        heatmap = HEATMAP_INIT_BIAS + 0.5 * torch.randn(batch, len(task.class_names), *GRID_SHAPE, generator=generator)
        codes = {name: torch.randn(batch, size, *GRID_SHAPE, generator=generator) for name, size in REGRESSION_HEADS}
        predictions.append({"heatmap": heatmap, **codes})
    return predictions


def assert_same_detections(got: list[dict[str, torch.Tensor]], want: list[dict[str, torch.Tensor]]) -> None:
    """Same boxes, scores, labels and order per sample.

    x, y, z and velocity are compared exactly; l, w, h (exp) and yaw (atan2) to 2 float32 ulps, because
    PyTorch's CPU kernels round these differently in their vectorised body and their scalar tail, and
    the batched decode lays the centres out differently (on CUDA the results are bitwise equal).
    """
    assert len(got) == len(want)
    for got_sample, want_sample in zip(got, want):
        assert torch.equal(got_sample["labels"], want_sample["labels"])
        assert torch.equal(got_sample["scores"], want_sample["scores"])
        exact = [0, 1, 2, 7, 8]
        assert torch.equal(got_sample["boxes"][:, exact], want_sample["boxes"][:, exact])
        torch.testing.assert_close(got_sample["boxes"][:, 3:7], want_sample["boxes"][:, 3:7], rtol=2.4e-7, atol=1e-12)


MIXED_TASKS = (  # both NMS types interleaved, so decoding's slot order differs from the config order
    TaskGroup(("car",), "rotated", 0.2),
    TaskGroup(("truck", "construction_vehicle"), "circle", 12.0),
    TaskGroup(("bus", "trailer", "barrier"), "rotated", 0.1),
    TaskGroup(("pedestrian",), "circle", 0.175),
    TaskGroup(("motorcycle", "bicycle"), "rotated", 0.0),
)


@pytest.mark.parametrize(
    "settings",
    [
        dict(),  # CenterPoint's six circle groups; 1-class groups have fewer cells (768) than top_k (1000)
        dict(tasks=MIXED_TASKS, top_k=150),
        dict(tasks=MIXED_TASKS, top_k=60, post_max_size=4),  # post_max_size below the kept count
        dict(tasks=MIXED_TASKS, top_k=2000, score_threshold=0.3),  # few candidates, none in some groups
    ],
)
def test_batched_decode_equals_one_sample_and_group_at_a_time(settings: dict[str, Any]) -> None:
    head = CenterPointHead(tiny_config(**settings))
    preds = random_predictions(head, batch=3, seed=len(settings))
    preds[1]["heatmap"][1] = -10.0  # a group of one sample without a candidate
    preds[0]["heatmap"][2, :, :4] = float("nan")  # NaN scores take top-k places but pass no threshold
    decoded = head.decode(preds)
    assert_same_detections(decoded, reference_decode(head, preds))
    assert all(sample["labels"].dtype == torch.int64 and sample["boxes"].shape[1] == 9 for sample in decoded)
    if head.config.post_max_size == 4:  # every group keeps 4 but the empty ones (in sample 2, NaN tops all 60)
        groups = len(head.config.tasks)
        assert [len(sample["labels"]) for sample in decoded] == [4 * groups, 4 * (groups - 1), 4 * (groups - 1)]


def test_batched_decode_with_no_candidates_or_no_samples() -> None:
    head = CenterPointHead(tiny_config(tasks=MIXED_TASKS))
    preds = random_predictions(head, batch=2, seed=0)
    for task in preds:
        task["heatmap"].fill_(-10.0)
    assert [sample["boxes"].shape for sample in head.decode(preds)] == [(0, 9), (0, 9)]
    assert head.decode([{name: value[:0] for name, value in task.items()} for task in preds]) == []


@pytest.mark.parametrize("nms_type, threshold", [("circle", 4.0), ("rotated", 0.1)])
def test_nms_suppresses_inside_a_group_only(nms_type: str, threshold: float) -> None:
    # car A (logit 3) and car B (logit 2) 0.5 m apart: B is suppressed (0.25 m^2 <= 4; IoU 1/3 > 0.1). A truck
    # (logit 1) exactly on A, in another group, is kept. 1 m cells: cell (iy, ix) + offsets (0.5, 0.5) is at
    # x = ix - 15.5, y = iy - 11.5; codes: z 0, dims exp(0) = 1 m, yaw atan2(0, 1) = 0, velocity 0.
    tasks = (TaskGroup(("car",), nms_type, threshold), TaskGroup(("truck", "construction_vehicle"), nms_type, threshold))
    head = CenterPointHead(tiny_config(tasks=tasks))
    preds = random_predictions(head, batch=2, seed=0)
    for task in preds:
        task["heatmap"].fill_(-20.0)
        for name, _ in REGRESSION_HEADS:
            task[name].zero_()
        task["rot"][:, 1] = 1.0  # cos yaw
        task["reg"][0, :, 12, 16] = 0.5  # A and the truck at (0.5, 0.5)
    preds[0]["heatmap"][0, 0, 12, 16], preds[0]["heatmap"][0, 0, 12, 17] = 3.0, 2.0
    preds[0]["reg"][0, :, 12, 17] = torch.tensor([0.0, 0.5])  # B at (1.0, 0.5)
    preds[1]["heatmap"][0, 0, 12, 16] = 1.0
    first, second = head.decode(preds)
    box = [0.5, 0.5, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert first["boxes"].tolist() == [box, box]
    assert first["scores"].tolist() == torch.sigmoid(torch.tensor([3.0, 1.0])).tolist()
    assert first["labels"].tolist() == [DETECTION_CLASSES.index("car"), DETECTION_CLASSES.index("truck")]
    assert second["boxes"].shape == (0, 9)
    assert_same_detections([first, second], reference_decode(head, preds))


# ---------------------------------------------------------------- the batched loss against the per-group one
def reference_focal_loss(heatmap_logits: torch.Tensor, heatmap_targets: torch.Tensor) -> torch.Tensor:
    """gaussian_focal_loss as the head had it (alpha 2, gamma 4)."""
    probabilities = heatmap_logits.float().sigmoid().clamp(HEATMAP_EPS, 1.0 - HEATMAP_EPS)
    targets = heatmap_targets.float()
    positive = targets.eq(1.0).float()
    negative_weight = (1.0 - targets).pow(4.0)
    positive_loss = -probabilities.log() * (1.0 - probabilities).pow(2.0) * positive
    negative_loss = -(1.0 - probabilities).log() * probabilities.pow(2.0) * negative_weight
    return positive_loss.sum() + negative_loss.sum()


def reference_split(head: CenterPointHead, boxes: list[torch.Tensor], labels: list[torch.Tensor]) -> list[list[Any]]:
    """split_batch_by_task as the head had it: per sample, per task group, (boxes, class ids inside the group)."""
    groups = len(head.task_labels) + 1  # bin 0: no group
    flat_boxes, flat_labels = torch.cat(boxes), torch.cat([sample.reshape(-1) for sample in labels])
    sample = torch.cat([torch.full((len(sample),), index, dtype=torch.int64) for index, sample in enumerate(labels)])
    key = sample * groups + torch.tensor(head._group_of_label)[flat_labels] + 1
    order = torch.argsort(key, stable=True)
    sizes = torch.bincount(key, minlength=len(boxes) * groups).tolist()
    class_ids = torch.tensor(head._index_in_group)[flat_labels]
    grouped = list(zip(torch.split(flat_boxes[order], sizes), torch.split(class_ids[order], sizes)))
    return [grouped[index * groups + 1 : (index + 1) * groups] for index in range(len(boxes))]


def reference_encode_batch(coder: CenterPointBoxCoder, boxes: list[torch.Tensor], class_ids: list[torch.Tensor],
                           num_classes: int, grid_shape: tuple[int, int]) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """encode_batch as the box coder had it (one task group): heatmap, indices, mask, box_targets."""
    batch, (num_y, num_x) = len(boxes), grid_shape
    cell_x, cell_y = coder.cell_size(grid_shape)
    kept = [sample_boxes[: coder.max_objects] for sample_boxes in boxes]
    sample = torch.cat([torch.full((len(b),), i, dtype=torch.int64) for i, b in enumerate(kept)])
    slot = torch.cat([torch.arange(len(b)) for b in kept])
    flat_boxes = torch.cat(kept).detach().double()
    flat_ids = torch.cat([ids[: coder.max_objects] for ids in class_ids])
    x, y, z, length, width, height, yaw, vx, vy = flat_boxes.unbind(1)
    coord_x, coord_y = (x - coder.pc_range[0]) / cell_x, (y - coder.pc_range[1]) / cell_y
    ix, iy = coord_x.floor().long(), coord_y.floor().long()
    on_grid = (ix >= 0) & (ix < num_x) & (iy >= 0) & (iy < num_y)
    radius = gaussian_radius(length / cell_x, width / cell_y, coder.gaussian_overlap).long().clamp(min=coder.min_radius)
    largest_radius = int(torch.where(on_grid, radius, 0).amax()) if radius.numel() else 0
    on = on_grid.nonzero()[:, 0]
    cells = batch * num_classes * num_y * num_x
    heatmap = torch.zeros(cells + 1)
    dx, dy, values = gaussian_windows(radius[on], largest_radius)
    cell_ix, cell_iy = ix[on, None] + dx[None, :], iy[on, None] + dy[None, :]
    inside = (cell_ix >= 0) & (cell_ix < num_x) & (cell_iy >= 0) & (cell_iy < num_y)
    plane = (sample[on] * num_classes + flat_ids[on])[:, None]
    target = torch.where(inside, (plane * num_y + cell_iy) * num_x + cell_ix, cells)
    heatmap.scatter_reduce_(0, target.reshape(-1), values.reshape(-1), reduce="amax")
    indices = torch.zeros(batch, coder.max_objects, dtype=torch.int64)
    mask = torch.zeros(batch, coder.max_objects, dtype=torch.bool)
    box_targets = torch.zeros(batch, coder.max_objects, CODE_SIZE)
    codes = torch.stack(
        [coord_x - ix, coord_y - iy, z, length.log(), width.log(), height.log(), yaw.sin(), yaw.cos(), vx, vy], 1
    )
    indices[sample[on], slot[on]] = (iy * num_x + ix)[on]
    mask[sample[on], slot[on]] = True
    box_targets[sample[on], slot[on]] = codes[on].float()
    return heatmap[:cells].reshape(batch, num_classes, num_y, num_x), indices, mask, box_targets


def reference_loss(head: CenterPointHead, preds: list[dict[str, torch.Tensor]], gt_boxes: list[torch.Tensor],
                   gt_labels: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[tuple[torch.Tensor, ...]]]:  # fmt: skip
    """The loss as the head had it, one task group at a time (the reference), with each group's targets."""
    grid_shape = tuple(preds[0]["heatmap"].shape[-2:])
    per_sample_groups = reference_split(head, gt_boxes, gt_labels)
    heatmap_total, regression_total, group_targets = torch.zeros(()), torch.zeros(()), []
    for task_index, task_preds in enumerate(preds):
        targets = reference_encode_batch(
            head.box_coder,
            [groups[task_index][0] for groups in per_sample_groups],
            [groups[task_index][1] for groups in per_sample_groups],
            task_preds["heatmap"].shape[1],
            grid_shape,
        )
        group_targets.append(targets)
        heatmaps, indices, mask, box_targets = targets
        num_objects = mask.sum().float().clamp(min=1.0)
        heatmap_total = heatmap_total + reference_focal_loss(task_preds["heatmap"], heatmaps) / num_objects
        regression = torch.cat([task_preds[name] for name, _ in REGRESSION_HEADS], dim=1).float()
        flat = regression.reshape(*regression.shape[:2], -1)  # (B, CODE_SIZE, Ny*Nx)
        predicted_codes = flat.gather(2, indices[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)
        weights = mask[..., None].float() * head.code_weights
        regression_total = regression_total + ((predicted_codes - box_targets).abs() * weights).sum() / num_objects
    total = head.config.heatmap_loss_weight * heatmap_total + head.config.regression_loss_weight * regression_total
    return {"loss": total, "loss_heatmap": heatmap_total, "loss_regression": regression_total}, group_targets


def random_scene(count: int, generator: torch.Generator, spread: tuple[float, float],
                 labels: tuple[int, ...] = tuple(range(len(DETECTION_CLASSES)))) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``count`` boxes with centres over 1.2x ``spread`` (x, y extent of the grid, so some fall off it), of ``labels``."""
    centre = (torch.rand(count, 2, generator=generator) - 0.5) * 1.2 * torch.tensor(spread)
    size = 0.4 + 6 * torch.rand(count, 3, generator=generator)
    rest = torch.randn(count, 4, generator=generator)
    choice = torch.randint(0, len(labels), (count,), generator=generator)
    return torch.cat([centre, rest[:, :1], size, rest[:, 1:]], 1), torch.tensor(labels)[choice]


def synthetic_head_config() -> tuple[DetectionHeadConfig, tuple[int, int]]:
    """The head of configs/detection/synthetic.yaml (its ``head`` block and the embedding's range) and its BEV grid."""
    configs = Path(__file__).resolve().parents[1] / "configs"
    head = yaml.safe_load((configs / "detection" / "synthetic.yaml").read_text())["model"]["init_args"]["head"]
    embedding = yaml.safe_load((configs / "embedding" / "synthetic.yaml").read_text())
    vt = embedding["view_transform"]
    grid = tuple(round((bound[1] - bound[0]) / bound[2] / vt["downsample"]) for bound in (vt["ybound"], vt["xbound"]))
    config = DetectionHeadConfig(in_channels=8, pc_range=tuple(embedding["lidar"]["pc_range"]), **head)
    return config, grid  # type: ignore[return-value]


def loss_case(case: str) -> tuple[CenterPointHead, tuple[int, int], list[torch.Tensor], list[torch.Tensor]]:
    """A head, its grid and a batch of boxes and labels for each case of the batched-loss test."""
    generator = torch.Generator().manual_seed(len(case))
    spread = (PC_RANGE[3] - PC_RANGE[0], PC_RANGE[4] - PC_RANGE[1])

    def labels_of(*names: str) -> tuple[int, ...]:
        return tuple(DETECTION_CLASSES.index(name) for name in names)

    if case == "synthetic":  # the synthetic config's head on its 180 x 180 grid, ~30 boxes a sample
        config, grid = synthetic_head_config()
        scenes = [random_scene(count, generator, (108.0, 108.0)) for count in (30, 27)]
        return CenterPointHead(config), grid, [b for b, _ in scenes], [l for _, l in scenes]
    if case == "nuscenes_groups":  # the six groups; a capped group, an empty sample, one with boxes in some groups
        head = CenterPointHead(tiny_config())
        scenes = [random_scene(120, generator, spread), random_scene(0, generator, spread),
                  random_scene(7, generator, spread, labels_of("car", "pedestrian", "traffic_cone")),
                  random_scene(9, generator, spread)]  # fmt: skip
        return head, GRID_SHAPE, [b for b, _ in scenes], [l for _, l in scenes]
    if case == "no_boxes":
        head = CenterPointHead(tiny_config())
        return head, GRID_SHAPE, [torch.zeros(0, 9)] * 2, [torch.zeros(0, dtype=torch.int64)] * 2
    if case == "off_grid":  # every box but one off the grid, on its borders and far out
        head = CenterPointHead(tiny_config())
        boxes = torch.tensor([[16.0, 0, 0, 4, 2, 1.5, 0, 0, 0], [-16.01, 0, 0, 4, 2, 1.5, 0, 0, 0],
                              [0, 12.0, 0, 4, 2, 1.5, 0, 0, 0], [300.0, -200.0, 0, 4, 2, 1.5, 0, 0, 0],
                              [15.99, -11.99, 0, 4, 2, 1.5, 0, 0, 0]])  # fmt: skip
        return head, GRID_SHAPE, [boxes], [torch.tensor(labels_of("car", "car", "bus", "barrier", "car"))]
    # mixed task groups, traffic_cone in none of them: its boxes are dropped (even a degenerate one)
    head = CenterPointHead(tiny_config(tasks=MIXED_TASKS, max_objects=4))
    scenes = [random_scene(count, generator, spread) for count in (25, 3, 12)]
    cone = torch.tensor([[0.0, 0, 0, 0, 0, 0, 0, 0, 0]])
    boxes, labels = [scenes[0][0], scenes[1][0], torch.cat([scenes[2][0], cone])], [l for _, l in scenes]
    return head, GRID_SHAPE, boxes, [labels[0], labels[1], torch.cat([labels[2], torch.tensor(labels_of("traffic_cone"))])]


@pytest.fixture
def one_thread() -> Any:
    """Intra-op threads off for the test: see test_batched_loss_equals_one_task_group_at_a_time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", ["synthetic", "nuscenes_groups", "no_boxes", "off_grid", "mixed_groups"])
def test_batched_loss_equals_one_task_group_at_a_time(case: str, one_thread: None) -> None:
    """Targets and gradients of the batched loss are bitwise the per-group ones, the loss values equal to a few ulps.

    The loss values: the batched focal and L1 sums add the same float32 terms in another order (per channel
    over the groups side by side, then per group), and float32 addition is not associative (up to ~1e-7
    relative here). The gradients: each element gets the same float32 ops on the same values. That holds
    on one thread; with several, each thread's chunk of an elementwise CPU kernel ends in a scalar tail
    that rounds exp/log/pow differently from the vectorised body (1 ulp), and the chunks of the batched
    (B, C, Ny, Nx) tensor end at other elements than those of the per-group tensors.
    """
    head, grid, gt_boxes, gt_labels = loss_case(case)
    generator, bias = torch.Generator().manual_seed(1), {"heatmap": HEATMAP_INIT_BIAS}
    preds = [{name: torch.randn(len(gt_boxes), size, *grid, generator=generator) + bias.get(name, 0.0)
              for name, size in [("heatmap", len(task.class_names)), *REGRESSION_HEADS]} for task in head.config.tasks]  # fmt: skip
    leaves = [value.requires_grad_() for task in preds for value in task.values()]
    losses = head.loss(preds, gt_boxes, gt_labels)
    want, want_targets = reference_loss(head, preds, gt_boxes, gt_labels)
    assert losses.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(losses[name], want[name], rtol=4e-7, atol=0)
    got_grads = torch.autograd.grad(losses["loss"], leaves)
    want_grads = torch.autograd.grad(want["loss"], leaves)
    for got_grad, want_grad in zip(got_grads, want_grads):
        assert torch.equal(got_grad, want_grad)
    # the targets of all groups at once are, group by group, the per-group ones
    flat_boxes, flat_labels, sample = flatten_batch(gt_boxes, gt_labels, torch.device("cpu"))
    group, channel = (torch.tensor(table)[flat_labels] for table in (head._group_of_label, head._channel_of_label))
    targets = head.box_coder.encode_groups(
        flat_boxes, sample, group, channel, len(gt_boxes), len(preds), len(head._channel_groups), grid
    )
    heatmaps = targets.heatmap.split([len(labels) for labels in head.task_labels], dim=1)
    for group, (heatmap, indices, mask, box_targets) in enumerate(want_targets):
        assert torch.equal(heatmaps[group], heatmap) and torch.equal(targets.indices[:, group], indices)
        assert torch.equal(targets.mask[:, group], mask) and torch.equal(targets.box_targets[:, group], box_targets)
    if case == "nuscenes_groups":
        group_sizes = torch.bincount(torch.tensor(head._group_of_label)[gt_labels[0]], minlength=len(preds))
        assert group_sizes.max() > head.config.max_objects  # a capped group
        assert not targets.mask[1].any() and targets.mask[2].any(-1).tolist() == [True] + [False] * 4 + [True]
    if case == "off_grid":
        assert targets.mask.sum() == 1 and want["loss_regression"] > 0


def test_batched_loss_gradients_in_bfloat16_equal_the_per_group_ones(one_thread: None) -> None:
    """bf16 predictions (autocast's output): the regression gather still adds the gradients of boxes that share
    a cell in float32, as the per-group code did (a gather in bf16 would round each sum)."""
    head = CenterPointHead(tiny_config())
    # six cars centred in one cell: their regression gradients (code weight / 6 objects) meet there
    boxes = torch.tensor([[0.3, 0.3, 0, 4, 2, 1.5, 0.1, 0, 0], [0.6, 0.7, 0.2, 4.5, 2.1, 1.6, 0.2, 1, 0]] * 3)
    gt_boxes, gt_labels = [boxes], [torch.full((6,), DETECTION_CLASSES.index("car"))]
    generator = torch.Generator().manual_seed(1)
    preds = [{name: torch.randn(1, size, *GRID_SHAPE, generator=generator).bfloat16()
              for name, size in [("heatmap", len(task.class_names)), *REGRESSION_HEADS]} for task in head.config.tasks]  # fmt: skip
    leaves = [value.requires_grad_() for task in preds for value in task.values()]
    got = torch.autograd.grad(head.loss(preds, gt_boxes, gt_labels)["loss"], leaves)
    want = torch.autograd.grad(reference_loss(head, preds, gt_boxes, gt_labels)[0]["loss"], leaves)
    for got_grad, want_grad in zip(got, want):
        assert got_grad.dtype == torch.bfloat16 and torch.equal(got_grad, want_grad)
