"""Our KITTI 3D object evaluator (the official protocol, in numba on the CPU)."""

from nsmae_lightning.evaluation.kitti.eval import (
    DIFFICULTIES,
    METRICS,
    PRCurve,
    Results,
    average_precision,
    evaluate,
    evaluate_dirs,
    flatten_results,
    format_results,
    pr_curve,
)
from nsmae_lightning.evaluation.kitti.iou import bev_box_iou, box3d_iou, image_box_iou
from nsmae_lightning.evaluation.kitti.labels import (
    KittiLabels,
    read_gt_and_detections,
    read_label_file,
    read_split_file,
    write_label_dir,
    write_label_file,
)

__all__ = [
    "DIFFICULTIES",
    "METRICS",
    "KittiLabels",
    "PRCurve",
    "Results",
    "average_precision",
    "bev_box_iou",
    "box3d_iou",
    "evaluate",
    "evaluate_dirs",
    "flatten_results",
    "format_results",
    "image_box_iou",
    "pr_curve",
    "read_gt_and_detections",
    "read_label_file",
    "read_split_file",
    "write_label_dir",
    "write_label_file",
]
