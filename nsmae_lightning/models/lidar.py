"""LiDAR encoder: on-device voxelization and BEVFusion's spconv SparseEncoder.

Voxelization is plain torch (sort/unique on the device, no CPU round trip): each
non-empty voxel keeps the first ``max_points_per_voxel`` of its points in input
order, the voxel feature is their mean (HardSimpleVFE), and when more than
``max_voxels`` voxels are non-empty the voxels first hit by the point order are
kept, as hard voxelization does. Voxel coordinates are (z, y, x), so spconv's
``dense()`` yields (B, C, Z', Ny, Nx), flattened to (B, C * Z', Ny, Nx) in the BEV
layout of docs/conventions.md.

Mixed precision: spconv 2.3 has no bfloat16 kernels, its training path force-casts
to float16 while its inference path calls the kernels with the float32 weights
unchanged. The sparse encoder therefore runs in float32 with autocast switched off
(features cast to float32 first), and its dense output is cast to the autocast
dtype, so every caller sees one dtype and no Half/Float mismatch can occur.
float32 is not slow: like PyTorch's dense convolutions (``torch.backends.cudnn.allow_tf32``,
on by default) spconv may use TF32 tensor cores, and the encoder mirrors that flag into
spconv's own switch (off by default there, leaving the H200 on SIMT kernels: the sparse
convs were ~75 % of a detection step's GPU time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import spconv.pytorch as spconv
from spconv import constants as spconv_constants
import torch
from torch import nn

from nsmae_lightning.constants import PC_RANGE_NUSCENES, VOXEL_SIZE_NUSCENES
from nsmae_lightning.models.device_constants import device_constant
from nsmae_lightning.models.discard import DISCARD_SLOTS, discard_index
from nsmae_lightning.models.group_ranks import ranks_in_groups


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Length of one axis after a convolution."""
    return (size + 2 * padding - kernel) // stride + 1


@dataclass
class LidarConfig:
    """Settings of voxelization and the sparse encoder.

    Attributes:
        pc_range: (xmin, ymin, zmin, xmax, ymax, zmax) in metres, LiDAR frame.
        voxel_size: (dx, dy, dz) in metres (paper: 0.075, 0.075, 0.2).
        point_features: leading point columns used as voxel features (5 = x, y, z, intensity, dt).
        max_points_per_voxel: points averaged per voxel (BEVFusion: 10).
        max_voxels_train: voxel cap per sample in training (BEVFusion: 120000).
        max_voxels_test: voxel cap per sample in evaluation (BEVFusion: 160000).
        base_channels: channels of the input submanifold conv.
        encoder_channels: per stage, the channels of its blocks; in every stage but the
            last the final entry is a stride-2 sparse conv, the others are residual
            blocks keeping the stage's input width (BEVFusion:
            ((16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128))).
        downsample_paddings: (z, y, x) padding of each stride-2 conv (BEVFusion:
            ((1, 1, 1), (1, 1, 1), (0, 1, 1))).
        output_channels: channels of the final z-strided conv (paper: 128; x 2 z = 256).

    The sparse grid is (Nz + 1, Ny, Nx) with (Nx, Ny, Nz) = range / voxel size: SECOND's
    extra z layer, giving the paper's [1440, 1440, 41] and two output z slices.
    """

    pc_range: tuple[float, float, float, float, float, float] = PC_RANGE_NUSCENES
    voxel_size: tuple[float, float, float] = VOXEL_SIZE_NUSCENES
    point_features: int = 5
    max_points_per_voxel: int = 10
    max_voxels_train: int = 120000
    max_voxels_test: int = 160000
    base_channels: int = 16
    encoder_channels: tuple[tuple[int, ...], ...] = ((16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128))
    downsample_paddings: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (1, 1, 1), (0, 1, 1))
    output_channels: int = 128

    def __post_init__(self) -> None:
        if len(self.pc_range) != 6 or len(self.voxel_size) != 3:
            raise ValueError(f"lidar.pc_range needs 6 numbers and voxel_size 3, got {self.pc_range}, {self.voxel_size}")
        for axis in range(3):
            cells = (self.pc_range[axis + 3] - self.pc_range[axis]) / self.voxel_size[axis]
            if cells < 1 or abs(cells - round(cells)) > 1e-4:
                raise ValueError(
                    f"lidar.pc_range {self.pc_range} must span a whole number of voxels of "
                    f"{self.voxel_size} on axis {axis}"
                )
        if len(self.downsample_paddings) != len(self.encoder_channels) - 1:
            raise ValueError("lidar.downsample_paddings needs one (z, y, x) padding per stage but the last")
        width = self.base_channels
        for stage, blocks in enumerate(self.encoder_channels):
            residual = blocks if stage == len(self.encoder_channels) - 1 else blocks[:-1]
            if any(channels != width for channels in residual):
                raise ValueError(
                    f"lidar.encoder_channels stage {stage} {blocks}: residual blocks must keep the stage width {width}"
                )
            width = blocks[-1]
        if self.sparse_output_shape[0] < 1:
            z_range = f"{self.pc_range[2]}..{self.pc_range[5]}"
            raise ValueError(f"lidar z range {z_range} is too thin for the encoder strides")

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """(Nx, Ny, Nz) voxels over the point-cloud range."""
        return tuple(round((self.pc_range[a + 3] - self.pc_range[a]) / self.voxel_size[a]) for a in range(3))

    @property
    def sparse_shape(self) -> tuple[int, int, int]:
        """(Z, Y, X) spatial shape handed to spconv (one extra z layer)."""
        nx, ny, nz = self.grid_size
        return nz + 1, ny, nx

    @property
    def sparse_output_shape(self) -> tuple[int, int, int]:
        """(Z', Ny, Nx) after the encoder's stride-2 convs and the final z-strided conv."""
        shape = list(self.sparse_shape)
        for padding in self.downsample_paddings:
            shape = [conv_output_size(s, 3, 2, p) for s, p in zip(shape, padding)]
        return conv_output_size(shape[0], 3, 2, 0), shape[1], shape[2]

    @property
    def out_channels(self) -> int:
        """Channels of the LiDAR BEV map: output_channels x Z'."""
        return self.output_channels * self.sparse_output_shape[0]


