"""Label-ratio subsets for label-efficient fine-tuning, and the manifest that records them.

A subset is a pure function of (sample tokens, ratio, split seed, mode, and the
scene/timestamp tables): every DDP rank computes the same list without talking
to the others, and a rerun with the same inputs gets the same frames. Random
subsets are prefixes of one permutation of the sorted tokens (or scenes), so for
one seed the 1% subset lies inside the 5% subset, which lies inside the 10% one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.data.errors import DataError

SplitBy = Literal["frame", "scene", "interval"]
MANIFEST_FORMAT = "nsmae-label-split/1"


def labelled_quota(num_frames: int, ratio: float) -> int:
    """How many frames a ratio asks for: ``ratio * num_frames`` rounded half up, at least 1."""
    return max(1, min(num_frames, math.floor(ratio * num_frames + 0.5)))


def _check_tokens(sample_tokens: Sequence[str], ratio: float) -> list[str]:
    """Validate the inputs shared by every mode; return the tokens sorted."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"label ratio must be in (0, 1], got {ratio}")
    if not sample_tokens:
        raise ValueError("cannot select a labelled subset from an empty list of sample tokens")
    sorted_tokens = sorted(sample_tokens)
    duplicates = sorted({a for a, b in zip(sorted_tokens, sorted_tokens[1:]) if a == b})
    if duplicates:
        raise ValueError(f"sample tokens must be unique, repeated: {', '.join(duplicates[:5])}")
    return sorted_tokens


def _lookup(table: Mapping[str, Any] | None, table_name: str, tokens: Iterable[str], split_by: str) -> dict[str, Any]:
    """``{token: table[token]}`` for every token, or a clear error naming the first token missing."""
    if table is None:
        raise ValueError(f"split_by={split_by!r} needs {table_name}")
    values: dict[str, Any] = {}
    for token in tokens:
        if token not in table:
            raise DataError(token, f"sample token has no entry in {table_name}")
        values[token] = table[token]
    return values


def _select_frames(sorted_tokens: list[str], ratio: float, split_seed: int) -> list[str]:
    """A prefix of one seeded permutation of the frames."""
    order = np.random.default_rng(split_seed).permutation(len(sorted_tokens))
    return [sorted_tokens[i] for i in order[: labelled_quota(len(sorted_tokens), ratio)]]


def _select_scenes(sorted_tokens: list[str], ratio: float, split_seed: int, scene_of: Mapping[str, str] | None) -> list[str]:
    """Whole scenes, in one seeded permutation of the scenes, until the frame quota is met."""
    scene_by_token = _lookup(scene_of, "scene_of", sorted_tokens, "scene")
    frames_by_scene: dict[str, list[str]] = {}
    for token in sorted_tokens:
        frames_by_scene.setdefault(scene_by_token[token], []).append(token)
    scenes = sorted(frames_by_scene)
    order = np.random.default_rng(split_seed).permutation(len(scenes))
    quota = labelled_quota(len(sorted_tokens), ratio)
    selected: list[str] = []
    for index in order:
        if len(selected) >= quota:
            break
        selected.extend(frames_by_scene[scenes[index]])
    return selected


def _select_interval(sorted_tokens: list[str], ratio: float, timestamps: Mapping[str, int] | None) -> list[str]:
    """Every N-th frame in time order, N = round(1 / ratio), starting with the earliest (the authors' recipe)."""
    timestamp_by_token = _lookup(timestamps, "timestamps", sorted_tokens, "interval")
    time_order = sorted(sorted_tokens, key=lambda token: (timestamp_by_token[token], token))
    step = max(1, round(1.0 / ratio))
    return time_order[::step]


