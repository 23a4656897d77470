"""CenterPoint-style 3D detection head on the fused BEV embedding, with its losses and decoding.

The head follows CenterPoint's nuScenes setup (Yin et al., 2021; mmdet3d's
``CenterHead``): a shared 3x3 conv, then one separate head per task group with
branches heatmap (one channel per class), reg (2), height (1), dim (3, log),
rot (sin, cos) and vel (2). Losses: Gaussian focal loss on the heatmaps and L1
with code weights on the regression at the box centres, both normalised by the
number of objects, both computed for all task groups and the whole batch at once.
Decoding: top-k centres per task group, score threshold, then circle or rotated-IoU
NMS per group, done for the whole batch at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nsmae_lightning.constants import DETECTION_CLASSES, PC_RANGE_NUSCENES
from nsmae_lightning.models.heads.box_coder import (
    CODE_SIZE,
    REGRESSION_HEADS,
    CenterPointBoxCoder,
    flatten_batch,
    gather_at,
)
from nsmae_lightning.models.device_constants import device_constant
from nsmae_lightning.models.heads.nms import (
    circle_suppression,
    concatenate,
    greedy_walk,
    pack_rows,
    rotated_suppression,
)

# Sigmoid outputs are clamped to [eps, 1 - eps] so log() stays finite (CenterPoint's clamp).
HEATMAP_EPS: float = 1e-4
# Initial heatmap bias: sigmoid(-2.19) ~= 0.1 prior, as CenterNet/CenterPoint.
HEATMAP_INIT_BIAS: float = -2.19
NMS_TYPES: tuple[str, ...] = ("circle", "rotated")
# Columns of the BEV footprint (x, y, l, w, yaw) in a 9-dof box.
BEV_COLUMNS: tuple[int, ...] = (0, 1, 3, 4, 6)


@dataclass
class TaskGroup:
    """One CenterPoint task group: classes sharing a separate head and an NMS.

    Attributes:
        class_names: the group's classes (names from the head's ``class_names``).
        nms_type: "circle" (CenterPoint's centre-distance NMS) or "rotated" (BEV IoU NMS).
        nms_threshold: for "circle", CenterPoint's ``min_radius``, compared with the squared
            centre distance in m^2; for "rotated", the BEV IoU above which boxes are suppressed.
    """

    class_names: tuple[str, ...]
    nms_type: str = "circle"
    nms_threshold: float = 4.0


def centerpoint_nuscenes_tasks() -> tuple[TaskGroup, ...]:
    """CenterPoint's six nuScenes task groups with its circle-NMS radii."""
    return (
        TaskGroup(("car",), "circle", 4.0),
        TaskGroup(("truck", "construction_vehicle"), "circle", 12.0),
        TaskGroup(("bus", "trailer"), "circle", 10.0),
        TaskGroup(("barrier",), "circle", 1.0),
        TaskGroup(("motorcycle", "bicycle"), "circle", 0.85),
        TaskGroup(("pedestrian", "traffic_cone"), "circle", 0.175),
    )


@dataclass
class DetectionHeadConfig:
    """Settings of the CenterPoint head (defaults: CenterPoint's nuScenes config).

    Attributes:
        in_channels: channels of the fused BEV embedding.
        shared_channels: channels of the shared conv.
        head_channels: channels inside each branch of a separate head.
        num_branch_convs: conv layers per branch, the output conv included.
        class_names: label vocabulary; ``gt_labels`` and decoded ``labels`` index into it.
        tasks: the task groups, each with its NMS; None = CenterPoint's six nuScenes groups
            (a None default, not a factory, because jsonargparse cannot write dataclass
            instances inside a tuple into the saved config).
        pc_range: (x0, y0, z0, x1, y1, z1) of the BEV grid the embedding covers.
        code_weights: L1 weights of (dx, dy, z, log l, log w, log h, sin, cos, vx, vy).
        heatmap_loss_weight: weight of the focal loss in the total.
        regression_loss_weight: weight of the L1 loss in the total.
        gaussian_overlap: CenterNet's minimum IoU for the Gaussian radius.
        min_radius: smallest Gaussian radius, in cells.
        max_objects: box slots per task group and sample in the targets.
        score_threshold: decoded centres below this score are dropped.
        top_k: centres kept per task group before the score threshold and NMS.
        post_max_size: boxes kept per task group after NMS.
    """

    in_channels: int = 256
    shared_channels: int = 64
    head_channels: int = 64
    num_branch_convs: int = 2
    class_names: tuple[str, ...] = DETECTION_CLASSES
    tasks: tuple[TaskGroup, ...] | None = None
    pc_range: tuple[float, ...] = PC_RANGE_NUSCENES
    code_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
    heatmap_loss_weight: float = 1.0
    regression_loss_weight: float = 0.25
    gaussian_overlap: float = 0.1
    min_radius: int = 2
    max_objects: int = 500
    score_threshold: float = 0.1
    top_k: int = 1000
    post_max_size: int = 83

    def __post_init__(self) -> None:
        if self.tasks is None:
            self.tasks = centerpoint_nuscenes_tasks()
        if len(self.code_weights) != CODE_SIZE:
            raise ValueError(f"code_weights needs {CODE_SIZE} values, got {len(self.code_weights)}")
        if self.num_branch_convs < 1:
            raise ValueError(f"num_branch_convs must be >= 1, got {self.num_branch_convs}")
        if not self.tasks:
            raise ValueError("tasks must hold at least one task group")
        for task in self.tasks:
            unknown = [name for name in task.class_names if name not in self.class_names]
            if unknown or not task.class_names:
                raise ValueError(f"task group {task.class_names} names classes not in class_names: {unknown}")
            if task.nms_type not in NMS_TYPES:
                raise ValueError(
                    f"task group {task.class_names}: nms_type must be one of {NMS_TYPES}, got {task.nms_type!r}"
                )


def gaussian_focal_loss(
    heatmap_logits: Tensor,
    heatmap_targets: Tensor,
    alpha: float = 2.0,
    gamma: float = 4.0,
    per_channel: bool = False,
) -> Tensor:
    """CenterNet's Gaussian focal loss, summed (the caller normalises by the object count).

    Computed in float32 with the sigmoid clamped to [HEATMAP_EPS, 1 - HEATMAP_EPS], so
    bf16/fp16 logits of any magnitude give a finite loss.

    Args:
        heatmap_logits: (B, C, Ny, Nx) raw heatmap outputs, any float dtype.
        heatmap_targets: (B, C, Ny, Nx) Gaussian heatmaps, 1 exactly at box centres.
        alpha: exponent on the prediction error.
        gamma: exponent on (1 - target) that down-weights negatives near centres.
        per_channel: sum over batch and cells only: one loss per channel, (C,).
    """
    with torch.autocast(device_type=heatmap_logits.device.type, enabled=False):
        probabilities = heatmap_logits.float().sigmoid().clamp(HEATMAP_EPS, 1.0 - HEATMAP_EPS)
        targets = heatmap_targets.float()
        positive = targets.eq(1.0).float()
        negative_weight = (1.0 - targets).pow(gamma)
        positive_loss = -probabilities.log() * (1.0 - probabilities).pow(alpha) * positive
        negative_loss = -(1.0 - probabilities).log() * probabilities.pow(alpha) * negative_weight
        if per_channel:
            return positive_loss.sum((0, 2, 3)) + negative_loss.sum((0, 2, 3))
        return positive_loss.sum() + negative_loss.sum()


def _runs(keys: Sequence[Hashable]) -> tuple[tuple[int, int], ...]:
    """(start, stop) of each run of equal consecutive keys."""
    bounds = list(itertools.accumulate(len(list(run)) for _, run in itertools.groupby(keys)))
    return tuple(zip([0, *bounds[:-1]], bounds))


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU, the building block of the head."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


class SeparateHead(nn.Module):
    """One task group's branches: heatmap and the regression heads, each its own small conv stack.

    Args:
        in_channels: channels of the shared feature.
        head_channels: channels inside each branch.
        num_classes: heatmap channels (classes of the group).
        num_branch_convs: conv layers per branch, the output conv included.
    """

    def __init__(self, in_channels: int, head_channels: int, num_classes: int, num_branch_convs: int) -> None:
        super().__init__()
        outputs = {"heatmap": num_classes, **dict(REGRESSION_HEADS)}
        self.branches = nn.ModuleDict()
        for name, out_channels in outputs.items():
            hidden = [
                _conv_bn_relu(in_channels if i == 0 else head_channels, head_channels) for i in range(num_branch_convs - 1)
            ]
            last_in = head_channels if hidden else in_channels
            self.branches[name] = nn.Sequential(*hidden, nn.Conv2d(last_in, out_channels, 3, padding=1, bias=True))
        nn.init.constant_(self.branches["heatmap"][-1].bias, HEATMAP_INIT_BIAS)

    def forward(self, shared: Tensor) -> dict[str, Tensor]:
        """(B, C, Ny, Nx) shared feature -> {branch name: (B, channels, Ny, Nx)}."""
        return {name: branch(shared) for name, branch in self.branches.items()}


class CenterPointHead(nn.Module):
    """CenterPoint-style head: fused BEV embedding -> per-task heatmaps and box regressions.

    Args:
        config: the head's settings.
    """

    def __init__(self, config: DetectionHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.shared_conv = _conv_bn_relu(config.in_channels, config.shared_channels)
        self.task_heads = nn.ModuleList(
            SeparateHead(config.shared_channels, config.head_channels, len(task.class_names), config.num_branch_convs)
            for task in config.tasks
        )
        self.box_coder = CenterPointBoxCoder(config.pc_range, config.gaussian_overlap, config.min_radius, config.max_objects)
        # Global label (index into class_names) of each class of each task group.
        self.task_labels = [[config.class_names.index(name) for name in task.class_names] for task in config.tasks]
        # Per global label: its task group (-1: none) and its index inside the group.
        group_of_label, index_in_group = [-1] * len(config.class_names), [0] * len(config.class_names)
        for group, labels in enumerate(self.task_labels):
            for index, label in enumerate(labels):
                group_of_label[label], index_in_group[label] = group, index
        self._group_of_label, self._index_in_group = tuple(group_of_label), tuple(index_in_group)
        # The loss concatenates the groups' heatmaps along the class axis (config order): each
        # channel's task group, and each global label's channel (0 for labels of no group).
        self._channel_groups = tuple(group for group, labels in enumerate(self.task_labels) for _ in labels)
        offsets = list(itertools.accumulate((len(labels) for labels in self.task_labels), initial=0))
        self._channel_of_label = tuple(
            offsets[group] + index if group >= 0 else 0 for group, index in zip(group_of_label, index_in_group)
        )
        # Decoding stacks the groups into slots ordered by (NMS type, class count), config order
        # within: slots of one class count share a top-k call, those of one NMS type a pair test.
        tasks = config.tasks
        self._slot_groups = tuple(
            sorted(range(len(tasks)), key=lambda g: (NMS_TYPES.index(tasks[g].nms_type), len(tasks[g].class_names)))
        )
        self._group_slots = tuple(self._slot_groups.index(group) for group in range(len(tasks)))
        slot_tasks = [tasks[group] for group in self._slot_groups]
        self._topk_runs = _runs([(task.nms_type, len(task.class_names)) for task in slot_tasks])
        self._nms_runs = _runs([task.nms_type for task in slot_tasks])
        # Global label of each slot's classes, padded to the widest group (padding is never read).
        width = max(len(labels) for labels in self.task_labels)
        self._slot_labels = tuple(
            tuple(self.task_labels[group]) + (0,) * (width - len(self.task_labels[group])) for group in self._slot_groups
        )
        self.register_buffer("code_weights", torch.tensor(config.code_weights, dtype=torch.float32), persistent=False)

    def forward(self, bev: Tensor) -> list[dict[str, Tensor]]:
        """Run the head.

        Args:
            bev: (B, C, Ny, Nx) fused BEV embedding over ``config.pc_range``.

        Returns:
            Per task group, {"heatmap": (B, C_task, Ny, Nx) logits, "reg": (B, 2, ...),
            "height": (B, 1, ...), "dim": (B, 3, ...), "rot": (B, 2, ...), "vel": (B, 2, ...)}.
        """
        shared = self.shared_conv(bev)
        return [task_head(shared) for task_head in self.task_heads]

    @staticmethod
    def _stacked_regression(preds: list[dict[str, Tensor]], groups: Sequence[int]) -> Tensor:
        """The regression branches of ``groups``, each in REGRESSION_HEADS order: (B, len(groups), CODE_SIZE, Ny, Nx).

        One copy for all groups.
        """
        regression = torch.cat([preds[group][name] for group in groups for name, _ in REGRESSION_HEADS], dim=1)
        return regression.view(regression.shape[0], len(groups), CODE_SIZE, *regression.shape[-2:])

    def split_by_task(self, boxes: Tensor, labels: Tensor) -> list[tuple[Tensor, Tensor]]:
        """One sample's boxes grouped per task group: [(boxes (M_t, 9), class ids inside the group (M_t,))].

        Boxes whose label belongs to no group are left out; inside a group they keep their order.
        ``labels`` must index ``config.class_names`` (``loss`` checks).
        """
        return self.split_batch_by_task([boxes], [labels])[0]

    def split_batch_by_task(
        self, boxes: Sequence[Tensor], labels: Sequence[Tensor]
    ) -> list[list[tuple[Tensor, Tensor]]]:
        """`split_by_task` of every sample: per sample, per task group, (boxes, class ids inside the group).

        One stable sort of the batch by (sample, group) and one read of the group sizes: one wait on
        the device per batch, not one per sample (or two per group with boolean selections).
        """
        groups = len(self.task_labels) + 1  # bin 0: no group
        if not boxes:
            return []
        flat_boxes, flat_labels, sample = flatten_batch(boxes, labels, labels[0].device)
        key = sample * groups + device_constant(self._group_of_label, flat_labels.device)[flat_labels] + 1
        order = torch.argsort(key, stable=True)
        sizes = torch.bincount(key, minlength=len(boxes) * groups).tolist()
        class_ids = device_constant(self._index_in_group, flat_labels.device)[flat_labels]
        grouped = list(zip(torch.split(flat_boxes[order], sizes), torch.split(class_ids[order], sizes)))
        return [grouped[index * groups + 1 : (index + 1) * groups] for index in range(len(boxes))]

    def loss(
        self, preds: list[dict[str, Tensor]], gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]
    ) -> dict[str, Tensor]:
        """Focal heatmap loss + code-weighted L1 regression loss over all task groups.

        Each task's losses are normalised by its number of objects (clamped >= 1), as
        CenterPoint does; frames without boxes are fine (heatmaps all negative). All groups
        are done at once: one encode of the whole batch's boxes (a task group per box), one
        focal loss over the groups' heatmaps side by side on the class axis, one L1 over all
        groups' slots (read with a gather per group); per group the terms equal the group on its own.

        Args:
            preds: output of ``forward``.
            gt_boxes: per sample (M_i, 9) boxes in the LiDAR frame (conventions).
            gt_labels: per sample (M_i,) int64 indices into ``config.class_names``.

        Returns:
            {"loss": weighted total, "loss_heatmap": summed focal loss, "loss_regression": summed L1 loss}.
        """
        batch_size = preds[0]["heatmap"].shape[0]
        if len(gt_boxes) != batch_size or len(gt_labels) != len(gt_boxes):
            raise ValueError(f"got {len(gt_boxes)} gt_boxes and {len(gt_labels)} gt_labels for a batch of {batch_size}")
        device = preds[0]["heatmap"].device
        num_names, num_groups = len(self.config.class_names), len(preds)
        flat_boxes, flat_labels, sample = flatten_batch(gt_boxes, gt_labels, device)
        if bool(((flat_labels < 0) | (flat_labels >= num_names)).any()):  # one sync for the batch
            bad = next(i for i, labels in enumerate(gt_labels) if ((labels < 0) | (labels >= num_names)).any())
            raise ValueError(f"gt_labels of sample {bad} must index class_names (0..{num_names - 1})")
        heatmap_logits = torch.cat([task_preds["heatmap"] for task_preds in preds], dim=1)  # (B, C, Ny, Nx)
        targets = self.box_coder.encode_groups(
            flat_boxes,
            sample,
            device_constant(self._group_of_label, device)[flat_labels],
            device_constant(self._channel_of_label, device)[flat_labels],
            batch_size,
            num_groups,
            heatmap_logits.shape[1],
            tuple(heatmap_logits.shape[-2:]),
        )  # heatmap (B, C, Ny, Nx); indices, mask (B, G, max_objects); box_targets (B, G, max_objects, CODE_SIZE)
        num_objects = targets.mask.sum((0, 2)).float().clamp(min=1.0)  # (G,)
        focal = gaussian_focal_loss(heatmap_logits, targets.heatmap, per_channel=True)  # (C,)
        focal = focal.new_zeros(num_groups).index_add(0, device_constant(self._channel_groups, device), focal)  # (G,)
        # One gather per group rather than one over all groups' maps stacked: that (B, G * CODE_SIZE, Ny, Nx)
        # copy and its gradient would be the loss's largest buffers (62 MB each at batch 8 on 180 x 180); glibc
        # maps CPU buffers above 32 MB afresh on every call, and in a development measurement (not committed)
        # the page faults made the CPU loss ~1.6x slower, to save ~20 small ops.
        # float32 before the gather: its backward adds the gradients of boxes sharing a cell in float32
        group_codes = [
            gather_at(self._stacked_regression(preds, [group]).float(), targets.indices[:, group : group + 1])
            for group in range(num_groups)
        ]  # (B, 1, max_objects, CODE_SIZE) each
        predicted_codes = torch.cat(group_codes, dim=1)  # (B, G, max_objects, CODE_SIZE)
        weights = targets.mask[..., None].float() * self.code_weights
        l1 = ((predicted_codes - targets.box_targets).abs() * weights).sum((0, 2, 3))  # (G,)
        heatmap_total = (focal / num_objects).sum()
        regression_total = (l1 / num_objects).sum()
        total = self.config.heatmap_loss_weight * heatmap_total + self.config.regression_loss_weight * regression_total
        return {"loss": total, "loss_heatmap": heatmap_total, "loss_regression": regression_total}

    def _top_centres(self, preds: list[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
        """Every slot's top-k centres: scores and flat indices (B, G, k), slots in slot order.

        One top-k per run of slots with one class count, over rows (sample, slot): per row the
        same call as one sample's group on its own, so ties resolve the same. Slots with fewer
        than k cells are padded with NaN scores, which pass no score threshold.
        """
        num_cells = preds[0]["heatmap"].shape[-2] * preds[0]["heatmap"].shape[-1]
        width = max(min(self.config.top_k, len(labels) * num_cells) for labels in self.task_labels)
        scores, flat = [], []
        for start, stop in self._topk_runs:
            heatmaps = torch.stack([preds[group]["heatmap"] for group in self._slot_groups[start:stop]], dim=1)
            run_scores, run_flat = self.box_coder.top_centres(heatmaps, self.config.top_k)  # (B, slots, k_run)
            if run_scores.shape[-1] < width:
                run_scores = F.pad(run_scores, (0, width - run_scores.shape[-1]), value=float("nan"))
                run_flat = F.pad(run_flat, (0, width - run_flat.shape[-1]))
            scores.append(run_scores)
            flat.append(run_flat)
        return concatenate(scores, 1), concatenate(flat, 1)

    def _centre_boxes(self, preds: list[dict[str, Tensor]], flat: Tensor) -> tuple[Tensor, Tensor]:
        """Boxes (B, G, k, 9) and global labels (B, G, k) at each slot's flat indices (B, G, k)."""
        boxes, class_ids = self.box_coder.boxes_at(flat, self._stacked_regression(preds, self._slot_groups))
        slot_labels = device_constant(self._slot_labels, flat.device).expand(flat.shape[0], -1, -1)
        return boxes, slot_labels.gather(2, class_ids)

    @staticmethod
    def _candidate_extent(candidates: Tensor) -> int:
        """Leading columns of (B, G, k) that hold every candidate: 1 + the last one's position (a wait on the device).

        The candidates are a prefix of each top-k unless scores hold NaN (sorted first, never above the threshold).
        """
        if candidates.numel() == 0:
            return 0
        positions = torch.arange(1, candidates.shape[-1] + 1, device=candidates.device)
        return int((candidates * positions).amax())

    def _suppression(self, boxes: Tensor, size: int) -> Tensor:
        """NMS pair tests inside each (sample, slot) among its first ``size`` centres -> bool (B, G, n, n).

        One call per NMS type for all samples and slots of it; no pair across samples or slots is tested.
        """
        batch = boxes.shape[0]
        parts = []
        for start, stop in self._nms_runs:
            # blocks (B * slots, n, 9) are sample-major, so the slots' thresholds repeat once per sample
            blocks = boxes[:, start:stop, :size].reshape(batch * (stop - start), size, boxes.shape[-1])
            run_tasks = [self.config.tasks[group] for group in self._slot_groups[start:stop]]
            thresholds = tuple(task.nms_threshold for task in run_tasks) * batch
            if run_tasks[0].nms_type == "circle":
                matrix = circle_suppression(blocks[..., :2], thresholds)
            else:
                columns = device_constant(BEV_COLUMNS, boxes.device)  # no index copy to the device
                matrix = rotated_suppression(blocks.index_select(-1, columns), thresholds)
            parts.append(matrix.view(batch, stop - start, size, size))
        return concatenate(parts, 1)

    def _kept_positions(self, packed: np.ndarray, width: int) -> list[list[int]]:
        """Greedy NMS of every (sample, group) on the host: per sample, flat positions into (B, G, width).

        Groups in config order, each group's kept boxes by descending score, at most post_max_size.

        Args:
            packed: uint8 (B, G, n + 1, ceil(n / 8)), `pack_rows` of each slot's n x n suppression
                matrix with its candidate flags (which leading top-k columns passed the threshold) as row n.
            width: top-k columns per slot in the decoded tensors.
        """
        batch, slots, size = packed.shape[0], packed.shape[1], packed.shape[2] - 1
        kept = []
        for sample in range(batch):
            positions: list[int] = []
            for slot in self._group_slots:
                block = packed[sample, slot]
                walk = greedy_walk(block[:size], block[size], self.config.post_max_size)
                base = (sample * slots + slot) * width
                positions.extend(base + position for position in walk)
            kept.append(positions)
        return kept

    @torch.no_grad()
    def decode(self, preds: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
        """Boxes from the head's outputs, in the LiDAR frame.

        The batch is decoded at once: one top-k per class count, the box codes of all centres in
        a few batched ops, the NMS pair tests of all (sample, task group) blocks in one call per
        NMS type, then the greedy passes on the host over one copy of all matrices. Two waits on
        the device per batch (the candidates' extent, then the matrices) instead of a few per
        sample and group; results equal decoding each sample and group on its own.

        Returns:
            Per sample {"boxes": (K, 9) x, y, z, l, w, h, yaw, vx, vy, "scores": (K,),
            "labels": (K,) int64 into ``config.class_names``}.
        """
        scores, flat = self._top_centres(preds)  # (B, G, k)
        boxes, labels = self._centre_boxes(preds, flat)
        candidates = scores >= self.config.score_threshold
        size = self._candidate_extent(candidates)
        # one copy to the host for the batch: each slot's matrix with its candidate flags as an extra row
        flagged = torch.cat([self._suppression(boxes, size), candidates[..., None, :size]], dim=2)
        kept = self._kept_positions(pack_rows(flagged).cpu().numpy(), flat.shape[-1])
        sizes = [len(positions) for positions in kept]
        # from pageable memory the driver stages the data before the call returns, so the temporary may go
        index = torch.as_tensor(list(itertools.chain.from_iterable(kept)), dtype=torch.int64)
        index = index.to(flat.device, non_blocking=True)
        picked = (boxes.reshape(-1, boxes.shape[-1])[index], scores.reshape(-1)[index], labels.reshape(-1)[index])
        return [
            {"boxes": sample_boxes, "scores": sample_scores, "labels": sample_labels}
            for sample_boxes, sample_scores, sample_labels in zip(*(values.split(sizes) for values in picked))
        ]
