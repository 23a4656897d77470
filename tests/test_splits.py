"""Label-ratio subsets: determinism, nesting, whole scenes, interval recipe, manifests, rank agreement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.splits import (
    labelled_quota,
    read_manifest,
    select_labelled,
    tokens_sha256,
    write_manifest,
)

# 20 scenes x 10 frames = 200 training frames; scene s, frame f has timestamp s * 1000 + f.
TRAIN_TOKENS = [f"tok-{scene:02d}-{frame}" for scene in range(20) for frame in range(10)]
SCENE_OF = {token: f"scene-{token[4:6]}" for token in TRAIN_TOKENS}
TIMESTAMPS = {token: int(token[4:6]) * 1000 + int(token[7:]) for token in TRAIN_TOKENS}
VAL_TOKENS = [f"val-{index:03d}" for index in range(30)]


def test_quota_rounds_half_up_and_keeps_one_frame() -> None:
    assert labelled_quota(200, 0.01) == 2
    assert labelled_quota(200, 0.05) == 10
    assert labelled_quota(10, 0.05) == 1  # 0.5 rounds up
    assert labelled_quota(10, 0.01) == 1  # never empty
    assert labelled_quota(7, 1.0) == 7


def test_frame_split_is_deterministic_sorted_and_independent_of_input_order() -> None:
    first = select_labelled(TRAIN_TOKENS, 0.1, split_seed=3)
    again = select_labelled(list(reversed(TRAIN_TOKENS)), 0.1, split_seed=3)
    other_seed = select_labelled(TRAIN_TOKENS, 0.1, split_seed=4)
    assert first == again
    assert first == sorted(first)
    assert len(first) == 20 and len(set(first)) == 20
    assert first != other_seed


@pytest.mark.parametrize("split_by", ["frame", "scene", "interval"])
def test_subsets_are_nested(split_by: str) -> None:
    subsets = [
        set(select_labelled(TRAIN_TOKENS, ratio, 7, split_by, scene_of=SCENE_OF, timestamps=TIMESTAMPS))
        for ratio in (0.01, 0.05, 0.1, 0.5, 1.0)
    ]
    for smaller, larger in zip(subsets, subsets[1:]):
        assert smaller <= larger  # by scene, 1% and 5% may both be one whole scene
    assert subsets[0] < subsets[2] < subsets[3]
    assert subsets[-1] == set(TRAIN_TOKENS)


def test_scene_split_keeps_whole_scenes_until_quota() -> None:
    selected = select_labelled(TRAIN_TOKENS, 0.25, 11, "scene", scene_of=SCENE_OF)  # quota 50 frames = 5 scenes
    scenes = {SCENE_OF[token] for token in selected}
    assert len(scenes) == 5
    assert sorted(selected) == sorted(t for t in TRAIN_TOKENS if SCENE_OF[t] in scenes)
    # 1% asks for 2 frames: one whole scene of 10 frames is taken.
    one_scene = select_labelled(TRAIN_TOKENS, 0.01, 11, "scene", scene_of=SCENE_OF)
    assert len(one_scene) == 10 and len({SCENE_OF[t] for t in one_scene}) == 1


def test_interval_takes_every_nth_frame_by_timestamp() -> None:
    # Tokens whose sort order differs from time order: "z..." is earliest.
    timestamps = {"z": 100, "a": 300, "m": 200, "b": 500, "c": 400, "y": 600, "x": 700}
    every_third = select_labelled(list(timestamps), 1 / 3, split_seed=0, split_by="interval", timestamps=timestamps)
    # Time order: z m a c b y x -> indices 0, 3, 6 = z, c, x.
    assert every_third == ["c", "x", "z"]
    every_tenth = select_labelled(TRAIN_TOKENS, 0.1, split_seed=0, split_by="interval", timestamps=TIMESTAMPS)
    assert every_tenth == [f"tok-{scene:02d}-0" for scene in range(20)]
    # The seed plays no part in the authors' recipe.
    assert select_labelled(TRAIN_TOKENS, 0.1, 99, "interval", timestamps=TIMESTAMPS) == every_tenth


def test_selection_never_leaves_the_training_tokens() -> None:
    for split_by in ("frame", "scene", "interval"):
        selected = select_labelled(TRAIN_TOKENS, 0.05, 1, split_by, scene_of=SCENE_OF, timestamps=TIMESTAMPS)
        assert set(selected) <= set(TRAIN_TOKENS)
        assert not set(selected) & set(VAL_TOKENS)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="ratio"):
        select_labelled(TRAIN_TOKENS, 0.0, 0)
    with pytest.raises(ValueError, match="ratio"):
        select_labelled(TRAIN_TOKENS, 1.5, 0)
    with pytest.raises(ValueError, match="unique.*tok-00-0"):
        select_labelled(TRAIN_TOKENS + ["tok-00-0"], 0.5, 0)
    with pytest.raises(ValueError, match="needs scene_of"):
        select_labelled(TRAIN_TOKENS, 0.5, 0, "scene")
    with pytest.raises(DataError, match="tok-19-9.*timestamps"):
        select_labelled(TRAIN_TOKENS, 0.5, 0, "interval", timestamps={t: 0 for t in TRAIN_TOKENS[:-1]})
    with pytest.raises(ValueError, match="split_by"):
        select_labelled(TRAIN_TOKENS, 0.5, 0, "random")  # type: ignore[arg-type]


def test_manifest_round_trip(tmp_path: Path) -> None:
    selected = select_labelled(TRAIN_TOKENS, 0.05, 2)
    info = {"ratio": 0.05, "split_seed": 2, "split_by": "frame"}
    path = write_manifest(tmp_path / "run" / "labelled.json", reversed(selected), info)
    manifest = read_manifest(path)
    assert manifest.tokens == selected
    assert manifest.info == info
    assert manifest.sha256 == tokens_sha256(selected)
    assert json.loads(path.read_text())["num_tokens"] == 10
    assert [p.name for p in path.parent.iterdir()] == ["labelled.json"]  # no temporary left behind


def test_manifest_tampering_and_corruption_are_detected(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "labelled.json", ["a", "b", "c"], {"ratio": 0.5})
    manifest = json.loads(path.read_text())
    manifest["tokens"] = ["a", "b", "d"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"labelled\.json.*sha256"):
        read_manifest(path)
    path.write_text('{"format": "nsmae-label-split/1", "tokens": ["a"')
    with pytest.raises(DataError, match=r"labelled\.json.*not valid JSON"):
        read_manifest(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match=r"labelled\.json.*not a label-split manifest"):
        read_manifest(path)
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "missing.json")


RANK_SCRIPT = """
import json, random, sys
import numpy as np
from nsmae_lightning.data.splits import select_labelled

