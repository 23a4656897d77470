"""Deterministic nuScenes-style tokens (32 hex digits) derived from the seed and a name."""

from __future__ import annotations

import hashlib


def make_token(seed: int, *name: object) -> str:
    """A token that depends only on the world seed and the record's name.

    Hashing names instead of drawing from a running generator keeps tokens stable
    whatever order records are written in, and different for different seeds.

    Args:
        seed: the world seed.
        *name: parts naming the record uniquely, e.g. ``("sample", scene_index, frame_index)``.

    Returns:
        32 lowercase hex digits, like real nuScenes tokens.
    """
    text = "/".join(str(part) for part in (seed, *name))
    return hashlib.md5(text.encode("utf-8")).hexdigest()
