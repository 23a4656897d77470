"""Readers for the raw sensor and text files (point clouds, JPEGs, KITTI calib / labels) that turn every
failure into a DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from nsmae_lightning.data.errors import DataError


def read_text_file(path: str | Path, what: str) -> str:
    """The UTF-8 text of ``what`` (e.g. "label file") at ``path``.

    Raises:
        DataError: the file is missing or not UTF-8 text (e.g. a binary file under a .txt name).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(path, f"{what} is not UTF-8 text ({error.reason} at byte {error.start})") from error


def read_points(path: str | Path, num_columns: int) -> np.ndarray:
    """Read a float32 point file (`.pcd.bin` has 5 columns, KITTI velodyne `.bin` has 4).

    Args:
        path: the binary file.
        num_columns: float32 values per point.

    Returns:
        float32 (P, num_columns).

    Raises:
        DataError: the file is missing, empty, or its size is not a whole number of points.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "point cloud file not found")
    raw = path.read_bytes()
    if not raw:  # a real sweep always has returns: an empty file is a failed download or copy
        raise DataError(path, "empty point cloud file (0 bytes)")
    point_bytes = 4 * num_columns
    if len(raw) % point_bytes != 0:
        raise DataError(
            path,
            f"truncated point cloud: {len(raw)} bytes is not a multiple of {num_columns} float32 ({point_bytes} bytes)",
        )
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, num_columns).copy()


def read_image(path: str | Path) -> Image.Image:
    """Read and fully decode an RGB image.

    Raises:
        DataError: the file is missing, not an image, or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(path, f"corrupt image, cannot decode: {error}") from error


def read_image_size(path: str | Path) -> tuple[int, int]:
    """(W, H) of an image from its header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(path, f"corrupt image, cannot read header: {error}") from error
