"""Class-balanced grouping and sampling over the labelled frames."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nsmae_lightning.data.cbgs import cbgs_indices
from nsmae_lightning.data.labelled_subset import RepeatedSubset

from test_labelled_subset import nuscenes_module

CAR, PEDESTRIAN, TRUCK = 0, 8, 1
# frame 0: two cars; 1: a car; 2: a car and a pedestrian; 3: no box; 4: a truck (not labelled)
LABELS = [np.array([CAR, CAR]), np.array([CAR]), np.array([CAR, PEDESTRIAN]), np.array([], dtype=int),
          np.array([TRUCK])]


def test_every_present_class_is_drawn_equally_from_labelled_frames_only() -> None:
    draws = cbgs_indices(LABELS.__getitem__, [0, 1, 2, 3], seed=0)
    # (frame, class) pairs: car in 0, 1, 2 and pedestrian in 2 -> 4 pairs, 2 classes -> 2 draws each,
    # cars from frames 0-2, pedestrians from frame 2; frame 3 (no box) and frame 4 (unlabelled) never.
    assert len(draws) == 4
    assert set(draws[:2]) <= {0, 1, 2} and draws[2:] == [2, 2]
    assert cbgs_indices(LABELS.__getitem__, [0, 1, 2, 3], seed=0) == draws  # seeded


def test_a_rare_class_is_drawn_as_often_as_a_common_one() -> None:
    labels = [np.array([CAR])] * 9 + [np.array([PEDESTRIAN])]
    draws = cbgs_indices(labels.__getitem__, range(10), seed=3)
    counts = Counter(labels[index][0] for index in draws)
    assert counts[CAR] == counts[PEDESTRIAN] == 5  # 10 pairs over 2 classes
    assert Counter(draws)[9] == 5  # the one pedestrian frame, five times


def test_no_boxes_in_the_labelled_frames_is_an_error() -> None:
    with pytest.raises(ValueError, match="none of the 1 labelled frames"):
        cbgs_indices(LABELS.__getitem__, [3], seed=0)


def test_datamodule_cbgs_draws_from_the_labelled_subset(tiny_world: Path) -> None:
    plain = nuscenes_module(tiny_world, label_ratio=0.5, split_seed=2)
    plain.setup("fit")
    module = nuscenes_module(tiny_world, label_ratio=0.5, split_seed=2, cbgs=True)
    module.setup("fit")
    dataset = module.train_dataset
    assert isinstance(dataset, RepeatedSubset)
    labelled = set(module.labelled_split.indices)
    assert set(dataset.indices) <= labelled
    expected = cbgs_indices(dataset.dataset.box_labels, module.labelled_split.indices, seed=2)
    assert dataset.indices == expected
    # the epoch grows with CBGS as the labelled frames did: full length x draws / labelled frames
    growth = len(expected) / len(labelled)
    assert len(dataset) == max(len(expected), round(len(plain.train_dataset) * growth))
