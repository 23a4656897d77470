"""NuScenesDataModule on the tiny synthetic world: batch contract, geometry, map masks,
sweeps, augmentation, determinism and every bad-input case."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
import shapely
import torch
from lightning.pytorch import seed_everything
from nuscenes.map_expansion.map_api import NuScenesMap

from nsmae_lightning.constants import CAMERAS, DETECTION_CLASSES, MAP_CLASSES
from nsmae_lightning.data import NuScenesDataModule
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.map_raster import bev_cell_centres
from nsmae_lightning.data.nuscenes import NuScenesDataset, load_nuscenes, read_lidar
from nsmae_lightning.data.transforms import points_in_boxes

IMAGE_SIZE = (64, 176)
META_KEYS = {
    "sample_token", "scene_token", "timestamp", "location", "lidar2ego", "ego2global", "lidar2global",
    "lidar_aug", "image_paths", "padding",
}  # fmt: skip


def make_datamodule(dataroot: Path, **overrides: Any) -> NuScenesDataModule:
    """A small, single-process DataModule on a world root."""
    settings: dict[str, Any] = dict(sweeps=1, image_size=IMAGE_SIZE, batch_size=2, num_workers=0)
    settings.update(overrides)
    return NuScenesDataModule(str(dataroot), **settings)


@pytest.fixture(scope="module")
def fit_module(tiny_world: Path) -> NuScenesDataModule:
    """The tiny world set up for fitting."""
    datamodule = make_datamodule(tiny_world)
    datamodule.setup("fit")
    return datamodule


def project(points_xyz: np.ndarray, intrinsics: np.ndarray, cam2lidar: np.ndarray, img_aug: np.ndarray) -> np.ndarray:
    """(P, 3) pixel u, v in the batch image and depth d (docs/conventions.md)."""
    camera = np.linalg.inv(cam2lidar) @ np.c_[points_xyz, np.ones(len(points_xyz))].T  # (4, P)
    uvd = intrinsics @ camera[:3]
    pixels = np.stack([uvd[0] / uvd[2], uvd[1] / uvd[2], camera[2], np.ones(len(points_xyz))])
    return (img_aug @ pixels)[:3].T


def box_corners(box: np.ndarray) -> np.ndarray:
    """(8, 3) corners of a 9-dof box."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    local = signs * box[3:6] / 2.0
    cos_yaw, sin_yaw = np.cos(box[6]), np.sin(box[6])
    rotation = np.array([[cos_yaw, -sin_yaw, 0.0], [sin_yaw, cos_yaw, 0.0], [0.0, 0.0, 1.0]])
    return local @ rotation.T + box[:3]


def test_batch_has_the_exact_contract(fit_module: NuScenesDataModule) -> None:
    batch = next(iter(fit_module.train_dataloader()))
    batch_size, cameras = 2, len(CAMERAS)
    assert set(batch) == {
        "images", "intrinsics", "cam2lidar", "img_aug", "points", "gt_boxes", "gt_labels", "bev_masks", "meta",
    }  # fmt: skip
    expected = {
        "images": ((batch_size, cameras, 3, *IMAGE_SIZE), torch.float32),
        "intrinsics": ((batch_size, cameras, 3, 3), torch.float32),
        "cam2lidar": ((batch_size, cameras, 4, 4), torch.float32),
        "img_aug": ((batch_size, cameras, 4, 4), torch.float32),
        "bev_masks": ((batch_size, len(MAP_CLASSES), 200, 200), torch.bool),
    }
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == shape and batch[key].dtype == dtype, key
    for points, boxes, labels, meta in zip(batch["points"], batch["gt_boxes"], batch["gt_labels"], batch["meta"]):
        assert points.dtype == torch.float32 and points.shape[1] == 5 and len(points) > 1000
        assert boxes.dtype == torch.float32 and boxes.shape[1] == 9 and len(boxes) > 0
        assert labels.dtype == torch.int64 and labels.shape == (len(boxes),)
        assert 0 <= labels.min() and labels.max() < len(DETECTION_CLASSES)
        assert set(meta) == META_KEYS and len(meta["image_paths"]) == cameras
        assert np.asarray(meta["lidar_aug"]).shape == (4, 4)
        assert (points[:, 4] >= 0).all() and (points[:, 3] >= 0).all() and (points[:, 3] <= 255).all()
        assert (points[:, :3].abs() <= 54).all()
    assert batch["images"].abs().max() < 3.0  # normalised, not 0..255
    assert batch["bev_masks"][:, MAP_CLASSES.index("drivable_area")].any()


