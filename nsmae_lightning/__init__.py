"""NS-MAE in PyTorch Lightning: masked neural rendering pretraining for LiDAR-camera 3D perception."""

# Lightning before anything that imports the nuscenes devkit: when the devkit is imported first,
# typing's cache hands Lightning's Trainer a float-first Union for `limit_*_batches`, and
# LightningCLI then reads `--trainer.limit_test_batches=1` as 1.0 (every batch, not one).
import lightning.pytorch  # noqa: F401, I001

from nsmae_lightning import _spconv_cpu  # noqa: F401, E402  (makes spconv's backward work without CUDA)

__version__ = "0.1.0"
