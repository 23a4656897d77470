"""Camera encoder: an image backbone (ResNet-18/50, Swin-T or a tiny conv net) and an LSS-FPN neck.

Everything is plain torch and randomly initialised: NS-MAE pretrains the camera
branch from scratch (paper Sec. IV-A), so no weights are downloaded. Every
backbone has four stages at strides 4, 8, 16, 32; ``out_indices`` picks the stages
the neck fuses, and the neck returns one map at the stride of the first of them.
Stages after the last requested one are not built, so every parameter is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nsmae_lightning.models.fuser import ConvBNReLU

STAGE_STRIDES: tuple[int, int, int, int] = (4, 8, 16, 32)


@dataclass
class CameraConfig:
    """Settings of the camera backbone and neck.

    Attributes:
        backbone: "resnet18", "resnet50", "swin_t" (the paper's pretraining backbone) or
            "tiny" (a few convs, for tests).
        out_indices: backbone stages (0..3, strides 4/8/16/32) fed to the neck, ascending.
        neck_out_channels: channels of the neck output (paper: 256).
        drop_path_rate: Swin-T stochastic depth rate (BEVFusion: 0.2); unused by the others.
        tiny_widths: channels of the four stages of the tiny backbone.
    """

    backbone: Literal["resnet18", "resnet50", "swin_t", "tiny"] = "swin_t"
    out_indices: tuple[int, ...] = (1, 2, 3)
    neck_out_channels: int = 256
    drop_path_rate: float = 0.2
    tiny_widths: tuple[int, int, int, int] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        indices = list(self.out_indices)
        if not indices or indices != sorted(set(indices)) or indices[0] < 0 or indices[-1] > 3:
            raise ValueError(f"camera.out_indices must be ascending stage indices in 0..3, got {self.out_indices}")

    @property
    def stride(self) -> int:
        """Stride of the neck output relative to the input image."""
        return STAGE_STRIDES[self.out_indices[0]]


# ----------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs), expansion 1."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual 3x3-3x3 transform."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, 3x3 with the stride, 1x1), expansion 4."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual 1x1-3x3-1x1 transform."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x), inplace=True)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity shortcut, or 1x1 conv + BN where the shape changes."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class StagedBackbone(nn.Module):
    """A stem and a list of stages, each stage's output a feature map (ResNet, TinyBackbone); subclasses
    build ``stem``, ``stages`` and ``stage_channels``."""

    stem: nn.Module
    stages: nn.ModuleList

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> one feature map per built stage (strides 4, 8, 16, 32 for all four)."""
        x = self.stem(images)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class ResNet(StagedBackbone):
    """ResNet-18/50 feature extractor (torchvision's architecture, no classifier).

    Args:
        depth: 18 or 50.
        num_stages: how many of the four stages to build (the last requested stage + 1).
    """

    LAYOUTS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
        18: (BasicBlock, (2, 2, 2, 2)),
        50: (Bottleneck, (3, 4, 6, 3)),
    }

    def __init__(self, depth: int, num_stages: int = 4) -> None:
        super().__init__()
        block, blocks_per_stage = self.LAYOUTS[depth]
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        in_channels = 64
        self.stages = nn.ModuleList()
        self.stage_channels: list[int] = []
        for stage, num_blocks in enumerate(blocks_per_stage[:num_stages]):
            width = 64 * 2**stage
            layers: list[nn.Module] = []
            for index in range(num_blocks):
                layers.append(block(in_channels, width, 2 if (index == 0 and stage > 0) else 1))
                in_channels = width * block.expansion
            self.stages.append(nn.Sequential(*layers))
            self.stage_channels.append(in_channels)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


