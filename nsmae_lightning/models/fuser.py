"""BEV fuser: concatenate the modalities' BEV maps and mix them with one conv (BEVFusion's ConvFuser).

Also home of ``ConvBNReLU``, the conv block every 2D part of the embedding network
(camera neck, view-transform downsample, fuser, BEV decoder) is built from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU, padded to keep the size at stride 1.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd).
        stride: convolution stride.
        bn_eps: BatchNorm epsilon (SECOND-style BEV layers use 1e-3).
        bn_momentum: BatchNorm momentum (SECOND-style BEV layers use 0.01).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(inplace=True),
        )


@dataclass
class FuserConfig:
    """Settings of the BEV fuser.

    Attributes:
        out_channels: channels of the fused BEV map fed to the decoder (paper: 256).
    """

    out_channels: int = 256


class ConvFuser(nn.Module):
    """Concatenate per-modality BEV maps along channels, then conv3x3 + BN + ReLU.

    With a single modality the conv still runs, so the decoder always sees
    ``out_channels`` channels whatever the modalities are.

    Args:
        in_channels: channels of each modality's BEV map, in the order they are passed.
        config: fuser settings.
    """

    def __init__(self, in_channels: list[int], config: FuserConfig) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("ConvFuser needs at least one input modality")
        self.in_channels = list(in_channels)
        self.out_channels = config.out_channels
        self.fuse = ConvBNReLU(sum(in_channels), config.out_channels, kernel_size=3)

    def forward(self, bev_maps: list[torch.Tensor]) -> torch.Tensor:
        """Fuse BEV maps that share one grid.

        Args:
            bev_maps: one (B, C_i, Ny, Nx) tensor per modality, in constructor order.

        Returns:
            (B, out_channels, Ny, Nx) fused BEV map.
        """
        channels = [bev.shape[1] for bev in bev_maps]
        if channels != self.in_channels:
            raise ValueError(f"ConvFuser expects BEV maps with channels {self.in_channels}, got {channels}")
        # Under autocast the camera and LiDAR maps may arrive in different dtypes.
        dtype = bev_maps[0].dtype
        return self.fuse(torch.cat([bev.to(dtype) for bev in bev_maps], dim=1))
