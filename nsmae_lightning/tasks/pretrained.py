"""Hand-off of pretrained embedding weights to a fine-tuning model.

A pretrained file is either a Lightning checkpoint of any task (its ``state_dict``
holds ``embedding.*`` keys) or an exported embedding (``nsmae export``), a dict
``{"format": EXPORT_FORMAT, "state_dict": {"embedding.*": ...}, "geometry": {...}}``.
The geometry (point-cloud range, voxel size, camera count, BEV shape) travels
with the weights and must equal the receiving model's: a BEV grid that silently
changes on load is the failure the authors' code had, so we refuse it.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nsmae_lightning.atomic import atomic_write_bytes
from nsmae_lightning.checkpoint_file import resumable_checkpoint

log = logging.getLogger(__name__)

EMBEDDING_PREFIX = "embedding."
EXPORT_FORMAT = "nsmae-embedding/1"
GEOMETRY_KEY = "nsmae_geometry"  # where task checkpoints store the embedding geometry


@dataclass
class LoadReport:
    """What a hand-off loaded, and what it left alone."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line with the four counts."""
        return (
            f"loaded {len(self.loaded)}, missing {len(self.missing)}, "
            f"unexpected {len(self.unexpected)}, shape-skipped {len(self.shape_skipped)}"
        )


def read_pretrained(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read ``embedding.*`` weights and the stored geometry from a checkpoint, an export, or a pretraining run
    folder (its newest whole checkpoint, ``last.ckpt`` first).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds no embedding weights.
    """
    path = Path(path)
    if path.is_dir():  # a pretraining run folder: its newest whole checkpoint
        checkpoint, _ = resumable_checkpoint(path)
        if checkpoint is None:
            raise FileNotFoundError(f"{path}: no whole *.ckpt under this pretraining run folder")
        path = checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # corrupt or not a torch file
        raise ValueError(f"{path}: not a readable torch checkpoint ({error})") from error
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path}: no 'state_dict' in the file; expected a Lightning checkpoint or an `nsmae export` file")
    weights = {k: v for k, v in payload["state_dict"].items() if k.startswith(EMBEDDING_PREFIX)}
    if not weights:
        raise ValueError(f"{path}: the state_dict holds no '{EMBEDDING_PREFIX}*' keys")
    geometry = payload.get("geometry") if payload.get("format") == EXPORT_FORMAT else payload.get(GEOMETRY_KEY)
    return weights, geometry


def check_geometry(expected: dict[str, Any], found: dict[str, Any] | None, source: str | Path) -> None:
    """Refuse weights made for another point-cloud range, voxel size, camera count or BEV grid."""
    if found is None:
        log.warning("%s: no geometry stored with the weights; cannot check pc range / voxel size / cameras", source)
        return
    mismatches = []
    for key, want in expected.items():
        if key not in found:
            continue
        have = found[key]
        if not _same(want, have):
            mismatches.append(f"{key}: checkpoint {have} vs model {want}")
    if mismatches:
        raise ValueError(f"{source}: pretrained embedding geometry differs from the model's — " + "; ".join(mismatches))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def load_pretrained_embedding(model: nn.Module, path: str | Path, geometry: dict[str, Any]) -> LoadReport:
    """Copy ``embedding.*`` weights from ``path`` into ``model`` (a task holding ``self.embedding``).

    Tensors whose shapes differ are skipped with a warning (e.g. a fuser built for
    another modality set); keys are reported, never silently dropped.
    """
    weights, stored_geometry = read_pretrained(path)
    check_geometry(geometry, stored_geometry, path)
    own = {k: v for k, v in model.state_dict().items() if k.startswith(EMBEDDING_PREFIX)}
    report = LoadReport()
    to_load: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != tensor.shape:
            report.shape_skipped.append(key)
            log.warning("%s: skipping %s, shape %s in checkpoint vs %s in model", path, key, tuple(tensor.shape), tuple(own[key].shape))
        else:
            to_load[key] = tensor
    report.missing = sorted(set(own) - set(to_load) - set(report.shape_skipped))
    report.loaded = sorted(to_load)
    model.load_state_dict(to_load, strict=False)
    log.info("pretrained embedding from %s: %s", path, report.summary())
    if report.missing:
        log.info("missing keys (kept at init): %s", ", ".join(report.missing[:20]))
    if report.unexpected:
        log.info("unexpected keys (ignored): %s", ", ".join(report.unexpected[:20]))
    return report


def export_embedding(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the ``embedding.*`` weights and geometry of a task checkpoint as a standalone file."""
    weights, geometry = read_pretrained(checkpoint)
    buffer = io.BytesIO()
    torch.save({"format": EXPORT_FORMAT, "state_dict": weights, "geometry": geometry, "source": str(checkpoint)}, buffer)
    return atomic_write_bytes(out, buffer.getvalue())  # a reader never sees half a file, nor a clash of two exports