@dataclass
class Voxels:
    """Non-empty voxels of one point cloud.

    Attributes:
        features: (V, F) mean of the voxel's points.
        coords: (V, 3) int64 (z, y, x) voxel indices.
    """

    features: torch.Tensor
    coords: torch.Tensor


@dataclass
class BatchVoxels:
    """Non-empty voxels of a batch of point clouds, sample by sample.

    Attributes:
        features: (V, F) mean of each voxel's points.
        coords: (V, 4) int64 (sample, z, y, x) voxel indices, samples in order.
        counts: voxels of each sample (host ints; they sum to V).
    """

    features: torch.Tensor
    coords: torch.Tensor
    counts: list[int]


def voxelize(points: torch.Tensor, config: LidarConfig, max_voxels: int) -> Voxels:
    """One point cloud's voxels (`voxelize_batch` of a batch of one)."""
    voxels = voxelize_batch([points], config, max_voxels)
    return Voxels(voxels.features, voxels.coords[:, 1:])


def voxelize_batch(clouds: Sequence[torch.Tensor], config: LidarConfig, max_voxels: int) -> BatchVoxels:
    """Group every cloud's points into voxels on their device; mean of up to ``max_points_per_voxel`` per voxel.

    The batch is voxelized at once (the voxel key carries the sample), so the host waits on the device
    twice per batch (`unique`'s size and the per-sample counts), not twice per cloud.

    Args:
        clouds: per sample a (P_i, >= point_features) float point cloud, x, y, z first, all on one device.
        config: LiDAR settings (range, voxel size, caps).
        max_voxels: per sample at most this many voxels, those first reached in its point order.

    Returns:
        BatchVoxels with (V, point_features) features, (V, 4) (sample, z, y, x) coordinates and the
        per-sample counts; each sample's voxels in the order its points first reach them.
    """
    for index, points in enumerate(clouds):
        if points.dim() != 2 or points.shape[1] < config.point_features:
            raise ValueError(f"points[{index}] must be (P, >= {config.point_features}), got {tuple(points.shape)}")
    num_samples = len(clouds)
    sizes = [points.shape[0] for points in clouds]
    points = torch.cat([cloud[:, : config.point_features].float() for cloud in clouds])
    device = points.device
    num_points = points.shape[0]
    # each point's sample, filled on the device (a tensor of the sizes would be a host-to-device copy)
    sample = torch.cat([torch.full((count,), index, device=device, dtype=torch.long)
                        for index, count in enumerate(sizes)])
    low = device_constant(config.pc_range[:3], device, points.dtype)
    size = device_constant(config.voxel_size, device, points.dtype)
    grid = device_constant(config.grid_size, device)
    xyz_index = torch.floor((points[:, :3] - low) / size).long()  # (P, 3) ix, iy, iz
    inside = ((xyz_index >= 0) & (xyz_index < grid)).all(dim=1)
    nx, ny, nz = config.grid_size  # Python ints, not device scalars
    cells = nx * ny * nz
    # points outside the range share one key past every sample's (no selection: it would wait)
    key = ((sample * nz + xyz_index[:, 2]) * ny + xyz_index[:, 1]) * nx + xyz_index[:, 0]
    key = torch.where(inside, key, num_samples * cells)
    unique_keys, voxel_of_point, points_per_voxel = torch.unique(key, return_inverse=True, return_counts=True)
    num_voxels = unique_keys.shape[0]
    voxel_sample = unique_keys // cells  # (U,) num_samples for the outside key (the last, if any)
    # Rank of each point inside its voxel, in input order (stable sort by voxel).
    rank = ranks_in_groups(torch.argsort(voxel_of_point, stable=True), voxel_of_point, points_per_voxel)
    first_point = torch.full((num_voxels,), num_points, device=device, dtype=torch.long)
    first_point.scatter_reduce_(0, voxel_of_point, torch.arange(num_points, device=device), reduce="amin")
    # Voxels in point order: sample by sample (clouds are concatenated in order), each in first-reached order,
    # the outside key last; a sample keeps its first max_voxels. Renumbered 0..V-1 in that order.
    first_point = torch.where(voxel_sample < num_samples, first_point, num_points)
    by_first = torch.argsort(first_point)
    per_sample = torch.zeros(num_samples + 1, device=device, dtype=torch.long)
    per_sample.index_add_(0, voxel_sample, torch.ones_like(voxel_sample))
    kept = (ranks_in_groups(by_first, voxel_sample, per_sample) < max_voxels) & (voxel_sample < num_samples)
    counts = per_sample[:num_samples].clamp(max=max_voxels).tolist()  # the one wait for the sizes
    # kept voxels first (stable: in order), then cut to their number
    kept_voxels = by_first[torch.argsort((~kept[by_first]).to(torch.uint8), stable=True)[: sum(counts)]]
    new_id = torch.full((num_voxels,), -1, device=device, dtype=torch.long)
    new_id[kept_voxels] = torch.arange(kept_voxels.shape[0], device=device)
    point_voxel = new_id[voxel_of_point]
    used = (point_voxel >= 0) & (rank < config.max_points_per_voxel)
    # Unused points go to discard rows instead of being selected out: boolean selection and
    # bincount each wait for the GPU.
    voxels = kept_voxels.shape[0]
    target = discard_index(point_voxel, used, voxels)
    sums = points.new_zeros(voxels + DISCARD_SLOTS, config.point_features).index_add_(0, target, points)[:voxels]
    point_counts = points.new_zeros(voxels + DISCARD_SLOTS).index_add_(0, target, torch.ones_like(points[:, 0]))
    point_counts = point_counts[:voxels].clamp(min=1)
    keys = unique_keys[kept_voxels]
    coords = torch.stack([keys // cells, (keys // (nx * ny)) % nz, (keys // nx) % ny, keys % nx], dim=1)
    return BatchVoxels(sums / point_counts.unsqueeze(1), coords, counts)


def voxel_centers(coords: torch.Tensor, config: LidarConfig) -> torch.Tensor:
    """(V, 3) (z, y, x) voxel indices -> (V, 3) x, y, z voxel centres in metres."""
    xyz_index = coords.flip(-1).float()
    low = device_constant(config.pc_range[:3], xyz_index.device, xyz_index.dtype)
    size = device_constant(config.voxel_size, xyz_index.device, xyz_index.dtype)
    return low + (xyz_index + 0.5) * size


def _sparse_bn_relu(channels: int) -> list[nn.Module]:
    """BatchNorm1d (SECOND's eps 1e-3, momentum 0.01) + ReLU over sparse features."""
    return [nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01), nn.ReLU(inplace=True)]


class SparseBasicBlock(spconv.SparseModule):
    """Residual block of two submanifold 3x3x3 convs keeping the channel count.

    Args:
        channels: input = output channels.
        indice_key: spconv key to share the rulebook with the stage's other submanifold convs.
    """

    def __init__(self, channels: int, indice_key: str) -> None:
        super().__init__()
        self.conv1 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=indice_key)
        self.bn1 = nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)
        self.conv2 = spconv.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=indice_key)
        self.bn2 = nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: spconv.SparseConvTensor) -> spconv.SparseConvTensor:
        """conv-bn-relu-conv-bn + identity, relu."""
        identity = x.features
        out = self.conv1(x)
        out = out.replace_feature(self.relu(self.bn1(out.features)))
        out = self.conv2(out)
        return out.replace_feature(self.relu(self.bn2(out.features) + identity))


