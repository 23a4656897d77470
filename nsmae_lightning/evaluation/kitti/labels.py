"""KITTI ``label_2`` files as per-frame arrays, read and written.

A KITTI label line holds 15 whitespace-separated fields (ground truth) or 16 (detections,
with the score last)::

    type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]

``(x1, y1, x2, y2)`` is the 2D box in image pixels, ``h w l`` the 3D box size in metres,
``x y z`` the bottom centre of the 3D box in the rectified camera frame (y points down)
and ``rotation_y`` the yaw about the camera y axis (``l`` lies along camera x at 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from nsmae_lightning.atomic import atomic_write_text
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.readers import read_text_file

GT_FIELDS = 15
DETECTION_FIELDS = 16


@dataclass(frozen=True)
class KittiLabels:
    """All objects of one frame, one row per object (N objects).

    Attributes:
        name: (N,) object class names, e.g. ``"Car"``, ``"DontCare"``.
        truncated: (N,) float64 truncation in 0..1.
        occluded: (N,) int64 occlusion state 0..3.
        alpha: (N,) float64 observation angle in radians.
        bbox: (N, 4) float64 2D box ``x1, y1, x2, y2`` in pixels.
        dimensions: (N, 3) float64 ``h, w, l`` in metres.
        location: (N, 3) float64 bottom centre ``x, y, z`` in the rectified camera frame.
        rotation_y: (N,) float64 yaw about camera y in radians.
        score: (N,) float64 detection confidence (ground truth: all zero).
    """

    name: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.name)
        expected_shapes = {
            "truncated": (count,),
            "occluded": (count,),
            "alpha": (count,),
            "bbox": (count, 4),
            "dimensions": (count, 3),
            "location": (count, 3),
            "rotation_y": (count,),
            "score": (count,),
        }
        for field_name, shape in expected_shapes.items():
            actual = np.shape(getattr(self, field_name))
            if actual != shape:
                raise ValueError(f"KittiLabels.{field_name} has shape {actual}, expected {shape}")

    def __len__(self) -> int:
        return len(self.name)

    @classmethod
    def from_arrays(
        cls,
        name: Iterable[str],
        truncated: Iterable[float],
        occluded: Iterable[int],
        alpha: Iterable[float],
        bbox: Iterable[Iterable[float]],
        dimensions: Iterable[Iterable[float]],
        location: Iterable[Iterable[float]],
        rotation_y: Iterable[float],
        score: Iterable[float] | None = None,
    ) -> KittiLabels:
        """Build labels from any array-likes, casting each field to its canonical dtype.

        Args:
            name, truncated, occluded, alpha, bbox, dimensions, location, rotation_y: the
                fields described on the class.
            score: detection scores; ``None`` means ground truth (all zero).
        """
        names = np.asarray(list(name), dtype=str)
        count = len(names)
        scores = np.zeros(count) if score is None else np.asarray(score, dtype=np.float64)
        return cls(
            name=names,
            truncated=np.asarray(truncated, dtype=np.float64).reshape(count),
            occluded=np.asarray(occluded, dtype=np.int64).reshape(count),
            alpha=np.asarray(alpha, dtype=np.float64).reshape(count),
            bbox=np.asarray(bbox, dtype=np.float64).reshape(count, 4),
            dimensions=np.asarray(dimensions, dtype=np.float64).reshape(count, 3),
            location=np.asarray(location, dtype=np.float64).reshape(count, 3),
            rotation_y=np.asarray(rotation_y, dtype=np.float64).reshape(count),
            score=scores.reshape(count),
        )

    @classmethod
    def empty(cls) -> KittiLabels:
        """A frame without objects."""
        return cls.from_arrays([], [], [], [], [], [], [], [], [])


_FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in fields(KittiLabels))


def concatenate_labels(parts: Sequence[KittiLabels]) -> KittiLabels:
    """The rows of several ``KittiLabels`` as one, in order (empty for no parts)."""
    if not parts:
        return KittiLabels.empty()
    return KittiLabels(**{field: np.concatenate([getattr(part, field) for part in parts]) for field in _FIELD_NAMES})


def _parse_line(path: Path, line_number: int, line: str, with_score: bool) -> list[str | float]:
    """Split one label line into its name and numeric fields, or raise ``DataError``."""
    fields = line.split()
    expected = DETECTION_FIELDS if with_score else GT_FIELDS
    if len(fields) != expected:
        kind = "detection (with score)" if with_score else "ground-truth"
        raise DataError(path, f"line {line_number}: {len(fields)} fields, a {kind} label line has {expected}")
    values: list[str | float] = [fields[0]]
    for column, text in enumerate(fields[1:], start=2):
        try:
            value = float(text)
        except ValueError:
            raise DataError(path, f"line {line_number}: field {column} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(path, f"line {line_number}: field {column} is {text!r}, not a finite number")
        values.append(value)
    return values


def read_label_file(path: str | Path, with_score: bool = False) -> KittiLabels:
    """Read one KITTI label file.

    Args:
        path: the ``.txt`` file.
        with_score: ``True`` for detection files (16 fields per line), ``False`` for ground
            truth (15 fields).

    Raises:
        DataError: the file is missing or not UTF-8 text, or a line has the wrong number of fields or a
            non-numeric / non-finite value (the message names the file and the line number).
    """
    label_path = Path(path)
    rows = [
        _parse_line(label_path, line_number, line, with_score)
        for line_number, line in enumerate(read_text_file(label_path, "label file").splitlines(), start=1)
        if line.strip()
    ]
    if not rows:
        return KittiLabels.empty()
    numeric = np.array([row[1:] for row in rows], dtype=np.float64)  # (N, 14 or 15)
    return KittiLabels.from_arrays(
        name=[str(row[0]) for row in rows],
        truncated=numeric[:, 0],
        occluded=numeric[:, 1],
        alpha=numeric[:, 2],
        bbox=numeric[:, 3:7],
        dimensions=numeric[:, 7:10],
        location=numeric[:, 10:13],
        rotation_y=numeric[:, 13],
        score=numeric[:, 14] if with_score else None,
    )


def format_labels(labels: KittiLabels, with_score: bool = True) -> str:
    """KITTI label text for one frame.

    Floats use Python's shortest exact form, so reading the text back gives the same arrays.
    """
    lines = []
    for index in range(len(labels)):
        numbers = [
            float(labels.truncated[index]),
            int(labels.occluded[index]),
            float(labels.alpha[index]),
            *labels.bbox[index].tolist(),
            *labels.dimensions[index].tolist(),
            *labels.location[index].tolist(),
            float(labels.rotation_y[index]),
        ]
        if with_score:
            numbers.append(float(labels.score[index]))
        lines.append(" ".join([str(labels.name[index]), *(repr(number) for number in numbers)]))
    return "".join(line + "\n" for line in lines)


def write_label_file(path: str | Path, labels: KittiLabels, with_score: bool = True) -> None:
    """Write one frame's labels (detections by default) atomically."""
    atomic_write_text(path, format_labels(labels, with_score))


