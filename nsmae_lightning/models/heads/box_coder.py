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

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Regression heads in the order their channels are concatenated (name, channels).
REGRESSION_HEADS: tuple[tuple[str, int], ...] = (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))
# Length of one regression target / prediction vector.
CODE_SIZE: int = sum(channels for _, channels in REGRESSION_HEADS)


def gaussian_radius(length_cells: Tensor, width_cells: Tensor, min_overlap: float) -> Tensor:
    """CenterNet's Gaussian radius (in cells) for box footprints of ``length x width`` cells (elementwise).

    The largest corner shift that keeps IoU >= ``min_overlap`` with the true box,
    the smallest over CenterNet's three cases (both corners inside, both outside,
    one of each).
    """
    size_sum = length_cells + width_cells
    area = length_cells * width_cells
    b1, c1 = size_sum, area * (1.0 - min_overlap) / (1.0 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4.0 * c1)) / 2.0
    b2, c2 = 2.0 * size_sum, (1.0 - min_overlap) * area
    r2 = (b2 + torch.sqrt(b2**2 - 16.0 * c2)) / 2.0
    a3, b3, c3 = 4.0 * min_overlap, -2.0 * min_overlap * size_sum, (min_overlap - 1.0) * area
    r3 = (b3 + torch.sqrt(b3**2 - 4.0 * a3 * c3)) / 2.0
    return torch.minimum(torch.minimum(r1, r2), r3)


