"""EmbeddingNetwork: the transferable part of the model (everything before the heads) and its configuration.

BEVFusion-shaped (paper Sec. III-C): camera encoder -> LSS view transform, LiDAR
voxelization -> sparse encoder, concat fuser, SECOND decoder. Pretraining learns it
with masked inputs; fine-tuning tasks load it as ``self.embedding``. The per-part
config dataclasses live beside their modules and are re-exported here, so a YAML
can set every number: ``embedding.camera.backbone``, ``embedding.lidar.voxel_size``, ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nsmae_lightning.models.bev_decoder import BEVDecoder, DecoderConfig
from nsmae_lightning.models.camera import CameraConfig, CameraEncoder
from nsmae_lightning.models.fuser import ConvFuser, FuserConfig
from nsmae_lightning.models.lidar import LidarConfig, LidarEncoder
from nsmae_lightning.models.masking import ImageMasker, VoxelMasker
from nsmae_lightning.models.view_transform import LSSViewTransform, ViewTransformConfig

__all__ = [
    "CameraConfig",
    "DecoderConfig",
    "EmbeddingConfig",
    "EmbeddingNetwork",
    "FuserConfig",
    "LidarConfig",
    "ViewTransformConfig",
]

MODALITIES: tuple[str, ...] = ("camera", "lidar")


@dataclass
class EmbeddingConfig:
    """Everything that shapes the embedding network.

    The camera BEV grid (view-transform bounds after downsampling) and the LiDAR BEV
    grid (point-cloud range after the sparse encoder's strides) must be the same
    grid, whatever the modalities: it defines ``pc_range`` / ``bev_shape`` for the heads.

    Attributes:
        camera: camera backbone and neck.
        view_transform: LSS depth bins and BEV grid.
        lidar: voxelization and sparse encoder.
        fuser: concat fuser.
        decoder: SECOND + SECONDFPN.
        modalities: which branches exist: any non-empty subset of ("camera", "lidar").
        num_cameras: cameras per sample (the batch's N axis).
    """

    camera: CameraConfig = field(default_factory=CameraConfig)
    view_transform: ViewTransformConfig = field(default_factory=ViewTransformConfig)
    lidar: LidarConfig = field(default_factory=LidarConfig)
    fuser: FuserConfig = field(default_factory=FuserConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES))
    num_cameras: int = 6

    def __post_init__(self) -> None:
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must not repeat, got {self.modalities}")
        pc_range, vt = self.lidar.pc_range, self.view_transform
        camera_range = (vt.xbound[0], vt.ybound[0], vt.xbound[1], vt.ybound[1])
        lidar_range = (pc_range[0], pc_range[1], pc_range[3], pc_range[4])
        lidar_shape = self.lidar.sparse_output_shape[1:]
        if not all(math.isclose(a, b) for a, b in zip(camera_range, lidar_range)) or vt.bev_shape != lidar_shape:
            raise ValueError(
                f"camera BEV grid (x/y bounds {camera_range}, shape {vt.bev_shape}) must equal the LiDAR BEV grid "
                f"(pc_range x/y {lidar_range}, shape {lidar_shape}): set view_transform.xbound/ybound/downsample "
                "to match lidar.pc_range/voxel_size"
            )
        cell_x, cell_y = ((pc_range[3] - pc_range[0]) / lidar_shape[1], (pc_range[4] - pc_range[1]) / lidar_shape[0])
        if not math.isclose(cell_x, cell_y):
            raise ValueError(f"BEV cells must be square, got {cell_x} x {cell_y} m")
        if any(side % self.decoder.total_stride for side in lidar_shape):
            stride = self.decoder.total_stride
            raise ValueError(f"BEV shape {lidar_shape} must be a multiple of the decoder stride {stride}")
        if self.num_cameras < 1:
            raise ValueError(f"num_cameras must be >= 1, got {self.num_cameras}")

    @classmethod
    def tiny(cls, modalities: list[str] | None = None, num_cameras: int = 2) -> EmbeddingConfig:
        """Test-sized network: tiny convs, 16 x 16 BEV cells of 1.6 m over +-12.8 m, 19 depth bins."""
        return cls(
            camera=CameraConfig(
                backbone="tiny", out_indices=(1, 2, 3), neck_out_channels=16, tiny_widths=(8, 8, 16, 16)
            ),
            view_transform=ViewTransformConfig(
                out_channels=8,
                dbound=(1.0, 20.0, 1.0),
                xbound=(-12.8, 12.8, 0.8),
                ybound=(-12.8, 12.8, 0.8),
                zbound=(-10.0, 10.0, 20.0),
                downsample=2,
            ),
            lidar=LidarConfig(
                pc_range=(-12.8, -12.8, -5.0, 12.8, 12.8, 3.0),
                voxel_size=(0.2, 0.2, 0.2),
                max_points_per_voxel=10,
                max_voxels_train=4000,
                max_voxels_test=6000,
                base_channels=4,
                encoder_channels=((4, 8), (8, 8), (8, 16), (16,)),
                downsample_paddings=((1, 1, 1), (1, 1, 1), (0, 1, 1)),
                output_channels=8,
            ),
            fuser=FuserConfig(out_channels=16),
            decoder=DecoderConfig(
                layer_nums=(1, 1),
                layer_strides=(1, 2),
                out_channels=(16, 32),
                upsample_strides=(1, 2),
                upsample_out_channels=(16, 16),
            ),
            modalities=list(modalities or MODALITIES),
            num_cameras=num_cameras,
        )

    @classmethod
    def paper_128x352(cls, modalities: list[str] | None = None) -> EmbeddingConfig:
        """The authors' pretraining network (SPEC / paper Sec. IV-A), 6 cameras.

        Swin-T (out_indices 1, 2, 3, random init) + LSS-FPN to 256 ch; LSS with 80 ch,
        depth 1..60 m at 0.5 m, +-54 m at 0.3 m downsampled 2x -> 180 x 180; sparse
        encoder on [1440, 1440, 41] -> 128 ch x 2 z = 256 ch; concat fuser to 256 ch;
        SECOND [5, 5] / [1, 2] / [128, 256] + FPN [1, 2] / [256, 256] -> 512 ch.
        """
        return cls(
            camera=CameraConfig(backbone="swin_t", out_indices=(1, 2, 3), neck_out_channels=256, drop_path_rate=0.2),
            view_transform=ViewTransformConfig(
                out_channels=80,
                dbound=(1.0, 60.0, 0.5),
                xbound=(-54.0, 54.0, 0.3),
                ybound=(-54.0, 54.0, 0.3),
                zbound=(-10.0, 10.0, 20.0),
                downsample=2,
            ),
            lidar=LidarConfig(
                pc_range=(-54.0, -54.0, -5.0, 54.0, 54.0, 3.0),
                voxel_size=(0.075, 0.075, 0.2),
                max_points_per_voxel=10,
                max_voxels_train=120000,
                max_voxels_test=160000,
                base_channels=16,
                encoder_channels=((16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128)),
                downsample_paddings=((1, 1, 1), (1, 1, 1), (0, 1, 1)),
                output_channels=128,
            ),
            fuser=FuserConfig(out_channels=256),
            decoder=DecoderConfig(
                layer_nums=(5, 5),
                layer_strides=(1, 2),
                out_channels=(128, 256),
                upsample_strides=(1, 2),
                upsample_out_channels=(256, 256),
            ),
            modalities=list(modalities or MODALITIES),
            num_cameras=6,
        )

    @classmethod
    def paper_256x704(cls, modalities: list[str] | None = None) -> EmbeddingConfig:
        """The 256x704 / 9-sweep setting: the same network as ``paper_128x352``.

        Image size is read from the batch (the frustum is built at run time), the
        sweep count is a data setting and the 8x8 mask patch a masker setting, so
        BEVFusion's two settings share one embedding network.
        """
        return cls.paper_128x352(modalities)


class EmbeddingNetwork(nn.Module):
    """Multi-modal BEV embedding: batch (docs/conventions.md) -> fused BEV embedding.

    Owns only network parameters; the maskers belong to the pretraining task and
    are passed to ``forward``.

    Args:
        config: network settings (defaults: the paper's).
    """

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else EmbeddingConfig()
        self.modalities = tuple(self.config.modalities)
        self.camera: CameraEncoder | None = None
        self.view_transform: LSSViewTransform | None = None
        self.lidar: LidarEncoder | None = None
        bev_channels = []
        if "camera" in self.modalities:
            self.camera = CameraEncoder(self.config.camera)
            self.view_transform = LSSViewTransform(self.camera.out_channels, self.config.view_transform)
            bev_channels.append(self.view_transform.out_channels)
        if "lidar" in self.modalities:
            self.lidar = LidarEncoder(self.config.lidar)
            bev_channels.append(self.lidar.out_channels)
        self.fuser = ConvFuser(bev_channels, self.config.fuser)
        self.decoder = BEVDecoder(self.fuser.out_channels, self.config.decoder)

    @property
    def out_channels(self) -> int:
        """Channels of ``bev``, the decoded embedding."""
        return self.decoder.out_channels

    @property
    def bev_shape(self) -> tuple[int, int]:
        """(Ny, Nx) of every BEV output."""
        return self.config.view_transform.bev_shape

    @property
    def pc_range(self) -> tuple[float, ...]:
        """(xmin, ymin, zmin, xmax, ymax, zmax) in metres, LiDAR frame."""
        return tuple(self.config.lidar.pc_range)

    @property
    def bev_cell(self) -> float:
        """Metres per BEV cell (square cells)."""
        return (self.pc_range[3] - self.pc_range[0]) / self.bev_shape[1]

    @property
    def voxel_size(self) -> tuple[float, ...]:
        """(dx, dy, dz) LiDAR voxel size in metres."""
        return tuple(self.config.lidar.voxel_size)

    @property
    def num_cameras(self) -> int:
        """Cameras per sample."""
        return self.config.num_cameras

    def geometry(self) -> dict[str, Any]:
        """What a checkpoint must share with this network to be loadable (plain lists, YAML/JSON-safe)."""
        return {
            "pc_range": [float(v) for v in self.pc_range],
            "voxel_size": [float(v) for v in self.voxel_size],
            "num_cameras": self.num_cameras,
            "bev_shape": list(self.bev_shape),
        }

    def _camera_bev(
        self, batch: dict[str, Any], image_masker: ImageMasker | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Masked (if asked) images -> camera BEV map, and the image mask used."""
        images = _require(batch, "images")
        if images.dim() != 5 or images.shape[1] != self.num_cameras or images.shape[2] != 3:
            raise ValueError(
                f"batch['images'] must be (B, {self.num_cameras}, 3, H, W), got {tuple(images.shape)}"
            )
        image_mask = None
        if image_masker is not None:
            images, image_mask = image_masker(images)
        batch_size, num_cameras = images.shape[:2]
        features = self.camera(images.flatten(0, 1))  # (B*N, C, fH, fW)
        features = features.view(batch_size, num_cameras, *features.shape[1:])  # (B, N, C, fH, fW)
        camera_bev = self.view_transform(
            features,
            _require(batch, "intrinsics"),
            _require(batch, "img_aug"),
            _require(batch, "cam2lidar"),
            (images.shape[-2], images.shape[-1]),
        )
        return camera_bev, image_mask

    def _lidar_bev(
        self, batch: dict[str, Any], voxel_masker: VoxelMasker | None
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor] | None]:
        """Voxelize, mask (if asked) and encode the point clouds; also return voxel coords and keep masks."""
        points = _require(batch, "points")
        voxels = self.lidar.voxelize(points)  # the whole batch at once
        features, coords = voxels.features, voxels.coords
        voxel_coords = list(coords[:, 1:].split(voxels.counts))
        voxel_keep = None
        if voxel_masker is not None:
            keep = voxel_masker.keep_mask(self.lidar.voxel_centers(coords[:, 1:]), coords[:, 0], len(points))
            voxel_keep = list(keep.split(voxels.counts))
            kept = keep.nonzero().flatten()
            features, coords = features[kept], coords[kept]
        return self.lidar(features, coords, len(points)), voxel_coords, voxel_keep

    def forward(
        self,
        batch: dict[str, Any],
        image_masker: ImageMasker | None = None,
        voxel_masker: VoxelMasker | None = None,
    ) -> dict[str, Any]:
        """Embed a batch; the batch itself is never modified.

        Args:
            batch: the batch of docs/conventions.md (``images``, ``intrinsics``,
                ``img_aug``, ``cam2lidar`` for the camera; ``points`` for the LiDAR).
            image_masker: masks image patches before the camera encoder (pretraining).
            voxel_masker: drops voxels before the sparse encoder (pretraining).

        Returns:
            ``bev`` (B, out_channels, Ny, Nx) decoded embedding; ``fused`` (B, C_fuser, Ny, Nx)
            fuser output; ``camera_bev`` / ``lidar_bev`` per-modality BEV maps (None when
            the modality is off); ``image_mask`` (B, N, H/s, W/s) bool, True = masked (None
            without an image masker); ``voxel_coords`` list of (V_i, 3) (z, y, x) non-empty
            voxels before masking (None without LiDAR); ``voxel_keep`` list of (V_i,) bool,
            True = kept (None without a voxel masker).
        """
        outputs: dict[str, Any] = {
            "camera_bev": None,
            "lidar_bev": None,
            "image_mask": None,
            "voxel_coords": None,
            "voxel_keep": None,
        }
        # LiDAR first: voxelization and the sparse convolutions' index building wait on the device, which
        # then has only the LiDAR work queued, not the camera backbone as well
        if self.lidar is not None:
            outputs["lidar_bev"], outputs["voxel_coords"], outputs["voxel_keep"] = self._lidar_bev(batch, voxel_masker)
        if self.camera is not None:
            outputs["camera_bev"], outputs["image_mask"] = self._camera_bev(batch, image_masker)
        bev_maps = [outputs[name] for name in ("camera_bev", "lidar_bev") if outputs[name] is not None]  # fuser order
        outputs["fused"] = self.fuser(bev_maps)
        outputs["bev"] = self.decoder(outputs["fused"])
        return outputs


def _require(batch: dict[str, Any], key: str) -> Any:
    """``batch[key]``, or a ValueError naming the missing key."""
    if key not in batch:
        raise ValueError(f"batch has no {key!r} (keys: {sorted(batch)}); see docs/conventions.md")
    return batch[key]
