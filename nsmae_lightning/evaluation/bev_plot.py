"""Side-by-side pictures of BEV map ground truth and predictions, for eyeballing a run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import Tensor

from nsmae_lightning.atomic import atomic_savefig
from nsmae_lightning.constants import MAP_BOUND, MAP_CLASSES

# One fixed RGB colour per map class (MAP_CLASSES order); later classes are painted over earlier ones.
CLASS_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.65, 0.80, 0.89),  # drivable_area: light blue
    (0.89, 0.10, 0.11),  # ped_crossing: red
    (0.20, 0.63, 0.17),  # walkway: green
    (1.00, 0.50, 0.00),  # stop_line: orange
    (0.42, 0.24, 0.60),  # carpark_area: purple
    (0.15, 0.15, 0.15),  # divider: near black
)
BACKGROUND = (1.0, 1.0, 1.0)


def paint_masks(masks: np.ndarray, colours: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """Turn (C, H, W) bool masks into an (H, W, 3) RGB image, class c painted over classes < c."""
    image = np.empty((*masks.shape[1:], 3), dtype=np.float32)
    image[:] = BACKGROUND
    for class_mask, colour in zip(masks, colours):
        image[class_mask] = colour
    return image


def plot_bev_predictions(
    probs: Tensor,
    targets: Tensor,
    path: str | Path,
    max_frames: int = 4,
    threshold: float = 0.5,
    classes: Sequence[str] = MAP_CLASSES,
    map_bound: float = MAP_BOUND,
) -> Path:
    """Write a PNG with one row per frame: ground truth on the left, prediction on the right.

    The map is drawn as seen from above with +x to the right and +y (forward in
    the LiDAR frame) up. The file appears atomically, so a reader never sees a
    half-written picture.

    Args:
        probs: (B, C, H, W) class probabilities.
        targets: (B, C, H, W) bool ground truth.
        path: where to write the PNG (parent folders are created).
        max_frames: draw at most this many frames (the first ones).
        threshold: probability at which a pixel is drawn as the class.
        classes: class names in channel order (at most one per palette colour).
        map_bound: the map spans [-map_bound, map_bound] m, for the axis ticks.

    Returns:
        The path written.
    """
    if probs.dim() != 4 or probs.shape != targets.shape:
        raise ValueError(f"probs and targets must both be (B, C, H, W), got {tuple(probs.shape)} and {tuple(targets.shape)}")
    if probs.shape[1] != len(classes) or len(classes) > len(CLASS_COLOURS):
        raise ValueError(
            f"need one class name per channel (at most {len(CLASS_COLOURS)}), got {len(classes)} names "
            f"for {probs.shape[1]} channels"
        )
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    frames = min(max_frames, probs.shape[0])
    predicted = (probs[:frames].detach().float() >= threshold).cpu().numpy()
    truth = targets[:frames].detach().to(torch.bool).cpu().numpy()
    colours = CLASS_COLOURS[: len(classes)]

    figure = Figure(figsize=(7.0, 3.3 * frames + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(frames, 2, squeeze=False)
    extent = (-map_bound, map_bound, -map_bound, map_bound)
    for row in range(frames):
        for column, (title, masks) in enumerate((("target", truth[row]), (f"prediction (p >= {threshold:g})", predicted[row]))):
            axis = axes[row, column]
            # Row iy = 0 is the smallest y, so origin="lower" puts +y up.
            axis.imshow(paint_masks(masks, colours), origin="lower", extent=extent, interpolation="nearest")
            axis.set_title(f"frame {row}: {title}", fontsize=9)
            axis.set_xlabel("x [m]", fontsize=8)
            axis.set_ylabel("y [m]", fontsize=8)
            axis.tick_params(labelsize=7)
    handles = [Patch(facecolor=colour, edgecolor="grey", label=name) for name, colour in zip(classes, colours)]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)

    return atomic_savefig(figure, path)