def gaussian_windows(radius: Tensor, largest: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Each box's (2r+1)^2 Gaussian as flat offset lists, padded to the largest radius.

    Peak exactly 1, sigma = diameter / 6, tails below float32 eps zeroed (CenterNet's kernel).

    Args:
        radius: (N,) int64 radii in cells.
        largest: their maximum when the caller has read it already (else read here: a wait on the device).

    Returns:
        dx, dy: (W,) int64 offsets of the padded (2R+1)^2 window, R = max radius;
        values: (N, W) float32 kernel values, 0 outside each box's own radius.
    """
    if largest is None:
        largest = int(radius.max()) if radius.numel() else 0
    offsets = torch.arange(-largest, largest + 1, device=radius.device)
    dy, dx = (grid.reshape(-1) for grid in torch.meshgrid(offsets, offsets, indexing="ij"))
    sigma = (2 * radius.double() + 1) / 6.0
    # float32 numerator over a float32 denominator rounded from double, as the scalar kernel did.
    squared = (dx**2 + dy**2).float()[None, :]  # (1, W)
    values = torch.exp(-squared / (2.0 * sigma**2).float()[:, None])  # (N, W)
    inside = (dx.abs()[None, :] <= radius[:, None]) & (dy.abs()[None, :] <= radius[:, None])
    values = torch.where(inside & (values >= torch.finfo(torch.float32).eps), values, torch.zeros((), device=values.device))
    return dx, dy, values


def gather_at(feature: Tensor, indices: Tensor) -> Tensor:
    """Read (..., C, Ny, Nx) maps at flat cell indices (..., M) (``iy * Nx + ix``) -> (..., M, C).

    Leading dims are independent rows (one map and its index list per row).
    """
    columns = indices.unsqueeze(-2).expand(*indices.shape[:-1], feature.shape[-3], indices.shape[-1])
    return feature.flatten(-2).gather(-1, columns).transpose(-1, -2)  # (..., C, M) -> (..., M, C)


def flatten_batch(
    boxes: Sequence[Tensor], values: Sequence[Tensor], device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """A batch's per-sample boxes and per-box values laid out sample by sample, on ``device``.

    Returns:
        boxes (N, 9), values (N,) and each box's sample (N,) int64. The sample index is made on
        the host and copied once (from pageable memory the driver stages the data before the call
        returns, so the temporary may go), not one fill per sample.
    """
    flat_boxes = torch.cat(list(boxes)).to(device) if boxes else torch.zeros(0, 9, device=device)
    flat_values = (
        torch.cat([sample.reshape(-1) for sample in values]).to(device)
        if values
        else torch.zeros(0, dtype=torch.int64, device=device)
    )
    lengths = torch.tensor([len(sample) for sample in boxes], dtype=torch.int64)
    sample = torch.repeat_interleave(torch.arange(len(boxes)), lengths).to(device, non_blocking=True)
    return flat_boxes, flat_values, sample


@dataclass
class TaskTargets:
    """CenterPoint targets of one task group for one sample.

    Attributes (``encode_batch`` adds a leading batch dimension to each; ``encode_groups``
    a batch dimension to each and a task-group dimension after it to all but ``heatmap``):
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
        """Targets of one task group for one sample (``encode_batch`` of a batch of one, unbatched)."""
        targets = self.encode_batch([boxes], [class_ids], num_classes, grid_shape)
        return TaskTargets(*(field[0] for field in (targets.heatmap, targets.indices, targets.mask, targets.box_targets)))

    def encode_batch(
        self, boxes: Sequence[Tensor], class_ids: Sequence[Tensor], num_classes: int, grid_shape: tuple[int, int]
    ) -> TaskTargets:
        """Targets of one task group for a batch (``encode_groups`` with one group).

        Args:
            boxes: per sample (M_i, 9) x, y, z, l, w, h, yaw, vx, vy in the LiDAR frame (conventions).
            class_ids: per sample (M_i,) int64 class index inside the task group.
            num_classes: classes in the task group (heatmap channels).
            grid_shape: (Ny, Nx) of the head's BEV output.

        Returns:
            TaskTargets with a leading batch dimension: heatmap (B, C, Ny, Nx), indices and
            mask (B, max_objects), box_targets (B, max_objects, CODE_SIZE); boxes whose centre
            falls off the grid keep a slot with mask False.
        """
        for sample_boxes in boxes:
            if sample_boxes.ndim != 2 or sample_boxes.shape[1] != 9:
                raise ValueError(f"boxes must be (M, 9), got {tuple(sample_boxes.shape)}")
        device = boxes[0].device if boxes else torch.device("cpu")
        all_boxes, channels, sample = flatten_batch(boxes, class_ids, device)
        targets = self.encode_groups(
            all_boxes, sample, torch.zeros_like(sample), channels, len(boxes), 1, num_classes, grid_shape
        )
        return TaskTargets(targets.heatmap, targets.indices[:, 0], targets.mask[:, 0], targets.box_targets[:, 0])

    def encode_groups(
        self,
        boxes: Tensor,
        sample: Tensor,
        group: Tensor,
        channel: Tensor,
        batch_size: int,
        num_groups: int,
        num_classes: int,
        grid_shape: tuple[int, int],
    ) -> TaskTargets:
        """Targets of all task groups of a batch at once, on the boxes' device in a few batched ops.

        The heatmaps of all groups are built as one (B, C, Ny, Nx) map whose channels are the
        groups' classes side by side (what concatenating the groups' heatmap logits gives), the
        box slots as (B, G, max_objects): the first ``max_objects`` boxes of each (sample, group),
        in input order, get slots. Every box's Gaussian is scattered into its channel with a
        running maximum (mmdet3d's ``draw_heatmap_gaussian``). Per (sample, group) the targets
        equal ``encode_batch`` of that group's boxes alone.

        Args:
            boxes: (N, 9) x, y, z, l, w, h, yaw, vx, vy of all boxes of the batch, LiDAR frame (conventions).
            sample: (N,) int64 sample of each box, in 0..batch_size-1.
            group: (N,) int64 task group of each box, in 0..num_groups-1, or -1 for a box of no
                group (no slot, no Gaussian, not checked).
            channel: (N,) int64 heatmap channel of each box, in 0..num_classes-1 (any for group -1).
            batch_size: samples in the batch (B).
            num_groups: task groups (G).
            num_classes: heatmap channels of all groups together (C).
            grid_shape: (Ny, Nx) of the head's BEV output.

        Returns:
            TaskTargets: heatmap (B, C, Ny, Nx), indices and mask (B, G, max_objects), box_targets
            (B, G, max_objects, CODE_SIZE); boxes whose centre falls off the grid keep a slot with mask False.
        """
        if boxes.ndim != 2 or boxes.shape[1] != 9:
            raise ValueError(f"boxes must be (M, 9), got {tuple(boxes.shape)}")
        (num_y, num_x), device = grid_shape, boxes.device
        cell_x, cell_y = self.cell_size(grid_shape)
        grouped = group >= 0
        # slot of each box: its rank among the boxes of its (sample, group), by one stable sort; each run's
        # start by searchsorted in the sorted keys (bincount would read its input's min and max on the host)
        key = sample * (num_groups + 1) + group + 1  # bin 0 of each sample: no group
        order = torch.argsort(key, stable=True)
        sorted_key = key[order]
        ranks = torch.arange(len(key), device=device) - torch.searchsorted(sorted_key, sorted_key)
        slot = torch.empty_like(key).index_put_((order,), ranks)
        flat_boxes = boxes.detach().double()  # (N, 9); float64 as the reference maths
        x, y, z, length, width, height, yaw, vx, vy = flat_boxes.unbind(1)
        coord_x = (x - self.pc_range[0]) / cell_x
        coord_y = (y - self.pc_range[1]) / cell_y
        ix, iy = coord_x.floor().long(), coord_y.floor().long()
        on_grid = grouped & (slot < self.max_objects) & (ix >= 0) & (ix < num_x) & (iy >= 0) & (iy < num_y)
        radius = gaussian_radius(length / cell_x, width / cell_y, self.gaussian_overlap).long().clamp(min=self.min_radius)

        # One wait on the device for the batch: whether the boxes are valid, how many centres are on the grid
        # and their largest radius (the Gaussian windows' size), read together.
        valid = (~grouped | (torch.isfinite(boxes).all(1) & (boxes[:, 3:6] > 0).all(1))).all()
        largest = torch.where(on_grid, radius, 0).amax() if radius.numel() else radius.new_zeros(())
        is_valid, on_count, largest_radius = torch.stack([valid.long(), on_grid.sum(), largest]).tolist()
        if not is_valid:
            raise ValueError("boxes must be finite with positive l, w, h")
        on = torch.argsort((~on_grid).to(torch.uint8), stable=True)[:on_count]  # on_grid.nonzero(), no second wait
        cells = batch_size * num_classes * num_y * num_x
        heatmap = torch.zeros(cells + 1, device=device)  # + a dropped slot for window cells off the grid
        dx, dy, values = gaussian_windows(radius[on], largest_radius)
        cell_ix = ix[on, None] + dx[None, :]  # (N_on, W)
        cell_iy = iy[on, None] + dy[None, :]
        inside = (cell_ix >= 0) & (cell_ix < num_x) & (cell_iy >= 0) & (cell_iy < num_y)
        plane = (sample[on] * num_classes + channel[on])[:, None]
        target = torch.where(inside, (plane * num_y + cell_iy) * num_x + cell_ix, cells)
        heatmap.scatter_reduce_(0, target.reshape(-1), values.reshape(-1), reduce="amax")  # overlaps keep the maximum
        heatmap = heatmap[:cells]

        rows = batch_size * num_groups
        indices = torch.zeros(rows, self.max_objects, dtype=torch.int64, device=device)
        mask = torch.zeros(rows, self.max_objects, dtype=torch.bool, device=device)
        box_targets = torch.zeros(rows, self.max_objects, CODE_SIZE, device=device)
        codes = torch.stack(
            [coord_x - ix, coord_y - iy, z, length.log(), width.log(), height.log(), yaw.sin(), yaw.cos(), vx, vy], 1
        )
        row, row_slot = (sample * num_groups + group)[on], slot[on]
        indices[row, row_slot] = (iy * num_x + ix)[on]
        mask[row, row_slot] = True
        box_targets[row, row_slot] = codes[on].float()
        return TaskTargets(
            heatmap=heatmap.reshape(batch_size, num_classes, num_y, num_x),
            indices=indices.view(batch_size, num_groups, self.max_objects),
            mask=mask.view(batch_size, num_groups, self.max_objects),
            box_targets=box_targets.view(batch_size, num_groups, self.max_objects, CODE_SIZE),
        )

    def top_centres(self, heatmap_logits: Tensor, top_k: int) -> tuple[Tensor, Tensor]:
        """The ``top_k`` best-scoring heatmap cells over all classes, by descending score.

        Args:
            heatmap_logits: (..., C, Ny, Nx) heatmap logits of a task group; leading dims are
                independent rows (one top-k per row, the same call as a row on its own).
            top_k: centres kept, at most C * Ny * Nx.

        Returns:
            sigmoid scores (..., k) and flat indices (..., k) ``class * Ny * Nx + iy * Nx + ix``.
        """
        scores = heatmap_logits.float().sigmoid().flatten(-3)  # (..., C*Ny*Nx)
        return scores.topk(min(top_k, scores.shape[-1]), dim=-1)

    def boxes_at(self, flat_indices: Tensor, regression: Tensor) -> tuple[Tensor, Tensor]:
        """Boxes decoded from the regression maps at flat heatmap indices (as `top_centres` gives them).

        Args:
            flat_indices: (..., K) int64 ``class * Ny * Nx + cell``.
            regression: (..., CODE_SIZE, Ny, Nx) regression maps, channels in REGRESSION_HEADS order,
                with the same leading dims as ``flat_indices``.

        Returns:
            boxes (..., K, 9) in the LiDAR frame and class_ids (..., K) inside the task group.
        """
        num_y, num_x = regression.shape[-2:]
        cell_x, cell_y = self.cell_size((num_y, num_x))
        class_ids, cells = flat_indices // (num_y * num_x), flat_indices % (num_y * num_x)
        codes = gather_at(regression, cells).float()  # (..., K, CODE_SIZE)
        x = ((cells % num_x).float() + codes[..., 0]) * cell_x + self.pc_range[0]
        y = ((cells // num_x).float() + codes[..., 1]) * cell_y + self.pc_range[1]
        yaw = torch.atan2(codes[..., 6], codes[..., 7])
        boxes = torch.cat(
            [x[..., None], y[..., None], codes[..., 2:3], codes[..., 3:6].exp(), yaw[..., None], codes[..., 8:10]], -1
        )
        return boxes, class_ids

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
        top_scores, top_flat = self.top_centres(heatmap_logits, top_k)
        keep = top_scores >= score_threshold
        boxes, class_ids = self.boxes_at(top_flat[keep], regression)
        return boxes, top_scores[keep], class_ids