def write_label_dir(label_dir: str | Path, frames: Mapping[str, KittiLabels], with_score: bool = True) -> None:
    """Write ``<label_dir>/<frame_id>.txt`` for every frame, each atomically."""
    for frame_id, labels in frames.items():
        write_label_file(Path(label_dir) / f"{frame_id}.txt", labels, with_score)


def read_split_file(path: str | Path) -> list[str]:
    """Frame ids listed one per line in a KITTI ``ImageSets/*.txt`` file (blank lines skipped)."""
    split_path = Path(path)
    if not split_path.is_file():
        raise DataError(split_path, "split file not found")
    return [line.strip() for line in split_path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_gt_and_detections(
    gt_dir: str | Path, det_dir: str | Path, frame_ids: list[str] | None = None
) -> tuple[list[str], list[KittiLabels], list[KittiLabels]]:
    """Read ground truth and detections for the same frames, in frame order.

    Args:
        gt_dir: KITTI ``label_2`` folder of ground truth.
        det_dir: folder of detection label files (16 fields per line).
        frame_ids: the frames to evaluate; ``None`` means every ``*.txt`` in ``gt_dir``.

    Returns:
        ``(frame_ids, gt_labels, det_labels)``; a frame without a detection file has no
        detections.

    Raises:
        DataError: a folder is missing, a listed frame has no ground-truth file, a detection
            file belongs to no evaluated frame, or a file is malformed.
    """
    gt_root, det_root = Path(gt_dir), Path(det_dir)
    for folder in (gt_root, det_root):
        if not folder.is_dir():
            raise DataError(folder, "label folder not found")
    ids = sorted(path.stem for path in gt_root.glob("*.txt")) if frame_ids is None else list(frame_ids)
    known = set(ids)
    for det_path in sorted(det_root.glob("*.txt")):
        if det_path.stem not in known:
            raise DataError(det_path, f"detections for frame {det_path.stem!r}, which is not in the ground-truth split")
    gt_labels = []
    det_labels = []
    for frame_id in ids:
        gt_path = gt_root / f"{frame_id}.txt"
        if not gt_path.is_file():
            raise DataError(gt_path, f"no ground-truth label file for frame {frame_id!r}")
        gt_labels.append(read_label_file(gt_path, with_score=False))
        det_path = det_root / f"{frame_id}.txt"
        det_labels.append(read_label_file(det_path, with_score=True) if det_path.is_file() else KittiLabels.empty())
    return ids, gt_labels, det_labels
