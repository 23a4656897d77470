"""Shared fixtures: tiny synthetic worlds written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_leftover_run_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test unseeded: ``seed_everything`` (CLI runs) leaves ``PL_GLOBAL_SEED`` in
    ``os.environ``, and the training order derives from it, so data would depend on test order."""
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-scene x 4-keyframe nuScenes-format world (dataroot path)."""
    from nsmae_lightning.data.world import WorldConfig, write_nuscenes

    root = tmp_path_factory.mktemp("nuscenes_world")
    write_nuscenes(root, WorldConfig.tiny(seed=0))
    return root


@pytest.fixture(scope="session")
def tiny_kitti_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The KITTI-format twin of the tiny world (root with training/ and ImageSets/)."""
    from nsmae_lightning.data.world import WorldConfig, write_kitti

    root = tmp_path_factory.mktemp("kitti_world")
    write_kitti(root, WorldConfig.tiny(seed=0))
    return root
