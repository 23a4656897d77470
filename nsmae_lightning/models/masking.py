"""Input masking for NS-MAE (paper Sec. III-D): image patches -> learnable [MASK] token, LiDAR voxels dropped.

Both maskers are modules owned by the pretraining task (not by the embedding
network), are no-ops in eval mode, and never modify their input in place: the
reconstruction targets are built from the unmasked batch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from nsmae_lightning.models.group_ranks import ranks_in_groups


class ImageMasker(nn.Module):
    """Replace a random ``ratio`` of the s x s patches of every image by one learnable [MASK] token.

    The token is a (3, s, s) patch in normalised pixel space, zero-initialised (the
    dataset mean colour). Exactly ``round(ratio * num_patches)`` patches are masked
    per image, drawn afresh for every image at every call.

    Args:
        patch_size: patch side s in pixels (paper: 4 at 128x352, 8 at 256x704).
        ratio: fraction of patches masked (paper: 0.5).
    """

    def __init__(self, patch_size: int, ratio: float = 0.5) -> None:
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"ImageMasker patch_size must be >= 1, got {patch_size}")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ImageMasker ratio must be in [0, 1], got {ratio}")
        self.patch_size = patch_size
        self.ratio = ratio
        self.mask_token = nn.Parameter(torch.zeros(3, patch_size, patch_size))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask patches of a batch of multi-camera images.

        Args:
            images: (B, N, 3, H, W) normalised images; H and W multiples of the patch size.

        Returns:
            masked_images: a new (B, N, 3, H, W) tensor (the input itself in eval mode).
            mask: (B, N, H/s, W/s) bool, True where the patch was replaced.
        """
        batch, num_cameras, channels, height, width = images.shape
        s = self.patch_size
        if channels != 3 or height % s or width % s:
            raise ValueError(
                f"ImageMasker needs (B, N, 3, H, W) images with H, W multiples of {s}, got {tuple(images.shape)}"
            )
        rows, cols = height // s, width // s
        num_patches = rows * cols
        num_masked = round(self.ratio * num_patches) if self.training else 0
        mask = torch.zeros(batch * num_cameras, num_patches, dtype=torch.bool, device=images.device)
        if num_masked == 0:
            return images, mask.view(batch, num_cameras, rows, cols)
        chosen = torch.rand(batch * num_cameras, num_patches, device=images.device).argsort(dim=1)[:, :num_masked]
        mask.scatter_(1, chosen, True)
        mask = mask.view(batch, num_cameras, rows, cols)
        patches = images.view(batch, num_cameras, 3, rows, s, cols, s)
        token = self.mask_token.to(images.dtype).view(1, 1, 3, 1, s, 1, s)
        masked = torch.where(mask.view(batch, num_cameras, 1, rows, 1, cols, 1), token, patches)
        return masked.view(batch, num_cameras, 3, height, width), mask