class SparseEncoder(nn.Module):
    """BEVFusion's SparseEncoder: submanifold stem, residual stages with stride-2 sparse convs, z-strided output.

    Args:
        config: LiDAR settings.
    """

    def __init__(self, config: LidarConfig) -> None:
        super().__init__()
        self.sparse_shape = list(config.sparse_shape)
        self.conv_input = spconv.SparseSequential(
            spconv.SubMConv3d(
                config.point_features, config.base_channels, 3, padding=1, bias=False, indice_key="subm0"
            ),
            *_sparse_bn_relu(config.base_channels),
        )
        stages = []
        width = config.base_channels
        last_stage = len(config.encoder_channels) - 1
        for stage, blocks in enumerate(config.encoder_channels):
            layers: list[nn.Module] = []
            residual = blocks if stage == last_stage else blocks[:-1]
            layers += [SparseBasicBlock(width, indice_key=f"subm{stage}") for _ in residual]
            if stage != last_stage:
                layers += [
                    spconv.SparseConv3d(
                        width, blocks[-1], 3, stride=2, padding=config.downsample_paddings[stage], bias=False
                    ),
                    *_sparse_bn_relu(blocks[-1]),
                ]
                width = blocks[-1]
            stages.append(spconv.SparseSequential(*layers))
        self.encoder_layers = nn.ModuleList(stages)
        self.conv_out = spconv.SparseSequential(
            spconv.SparseConv3d(width, config.output_channels, (3, 1, 1), stride=(2, 1, 1), padding=0, bias=False),
            *_sparse_bn_relu(config.output_channels),
        )

    def encode(self, features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> spconv.SparseConvTensor:
        """Run the sparse convs.

        Args:
            features: (V, F) float32 voxel features of the whole batch.
            coords: (V, 4) int32 (batch, z, y, x).
            batch_size: number of samples.

        Returns:
            The output sparse tensor, spatial shape (Z', Ny, Nx).
        """
        x = spconv.SparseConvTensor(features, coords, self.sparse_shape, batch_size)
        x = self.conv_input(x)
        for stage in self.encoder_layers:
            x = stage(x)
        return self.conv_out(x)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Sparse voxels -> (B, C * Z', Ny, Nx) dense BEV map (channel-major over z, like BEVFusion)."""
        dense = self.encode(features, coords, batch_size).dense()  # (B, C, Z', Ny, Nx)
        return dense.flatten(1, 2)


class LidarEncoder(nn.Module):
    """Voxelize point clouds on their device and encode them to a BEV map.

    Args:
        config: LiDAR settings.
    """

    def __init__(self, config: LidarConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SparseEncoder(config)
        self.out_channels = config.out_channels
        _, self.bev_height, self.bev_width = config.sparse_output_shape

    def voxelize(self, clouds: Sequence[torch.Tensor]) -> BatchVoxels:
        """A batch of (P_i, >= F) point clouds -> their non-empty voxels (cap by train/eval mode)."""
        max_voxels = self.config.max_voxels_train if self.training else self.config.max_voxels_test
        return voxelize_batch(clouds, self.config, max_voxels)

    def voxel_centers(self, coords: torch.Tensor) -> torch.Tensor:
        """(V, 3) x, y, z centres in metres of voxels at (V, 3) (z, y, x) indices."""
        return voxel_centers(coords, self.config)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Encode a batch of voxels.

        Args:
            features: (V, F) voxel features of the whole batch (possibly masked, possibly none).
            coords: (V, 4) (sample, z, y, x) voxel indices.
            batch_size: number of samples.

        Returns:
            (B, out_channels, Ny, Nx) LiDAR BEV map in the autocast dtype when autocast is
            on (float32 otherwise); all zeros when the batch has no voxel at all.
        """
        device = features.device
        out_dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else torch.float32
        if coords.shape[0] == 0:
            return torch.zeros(
                batch_size, self.out_channels, self.bev_height, self.bev_width, device=device, dtype=out_dtype
            )
        features, coords = features.float(), coords.int()
        # Process-wide, and read again by the backward kernels, so it is set rather than scoped.
        spconv_constants.SPCONV_ALLOW_TF32 = torch.backends.cudnn.allow_tf32
        with torch.autocast(device_type=device.type, enabled=False):
            bev = self.encoder(features, coords, batch_size)
        return bev.to(out_dtype)