def select_labelled(
    sample_tokens: Sequence[str],
    ratio: float,
    split_seed: int,
    split_by: SplitBy = "frame",
    scene_of: Mapping[str, str] | None = None,
    timestamps: Mapping[str, int] | None = None,
) -> list[str]:
    """Pick the labelled subset of a training split for label-efficient fine-tuning.

    Modes:
        - ``"frame"``: ``round(ratio * n)`` frames (at least 1), a prefix of a
          permutation of the sorted tokens drawn by ``numpy.random.default_rng(split_seed)``.
        - ``"scene"``: scenes permuted the same way and taken whole until the
          frame quota is met (frames of one drive never straddle the split).
        - ``"interval"``: every N-th frame by timestamp, N = ``round(1 / ratio)``
          (the authors' ``load_interval``; ``split_seed`` is not used).

    ``split_seed`` is independent of the training seed, so changing the training
    seed never changes which frames carry labels.

    Args:
        sample_tokens: tokens of the training split (order does not matter).
        ratio: fraction of frames to label, in (0, 1]; 1.0 returns every token.
        split_seed: seed of the permutation.
        split_by: "frame", "scene" or "interval".
        scene_of: sample token -> scene token; required for ``"scene"``.
        timestamps: sample token -> timestamp (any monotone unit); required for ``"interval"``.

    Returns:
        The selected sample tokens, sorted.
    """
    sorted_tokens = _check_tokens(sample_tokens, ratio)
    if split_by == "frame":
        selected = _select_frames(sorted_tokens, ratio, split_seed)
    elif split_by == "scene":
        selected = _select_scenes(sorted_tokens, ratio, split_seed, scene_of)
    elif split_by == "interval":
        selected = _select_interval(sorted_tokens, ratio, timestamps)
    else:
        raise ValueError(f"split_by must be 'frame', 'scene' or 'interval', got {split_by!r}")
    return sorted(selected)


def tokens_sha256(tokens: Iterable[str]) -> str:
    """Hex sha256 of the sorted tokens joined by newlines: a fingerprint of a subset."""
    return hashlib.sha256("\n".join(sorted(tokens)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SplitManifest:
    """A labelled subset as read back from its manifest file.

    Attributes:
        tokens: the selected sample tokens, sorted.
        sha256: :func:`tokens_sha256` of ``tokens`` (verified on read).
        info: the parameters that produced the subset (ratio, split_seed, split_by, ...).
    """

    tokens: list[str]
    sha256: str
    info: dict[str, Any]


def write_manifest(path: str | Path, tokens: Iterable[str], info: Mapping[str, Any]) -> Path:
    """Write a subset as JSON (format tag, sha256, parameters, sorted tokens), atomically.

    Args:
        path: the manifest file to write (parent folders are created).
        tokens: the selected sample tokens.
        info: JSON-serialisable parameters that produced the subset, kept for the record.

    Returns:
        The path written.
    """
    sorted_tokens = sorted(tokens)
    manifest = {
        "format": MANIFEST_FORMAT,
        "sha256": tokens_sha256(sorted_tokens),
        "num_tokens": len(sorted_tokens),
        "info": dict(info),
        "tokens": sorted_tokens,
    }
    return atomic_write_text(path, json.dumps(manifest, indent=1))


def read_manifest(path: str | Path) -> SplitManifest:
    """Read a manifest written by :func:`write_manifest` and check its sha256.

    Raises:
        DataError: naming the file, if it is missing, not valid JSON, not a
            manifest, or its tokens do not match the recorded sha256.
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise DataError(path, "label-split manifest not found") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(path, f"label-split manifest is not valid JSON ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(path, f"not a label-split manifest (expected format {MANIFEST_FORMAT!r})")
    tokens = manifest.get("tokens")
    recorded_sha256 = manifest.get("sha256")
    info = manifest.get("info")
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise DataError(path, "manifest 'tokens' must be a list of strings")
    if not isinstance(info, dict):
        raise DataError(path, "manifest 'info' must be an object")
    actual_sha256 = tokens_sha256(tokens)
    if recorded_sha256 != actual_sha256:
        raise DataError(
            path,
            f"token list does not match its sha256 (recorded {recorded_sha256}, computed {actual_sha256}): "
            "the file was edited or truncated; regenerate it",
        )
    return SplitManifest(tokens=sorted(tokens), sha256=actual_sha256, info=info)
