"""LSS view transform: lift image features to a depth-distributed frustum and splat it onto the BEV grid.

Shape of BEVFusion's ``LSSTransform``, in plain torch. Each feature pixel predicts
a softmax over depth bins and a context vector; their outer product is placed at
the 3D points of the camera frustum and summed into BEV cells. The frustum is built
from the batch's ``intrinsics``, ``img_aug`` and ``cam2lidar`` as
docs/conventions.md defines them (undo the image augmentation, back-project with
the original intrinsics, map camera -> LiDAR frame; LiDAR augmentation is already
folded into ``cam2lidar``). Grid constants are plain attributes and non-persistent
buffers: they never travel in a checkpoint, so loading one cannot move the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nsmae_lightning.models.device_constants import device_constant
from nsmae_lightning.models.discard import DISCARD_SLOTS, discard_index
from nsmae_lightning.models.small_inverse import affine_inverse, inverse_3x3
from nsmae_lightning.models.fuser import ConvBNReLU


def bin_count(bound: tuple[float, float, float]) -> int:
    """Number of steps of ``step`` from ``start`` to ``stop`` in a (start, stop, step) bound."""
    start, stop, step = bound
    count = (stop - start) / step
    if step <= 0 or count < 1 or abs(count - round(count)) > 1e-6:
        raise ValueError(f"bound {bound} must be (start, stop, step) with stop - start a positive multiple of step")
    return round(count)


@dataclass
class ViewTransformConfig:
    """Settings of the LSS view transform.

    The image and feature sizes are read from the batch at run time, so one config
    serves 128x352 and 256x704 inputs.

    Attributes:
        out_channels: context channels per BEV cell and z slice (paper: 80).
        dbound: depth bins (start, stop, step) in metres; bin k sits at start + k * step
            (paper: (1, 60, 0.5) -> 118 bins).
        xbound: BEV x extent and cell before downsampling (paper: (-54, 54, 0.3)).
        ybound: BEV y extent and cell before downsampling (paper: (-54, 54, 0.3)).
        zbound: height extent and slice thickness; frustum points outside are dropped
            (paper: (-10, 10, 20), one slice).
        downsample: stride of the conv block after pooling (paper: 2 -> 180 x 180).
    """

    out_channels: int = 80
    dbound: tuple[float, float, float] = (1.0, 60.0, 0.5)
    xbound: tuple[float, float, float] = (-54.0, 54.0, 0.3)
    ybound: tuple[float, float, float] = (-54.0, 54.0, 0.3)
    zbound: tuple[float, float, float] = (-10.0, 10.0, 20.0)
    downsample: int = 2

    def __post_init__(self) -> None:
        for name in ("dbound", "xbound", "ybound", "zbound"):
            bin_count(getattr(self, name))
        if self.downsample < 1:
            raise ValueError(f"view_transform.downsample must be >= 1, got {self.downsample}")

    @property
    def pooled_shape(self) -> tuple[int, int, int]:
        """(Nz, Ny, Nx) of the grid the frustum is pooled into, before downsampling."""
        return bin_count(self.zbound), bin_count(self.ybound), bin_count(self.xbound)

    @property
    def bev_shape(self) -> tuple[int, int]:
        """(Ny, Nx) of the output BEV map, after downsampling."""
        _, ny, nx = self.pooled_shape
        return -(-ny // self.downsample), -(-nx // self.downsample)


class LSSViewTransform(nn.Module):
    """Camera features (B, N, C_in, fH, fW) -> camera BEV map (B, C_out, Ny, Nx) in the LiDAR frame.

    Args:
        in_channels: channels of the camera neck output.
        config: view-transform settings.
    """

    def __init__(self, in_channels: int, config: ViewTransformConfig) -> None:
        super().__init__()
        self.config = config
        self.num_depth_bins = bin_count(config.dbound)
        self.context_channels = config.out_channels
        self.pooled_shape = config.pooled_shape
        self.out_channels = config.out_channels * self.pooled_shape[0]
        start, _, step = config.dbound
        self.register_buffer("depth_values", start + step * torch.arange(self.num_depth_bins), persistent=False)
        self.depthnet = nn.Conv2d(in_channels, self.num_depth_bins + self.context_channels, 1)
        if config.downsample > 1:
            channels = self.out_channels
            self.downsample: nn.Module = nn.Sequential(
                ConvBNReLU(channels, channels, 3),
                ConvBNReLU(channels, channels, 3, stride=config.downsample),
                ConvBNReLU(channels, channels, 3),
            )
        else:
            self.downsample = nn.Identity()

    def lift(self, features: torch.Tensor) -> torch.Tensor:
        """Depth distribution x context for every feature pixel.

        Args:
            features: (B, N, C_in, fH, fW) camera features.

        Returns:
            (B, N, D, fH, fW, C) frustum features (softmax depth weight times context).
        """
        batch, num_cameras, _, height, width = features.shape
        logits = self.depthnet(features.flatten(0, 1))  # (B*N, D + C, fH, fW)
        depth = logits[:, : self.num_depth_bins].softmax(dim=1)
        context = logits[:, self.num_depth_bins :]
        depth = depth.view(batch, num_cameras, self.num_depth_bins, height, width, 1)
        context = context.view(batch, num_cameras, 1, self.context_channels, height, width)
        return depth * context.permute(0, 1, 2, 4, 5, 3)  # (B, N, D, fH, fW, C)

    def frustum_points(
        self,
        intrinsics: torch.Tensor,
        img_aug: torch.Tensor,
        cam2lidar: torch.Tensor,
        image_size: tuple[int, int],
        feature_size: tuple[int, int],
    ) -> torch.Tensor:
        """LiDAR-frame 3D position of every (depth bin, feature pixel) of every camera.

        Feature pixel (i, j) of an (fH, fW) map over an (H, W) image covers image
        pixels [j * W/fW, (j+1) * W/fW); its ray passes through the centre of that
        span, ``u' = (j + 0.5) * W / fW - 0.5`` (pixel centres at integer coordinates).
        Computed in float32 whatever autocast says: 60 m in bfloat16 is off by 0.25 m.

        Args:
            intrinsics: (B, N, 3, 3) of the original images.
            img_aug: (B, N, 4, 4) original pixel -> augmented pixel.
            cam2lidar: (B, N, 4, 4) camera -> LiDAR frame (LiDAR augmentation included).
            image_size: (H, W) of the augmented images.
            feature_size: (fH, fW) of the feature maps.

        Returns:
            (B, N, D, fH, fW, 3) x, y, z in the LiDAR frame.
        """
        device = intrinsics.device
        with torch.autocast(device_type=device.type, enabled=False):
            (image_h, image_w), (feat_h, feat_w) = image_size, feature_size
            u = (torch.arange(feat_w, device=device, dtype=torch.float32) + 0.5) * (image_w / feat_w) - 0.5
            v = (torch.arange(feat_h, device=device, dtype=torch.float32) + 0.5) * (image_h / feat_h) - 0.5
            depth = self.depth_values.float()
            num_bins = depth.shape[0]
            pixels = torch.stack(
                [
                    u.view(1, 1, feat_w).expand(num_bins, feat_h, feat_w),
                    v.view(1, feat_h, 1).expand(num_bins, feat_h, feat_w),
                    depth.view(num_bins, 1, 1).expand(num_bins, feat_h, feat_w),
                    torch.ones(num_bins, feat_h, feat_w, device=device),
                ],
                dim=-1,
            ).view(-1, 4)  # (D*fH*fW, 4) augmented [u', v', d, 1]
            original = torch.einsum("bnij,pj->bnpi", affine_inverse(img_aug.float()), pixels)  # (B, N, P, 4)
            depth_original = original[..., 2:3]
            scaled = torch.cat([original[..., :2] * depth_original, depth_original], dim=-1)  # [u d, v d, d]
            camera = torch.einsum("bnij,bnpj->bnpi", inverse_3x3(intrinsics.float()), scaled)
            cam2lidar = cam2lidar.float()
            lidar = torch.einsum("bnij,bnpj->bnpi", cam2lidar[..., :3, :3], camera) + cam2lidar[..., None, :3, 3]
        batch, num_cameras = intrinsics.shape[:2]
        return lidar.view(batch, num_cameras, num_bins, feat_h, feat_w, 3)

    def splat(self, frustum_features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Sum frustum features into the BEV cells their points fall in (BEV pooling).

        Accumulates in float32 with ``index_add_`` (a scatter-sum; exact on CPU,
        atomic on CUDA), then returns the features' dtype.

        Args:
            frustum_features: (B, ..., C) features, any layout between batch and channels.
            points: (B, ..., 3) matching LiDAR-frame positions.

        Returns:
            (B, C * Nz, Ny, Nx) pooled BEV map, channels grouped by z slice
            (slice-major), indexed [iy, ix] as docs/conventions.md says.
        """
        batch, channels = frustum_features.shape[0], frustum_features.shape[-1]
        num_z, num_y, num_x = self.pooled_shape
        features = frustum_features.reshape(batch, -1, channels)  # (B, P, C)
        points = points.reshape(batch, -1, 3)  # (B, P, 3)
        bounds = (self.config.xbound, self.config.ybound, self.config.zbound)
        lows = device_constant(tuple(bound[0] for bound in bounds), points.device, points.dtype)
        cells = device_constant(tuple(bound[2] for bound in bounds), points.device, points.dtype)
        index = torch.floor((points - lows) / cells).long()  # (B, P, 3) ix, iy, iz
        ix, iy, iz = index.unbind(-1)
        inside = (ix >= 0) & (ix < num_x) & (iy >= 0) & (iy < num_y) & (iz >= 0) & (iz < num_z)
        batch_index = torch.arange(batch, device=points.device).view(batch, 1).expand_as(ix)
        num_cells = batch * num_z * num_y * num_x
        flat_index = ((batch_index * num_z + iz) * num_y + iy) * num_x + ix  # (B, P)
        # Points outside the grid go to discard rows: no boolean gather, no host sync.
        flat_index = discard_index(flat_index, inside, num_cells)
        pooled = torch.zeros(num_cells + DISCARD_SLOTS, channels, device=features.device, dtype=torch.float32)
        pooled.index_add_(0, flat_index.flatten(), features.reshape(-1, channels).float())
        pooled = pooled[:num_cells].view(batch, num_z, num_y, num_x, channels)
        pooled = pooled.permute(0, 1, 4, 2, 3)  # (B, Nz, C, Ny, Nx)
        return pooled.reshape(batch, num_z * channels, num_y, num_x).to(features.dtype)

    def forward(
        self,
        features: torch.Tensor,
        intrinsics: torch.Tensor,
        img_aug: torch.Tensor,
        cam2lidar: torch.Tensor,
        image_size: tuple[int, int],
    ) -> torch.Tensor:
        """Lift, splat and downsample.

        Args:
            features: (B, N, C_in, fH, fW) camera features.
            intrinsics: (B, N, 3, 3) of the original images.
            img_aug: (B, N, 4, 4) original pixel -> augmented pixel.
            cam2lidar: (B, N, 4, 4) camera -> LiDAR frame.
            image_size: (H, W) of the images the features were computed from.

        Returns:
            (B, out_channels, Ny, Nx) camera BEV map.
        """
        frustum_features = self.lift(features)
        points = self.frustum_points(intrinsics, img_aug, cam2lidar, image_size, tuple(features.shape[-2:]))
        return self.downsample(self.splat(frustum_features, points))
