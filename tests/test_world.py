"""The synthetic world: devkit compatibility, sensor geometry, counts, determinism, KITTI twin."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from nuscenes import NuScenes
from nuscenes.eval.common.loaders import load_gt
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.map_expansion.map_api import NuScenesMap
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.geometry_utils import points_in_box, transform_matrix, view_points
from nuscenes.utils.splits import create_splits_scenes
from pyquaternion import Quaternion

from nsmae_lightning.constants import CAMERAS, DETECTION_CLASSES
from nsmae_lightning.data.world import WorldConfig, write_kitti, write_nuscenes
from nsmae_lightning.data.world.cli import build_parser, config_from_args
from nsmae_lightning.data.world.frames import camera_at
from nsmae_lightning.data.world.rig import camera_intrinsics, camera_to_ego
from nsmae_lightning.data.world.scene import plan_world

VERSION = "v1.0-trainval"
MAP_LAYERS = ("drivable_area", "road_segment", "lane", "ped_crossing", "walkway", "stop_line", "carpark_area",
              "road_divider", "lane_divider")  # fmt: skip
KITTI_TYPES = {"Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare"}


@pytest.fixture(scope="module")
def nusc(tiny_world: Path) -> NuScenes:
    """The tiny world loaded by the devkit, unmodified."""
    return NuScenes(version=VERSION, dataroot=str(tiny_world), verbose=False)


def _pose(record: dict) -> np.ndarray:
    """4x4 transform of a calibrated_sensor or ego_pose record."""
    return transform_matrix(record["translation"], Quaternion(record["rotation"]))


def _sensor2global(nusc: NuScenes, sample_data_token: str) -> np.ndarray:
    """4x4 sensor -> global transform of a sample_data through the devkit records."""
    record = nusc.get("sample_data", sample_data_token)
    calib = nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
    return _pose(nusc.get("ego_pose", record["ego_pose_token"])) @ _pose(calib)


def _lidar_points(nusc: NuScenes, root: Path, sample: dict) -> np.ndarray:
    """(4, N) keyframe points (x, y, z, intensity) read by the devkit."""
    record = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    return LidarPointCloud.from_file(str(root / record["filename"])).points


def test_devkit_loads_tables_and_files(nusc: NuScenes, tiny_world: Path) -> None:
    assert len(nusc.scene) == 2 and len(nusc.sample) == 8
    assert [s["name"] for s in nusc.scene] == ["scene-0001", "scene-0003"]
    assert "scene-0003" in create_splits_scenes()["val"]
    sample = nusc.sample[5]
    assert set(sample["data"]) == {"LIDAR_TOP", *CAMERAS}
    raw = np.fromfile(tiny_world / nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["filename"], np.float32)
    points = raw.reshape(-1, 5)
    assert len(points) > 5000
    assert set(np.unique(points[:, 4])) <= set(range(32)) and 0 <= points[:, 3].min() and points[:, 3].max() <= 255
    # 2 sweeps before each keyframe, linked by prev
    lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    sweep = nusc.get("sample_data", lidar["prev"])
    assert not sweep["is_key_frame"] and sweep["filename"].startswith("sweeps/LIDAR_TOP/")
    assert lidar["timestamp"] - sweep["timestamp"] == pytest.approx(500000 / 3, abs=1)
    camera = nusc.get("sample_data", sample["data"]["CAM_FRONT"])
    assert (camera["height"], camera["width"]) == (112, 200)
    assert nusc.get("calibrated_sensor", camera["calibrated_sensor_token"])["camera_intrinsic"][0][2] == 100.0
    # LIDAR_TOP is yawed like nuScenes': its +y axis is the ego's +x (forward)
    lidar2ego = _pose(nusc.get("calibrated_sensor", lidar["calibrated_sensor_token"]))
    np.testing.assert_allclose(lidar2ego[:3, 1], [1.0, 0.0, 0.0], atol=1e-9)
    with open(tiny_world / VERSION / "splits.json") as handle:
        assert handle.read().count("scene-") == 2


def test_map_expansion_loads_every_layer(nusc: NuScenes, tiny_world: Path) -> None:
    for location in sorted({log["location"] for log in nusc.log}):
        nusc_map = NuScenesMap(dataroot=str(tiny_world), map_name=location)
        for layer in MAP_LAYERS:
            records = getattr(nusc_map, layer)
            assert records, f"{location}: empty {layer}"
            if layer in ("road_divider", "lane_divider"):
                assert nusc_map.extract_line(records[0]["line_token"]).length > 0
            elif layer == "drivable_area":
                assert nusc_map.extract_polygon(records[0]["polygon_tokens"][0]).area > 0
            else:
                assert nusc_map.extract_polygon(records[0]["polygon_token"]).area > 0
        junction = nusc_map.extract_polygon(nusc_map.road_segment[0]["polygon_token"]).centroid
        mask = nusc_map.get_map_mask((junction.x, junction.y, 100, 100), 0.0, ["drivable_area", "walkway"], (200, 200))
        assert mask.shape == (2, 200, 200) and 0 < mask[0].mean() < 1 and 0 < mask[1].mean() < 1


def test_num_lidar_pts_counts_points_in_box(nusc: NuScenes, tiny_world: Path) -> None:
    for sample in nusc.sample[::3]:
        points = _lidar_points(nusc, tiny_world, sample)
        _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
        assert boxes
        for box in boxes:
            expected = nusc.get("sample_annotation", box.token)["num_lidar_pts"]
            assert int(points_in_box(box, points[:3]).sum()) == expected, box.name


def test_lidar_points_project_into_box_and_onto_rendered_surface(nusc: NuScenes, tiny_world: Path) -> None:
    sample = nusc.sample[4]
    points = _lidar_points(nusc, tiny_world, sample)
    lidar2global = _sensor2global(nusc, sample["data"]["LIDAR_TOP"])
    _, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
    cam_token = sample["data"]["CAM_FRONT"]
    cam_record = nusc.get("sample_data", cam_token)
    intrinsics = np.array(nusc.get("calibrated_sensor", cam_record["calibrated_sensor_token"])["camera_intrinsic"])
    lidar2cam = np.linalg.inv(_sensor2global(nusc, cam_token)) @ lidar2global
    checked = 0
    for box in boxes:
        inside = points_in_box(box, points[:3])
        cam_box = box.copy()
        cam_box.rotate(Quaternion(matrix=lidar2cam[:3, :3]))
        cam_box.translate(lidar2cam[:3, 3])
        if inside.sum() < 10 or (cam_box.corners()[2] < 1.0).any():
            continue
        corners = view_points(cam_box.corners(), intrinsics, normalize=True)[:2]
        uv = view_points(lidar2cam[:3, :3] @ points[:3, inside] + lidar2cam[:3, 3:], intrinsics, normalize=True)[:2]
        assert (uv >= corners.min(axis=1, keepdims=True) - 1e-3).all()
        assert (uv <= corners.max(axis=1, keepdims=True) + 1e-3).all()
        checked += 1
    assert checked >= 2

    # the same surfaces seen by both sensors: render CAM_FRONT at the LiDAR's timestamp and compare depths
    cfg = WorldConfig.tiny(seed=0)
    worlds, plans = plan_world(cfg)
    plan = plans[1]
    time = (sample["timestamp"] - plan.start_us) / 1e6
    image, _ = camera_at(plan, worlds[plan.location], cfg, "CAM_FRONT", camera_to_ego("CAM_FRONT"),
                         camera_intrinsics("CAM_FRONT", 112, 200), (112, 200), time)  # fmt: skip
    lidar2ego = _pose(nusc.get("calibrated_sensor", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["calibrated_sensor_token"]))
    lidar2cam_same_time = np.linalg.inv(camera_to_ego("CAM_FRONT")) @ lidar2ego
    cam_points = lidar2cam_same_time[:3, :3] @ points[:3] + lidar2cam_same_time[:3, 3:]
    front = cam_points[2] > 2.0
    uv = view_points(cam_points[:, front], intrinsics, normalize=True)[:2]
    col, row = np.floor(uv).astype(int)
    in_image = (col >= 0) & (col < 200) & (row >= 0) & (row < 112)
    rendered = image.depth[row[in_image], col[in_image]]
    measured = cam_points[2, front][in_image]
    agree = np.abs(rendered - measured) < 0.05 * measured + 0.3
    assert in_image.sum() > 500 and agree.mean() > 0.85


def test_val_split_has_every_detection_class(nusc: NuScenes) -> None:
    gt = load_gt(nusc, "val", DetectionBox)
    counts = Counter(box.detection_name for box in gt.all if box.num_pts > 0 and box.ego_dist < 50)
    assert set(counts) == set(DETECTION_CLASSES)
    # the devkit differentiates neighbouring annotations: finite wherever an instance has two
    velocities = np.array([box.velocity for box in gt.all])
    finite = np.isfinite(velocities).all(axis=1)
    assert finite.mean() > 0.8 and (np.linalg.norm(velocities[finite], axis=1) > 0.5).any()


def _digests(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tiny_world: Path, tmp_path: Path) -> None:
    again = write_nuscenes(tmp_path / "again", WorldConfig.tiny(seed=0), workers=2)  # parallel scenes, same bytes
    assert _digests(again) == _digests(tiny_world)
    other = _digests(write_nuscenes(tmp_path / "other", WorldConfig.tiny(seed=1)))
    reference = _digests(tiny_world)
    shared = set(other) & set(reference)
    assert all(other[name] != reference[name] for name in shared if name.endswith((".bin", ".jpg", "sample.json")))


def test_a_killed_rewrite_leaves_the_former_tables_whole(tiny_world: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from nsmae_lightning.data.world import nuscenes_writer

    root = write_nuscenes(tmp_path / "world", WorldConfig.tiny(seed=0))
    tables = {name: digest for name, digest in _digests(root).items() if name.startswith(VERSION)}
    written: list[Path] = []
    original = nuscenes_writer.write_json

    def dies_on_the_fifth_table(path: Path, document: object) -> None:
        if path.suffix == ".json" and path.parent.name.endswith(".partial"):
            written.append(path)
            if len(written) == 5:
                raise KeyboardInterrupt  # killed while writing the new seed's tables
        original(path, document)

    monkeypatch.setattr(nuscenes_writer, "write_json", dies_on_the_fifth_table)
    with pytest.raises(KeyboardInterrupt):
        write_nuscenes(root, WorldConfig.tiny(seed=1))
    assert {name: digest for name, digest in _digests(root).items() if name.startswith(VERSION)} == tables
    monkeypatch.setattr(nuscenes_writer, "write_json", original)
    write_nuscenes(root, WorldConfig.tiny(seed=0))  # a rerun completes and leaves no side folders
    assert {name: digest for name, digest in _digests(root).items() if name.startswith(VERSION)} == tables
    assert not [path.name for path in root.iterdir() if path.name.startswith(".")]


def test_kitti_twin_cast_in_parallel_has_the_same_bytes(tiny_kitti_world: Path, tmp_path: Path) -> None:
    again = write_kitti(tmp_path / "again", WorldConfig.tiny(seed=0), workers=2)
    assert _digests(again) == _digests(tiny_kitti_world) and len(_digests(again)) == 4 * 8 + 2


def _kitti_box_contains(points_cam: np.ndarray, fields: list[str]) -> np.ndarray:
    """Which camera-rect points (N, 3) lie in a KITTI label's 3D box."""
    height, width, length = map(float, fields[8:11])
    bottom = np.array(list(map(float, fields[11:14])))
    rotation_y = float(fields[14])
    offset = points_cam - (bottom - np.array([0.0, height / 2, 0.0]))
    # rotation_y turns the object's length axis (camera x at 0) about camera y
    along = offset[:, 0] * np.cos(rotation_y) - offset[:, 2] * np.sin(rotation_y)
    across = offset[:, 0] * np.sin(rotation_y) + offset[:, 2] * np.cos(rotation_y)
    return (np.abs(along) <= length / 2 + 0.1) & (np.abs(across) <= width / 2 + 0.1) & (np.abs(offset[:, 1]) <= height / 2 + 0.1)


