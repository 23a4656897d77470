"""KITTI's per-frame matching of detections to ground truth, and the score thresholds (numba).

This is the core of the official devkit's ``computeStatistics`` and ``getThresholds``
(``cpp/evaluate_object.cpp``); the matching runs over a whole split of flattened frames in
one numba call.

Ignore codes, per box and per evaluated (class, difficulty):

* ground truth: ``0`` counts (recall denominator), ``1`` ignored (neighbouring class, or the
  right class but too hard; a detection matched to it is neither TP nor FP), ``-1`` another
  class (never matched);
* detections: ``0`` counts, ``1`` ignored (2D box lower than the difficulty's minimum
  height; may still absorb a ground-truth box), ``-1`` another class (skipped).

Frame layout: ``offsets`` is (F + 1, 5) int64 with cumulative counts of ground-truth boxes,
detections, DontCare boxes, detection x ground-truth overlaps and detection x DontCare
overlaps; frame f's overlap matrix is row-major (n_det_f, n_gt_f) at ``offsets[f, 3]``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

GT_COLUMN = 0
DET_COLUMN = 1
DONTCARE_COLUMN = 2
OVERLAP_COLUMN = 3
DONTCARE_OVERLAP_COLUMN = 4


@numba.njit(cache=True)
def _match_frame(
    frame: int,
    offsets: np.ndarray,
    overlaps: np.ndarray,
    dontcare_overlaps: np.ndarray,
    gt_ignore: np.ndarray,
    det_ignore: np.ndarray,
    gt_alpha: np.ndarray,
    det_alpha: np.ndarray,
    det_score: np.ndarray,
    min_overlap: float,
    threshold: float,
    compute_fp: bool,
    assigned: np.ndarray,
    tp_scores: np.ndarray,
) -> tuple[int, int, int, float]:
    """Match one frame; returns ``(tp, fp, fn, orientation similarity summed over TPs)``.

    Without ``compute_fp`` every ground-truth box takes the highest-scoring free detection
    above ``min_overlap`` and the TP scores are written to ``tp_scores[:tp]`` (the pass that
    picks score thresholds). With ``compute_fp`` only detections scoring at least
    ``threshold`` take part, each ground-truth box takes the free counted detection of
    largest overlap (an ignored one only if nothing else overlaps), and unmatched counted
    detections are false positives unless they cover a DontCare region.
    """
    gt_start = offsets[frame, GT_COLUMN]
    num_gt = offsets[frame + 1, GT_COLUMN] - gt_start
    det_start = offsets[frame, DET_COLUMN]
    num_det = offsets[frame + 1, DET_COLUMN] - det_start
    num_dontcare = offsets[frame + 1, DONTCARE_COLUMN] - offsets[frame, DONTCARE_COLUMN]
    overlap_start = offsets[frame, OVERLAP_COLUMN]
    dontcare_start = offsets[frame, DONTCARE_OVERLAP_COLUMN]
    for det in range(num_det):
        assigned[det] = False
    tp = 0
    fp = 0
    fn = 0
    similarity = 0.0
    for gt in range(num_gt):
        gt_code = gt_ignore[gt_start + gt]
        if gt_code == -1:
            continue
        best_det = -1
        best_score = 0.0
        max_overlap = 0.0
        best_is_ignored = False
        for det in range(num_det):
            det_code = det_ignore[det_start + det]
            score = det_score[det_start + det]
            if det_code == -1 or assigned[det] or (compute_fp and score < threshold):
                continue
            overlap = overlaps[overlap_start + det * num_gt + gt]
            if overlap <= min_overlap:
                continue
            if not compute_fp:
                if best_det == -1 or score > best_score:
                    best_det = det
                    best_score = score
            elif det_code == 0 and (overlap > max_overlap or best_is_ignored):
                max_overlap = overlap
                best_det = det
                best_is_ignored = False
            elif det_code == 1 and best_det == -1:
                best_det = det
                best_is_ignored = True
        if best_det == -1:
            if gt_code == 0:
                fn += 1
        elif gt_code == 1 or det_ignore[det_start + best_det] == 1:
            assigned[best_det] = True
        else:
            tp_scores[tp] = det_score[det_start + best_det]
            tp += 1
            similarity += 0.5 * (1.0 + math.cos(gt_alpha[gt_start + gt] - det_alpha[det_start + best_det]))
            assigned[best_det] = True
    if compute_fp:
        for det in range(num_det):
            if not (assigned[det] or det_ignore[det_start + det] != 0 or det_score[det_start + det] < threshold):
                fp += 1
        for dontcare in range(num_dontcare):
            for det in range(num_det):
                if assigned[det] or det_ignore[det_start + det] != 0 or det_score[det_start + det] < threshold:
                    continue
                if dontcare_overlaps[dontcare_start + det * num_dontcare + dontcare] > min_overlap:
                    assigned[det] = True
                    fp -= 1
    return tp, fp, fn, similarity


@numba.njit(cache=True)
def _max_count(offsets: np.ndarray, column: int) -> int:
    """Largest per-frame count in one column of ``offsets``."""
    largest = 0
    for frame in range(offsets.shape[0] - 1):
        largest = max(largest, offsets[frame + 1, column] - offsets[frame, column])
    return largest


@numba.njit(cache=True)
def _match_split(
    thresholds: np.ndarray,
    compute_fp: bool,
    offsets: np.ndarray,
    overlaps: np.ndarray,
    dontcare_overlaps: np.ndarray,
    gt_ignore: np.ndarray,
    det_ignore: np.ndarray,
    gt_alpha: np.ndarray,
    det_alpha: np.ndarray,
    det_score: np.ndarray,
    min_overlap: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Match every frame at every threshold (one entry point, so numba compiles it once).

    Returns:
        (T, 4) ``tp, fp, fn, similarity`` summed over frames, and (without ``compute_fp``)
        the TP scores in frame order.
    """
    counts = np.zeros((len(thresholds), 4))
    scores = np.empty(offsets[-1, GT_COLUMN] if not compute_fp else 0)
    assigned = np.zeros(_max_count(offsets, DET_COLUMN), dtype=np.bool_)
    frame_scores = np.empty(_max_count(offsets, GT_COLUMN))
    num_scores = 0
    for frame in range(offsets.shape[0] - 1):
        for index in range(len(thresholds)):
            tp, fp, fn, similarity = _match_frame(
                frame, offsets, overlaps, dontcare_overlaps, gt_ignore, det_ignore, gt_alpha, det_alpha, det_score,
                min_overlap, thresholds[index], compute_fp, assigned, frame_scores,
            )
            counts[index, 0] += tp
            counts[index, 1] += fp
            counts[index, 2] += fn
            counts[index, 3] += similarity
            if not compute_fp:
                scores[num_scores:num_scores + tp] = frame_scores[:tp]
                num_scores += tp
    return counts, scores[:num_scores]


