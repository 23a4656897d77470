"""NS-MAE in PyTorch Lightning: masked neural rendering pretraining for LiDAR-camera 3D perception."""

from nsmae_lightning import _spconv_cpu  # noqa: F401  (makes spconv's backward work without CUDA)

__version__ = "0.1.0"
