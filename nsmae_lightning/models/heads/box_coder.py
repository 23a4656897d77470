"""CenterPoint box coding: 9-dof LiDAR boxes <-> BEV heatmaps and per-centre regression maps.

Targets follow CenterPoint (Yin et al., 2021) as mmdet3d's ``CenterHead`` builds
them: one Gaussian per box on its class heatmap (CenterNet radius formula), and
at the box's centre cell a 10-value regression target
``(dx, dy, z, log l, log w, log h, sin yaw, cos yaw, vx, vy)`` where ``(dx, dy)``
is the centre's offset inside the cell. Decoding inverts this exactly, so an
ideal prediction built from the targets gives the boxes back.

BEV grids follow docs/conventions.md: ``(Ny, Nx)`` indexed ``[iy, ix]`` over the
point-cloud range, cell size ``(x1 - x0) / Nx`` by ``(y1 - y0) / Ny``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Regression heads in the order their channels are concatenated (name, channels).
REGRESSION_HEADS: tuple[tuple[str, int], ...] = (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))
# Length of one regression target / prediction vector.
CODE_SIZE: int = sum(channels for _, channels in REGRESSION_HEADS)


def gaussian_radius(length_cells: float, width_cells: float, min_overlap: float) -> float:
    """CenterNet's Gaussian radius (in cells) for a box footprint of ``length x width`` cells.

    The largest corner shift that keeps IoU >= ``min_overlap`` with the true box,
    the smallest over CenterNet's three cases (both corners inside, both outside,
    one of each).
    """
    size_sum = length_cells + width_cells
    area = length_cells * width_cells
    b1, c1 = size_sum, area * (1.0 - min_overlap) / (1.0 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4.0 * c1)) / 2.0
    b2, c2 = 2.0 * size_sum, (1.0 - min_overlap) * area
    r2 = (b2 + math.sqrt(b2**2 - 16.0 * c2)) / 2.0
    a3, b3, c3 = 4.0 * min_overlap, -2.0 * min_overlap * size_sum, (min_overlap - 1.0) * area
    r3 = (b3 + math.sqrt(b3**2 - 4.0 * a3 * c3)) / 2.0
    return min(r1, r2, r3)


def gaussian_kernel(radius: int) -> Tensor:
    """The (2r+1, 2r+1) Gaussian drawn per box: peak exactly 1, sigma = diameter / 6, tiny tails zeroed."""
    sigma = (2 * radius + 1) / 6.0
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2.0 * sigma**2))
    kernel[kernel < torch.finfo(torch.float32).eps * kernel.max()] = 0.0
    return kernel


def draw_gaussian(heatmap: Tensor, center_ix: int, center_iy: int, radius: int) -> None:
    """Write a Gaussian into ``heatmap`` (Ny, Nx) in place, keeping the maximum where they overlap."""
    num_y, num_x = heatmap.shape
    kernel = gaussian_kernel(radius).to(heatmap)
    left, right = min(center_ix, radius), min(num_x - center_ix, radius + 1)
    top, bottom = min(center_iy, radius), min(num_y - center_iy, radius + 1)
    window = heatmap[center_iy - top : center_iy + bottom, center_ix - left : center_ix + right]
    kernel_window = kernel[radius - top : radius + bottom, radius - left : radius + right]
    torch.maximum(window, kernel_window, out=window)


def gather_at(feature: Tensor, indices: Tensor) -> Tensor:
    """Read a (B, C, Ny, Nx) map at flat cell indices (B, M) (``iy * Nx + ix``) -> (B, M, C)."""
    batch, channels = feature.shape[:2]
    flat = feature.reshape(batch, channels, -1)  # (B, C, Ny*Nx)
    gathered = flat.gather(2, indices[:, None, :].expand(batch, channels, indices.shape[1]))  # (B, C, M)
    return gathered.transpose(1, 2)


@dataclass
class TaskTargets:
    """CenterPoint targets of one task group for one sample.

    Attributes:
        heatmap: float32 (C, Ny, Nx), one Gaussian per box on its class channel.
        indices: int64 (max_objects,), flat centre cell ``iy * Nx + ix`` per box slot.
        mask: bool (max_objects,), True where the slot holds a box whose centre is on the grid.
        box_targets: float32 (max_objects, CODE_SIZE), regression target per slot.
    """

    heatmap: Tensor
    indices: Tensor
    mask: Tensor
    box_targets: Tensor


class CenterPointBoxCoder:
    """Encodes boxes into CenterPoint targets and decodes head outputs into boxes.

    Args:
        pc_range: (x0, y0, z0, x1, y1, z1) of the BEV grid, metres, LiDAR frame.
        gaussian_overlap: CenterNet's minimum IoU used for the Gaussian radius.
        min_radius: smallest Gaussian radius, in cells.
        max_objects: box slots per task and sample (extra boxes are dropped).
    """

    def __init__(self, pc_range: Sequence[float], gaussian_overlap: float, min_radius: int, max_objects: int) -> None:
        if len(pc_range) != 6 or pc_range[3] <= pc_range[0] or pc_range[4] <= pc_range[1]:
            raise ValueError(f"pc_range must be (x0, y0, z0, x1, y1, z1) with x1 > x0 and y1 > y0, got {tuple(pc_range)}")
        self.pc_range = tuple(float(value) for value in pc_range)
        self.gaussian_overlap = gaussian_overlap
        self.min_radius = min_radius
        self.max_objects = max_objects

    def cell_size(self, grid_shape: tuple[int, int]) -> tuple[float, float]:
        """(cell_x, cell_y) in metres of a BEV grid of shape (Ny, Nx) over the range."""
        num_y, num_x = grid_shape
        return (self.pc_range[3] - self.pc_range[0]) / num_x, (self.pc_range[4] - self.pc_range[1]) / num_y

    def encode(self, boxes: Tensor, class_ids: Tensor, num_classes: int, grid_shape: tuple[int, int]) -> TaskTargets:
        """Targets of one task group for one sample.

        Args:
            boxes: (M, 9) x, y, z, l, w, h, yaw, vx, vy in the LiDAR frame (conventions).
            class_ids: (M,) int64 class index inside the task group.
            num_classes: classes in the task group (heatmap channels).
            grid_shape: (Ny, Nx) of the head's BEV output.

        Returns:
            The task's TaskTargets; boxes whose centre falls off the grid keep a slot with mask False.
        """
        if boxes.ndim != 2 or boxes.shape[1] != 9:
            raise ValueError(f"boxes must be (M, 9), got {tuple(boxes.shape)}")
        if not torch.isfinite(boxes).all() or (boxes[:, 3:6] <= 0).any():
            raise ValueError("boxes must be finite with positive l, w, h")
        num_y, num_x = grid_shape
        cell_x, cell_y = self.cell_size(grid_shape)
        boxes = boxes.detach().double().cpu()
        heatmap = torch.zeros(num_classes, num_y, num_x)
        indices = torch.zeros(self.max_objects, dtype=torch.int64)
        mask = torch.zeros(self.max_objects, dtype=torch.bool)
        box_targets = torch.zeros(self.max_objects, CODE_SIZE)
        for slot in range(min(boxes.shape[0], self.max_objects)):
            x, y, z, length, width, height, yaw, vx, vy = boxes[slot].tolist()
            coord_x = (x - self.pc_range[0]) / cell_x
            coord_y = (y - self.pc_range[1]) / cell_y
            ix, iy = math.floor(coord_x), math.floor(coord_y)
            if not (0 <= ix < num_x and 0 <= iy < num_y):
                continue
            radius = gaussian_radius(length / cell_x, width / cell_y, self.gaussian_overlap)
            draw_gaussian(heatmap[int(class_ids[slot])], ix, iy, max(self.min_radius, int(radius)))
            indices[slot] = iy * num_x + ix
            mask[slot] = True
            box_targets[slot] = torch.tensor(
                [coord_x - ix, coord_y - iy, z, math.log(length), math.log(width), math.log(height)]
                + [math.sin(yaw), math.cos(yaw), vx, vy]
            )
        return TaskTargets(heatmap=heatmap, indices=indices, mask=mask, box_targets=box_targets)

    def decode(
        self, heatmap_logits: Tensor, regression: Tensor, top_k: int, score_threshold: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The top-scoring centres of one task group for one sample, as boxes.

        Args:
            heatmap_logits: (C, Ny, Nx) heatmap logits of the task group.
            regression: (CODE_SIZE, Ny, Nx) regression maps, channels in REGRESSION_HEADS order.
            top_k: centres kept over all classes of the group before the score threshold.
            score_threshold: centres with a lower sigmoid score are dropped.

        Returns:
            boxes (K, 9) in the LiDAR frame, scores (K,), class_ids (K,) inside the task group,
            sorted by descending score.
        """
        num_classes, num_y, num_x = heatmap_logits.shape
        cell_x, cell_y = self.cell_size((num_y, num_x))
        scores = heatmap_logits.float().sigmoid().reshape(-1)  # (C*Ny*Nx,)
        top_scores, top_flat = scores.topk(min(top_k, scores.numel()))
        keep = top_scores >= score_threshold
        top_scores, top_flat = top_scores[keep], top_flat[keep]
        class_ids = top_flat // (num_y * num_x)
        cells = top_flat % (num_y * num_x)
        codes = regression.float().reshape(CODE_SIZE, -1)[:, cells].T  # (K, CODE_SIZE)
        x = ((cells % num_x).float() + codes[:, 0]) * cell_x + self.pc_range[0]
        y = ((cells // num_x).float() + codes[:, 1]) * cell_y + self.pc_range[1]
        yaw = torch.atan2(codes[:, 6], codes[:, 7])
        boxes = torch.cat([x[:, None], y[:, None], codes[:, 2:3], codes[:, 3:6].exp(), yaw[:, None], codes[:, 8:10]], 1)
        return boxes, top_scores, class_ids
