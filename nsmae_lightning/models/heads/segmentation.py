"""BEV map segmentation head (BEVFusion's map head, plain torch).

The fused BEV embedding lives on the point-cloud-range grid of the embedding
network (e.g. 180 x 180 cells over +-54 m); the map labels live on a 200 x 200
grid of 0.5 m over +-50 m. The head resamples the embedding onto the label grid
with ``grid_sample``, decodes it with a small conv stack and predicts one
independent sigmoid logit per map class (classes overlap: a crossing is also
drivable area).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nsmae_lightning.constants import MAP_BOUND, MAP_CLASSES, MAP_RESOLUTION, PC_RANGE_NUSCENES

SegmentationLoss = Literal["focal", "bce"]


@dataclass
class SegmentationHeadConfig:
    """Settings of :class:`SegmentationHead`.

    Args:
        in_channels: channels of the fused BEV embedding.
        hidden_channels: channels of the two 3x3 decoder convs.
        pc_range: (xmin, ymin, zmin, xmax, ymax, zmax) in metres that the BEV
            embedding covers; only x and y are used.
        map_bound: the map grid spans [-map_bound, map_bound] m on x and y.
        map_resolution: map cell size in metres.
        classes: map class names, in the channel order of the targets.
        loss: "focal" (per-class sigmoid focal loss) or "bce" (per-class BCE).
        focal_alpha: weight of the positive class in the focal loss; None turns
            the weighting off (what BEVFusion's released ``vanilla.py`` does).
        focal_gamma: focusing exponent of the focal loss.
    """

    in_channels: int = 256
    hidden_channels: int = 256
    pc_range: tuple[float, ...] = PC_RANGE_NUSCENES
    map_bound: float = MAP_BOUND
    map_resolution: float = MAP_RESOLUTION
    classes: tuple[str, ...] = MAP_CLASSES
    loss: SegmentationLoss = "focal"
    focal_alpha: float | None = 0.25
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if len(self.pc_range) != 6 or self.pc_range[3] <= self.pc_range[0] or self.pc_range[4] <= self.pc_range[1]:
            raise ValueError(f"pc_range must be (xmin, ymin, zmin, xmax, ymax, zmax) with max > min, got {self.pc_range}")
        if self.map_bound <= 0 or self.map_resolution <= 0:
            raise ValueError(f"map_bound and map_resolution must be > 0, got {self.map_bound}, {self.map_resolution}")
        cells = 2 * self.map_bound / self.map_resolution
        if abs(cells - round(cells)) > 1e-6:
            raise ValueError(f"2 * map_bound / map_resolution must be a whole number of cells, got {cells}")
        if self.loss not in ("focal", "bce"):
            raise ValueError(f"loss must be 'focal' or 'bce', got {self.loss!r}")
        if self.focal_alpha is not None and not 0.0 <= self.focal_alpha <= 1.0:
            raise ValueError(f"focal_alpha must be in [0, 1] or None, got {self.focal_alpha}")
        if not self.classes:
            raise ValueError("classes must name at least one map class")


def map_sampling_grid(
    pc_range: tuple[float, ...], map_bound: float, map_resolution: float
) -> Tensor:
    """Where each map cell centre falls on the BEV embedding, in ``grid_sample`` units.

    With ``align_corners=False`` the normalised coordinate -1 is the outer edge of
    the first input cell and +1 the outer edge of the last one, so the world
    coordinate ``v`` maps to ``2 * (v - vmin) / (vmax - vmin) - 1`` whatever the
    input resolution: a feature of the input cell containing world (x, y) is read
    at the map cell containing (x, y).

    Args:
        pc_range: (xmin, ymin, zmin, xmax, ymax, zmax) of the BEV embedding.
        map_bound: the map spans [-map_bound, map_bound] on x and y.
        map_resolution: map cell size in metres.

    Returns:
        (1, Nmap, Nmap, 2) float32 grid; ``[0, iy, ix]`` = (x, y) normalised
        coordinates of the centre of map cell (iy, ix), as ``grid_sample`` wants.
    """
    map_size = round(2 * map_bound / map_resolution)
    centres = -map_bound + (torch.arange(map_size, dtype=torch.float64) + 0.5) * map_resolution  # (Nmap,)
    xmin, ymin, _, xmax, ymax, _ = pc_range
    x_normalised = 2 * (centres - xmin) / (xmax - xmin) - 1
    y_normalised = 2 * (centres - ymin) / (ymax - ymin) - 1
    grid_y, grid_x = torch.meshgrid(y_normalised, x_normalised, indexing="ij")  # (Nmap, Nmap) each, [iy, ix]
    return torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0).float()  # (1, Nmap, Nmap, 2)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float | None, gamma: float) -> Tensor:
    """Mean sigmoid focal loss (Lin et al.) over all elements, in float32.

    Args:
        logits: raw scores, any shape.
        targets: 0/1 labels of the same shape.
        alpha: positive-class weight, or None for no class weighting.
        gamma: focusing exponent; 0 gives plain (alpha-weighted) BCE.

    Returns:
        Scalar loss.
    """
    logits = logits.float()
    targets = targets.float()
    probs = torch.sigmoid(logits)
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    prob_of_truth = probs * targets + (1 - probs) * (1 - targets)
    loss = cross_entropy * (1 - prob_of_truth) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.mean()


class SegmentationHead(nn.Module):
    """Map segmentation from the fused BEV embedding: resample, decode, per-class logits.

    Args:
        config: head settings; the geometry (pc range, map grid) is fixed here.
    """

    def __init__(self, config: SegmentationHeadConfig) -> None:
        super().__init__()
        self.config = config
        # Geometry is derived from the config, never stored in the state dict.
        self.register_buffer(
            "sampling_grid",
            map_sampling_grid(config.pc_range, config.map_bound, config.map_resolution),
            persistent=False,
        )
        hidden = config.hidden_channels
        self.decoder = nn.Sequential(
            nn.Conv2d(config.in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, len(config.classes), 1),
        )

    def resample(self, bev: Tensor) -> Tensor:
        """Bilinearly resample the BEV embedding onto the map grid.

        Args:
            bev: (B, C, Ny, Nx) embedding over ``pc_range``.

        Returns:
            (B, C, Nmap, Nmap) features at the map cell centres (zero outside ``pc_range``).
        """
        if bev.dim() != 4 or bev.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected a BEV embedding of shape (B, {self.config.in_channels}, Ny, Nx), got {tuple(bev.shape)}"
            )
        # in float32 whatever autocast says: grid_sample takes its grid in the input's dtype, and a bf16 grid in
        # [-1, 1] puts map cells up to 0.17 BEV cells off (as the render sampler's did: benchmarks/RESULTS.md,
        # twelfth session); the result returns in the embedding's dtype
        with torch.autocast(device_type=bev.device.type, enabled=False):
            grid = self.sampling_grid.float().expand(bev.shape[0], -1, -1, -1)  # (B, Nmap, Nmap, 2)
            sampled = F.grid_sample(bev.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return sampled.to(bev.dtype)

    def forward(self, bev: Tensor) -> Tensor:
        """Per-class map logits.

        Args:
            bev: (B, C, Ny, Nx) fused BEV embedding over ``pc_range``.

        Returns:
            (B, num_classes, Nmap, Nmap) logits; ``sigmoid`` gives class probabilities.
        """
        return self.decoder(self.resample(bev))

    def loss(self, logits: Tensor, bev_masks: Tensor) -> dict[str, Tensor]:
        """Per-class losses (each a mean over pixels) and their sum, computed in float32.

        Args:
            logits: (B, num_classes, Nmap, Nmap) output of :meth:`forward`.
            bev_masks: (B, num_classes, Nmap, Nmap) bool ground truth.

        Returns:
            ``{"loss/<class>": ..., "loss": sum over classes}``.
        """
        if logits.shape != bev_masks.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and bev_masks {tuple(bev_masks.shape)} differ in shape")
        losses: dict[str, Tensor] = {}
        with torch.autocast(device_type=logits.device.type, enabled=False):
            for index, name in enumerate(self.config.classes):
                class_logits = logits[:, index].float()
                class_targets = bev_masks[:, index].float()
                if self.config.loss == "focal":
                    losses[f"loss/{name}"] = sigmoid_focal_loss(
                        class_logits, class_targets, self.config.focal_alpha, self.config.focal_gamma
                    )
                else:
                    losses[f"loss/{name}"] = F.binary_cross_entropy_with_logits(class_logits, class_targets)
        losses["loss"] = torch.stack(list(losses.values())).sum()
        return losses