class VoxelMasker(nn.Module):
    """Drop a fraction of the non-empty voxels of one sample; returns the indices of those kept.

    Modes:
        ``uniform``: drop exactly ``round(r * V)`` of the V voxels, uniformly at random.
        ``range_aware`` (Voxel-MAE): voxels are banded by horizontal distance d from the
        LiDAR, ``d <= bands[0]`` (near), ``bands[0] < d <= bands[1]`` (mid) and
        ``d > bands[1]`` (far) with the defaults (30, 50) m; band k drops
        ``round(max(r - k * band_ratio_step, 0) * V_k)`` of its V_k voxels, so sparse far
        regions keep more (0.9 / 0.7 / 0.5 for r = 0.9, as Voxel-MAE).

    ``r`` is ``ratio``, or drawn uniformly from ``ratio = (low, high)`` per sample and call
    (the paper's 70%-90%).

    Args:
        ratio: drop fraction, or (low, high) range to draw it from.
        mode: "uniform" or "range_aware".
        range_bands: ascending band edges in metres for range-aware masking.
        band_ratio_step: how much lower the drop ratio is in each farther band.
    """

    def __init__(
        self,
        ratio: float | tuple[float, float] = 0.9,
        mode: Literal["uniform", "range_aware"] = "uniform",
        range_bands: tuple[float, ...] = (30.0, 50.0),
        band_ratio_step: float = 0.2,
    ) -> None:
        super().__init__()
        low, high = (ratio, ratio) if isinstance(ratio, (int, float)) else tuple(ratio)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"VoxelMasker ratio must be in [0, 1] (or an ascending pair), got {ratio}")
        if mode not in ("uniform", "range_aware"):
            raise ValueError(f"VoxelMasker mode must be 'uniform' or 'range_aware', got {mode!r}")
        if list(range_bands) != sorted(range_bands):
            raise ValueError(f"VoxelMasker range_bands must be ascending, got {range_bands}")
        self.ratio_range = (float(low), float(high))
        self.mode = mode
        self.register_buffer("range_bands", torch.tensor(range_bands, dtype=torch.float32), persistent=False)
        self.band_ratio_step = band_ratio_step

    def band_ratios(self, ratio: float) -> list[float]:
        """Drop ratio of each range band (near first) for a drawn ratio; one band in uniform mode."""
        return self.sample_band_ratios(torch.tensor([ratio], dtype=torch.float64))[0].tolist()

    def sample_band_ratios(self, drawn: torch.Tensor) -> torch.Tensor:
        """(B,) float64 drawn ratios -> (B, bands) drop ratio of each range band, band k at
        clamp(r - k * band_ratio_step, 0, 1); (B, 1) in uniform mode."""
        if self.mode == "uniform":
            return drawn[:, None]
        bands = torch.arange(len(self.range_bands) + 1, device=drawn.device, dtype=torch.float64)
        return (drawn[:, None] - bands * self.band_ratio_step).clamp(0.0, 1.0)

    def draw_ratios(self, num_samples: int, device: torch.device) -> torch.Tensor:
        """(B,) float64 drop ratio of each sample: fixed, or uniform in the configured range; drawn on
        ``device`` (a host tensor copied there would make the host wait for the GPU)."""
        low, high = self.ratio_range
        if high <= low:
            return torch.full((num_samples,), low, dtype=torch.float64, device=device)
        return low + (high - low) * torch.rand(num_samples, dtype=torch.float64, device=device)

    def forward(self, voxel_centers: torch.Tensor) -> torch.Tensor:
        """Choose the voxels of one sample that survive masking.

        Args:
            voxel_centers: (V, 3) x, y, z voxel centres in metres (LiDAR frame).

        Returns:
            (K,) int64 ascending indices of the kept voxels (all V in eval mode).
        """
        sample = torch.zeros(voxel_centers.shape[0], dtype=torch.long, device=voxel_centers.device)
        return self.keep_mask(voxel_centers, sample, 1).nonzero().flatten()

    def keep_mask(self, voxel_centers: torch.Tensor, sample: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Which voxels of a batch survive masking, each sample masked on its own (ratio drawn per sample).

        Without a host wait: the voxels of each (sample, band) group are ranked in a random order
        (a random permutation, then a stable sort by group) and the first round(r * V_group) dropped.

        Args:
            voxel_centers: (V, 3) x, y, z voxel centres in metres (LiDAR frame).
            sample: (V,) int64 sample of each voxel, in 0..num_samples - 1.
            num_samples: samples in the batch.

        Returns:
            (V,) bool, True = kept (all True in eval mode).
        """
        num_voxels = voxel_centers.shape[0]
        device = voxel_centers.device
        if not self.training:
            return torch.ones(num_voxels, dtype=torch.bool, device=device)
        ratios = self.sample_band_ratios(self.draw_ratios(num_samples, device))  # (num_samples, bands)
        bands = ratios.shape[1]
        if self.mode == "uniform":
            band = torch.zeros(num_voxels, dtype=torch.long, device=device)
        else:
            distance = torch.linalg.vector_norm(voxel_centers[:, :2].float(), dim=1)
            band = torch.bucketize(distance, self.range_bands.to(device))
        group = sample * bands + band  # (V,)
        members = torch.zeros(num_samples * bands, dtype=torch.long, device=device)
        members.index_add_(0, group, torch.ones_like(group))
        dropped = torch.round(ratios.flatten() * members.double()).long()  # round half to even, as round()
        shuffled = torch.randperm(num_voxels, device=device)
        order = shuffled[torch.argsort(group[shuffled], stable=True)]  # by group, random inside each
        return ranks_in_groups(order, group, members) >= dropped[group]
