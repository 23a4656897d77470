"""Class-balanced grouping and sampling (CBGS, Zhu et al. 2019) over the labelled frames.

CBGS resamples the training frames so that every class appears in about the same
number of them: each class keeps a list of the frames that contain it, and each list
is resampled (with replacement) to ``len(list) * target / share`` frames, where
``share`` is the class's fraction of all (frame, class) pairs and ``target`` is one
over the number of classes. Frames with several classes appear once per list they
are drawn into; frames without boxes drop out.

Built from the labelled subset only: in a label-efficient run the unlabelled frames'
boxes are unknown, so neither which frames contain a class nor the class shares may
come from them. Classes absent from the labelled frames are left out of the target
(their share is 0). The draw is seeded (the split seed), so every rank and every
rerun gets the same list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def cbgs_indices(labels_of: Callable[[int], np.ndarray], indices: Sequence[int], seed: int) -> list[int]:
    """The CBGS-resampled frame list of the labelled frames ``indices``.

    Args:
        labels_of: class ids of the boxes of a frame, by its position in the training split
            (read without the sensor data; called for the labelled frames only).
        indices: positions of the labelled frames.
        seed: seed of the draw.

    Returns:
        Frame positions (with repeats), grouped by class in class-id order.

    Raises:
        ValueError: when no labelled frame has a box (nothing to balance).
    """
    frames_of_class: dict[int, list[int]] = {}
    for index in indices:
        for label in sorted({int(label) for label in np.asarray(labels_of(index)).reshape(-1)}):
            frames_of_class.setdefault(label, []).append(int(index))
    if not frames_of_class:
        raise ValueError(f"CBGS needs boxes, but none of the {len(indices)} labelled frames has one")
    pairs = sum(len(frames) for frames in frames_of_class.values())
    # len(frames) * target / share with share = len(frames) / pairs: the same count for every class
    count = pairs // len(frames_of_class)
    generator = np.random.default_rng(seed)
    resampled: list[int] = []
    for label in sorted(frames_of_class):
        resampled += generator.choice(frames_of_class[label], size=count, replace=True).tolist()
    return resampled