# ----------------------------------------------------------------------------- Swin-T


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero whole samples of a residual branch with probability ``rate``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class WindowAttention(nn.Module):
    """Multi-head self-attention inside square windows, with a learned relative position bias.

    Args:
        dim: token channels.
        num_heads: attention heads.
        window_size: window side in tokens.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(
            torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
        ).flatten(1)  # (2, ws*ws)
        relative = (coords[:, :, None] - coords[:, None, :]) + (window_size - 1)  # (2, ws*ws, ws*ws)
        index = relative[0] * (2 * window_size - 1) + relative[1]
        self.register_buffer("relative_position_index", index, persistent=False)

    def forward(self, windows: torch.Tensor, shift_mask: torch.Tensor | None) -> torch.Tensor:
        """Attend within each window.

        Args:
            windows: (B * nW, ws*ws, C) tokens grouped by window.
            shift_mask: (nW, ws*ws, ws*ws) additive mask (0 or -inf-like) for shifted windows.

        Returns:
            (B * nW, ws*ws, C).
        """
        num_windows_total, tokens, channels = windows.shape
        head_dim = channels // self.num_heads
        qkv = self.qkv(windows).reshape(num_windows_total, tokens, 3, self.num_heads, head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B*nW, heads, T, hd)
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        bias = bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)  # (heads, T, T)
        attn_bias = bias.unsqueeze(0).to(query.dtype)  # (1, heads, T, T)
        if shift_mask is not None:
            num_windows = shift_mask.shape[0]
            attn_bias = attn_bias.unsqueeze(0) + shift_mask[None, :, None].to(query.dtype)  # (1, nW, h, T, T)
            attn_bias = attn_bias.expand(num_windows_total // num_windows, -1, -1, -1, -1)
            attn_bias = attn_bias.reshape(num_windows_total, self.num_heads, tokens, tokens)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_bias)
        return self.proj(out.transpose(1, 2).reshape(num_windows_total, tokens, channels))


class SwinBlock(nn.Module):
    """Swin transformer block: (shifted) window attention + MLP, both pre-norm residual.

    Args:
        dim: token channels.
        num_heads: attention heads.
        window_size: window side in tokens.
        shift: whether this block shifts its windows by half a window.
        drop_path_rate: stochastic depth rate of both residual branches.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shift: bool, drop_path_rate: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.drop_path_rate = drop_path_rate
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def _shift_mask(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """(nW, T, T) additive mask that stops shifted windows mixing regions that are not adjacent."""
        ws, shift = self.window_size, self.shift_size
        region = torch.zeros(height, width, device=device)
        label = 0
        for rows in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            for cols in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
                region[rows, cols] = label
                label += 1
        region_windows = _to_windows(region[None, :, :, None], ws)[0, :, :, 0]  # (nW, T)
        different = region_windows[:, :, None] != region_windows[:, None, :]
        return different.float() * -100.0

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, H*W, C) tokens on an (H, W) grid -> same shape."""
        batch, _, channels = tokens.shape
        ws = self.window_size
        x = self.norm1(tokens).view(batch, height, width, channels)
        pad_h, pad_w = (-height) % ws, (-width) % ws
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        padded_h, padded_w = height + pad_h, width + pad_w
        shift_mask = None
        if self.shift_size:
            x = torch.roll(x, (-self.shift_size, -self.shift_size), dims=(1, 2))
            shift_mask = self._shift_mask(padded_h, padded_w, x.device)
        windows = _to_windows(x, ws).flatten(0, 1)  # (B*nW, T, C)
        windows = self.attn(windows, shift_mask)
        x = _from_windows(windows.view(batch, -1, ws * ws, channels), padded_h, padded_w, ws)
        if self.shift_size:
            x = torch.roll(x, (self.shift_size, self.shift_size), dims=(1, 2))
        x = x[:, :height, :width].reshape(batch, height * width, channels)
        tokens = tokens + drop_path(x, self.drop_path_rate, self.training)
        return tokens + drop_path(self.mlp(self.norm2(tokens)), self.drop_path_rate, self.training)


def _to_windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ws -> (B, nW, ws*ws, C)."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // ws, ws, width // ws, ws, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, -1, ws * ws, channels)


def _from_windows(windows: torch.Tensor, height: int, width: int, ws: int) -> torch.Tensor:
    """Inverse of ``_to_windows``: (B, nW, ws*ws, C) -> (B, H, W, C)."""
    batch, _, _, channels = windows.shape
    x = windows.view(batch, height // ws, width // ws, ws, ws, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)


class PatchMerging(nn.Module):
    """Halve the token grid: concatenate 2x2 neighbours (4C), LayerNorm, project to 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, int, int]:
        """(B, H*W, C) -> ((B, ceil(H/2)*ceil(W/2), 2C), new H, new W)."""
        batch, _, channels = tokens.shape
        x = tokens.view(batch, height, width, channels)
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        new_h, new_w = x.shape[1], x.shape[2]
        return self.reduction(self.norm(x.reshape(batch, new_h * new_w, 4 * channels))), new_h, new_w