def test_points_land_in_images_and_inside_projected_boxes(fit_module: NuScenesDataModule) -> None:
    """Boxes hold LiDAR points, and those points project inside the box's projected 2D extent."""
    sample = fit_module.val_dataset[0]
    points = sample["points"][:, :3].double().numpy()
    boxes = sample["gt_boxes"].double().numpy()
    inside = points_in_boxes(points, boxes)
    assert (inside.sum(axis=0) > 0).mean() > 0.8  # annotated boxes are where the LiDAR hits
    height, width = IMAGE_SIZE
    seen_by_a_camera = np.zeros(len(points), dtype=bool)
    checked_boxes = 0
    for camera in range(len(CAMERAS)):
        calibration = [sample[key][camera].double().numpy() for key in ("intrinsics", "cam2lidar", "img_aug")]
        pixels = project(points, *calibration)
        on_image = (pixels[:, 2] > 1.0) & (pixels[:, 0] >= 0) & (pixels[:, 0] < width)
        on_image &= (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
        seen_by_a_camera |= on_image
        for box_index, box in enumerate(boxes):
            corners = project(box_corners(box), *calibration)
            box_points = inside[:, box_index] & on_image
            if (corners[:, 2] <= 0.5).any() or not box_points.any():
                continue
            checked_boxes += 1
            low, high = corners[:, :2].min(axis=0) - 1e-3, corners[:, :2].max(axis=0) + 1e-3
            assert ((pixels[box_points, :2] >= low) & (pixels[box_points, :2] <= high)).all()
    assert checked_boxes > 0
    far = np.linalg.norm(points[:, :2], axis=1) > 5.0
    assert seen_by_a_camera[far].mean() > 0.9  # six cameras cover 360 degrees


def drivable_area_truth(nusc_map: NuScenesMap, grid_to_global: np.ndarray) -> np.ndarray:
    """Point-in-polygon of every BEV cell centre against the map's drivable-area polygons."""
    grid_x, grid_y = bev_cell_centres()
    centres = np.stack([grid_x.ravel(), grid_y.ravel(), np.zeros(grid_x.size), np.ones(grid_x.size)])
    global_xy = (grid_to_global @ centres)[:2]
    polygons = [
        nusc_map.extract_polygon(token) for record in nusc_map.drivable_area for token in record["polygon_tokens"]
    ]
    inside = np.zeros(grid_x.size, dtype=bool)
    for polygon in polygons:
        inside |= shapely.contains_xy(polygon, global_xy[0], global_xy[1])
    return inside.reshape(grid_x.shape)


@pytest.mark.parametrize("augmented", [False, True])
def test_bev_mask_agrees_with_map_polygons(tiny_world: Path, fit_module: NuScenesDataModule, augmented: bool) -> None:
    torch.manual_seed(0)
    sample = (fit_module.train_dataset if augmented else fit_module.val_dataset)[1]
    meta = sample["meta"]
    nusc_map = NuScenesMap(dataroot=str(tiny_world), map_name=meta["location"])
    truth = drivable_area_truth(nusc_map, np.asarray(meta["lidar2global"]) @ np.linalg.inv(meta["lidar_aug"]))
    mask = sample["bev_masks"][MAP_CLASSES.index("drivable_area")].numpy()
    assert 0.02 < truth.mean() < 0.98  # the patch holds road and non-road
    assert (mask != truth).sum() <= 3  # at most a few cells exactly on a polygon edge


def test_lidar_augmentation_is_consistent(fit_module: NuScenesDataModule) -> None:
    """Augmented points stay in their augmented boxes and project onto the same pixels."""
    dataset = fit_module.train_dataset
    assert isinstance(dataset, NuScenesDataset)
    torch.manual_seed(3)
    sample = dataset[0]
    raw = dataset.load_raw(0)
    lidar_aug = sample["meta"]["lidar_aug"]
    assert not np.allclose(lidar_aug, np.eye(4))
    raw_xyz = raw.points[:, :3].astype(np.float64)
    moved_xyz = raw_xyz @ lidar_aug[:3, :3].T + lidar_aug[:3, 3]
    in_range = np.all((moved_xyz >= [-54, -54, -5]) & (moved_xyz < [54, 54, 3]), axis=1)
    np.testing.assert_allclose(sample["points"][:, :3].double().numpy(), moved_xyz[in_range], atol=1e-3)
    # Boxes: the same points fall in each kept box before and after augmentation.
    raw_boxes = raw.boxes.astype(np.float64)
    boxes = sample["gt_boxes"].double().numpy()
    centre_of_raw = raw_boxes[:, :3] @ lidar_aug[:3, :3].T + lidar_aug[:3, 3]
    matches = [int(np.argmin(np.linalg.norm(centre_of_raw - box[:3], axis=1))) for box in boxes]
    np.testing.assert_array_equal(points_in_boxes(moved_xyz, boxes), points_in_boxes(raw_xyz, raw_boxes[matches]))
    np.testing.assert_array_equal(sample["gt_labels"].numpy(), raw.labels[matches])
    for camera in range(len(CAMERAS)):
        img_aug = sample["img_aug"][camera].double().numpy()
        intrinsics = raw.intrinsics[camera]
        before = project(raw_xyz, intrinsics, raw.cam2lidar[camera], img_aug)
        after = project(moved_xyz, intrinsics, sample["cam2lidar"][camera].double().numpy(), img_aug)
        on_image = (before[:, 2] > 1.0) & np.all((before[:, :2] >= 0) & (before[:, :2] < IMAGE_SIZE[::-1]), axis=1)
        assert on_image.any()
        np.testing.assert_allclose(after[on_image, :2], before[on_image, :2], atol=1e-2)  # float32 calibration


def test_sweeps_add_points_with_growing_dt(tiny_world: Path) -> None:
    counts, dts = [], []
    for sweeps in (0, 1, 2):
        datamodule = make_datamodule(tiny_world, sweeps=sweeps, load_bev_masks=False)
        info = datamodule.split_infos("train")[2]
        points = read_lidar(info)
        counts.append(len(points))
        dts.append(np.unique(points[:, 4]))
    assert counts[0] < counts[1] < counts[2]
    np.testing.assert_array_equal(dts[0], [0.0])
    assert len(dts[1]) == 2 and len(dts[2]) == 3
    # dt is the keyframe time minus each previous LiDAR sample_data time.
    nusc = load_nuscenes(tiny_world, "v1.0-trainval")
    keyframe = nusc.get("sample_data", nusc.get("sample", info["sample_token"])["data"]["LIDAR_TOP"])
    previous = nusc.get("sample_data", keyframe["prev"])
    before_previous = nusc.get("sample_data", previous["prev"])
    expected = [(keyframe["timestamp"] - record["timestamp"]) / 1e6 for record in (previous, before_previous)]
    np.testing.assert_allclose(dts[2][1:], expected, rtol=1e-6)
    assert 0 < expected[0] < expected[1] < 1.0


def test_same_seed_and_epoch_same_batch(tiny_world: Path) -> None:
    """Training batches depend on the run seed and the epoch only, not on torch's RNG state."""
    datamodule = make_datamodule(tiny_world, load_bev_masks=False)
    datamodule.setup("fit")

    def first_batch(seed: int, epoch: int = 0) -> dict[str, Any]:
        seed_everything(seed)
        torch.manual_seed(1234 + epoch)  # consumed RNG state must not matter
        loader = datamodule.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))

    first, again = first_batch(0), first_batch(0)
    for key in ("images", "cam2lidar", "img_aug"):
        assert torch.equal(first[key], again[key]), key
    assert torch.equal(first["points"][0], again["points"][0])
    for other in (first_batch(1), first_batch(0, epoch=1)):
        assert not torch.equal(first["cam2lidar"], other["cam2lidar"])


