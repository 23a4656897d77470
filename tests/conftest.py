"""Shared fixtures: tiny synthetic worlds written once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import nsmae_lightning  # noqa: F401  (imports Lightning before any test module imports the nuscenes devkit)


@pytest.fixture(autouse=True)
def _no_leftover_run_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test unseeded: ``seed_everything`` (CLI runs) leaves ``PL_GLOBAL_SEED`` in
    ``os.environ``, and the training order derives from it, so data would depend on test order."""
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Run on one intra-op thread: spconv's multi-threaded CPU kernels are not bitwise
    reproducible from call to call, and other thread counts also round differently."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
