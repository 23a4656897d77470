"""Plain-torch networks (no Lightning here): the embedding network, its parts, masking, and heads."""

from nsmae_lightning.models.embedding import (
    CameraConfig,
    DecoderConfig,
    EmbeddingConfig,
    EmbeddingNetwork,
    FuserConfig,
    LidarConfig,
    ViewTransformConfig,
)
from nsmae_lightning.models.masking import ImageMasker, VoxelMasker

__all__ = [
    "CameraConfig",
    "DecoderConfig",
    "EmbeddingConfig",
    "EmbeddingNetwork",
    "FuserConfig",
    "ImageMasker",
    "LidarConfig",
    "ViewTransformConfig",
    "VoxelMasker",
]