@pytest.fixture()
def world_copy(tiny_world: Path, tmp_path: Path) -> Path:
    """A copy of the world with real table files and symlinked sensor files, free to corrupt."""
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root, copy_function=os.symlink, ignore=shutil.ignore_patterns("v1.0-*"))
    for version_folder in tiny_world.glob("v1.0-*"):
        shutil.copytree(version_folder, root / version_folder.name)
    return root


def edit_table(root: Path, table: str, edit: Any) -> None:
    """Rewrite `<root>/v1.0-trainval/<table>.json` after `edit(records)`."""
    path = root / "v1.0-trainval" / f"{table}.json"
    records = json.loads(path.read_text())
    edit(records)
    path.write_text(json.dumps(records))


def replace_file(path: Path, content: bytes | None) -> None:
    """Drop a symlinked sensor file, or replace it with `content`."""
    real = path.resolve()
    path.unlink()
    if content is not None:
        path.write_bytes(content if content else real.read_bytes())


def test_missing_dataroot_and_version(tmp_path: Path, tiny_world: Path) -> None:
    with pytest.raises(DataError, match="nowhere: dataset root does not exist"):
        make_datamodule(tmp_path / "nowhere").setup("fit")
    with pytest.raises(DataError, match=r"v1\.0-mini: version folder 'v1\.0-mini' not found"):
        make_datamodule(tiny_world, version="v1.0-mini").setup("fit")