def test_kitti_twin_labels_and_points(tiny_kitti_world: Path) -> None:
    training = tiny_kitti_world / "training"
    ids = (tiny_kitti_world / "ImageSets" / "val.txt").read_text().split()
    assert len(ids) == 4 and (tiny_kitti_world / "ImageSets" / "train.txt").read_text().split() == ["000000", "000001", "000002", "000003"]
    hits = 0
    for frame_id in ids:
        calib = {}
        for line in (training / "calib" / f"{frame_id}.txt").read_text().splitlines():
            name, values = line.split(":")
            calib[name] = np.array(values.split(), float)
        velo2cam = np.vstack([calib["Tr_velo_to_cam"].reshape(3, 4), [0, 0, 0, 1]])
        velo = np.fromfile(training / "velodyne" / f"{frame_id}.bin", np.float32).reshape(-1, 4)
        assert 0.0 <= velo[:, 3].min() and velo[:, 3].max() <= 1.0
        # velodyne frame: x forward, so the camera (looking along +x) sees points with x > 0
        points_cam = velo[:, :3] @ velo2cam[:3, :3].T + velo2cam[:3, 3]
        assert np.allclose(velo2cam[:3, :3] @ [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
        for line in (training / "label_2" / f"{frame_id}.txt").read_text().splitlines():
            fields = line.split()
            assert len(fields) == 15 and fields[0] in KITTI_TYPES
            if fields[0] == "DontCare":
                continue
            assert 0.0 <= float(fields[1]) <= 1.0 and fields[2] in "0123"
            hits += int(_kitti_box_contains(points_cam, fields).sum() > 0)
    assert hits >= 5


def test_config_validation_and_cli_arguments() -> None:
    with pytest.raises(ValueError, match="WorldConfig.scenes"):
        WorldConfig(scenes=1)
    with pytest.raises(ValueError, match="lidar_dropout"):
        WorldConfig(lidar_dropout=1.5)
    cfg = config_from_args(build_parser().parse_args(["--out", "x", "--tiny", "--scenes", "3", "--image-size", "90", "160"]))
    assert (cfg.scenes, cfg.keyframes, cfg.image_height, cfg.image_width) == (3, 4, 90, 160)
    assert (cfg.train_scenes, cfg.val_scenes) == (1, 2)


def test_cli_sets_sweeps_and_any_field_with_clear_errors() -> None:
    parse = build_parser().parse_args
    cfg = config_from_args(parse(["--out", "x", "--sweeps", "1", "--set", "val_fraction=0.15", "clutter_density=8"]))
    assert (cfg.sweeps, cfg.val_fraction, cfg.clutter_density) == (1, 0.15, 8.0)
    with pytest.raises(ValueError, match="expected FIELD=VALUE.*val_fraction"):
        config_from_args(parse(["--out", "x", "--set", "colour=3"]))
    with pytest.raises(ValueError, match="objects_per_frame takes a int"):
        config_from_args(parse(["--out", "x", "--set", "objects_per_frame=many"]))
    with pytest.raises(ValueError, match="WorldConfig.val_fraction"):
        config_from_args(parse(["--out", "x", "--set", "val_fraction=2"]))
