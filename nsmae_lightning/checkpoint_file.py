"""Is a checkpoint file whole? A cheap look before a run resumes from it.

A run killed while a checkpoint was written, a failed copy or a full disk leave a file that torch
cannot load; Lightning then fails with a PytorchStreamReader / EOFError message that names no file
(and a resuming sweep would retry the same file forever). torch saves zip archives whose central
directory is written last, so a cut-short file has none: reading that directory costs a few KiB.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

# `--ckpt_path` values that Lightning resolves itself (no file to check)
LIGHTNING_CKPT_KEYWORDS = frozenset({"last", "best", "hpc", "registry"})


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a whole torch checkpoint (in words), or None if it looks whole."""
    path = Path(path)
    if not path.is_file():
        return "checkpoint file not found"
    if path.stat().st_size == 0:
        return "empty checkpoint file (0 bytes)"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        with path.open("rb") as stream:
            if stream.read(1) == b"\x80":  # torch's legacy (pre-1.6) pickle format: no directory to check
                return None
        return f"not a whole torch checkpoint (cut short, or not a torch file: {error})"
    if not any(name.endswith("data.pkl") for name in names):
        return "a zip archive without a torch pickle (data.pkl): not a torch checkpoint"
    return None


def ckpt_path_argument(argv: list[str]) -> str | None:
    """The value of ``--ckpt_path`` in a LightningCLI argument list (``--ckpt_path X`` or ``--ckpt_path=X``)."""
    for index, argument in enumerate(argv):
        if argument == "--ckpt_path" and index + 1 < len(argv):
            return argv[index + 1]
        if argument.startswith("--ckpt_path="):
            return argument.split("=", 1)[1]
    return None


def checkpoints_newest_first(run_dir: Path) -> list[Path]:
    """Every ``*.ckpt`` under ``run_dir``: ``last.ckpt`` first, then the others newest first."""
    oldest_first = sorted(run_dir.rglob("*.ckpt"), key=lambda path: (path.name == "last.ckpt", path.stat().st_mtime))
    return oldest_first[::-1]


def newest_checkpoint(run_dir: Path) -> Path | None:
    """``last.ckpt`` if the run saved one, else its newest checkpoint, else None (not checked for wholeness)."""
    checkpoints = checkpoints_newest_first(run_dir)
    return checkpoints[0] if checkpoints else None


def resumable_checkpoint(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest whole checkpoint under ``run_dir`` (``last.ckpt`` first), and a note for each newer one
    passed over (cut short by the kill that stopped the run, say)."""
    notes = []
    for checkpoint in checkpoints_newest_first(run_dir):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint, notes
        notes.append(f"{checkpoint}: {problem}")
    return None, notes