def test_table_with_missing_token(world_copy: Path) -> None:
    def break_ego_pose(records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["is_key_frame"] and "LIDAR_TOP" in record["filename"]:
                record["ego_pose_token"] = "no-such-ego-pose"

    edit_table(world_copy, "sample_data", break_ego_pose)
    with pytest.raises(DataError, match="no-such-ego-pose: token referenced but not found in table 'ego_pose'"):
        make_datamodule(world_copy).setup("fit")


def test_table_with_missing_token_seen_by_the_devkit(world_copy: Path) -> None:
    def break_instance(records: list[dict[str, Any]]) -> None:
        records[0]["instance_token"] = "no-such-instance"

    edit_table(world_copy, "sample_annotation", break_instance)
    with pytest.raises(DataError, match="v1.0-trainval: a table references the missing token 'no-such-instance'"):
        make_datamodule(world_copy).setup("fit")


def test_unreadable_or_malformed_tables_are_named(world_copy: Path) -> None:
    sample = world_copy / "v1.0-trainval" / "sample.json"
    sample.write_text(sample.read_text()[:200])  # cut short
    with pytest.raises(DataError, match=r"sample\.json: table is not valid JSON"):
        make_datamodule(world_copy).setup("fit")
    sample.write_text("{}")
    with pytest.raises(DataError, match=r"sample\.json: a table is a JSON list of records, got dict"):
        make_datamodule(world_copy).setup("fit")


def test_a_record_without_a_field_is_told_from_a_missing_token(world_copy: Path) -> None:
    def drop_sensor_token(records: list[dict[str, Any]]) -> None:
        for record in records:
            del record["sensor_token"]

    edit_table(world_copy, "calibrated_sensor", drop_sensor_token)
    with pytest.raises(DataError, match=r"v1.0-trainval: a table record lacks the field 'sensor_token'"):
        make_datamodule(world_copy).setup("fit")


def test_unknown_map_location(world_copy: Path) -> None:
    def move_to_atlantis(records: list[dict[str, Any]]) -> None:
        for record in records:
            record["location"] = "atlantis"

    edit_table(world_copy, "log", move_to_atlantis)
    with pytest.raises(DataError, match="atlantis: unknown map location"):
        make_datamodule(world_copy).setup("fit")


def test_unreadable_map_expansion_names_the_file(world_copy: Path) -> None:
    datamodule = make_datamodule(world_copy, batch_size=1, load_bev_masks=True)
    datamodule.setup("fit")
    map_files = sorted((world_copy / "maps" / "expansion").glob("*.json"))
    assert map_files
    for map_file in map_files:
        replace_file(map_file, b'{"version": ')  # cut short, as by a failed download
    with pytest.raises(DataError, match=r"expansion/[a-z-]+\.json: cannot read the map expansion: JSONDecodeError"):
        datamodule.train_dataset[0]


def test_an_image_of_another_aspect_ratio_is_refused_a_scaled_one_read(world_copy: Path) -> None:
    datamodule = make_datamodule(world_copy, batch_size=1)
    datamodule.setup("fit")
    dataset = datamodule.train_dataset
    path = Path(dataset.infos[1]["image_paths"][0])
    original = Image.open(path.resolve()).convert("RGB")
    path.unlink()
    original.resize((original.width // 2, original.height // 2)).save(path)  # a downscaled copy: fine
    assert dataset[1]["images"].shape[-2:] == dataset[0]["images"].shape[-2:]
    original.crop((0, 0, original.width // 2, original.height)).save(path)  # a cropped copy: refused
    with pytest.raises(DataError, match=rf"{path.name}: image is \d+x\d+, sample_data says"):
        dataset[1]


@pytest.mark.parametrize(
    ("target", "content", "problem"),
    [
        ("lidar", b"\0" * 24, "truncated point cloud: 24 bytes is not a multiple of 5 float32"),
        ("lidar", None, "point cloud file not found"),
        ("image", b"\xff\xd8\xff\xe0 not really a jpeg", "corrupt image"),
        ("image", None, "image file not found"),
    ],
)
def test_bad_sensor_files(world_copy: Path, target: str, content: bytes | None, problem: str) -> None:
    datamodule = make_datamodule(world_copy, batch_size=1)
    datamodule.setup("fit")
    dataset = datamodule.train_dataset
    assert isinstance(dataset, NuScenesDataset)
    info = dataset.infos[1]
    path = Path(info["lidar_path"] if target == "lidar" else info["image_paths"][2])
    replace_file(path, content)
    with pytest.raises(DataError, match=f"{path.name}: {problem}"):
        dataset[1]


def test_skip_bad_samples_counts_them(world_copy: Path) -> None:
    """Skipping: the epoch still yields one sample per index, and the bad one is counted."""
    datamodule = make_datamodule(world_copy, batch_size=1, skip_bad_samples=True, load_bev_masks=False)
    datamodule.setup("fit")
    dataset = datamodule.train_dataset
    assert isinstance(dataset, NuScenesDataset)
    replace_file(Path(dataset.infos[1]["lidar_path"]), b"\0" * 24)
    tokens = [batch["meta"][0]["sample_token"] for batch in datamodule.train_dataloader()]
    assert len(tokens) == len(dataset)
    assert tokens.count(dataset.infos[2]["sample_token"]) == 2 and dataset.infos[1]["sample_token"] not in tokens
    assert datamodule.num_skipped_samples == 1


def test_optional_images_and_masks_and_custom_split(tiny_world: Path) -> None:
    """`load_images`/`load_bev_masks` drop their keys; splits.json names resolve through the devkit."""
    datamodule = make_datamodule(
        tiny_world, val_split="synth_val", load_images=False, load_bev_masks=False, cameras=("CAM_FRONT",)
    )
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    assert "images" not in batch and "bev_masks" not in batch
    assert batch["intrinsics"].shape == (2, 1, 3, 3) and batch["img_aug"].shape == (2, 1, 4, 4)
    with pytest.raises(DataError, match=r"splits\.json: Custom split no_such_split requested"):
        make_datamodule(tiny_world, test_split="no_such_split").setup("test")
