"""BEV decoder: SECOND backbone + SECONDFPN over the fused BEV map (BEVFusion's decoder)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nsmae_lightning.models.fuser import ConvBNReLU

# SECOND-style BEV layers use these BatchNorm settings.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass
class DecoderConfig:
    """Settings of the SECOND backbone and SECONDFPN neck.

    Attributes:
        layer_nums: 3x3 convs after each stage's (strided) first conv (paper: (5, 5)).
        layer_strides: stride of each stage's first conv (paper: (1, 2)).
        out_channels: channels of each stage (paper: (128, 256)).
        upsample_strides: FPN upsampling of each stage back to the input grid (paper: (1, 2)).
        upsample_out_channels: FPN channels per stage; their sum is the embedding's
            channel count (paper: (256, 256) -> 512).
    """

    layer_nums: tuple[int, ...] = (5, 5)
    layer_strides: tuple[int, ...] = (1, 2)
    out_channels: tuple[int, ...] = (128, 256)
    upsample_strides: tuple[int, ...] = (1, 2)
    upsample_out_channels: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        lengths = {
            len(self.layer_nums),
            len(self.layer_strides),
            len(self.out_channels),
            len(self.upsample_strides),
            len(self.upsample_out_channels),
        }
        if len(lengths) != 1:
            raise ValueError("decoder.layer_nums/layer_strides/out_channels/upsample_* need one entry per stage")
        total = 1
        for layer_stride, upsample_stride in zip(self.layer_strides, self.upsample_strides):
            total *= layer_stride
            if total != upsample_stride:
                raise ValueError(
                    f"decoder.upsample_strides {self.upsample_strides} must undo the cumulative "
                    f"layer_strides {self.layer_strides} so every stage returns to the input grid"
                )

    @property
    def total_stride(self) -> int:
        """Product of the stage strides: BEV sides must be multiples of it."""
        return max(self.upsample_strides)

    @property
    def embedding_channels(self) -> int:
        """Channels of the decoded BEV embedding (concatenated FPN outputs)."""
        return sum(self.upsample_out_channels)


class BEVDecoder(nn.Module):
    """SECOND + SECONDFPN: multi-stride conv stages, each brought back to the input grid and concatenated.

    Args:
        in_channels: channels of the fused BEV map.
        config: decoder settings.
    """

    def __init__(self, in_channels: int, config: DecoderConfig) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        channels = in_channels
        for num_layers, stride, out_channels, up_stride, up_channels in zip(
            config.layer_nums,
            config.layer_strides,
            config.out_channels,
            config.upsample_strides,
            config.upsample_out_channels,
        ):
            layers = [ConvBNReLU(channels, out_channels, 3, stride, BN_EPS, BN_MOMENTUM)]
            layers += [ConvBNReLU(out_channels, out_channels, 3, 1, BN_EPS, BN_MOMENTUM) for _ in range(num_layers)]
            self.stages.append(nn.Sequential(*layers))
            if up_stride > 1:
                self.upsamples.append(
                    nn.Sequential(
                        nn.ConvTranspose2d(out_channels, up_channels, up_stride, stride=up_stride, bias=False),
                        nn.BatchNorm2d(up_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
                        nn.ReLU(inplace=True),
                    )
                )
            else:
                self.upsamples.append(ConvBNReLU(out_channels, up_channels, 1, 1, BN_EPS, BN_MOMENTUM))
            channels = out_channels
        self.out_channels = config.embedding_channels

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """(B, C_in, Ny, Nx) -> (B, out_channels, Ny, Nx), channels-last (cuDNN's NHWC kernels run without
        layout conversions, and the render head's trunk reads the embedding without a copy)."""
        x = fused.contiguous(memory_format=torch.channels_last)
        outputs = []
        for stage, upsample in zip(self.stages, self.upsamples):
            x = stage(x)
            outputs.append(upsample(x))
        return torch.cat(outputs, dim=1)