def true_positive_scores(
    offsets: np.ndarray,
    overlaps: np.ndarray,
    dontcare_overlaps: np.ndarray,
    gt_ignore: np.ndarray,
    det_ignore: np.ndarray,
    gt_alpha: np.ndarray,
    det_alpha: np.ndarray,
    det_score: np.ndarray,
    min_overlap: float,
) -> np.ndarray:
    """Scores of every true positive of the split, no score threshold (see module doc)."""
    _, scores = _match_split(np.zeros(1), False, offsets, overlaps, dontcare_overlaps, gt_ignore, det_ignore,
                             gt_alpha, det_alpha, det_score, float(min_overlap))
    return scores


def score_thresholds(tp_scores: np.ndarray, num_gt: int, num_sample_points: int) -> np.ndarray:
    """Score thresholds whose recalls come closest to 0, 1/(S-1), ..., 1 (S sample points).

    Walks the TP scores from the highest down; score i gives recall (i + 1) / num_gt and is
    kept when it is at least as close to the next recall target as score i + 1 would be (the
    last score is always kept). The first threshold thus stands for recall 0, which is why
    R40 skips it. At most ``num_sample_points`` thresholds are returned. A plain loop: it
    runs once per curve over at most one score per ground-truth box.
    """
    scores = np.sort(np.asarray(tp_scores, dtype=np.float64))[::-1].tolist()
    thresholds: list[float] = []
    current_recall = 0.0
    for index, score in enumerate(scores):
        if len(thresholds) == num_sample_points:
            break
        left_recall = (index + 1) / num_gt
        is_last = index == len(scores) - 1
        right_recall = left_recall if is_last else (index + 2) / num_gt
        if (right_recall - current_recall) < (current_recall - left_recall) and not is_last:
            continue
        thresholds.append(score)
        current_recall += 1.0 / (num_sample_points - 1.0)
    return np.array(thresholds, dtype=np.float64)


def counts_at_thresholds(
    thresholds: np.ndarray,
    offsets: np.ndarray,
    overlaps: np.ndarray,
    dontcare_overlaps: np.ndarray,
    gt_ignore: np.ndarray,
    det_ignore: np.ndarray,
    gt_alpha: np.ndarray,
    det_alpha: np.ndarray,
    det_score: np.ndarray,
    min_overlap: float,
) -> np.ndarray:
    """(T, 4) float64 ``tp, fp, fn, orientation similarity`` summed over the split per threshold."""
    counts, _ = _match_split(np.asarray(thresholds, dtype=np.float64), True, offsets, overlaps, dontcare_overlaps,
                             gt_ignore, det_ignore, gt_alpha, det_alpha, det_score, float(min_overlap))
    return counts