class SwinTransformer(nn.Module):
    """Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24, window 7) with a LayerNorm per output stage.

    Args:
        out_indices: stages whose outputs are returned (they get their own LayerNorm).
        drop_path_rate: stochastic depth rate, rising linearly over the blocks.
        embed_dim: channels of stage 0.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: attention window side in tokens.
    """

    def __init__(
        self,
        out_indices: tuple[int, ...],
        drop_path_rate: float = 0.2,
        embed_dim: int = 96,
        depths: tuple[int, int, int, int] = (2, 2, 6, 2),
        num_heads: tuple[int, int, int, int] = (3, 6, 12, 24),
        window_size: int = 7,
    ) -> None:
        super().__init__()
        num_stages = max(out_indices) + 1
        self.out_indices = tuple(out_indices)
        self.patch_embed = nn.Conv2d(3, embed_dim, kernel_size=4, stride=4)
        self.patch_norm = nn.LayerNorm(embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        self.out_norms = nn.ModuleDict()
        self.stage_channels: list[int] = []
        block_index = 0
        for stage in range(num_stages):
            dim = embed_dim * 2**stage
            blocks = [
                SwinBlock(
                    dim, num_heads[stage], window_size, shift=index % 2 == 1, drop_path_rate=rates[block_index + index]
                )
                for index in range(depths[stage])
            ]
            block_index += depths[stage]
            self.stages.append(nn.ModuleList(blocks))
            if stage < num_stages - 1:
                self.downsamples.append(PatchMerging(dim))
            if stage in self.out_indices:
                self.out_norms[str(stage)] = nn.LayerNorm(dim)
            self.stage_channels.append(dim)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Swin's init: N(0, 0.02) linear weights, zero biases, unit LayerNorms.

        Swin's ``trunc_normal_(std=0.02)`` truncates at +-2 (absolute), i.e. at 100 std:
        the same distribution as a plain normal, which is far faster to draw on CPU.
        """
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> one (B, C_i, H_i, W_i) map per built stage (requested ones layer-normed)."""
        x = self.patch_embed(images)  # (B, C, H/4, W/4)
        batch, channels, height, width = x.shape
        tokens = self.patch_norm(x.flatten(2).transpose(1, 2))  # (B, H*W, C)
        features = []
        for stage, blocks in enumerate(self.stages):
            for block in blocks:
                tokens = block(tokens, height, width)
            out = self.out_norms[str(stage)](tokens) if str(stage) in self.out_norms else tokens
            features.append(out.transpose(1, 2).reshape(batch, -1, height, width))  # (B, C_i, H_i, W_i)
            if stage < len(self.downsamples):
                tokens, height, width = self.downsamples[stage](tokens, height, width)
        return features


# ----------------------------------------------------------------------------- tiny


class TinyBackbone(StagedBackbone):
    """Four strided conv stages (strides 4, 8, 16, 32): the test-sized stand-in for a real backbone.

    Args:
        widths: channels of the four stages.
        num_stages: how many stages to build.
    """

    def __init__(self, widths: tuple[int, int, int, int], num_stages: int = 4) -> None:
        super().__init__()
        self.stem = ConvBNReLU(3, widths[0], 3, stride=2)
        self.stages = nn.ModuleList()
        in_channels = widths[0]
        for stage in range(num_stages):
            downsample = ConvBNReLU(in_channels, widths[stage], 3, stride=2)
            self.stages.append(nn.Sequential(downsample, ConvBNReLU(widths[stage], widths[stage], 3)))
            in_channels = widths[stage]
        self.stage_channels = list(widths[:num_stages])


# ----------------------------------------------------------------------------- neck


class LSSFPN(nn.Module):
    """BEVFusion's GeneralizedLSSFPN: top-down fusion by upsample + concat + 1x1 + 3x3, finest level out.

    Args:
        in_channels: channels of the input levels, finest first.
        out_channels: channels of the output map.
    """

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        num_levels = len(in_channels)
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for level in range(max(num_levels - 1, 1)):
            if num_levels == 1:
                coarser_channels = 0
            elif level == num_levels - 2:
                coarser_channels = in_channels[level + 1]
            else:
                coarser_channels = out_channels
            self.lateral_convs.append(ConvBNReLU(in_channels[level] + coarser_channels, out_channels, 1))
            self.fpn_convs.append(ConvBNReLU(out_channels, out_channels, 3))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Levels finest first -> (B, out_channels, H_0, W_0) at the finest level's resolution."""
        fused = features[-1]
        levels = range(len(features) - 2, -1, -1) if len(features) > 1 else [0]
        for level in levels:
            finer = features[level]
            if len(features) > 1:
                # channels-last: CUDA's NCHW bilinear kernel has a thread per output pixel loop over batch x
                # channels (pytorch/pytorch#127082), 2.7 ms on an H200 for the (48, 256, 8, 22) level of a
                # pretraining step; its NHWC kernel spreads every element (the cat below copies back to NCHW)
                coarse = fused.contiguous(memory_format=torch.channels_last)
                upsampled = F.interpolate(coarse, size=finer.shape[-2:], mode="bilinear", align_corners=False)
                finer = torch.cat([finer, upsampled], dim=1)
            fused = self.fpn_convs[level](self.lateral_convs[level](finer))
        return fused


# ----------------------------------------------------------------------------- encoder


def build_backbone(config: CameraConfig) -> ResNet | SwinTransformer | TinyBackbone:
    """The backbone named by ``config.backbone``, built up to the last requested stage."""
    num_stages = max(config.out_indices) + 1
    if config.backbone == "resnet18":
        return ResNet(18, num_stages)
    if config.backbone == "resnet50":
        return ResNet(50, num_stages)
    if config.backbone == "swin_t":
        return SwinTransformer(config.out_indices, config.drop_path_rate)
    if config.backbone == "tiny":
        return TinyBackbone(config.tiny_widths, num_stages)
    raise ValueError(f"camera.backbone must be resnet18, resnet50, swin_t or tiny, got {config.backbone!r}")


class CameraEncoder(nn.Module):
    """Backbone + LSS-FPN: images -> one feature map per image at ``stride``.

    Args:
        config: camera settings.
    """

    def __init__(self, config: CameraConfig) -> None:
        super().__init__()
        self.out_indices = tuple(config.out_indices)
        self.backbone = build_backbone(config)
        self.neck = LSSFPN([self.backbone.stage_channels[i] for i in self.out_indices], config.neck_out_channels)
        self.out_channels = config.neck_out_channels
        self.stride = config.stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B*N, 3, H, W) normalised images -> (B*N, out_channels, H/stride, W/stride)."""
        stages = self.backbone(images)
        return self.neck([stages[i] for i in self.out_indices])