def rank_subsets(rank):
    tokens = [f"tok-{s:02d}-{f}" for s in range(20) for f in range(10)]
    random.Random(rank).shuffle(tokens)  # each rank lists the split in its own order
    np.random.seed(1000 + rank)  # and has its own global (training) seed
    scene_of = {t: "scene-" + t[4:6] for t in tokens}
    return {
        "frame": select_labelled(tokens, 0.05, 5),
        "scene": select_labelled(tokens, 0.05, 5, "scene", scene_of=scene_of),
    }

if __name__ == "__main__":
    print(json.dumps(rank_subsets(int(sys.argv[1]))))
"""


def test_two_ranks_compute_identical_subsets_without_communication() -> None:
    """Rank 1 runs in its own interpreter (other hash seed, input order, global seed); rank 0 runs here."""
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    rank1 = subprocess.run(
        [sys.executable, "-c", RANK_SCRIPT, "1"], capture_output=True, env=env, text=True, timeout=120, check=True
    )
    namespace: dict[str, Any] = {"__name__": "rank0"}
    exec(RANK_SCRIPT, namespace)
    rank0 = namespace["rank_subsets"](0)
    assert rank0 == json.loads(rank1.stdout)
    assert rank0["frame"] == select_labelled(TRAIN_TOKENS, 0.05, 5)
    assert len(rank0["frame"]) == 10 and len(rank0["scene"]) == 10
