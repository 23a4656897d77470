"""A picture of one written sample, read back through the nuScenes devkit.

Six camera images with the keyframe LiDAR points projected by the devkit
(coloured by depth), and a bird's-eye panel in the LiDAR frame with the points,
the ground-truth boxes and the map layers. Everything is read from the files,
so the picture checks the written calibration chain as well as the world.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import PathPatch  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402
from nuscenes import NuScenes  # noqa: E402
from nuscenes.map_expansion.map_api import NuScenesMap  # noqa: E402
from nuscenes.utils.data_classes import LidarPointCloud  # noqa: E402
from nuscenes.utils.geometry_utils import transform_matrix  # noqa: E402
from pyquaternion import Quaternion  # noqa: E402

from nsmae_lightning.atomic import atomic_savefig
from nsmae_lightning.data.errors import DataError  # noqa: E402

BEV_RANGE = 50.0
# panel grid position of each camera (row, column), front cameras on top
CAMERA_GRID: dict[str, tuple[int, int]] = {
    "CAM_FRONT_LEFT": (0, 0),
    "CAM_FRONT": (0, 1),
    "CAM_FRONT_RIGHT": (0, 2),
    "CAM_BACK_LEFT": (1, 0),
    "CAM_BACK": (1, 1),
    "CAM_BACK_RIGHT": (1, 2),
}
MAP_LAYER_COLOURS: dict[str, str] = {
    "drivable_area": "#a6cee3",
    "carpark_area": "#ff7f00",
    "walkway": "#e31a1c",
    "ped_crossing": "#fb9a99",
    "stop_line": "#fdbf6f",
}
LINE_LAYER_COLOURS: dict[str, str] = {"road_divider": "#cab2d6", "lane_divider": "#6a3d9a"}


def _global_to_lidar(nusc: NuScenes, lidar_token: str) -> np.ndarray:
    """4x4 global -> keyframe LiDAR transform of a LiDAR sample_data."""
    record = nusc.get("sample_data", lidar_token)
    calib = nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", record["ego_pose_token"])
    lidar2ego = transform_matrix(calib["translation"], Quaternion(calib["rotation"]))
    ego2global = transform_matrix(pose["translation"], Quaternion(pose["rotation"]))
    return np.linalg.inv(ego2global @ lidar2ego)


def _draw_map(ax: plt.Axes, nusc_map: NuScenesMap, global2lidar: np.ndarray) -> None:
    """Fill the map layers around the LiDAR into a BEV axis (LiDAR frame)."""
    lidar2global = np.linalg.inv(global2lidar)
    centre = lidar2global[:2, 3]
    records = nusc_map.get_records_in_radius(
        centre[0], centre[1], BEV_RANGE * 1.5, list(MAP_LAYER_COLOURS) + list(LINE_LAYER_COLOURS)
    )

    def to_lidar(xy: np.ndarray) -> np.ndarray:
        return xy @ global2lidar[:2, :2].T + global2lidar[:2, 3]

    for layer, colour in MAP_LAYER_COLOURS.items():
        for token in records[layer]:
            record = nusc_map.get(layer, token)
            polygon_tokens = record["polygon_tokens"] if layer == "drivable_area" else [record["polygon_token"]]
            for polygon_token in polygon_tokens:
                polygon = nusc_map.extract_polygon(polygon_token)
                rings = [polygon.exterior, *polygon.interiors]  # holes as extra rings (even-odd fill)
                path = MplPath.make_compound_path(*(MplPath(to_lidar(np.array(ring.coords))) for ring in rings))
                ax.add_patch(PathPatch(path, facecolor=colour, alpha=0.35, lw=0))
    for layer, colour in LINE_LAYER_COLOURS.items():
        for token in records[layer]:
            line = nusc_map.extract_line(nusc_map.get(layer, token)["line_token"])
            xy = to_lidar(np.array(line.coords))
            ax.plot(xy[:, 0], xy[:, 1], color=colour, lw=0.8)


def write_preview(
    dataroot: str | Path, out_png: str | Path, sample_index: int = 0, version: str = "v1.0-trainval"
) -> Path:
    """Render the preview of one sample to a PNG.

    Args:
        dataroot: nuScenes dataroot (synthetic or real).
        out_png: where to write the picture.
        sample_index: which sample (in the sample table's order).
        version: table folder.

    Returns:
        The PNG's path.
    """
    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    if not 0 <= sample_index < len(nusc.sample):
        raise DataError(Path(dataroot) / version / "sample.json", f"has no sample {sample_index} ({len(nusc.sample)} samples)")
    sample = nusc.sample[sample_index]
    lidar_token = sample["data"]["LIDAR_TOP"]
    location = nusc.get("log", nusc.get("scene", sample["scene_token"])["log_token"])["location"]

    figure = plt.figure(figsize=(22, 8.5))
    grid = figure.add_gridspec(2, 5, width_ratios=[1, 1, 1, 0.05, 1.45], wspace=0.04, hspace=0.06)
    for camera, (row, col) in CAMERA_GRID.items():
        ax = figure.add_subplot(grid[row, col])
        points, depths, image = nusc.explorer.map_pointcloud_to_image(lidar_token, sample["data"][camera])
        ax.imshow(image)
        ax.scatter(points[0], points[1], c=depths, s=1.5, cmap="turbo", vmin=0, vmax=40, linewidths=0)
        ax.set_title(camera, fontsize=9)
        ax.axis("off")

    ax = figure.add_subplot(grid[:, 4])
    global2lidar = _global_to_lidar(nusc, lidar_token)
    _draw_map(ax, NuScenesMap(dataroot=str(dataroot), map_name=location), global2lidar)
    cloud = LidarPointCloud.from_file(str(Path(dataroot) / nusc.get("sample_data", lidar_token)["filename"]))
    ranges = np.hypot(cloud.points[0], cloud.points[1])
    ax.scatter(cloud.points[0], cloud.points[1], c=ranges, s=0.8, cmap="turbo", vmin=0, vmax=40, linewidths=0)
    _, boxes, _ = nusc.get_sample_data(lidar_token)
    for box in boxes:
        box.render(ax, view=np.eye(4), colors=("k", "k", "k"), linewidth=0.8)
    ax.set_xlim(-BEV_RANGE, BEV_RANGE)
    ax.set_ylim(-BEV_RANGE, BEV_RANGE)
    ax.set_aspect("equal")
    ax.set_title(f"BEV, LiDAR frame (+y forward): {location}, {len(boxes)} boxes", fontsize=9)
    out_path = atomic_savefig(figure, out_png, dpi=80, bbox_inches="tight")
    plt.close(figure)
    return out_path
