"""Atomic writes: whole files or the old file, never half of one, and no temporaries left behind."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from nsmae_lightning.atomic import atomic_savefig, atomic_write_bytes, atomic_write_text  # noqa: E402


def test_writes_replace_whole_files_and_create_folders(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "results.json"
    assert atomic_write_text(target, '{"a": 1}') == target
    atomic_write_bytes(target, b'{"a": 2}')
    assert target.read_text() == '{"a": 2}'
    assert sorted(path.name for path in target.parent.iterdir()) == ["results.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    atomic_write_text(target, "old")
    figure = plt.figure()
    with pytest.raises(ValueError):
        atomic_savefig(figure, target, format="not-a-format")  # fails while rendering, before any write
    plt.close(figure)
    assert target.read_text() == "old"
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    atomic_savefig(figure, target, dpi=30)
    plt.close(figure)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plot.png"]


def test_a_figure_is_written_in_the_format_its_suffix_names(tmp_path: Path) -> None:
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    starts = {"curves.pdf": b"%PDF", "curves.svg": b"<?xml", "curves.png": b"\x89PNG", "curves": b"\x89PNG"}
    for name, start in starts.items():
        assert atomic_savefig(figure, tmp_path / name, dpi=30).read_bytes().startswith(start), name
    plt.close(figure)


def test_a_folder_is_swapped_in_whole_or_not_at_all(tmp_path: Path) -> None:
    from nsmae_lightning.atomic import folder_swapped_in

    target = tmp_path / "ImageSets"
    for content in ("old", "new"):
        with folder_swapped_in(target) as partial:
            assert partial != target and not any(partial.iterdir())
            (partial / "train.txt").write_text(content)
        assert (target / "train.txt").read_text() == content
    with pytest.raises(RuntimeError), folder_swapped_in(target) as partial:
        (partial / "train.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert (target / "train.txt").read_text() == "new"  # the former folder stays
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ImageSets"]  # nothing left aside
