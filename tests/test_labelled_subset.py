"""Label-ratio subsets inside the DataModules: which frames train, how often, and the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nsmae_lightning.data import KittiDataModule, NuScenesDataModule
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.labelled_subset import (
    MANIFEST_NAME,
    FrameKey,
    RepeatedSubset,
    choose_labelled,
    save_labelled_split,
)
from nsmae_lightning.data.splits import select_labelled, tokens_sha256, write_manifest


def nuscenes_module(root: Path, **overrides: Any) -> NuScenesDataModule:
    settings: dict[str, Any] = dict(sweeps=0, image_size=(64, 176), batch_size=2, num_workers=0, load_images=False,
                                    load_bev_masks=False, augment=False)
    settings.update(overrides)
    return NuScenesDataModule(str(root), **settings)


def test_repeated_subset_cycles_the_chosen_items() -> None:
    subset = RepeatedSubset(list("abcdef"), [1, 4], length=5)
    assert [subset[i] for i in range(len(subset))] == ["b", "e", "b", "e", "b"]
    with pytest.raises(IndexError):
        subset[5]
    with pytest.raises(ValueError, match="shorter"):
        RepeatedSubset(list("abc"), [0, 1], length=1)
    with pytest.raises(ValueError, match="at least one"):
        RepeatedSubset(list("abc"), [], length=3)


def test_choose_labelled_maps_tokens_to_dataset_positions() -> None:
    keys = [FrameKey(f"t{index}", f"s{index // 5}", 100 - index) for index in range(20)]  # time runs backwards
    split = choose_labelled(keys, 0.25, split_seed=3, split_by="frame")
    assert split.tokens == select_labelled([key.token for key in keys], 0.25, 3)
    assert [keys[index].token for index in split.indices] == sorted(split.tokens, key=lambda t: int(t[1:]))
    interval = choose_labelled(keys, 0.25, split_seed=3, split_by="interval")
    assert interval.tokens == sorted(["t19", "t15", "t11", "t7", "t3"])  # every 4th from the earliest (t19)
    with pytest.raises(ValueError, match="needs scenes"):
        choose_labelled([FrameKey("a", "", 0), FrameKey("b", "", 1)], 0.5, 0, "scene")


def test_fit_at_ratio_trains_on_the_subset_with_full_length(tiny_world: Path) -> None:
    full = nuscenes_module(tiny_world)
    full.setup("fit")
    all_tokens = [key.token for key in full.train_dataset.frame_keys()]
    half = nuscenes_module(tiny_world, label_ratio=0.5, split_seed=1)
    half.setup("fit")
    assert len(half.train_dataset) == len(all_tokens)  # same steps per epoch as 100 %
    served = [half.train_dataset[index]["meta"]["sample_token"] for index in range(len(half.train_dataset))]
    expected = select_labelled(all_tokens, 0.5, 1)
    assert sorted(set(served)) == expected and len(expected) == len(all_tokens) // 2
    assert all(served.count(token) == 2 for token in expected)  # each labelled frame twice per epoch
    val_tokens = {key.token for key in half.val_dataset.frame_keys()}
    assert not val_tokens & set(served)
    no_repeat = nuscenes_module(tiny_world, label_ratio=0.5, split_seed=1, repeat_labelled=False)
    no_repeat.setup("fit")
    assert len(no_repeat.train_dataset) == len(expected)


def test_manifest_goes_to_the_run_folder_and_pins_a_later_run(tiny_world: Path, tmp_path: Path) -> None:
    first = nuscenes_module(tiny_world, label_ratio=0.5, split_seed=4)
    first.trainer = SimpleNamespace(global_rank=0, is_global_zero=True, log_dir=str(tmp_path / "version_0"))
    first.setup("fit")
    manifest = tmp_path / "version_0" / MANIFEST_NAME
    record = json.loads(manifest.read_text())
    assert record["tokens"] == first.labelled_split.tokens
    assert record["sha256"] == tokens_sha256(first.labelled_split.tokens)
    assert record["info"]["ratio"] == 0.5 and record["info"]["split_seed"] == 4
    # The manifest, not the (different) ratio and seed, decides the second run's frames.
    pinned = nuscenes_module(tiny_world, label_ratio=1.0, split_seed=9, split_manifest=str(manifest))
    pinned.setup("fit")
    assert pinned.labelled_split.tokens == first.labelled_split.tokens
    assert pinned.labelled_split.info["pinned_from"] == str(manifest)


def test_a_manifest_of_another_dataset_is_refused(tiny_world: Path, tmp_path: Path) -> None:
    foreign = write_manifest(tmp_path / "foreign.json", ["not-a-token-of-this-world"], {"ratio": 0.1})
    module = nuscenes_module(tiny_world, split_manifest=str(foreign))
    with pytest.raises(DataError, match="foreign.json.*not in the training split.*not-a-token"):
        module.setup("fit")


def test_ranks_agree_without_communication(tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hashes = []
    for rank in range(2):
        module = nuscenes_module(tiny_world, label_ratio=0.5, split_seed=2)
        module.trainer = SimpleNamespace(global_rank=rank, is_global_zero=rank == 0, log_dir=str(tmp_path / f"r{rank}"))
        module.setup("fit")
        hashes.append(module.labelled_split.sha256)
    assert hashes[0] == hashes[1]
    printed = capsys.readouterr().out
    assert "[rank 0] labelled subset: 2 of 4" in printed and "[rank 1] labelled subset: 2 of 4" in printed
    assert hashes[0] in printed
    assert (tmp_path / "r0" / MANIFEST_NAME).is_file() and not (tmp_path / "r1").exists()  # rank 0 writes


def test_bad_split_settings_are_refused(tiny_world: Path) -> None:
    with pytest.raises(ValueError, match="label_ratio"):
        nuscenes_module(tiny_world, label_ratio=0.0)
    with pytest.raises(ValueError, match="split_by"):
        nuscenes_module(tiny_world, split_by="random")


def test_kitti_frames_split_by_frame_and_interval(tiny_kitti_world: Path, tmp_path: Path) -> None:
    module = KittiDataModule(str(tiny_kitti_world), image_size=(64, 208), batch_size=1, num_workers=0,
                             load_images=False, augment=False, label_ratio=0.5, split_by="interval")
    module.setup("fit")
    frames = sorted(key.token for key in module.train_dataset.frame_keys())
    assert module.labelled_split.tokens == frames[::2]
    with pytest.raises(ValueError, match="needs scenes"):
        KittiDataModule(str(tiny_kitti_world), num_workers=0, label_ratio=0.5, split_by="scene").setup("fit")


def test_save_labelled_split_is_readable(tmp_path: Path) -> None:
    keys = [FrameKey(f"k{index}", "s", index) for index in range(10)]
    split = choose_labelled(keys, 0.3, 0, "frame")
    path = save_labelled_split(split, tmp_path)
    again = choose_labelled(keys, 1.0, 5, "frame", manifest=path)
    assert again.tokens == split.tokens and again.indices == split.indices
