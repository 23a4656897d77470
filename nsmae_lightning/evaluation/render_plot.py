"""Picture of what the render network has learned: rendered vs target RGB and depth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from nsmae_lightning.atomic import atomic_savefig


def _depth_panel(depth: torch.Tensor, vmax: float) -> np.ndarray:
    """Depth image with missing targets (0) shown as NaN (white)."""
    array = depth.detach().float().cpu().numpy().copy()
    array[array <= 0] = np.nan
    return np.clip(array, 0, vmax)


def plot_render_grid(views: list[dict[str, torch.Tensor]], path: str | Path, title: str = "") -> Path:
    """Write a PNG grid, one row per frame: PER RGB rendered/target, PER depth rendered/target, BEV depth rendered/target.

    Args:
        views: outputs of ``NeRFPretrainHead.render_views`` (one per frame).
        path: PNG to write (atomically).
        title: figure title (e.g. the epoch).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [
        ("per_rgb", "PER colour (rendered)"),
        ("per_rgb_target", "PER colour (target)"),
        ("per_depth", "PER depth (rendered)"),
        ("per_depth_target", "PER depth (LiDAR)"),
        ("bev_depth", "BEV depth (rendered)"),
        ("bev_depth_target", "BEV depth (LiDAR)"),
    ]
    figure, axes = plt.subplots(len(views), len(columns), figsize=(3.2 * len(columns), 2.4 * len(views)), squeeze=False)
    for row, view in enumerate(views):
        per_max = float(view["per_depth_target"].max().clamp(min=1.0))
        bev_max = float(view["bev_depth_target"].max().clamp(min=1.0))
        for column, (key, label) in enumerate(columns):
            axis = axes[row, column]
            image = view[key]
            if key.startswith("per_rgb"):
                axis.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            elif key.startswith("per_depth"):
                axis.imshow(_depth_panel(image, per_max), cmap="turbo", vmin=0, vmax=per_max)
            else:
                axis.imshow(_depth_panel(image, bev_max), cmap="viridis", vmin=0, vmax=bev_max, origin="lower")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(label, fontsize=9)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    atomic_savefig(figure, path, dpi=90)
    plt.close(figure)
    return path
