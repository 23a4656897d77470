"""Atomic file writes: a reader (or a crash) never sees half a file, and the old file stays until the new one is whole.

Every result, manifest, checkpoint-side report and plot of the package goes through
these: the payload is written to a temporary file beside the destination, flushed to
disk, then renamed over it (``os.replace`` is atomic within a file system).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Iterator
from typing import Any


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: destination file; its parent folder is created when missing.
        payload: the whole file content.

    Returns:
        The destination path.
    """
    destination = Path(path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary_name, destination)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise
    return destination


def atomic_write_text(path: str | Path, text: str) -> Path:
    """``atomic_write_bytes`` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savefig(figure: Any, path: str | Path, **savefig_options: Any) -> Path:
    """Render a matplotlib figure in memory and write it atomically, in the format its suffix names
    (``.png``, ``.pdf``, ``.svg``, ...; PNG without a suffix) unless ``format`` says otherwise."""
    suffix = Path(path).suffix.lstrip(".").lower()
    buffer = io.BytesIO()
    figure.savefig(buffer, **{"format": suffix or "png", **savefig_options})
    return atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def folder_swapped_in(destination: str | Path) -> Iterator[Path]:
    """Yield an empty side folder to write; when the block ends without error it replaces ``destination``
    by renames (a former ``destination`` moved aside first, removed after), so a reader finds the old
    folder or the new one, never a mix. A block that fails leaves ``destination`` as it was."""
    destination = Path(destination)
    partial = destination.with_name(f".{destination.name}.partial")
    former = destination.with_name(f".{destination.name}.former")
    for leftover in (partial, former):  # of a run killed before
        shutil.rmtree(leftover, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if destination.exists():
        destination.rename(former)
    partial.rename(destination)
    shutil.rmtree(former, ignore_errors=True)
