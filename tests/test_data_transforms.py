"""Transforms, map rasterization and collate on hand-built inputs (no dataset needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shapely.geometry import Polygon

from nsmae_lightning.constants import IMAGE_MEAN, IMAGE_STD, MAP_CLASSES
from nsmae_lightning.data.collate import collate_batch
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.geometry import pose_matrix, rotation_z
from nsmae_lightning.data.map_raster import MapRasterizer, bev_cell_centres, rasterize_geometries
from nsmae_lightning.data.readers import read_image, read_points
from nsmae_lightning.data.transforms import (
    ImageAugmentation,
    ImageCrop,
    LidarAugmentation,
    RawSample,
    SampleTransform,
    apply_image_crop,
    image_crop_matrix,
    in_range_mask,
    normalize_image,
    points_in_boxes,
    sample_image_crop,
    sample_lidar_aug,
    transform_boxes,
)


def test_test_time_crop_matches_bevfusion_numbers() -> None:
    """1600x900 -> 256x704 at test time: resize 0.48 to 768x432, centre-bottom crop."""
    crop = sample_image_crop(ImageAugmentation(), (1600, 900), (256, 704), np.random.default_rng(0), train=False)
    assert crop.resized_size == (768, 432)
    assert crop.crop_box == (32, 176, 736, 432)
    assert not crop.flip and crop.rotation_deg == 0.0
    matrix = image_crop_matrix(crop, (1600, 900))
    np.testing.assert_allclose(matrix @ [800.0, 900.0, 7.0, 1.0], [352.0, 256.0, 7.0, 1.0], atol=1e-9)


def test_flip_matrix_mirrors_u() -> None:
    crop = ImageCrop(resized_size=(40, 20), crop_box=(0, 0, 40, 20), flip=True, rotation_deg=0.0)
    np.testing.assert_allclose(image_crop_matrix(crop, (40, 20)) @ [3.0, 5.0, 2.0, 1.0], [37.0, 5.0, 2.0, 1.0])


def marker_centroid(image: Image.Image) -> np.ndarray:
    """Intensity-weighted centroid (continuous pixel coordinates) of the red channel."""
    red = np.asarray(image)[..., 0].astype(np.float64)
    rows, cols = np.nonzero(red)
    weights = red[rows, cols]
    return np.array([(cols + 0.5) @ weights, (rows + 0.5) @ weights]) / weights.sum()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_img_aug_follows_the_pixels(seed: int) -> None:
    """A 2x2 marker lands where img_aug says, through resize, crop, flip and rotation."""
    source = np.zeros((90, 160, 3), dtype=np.uint8)
    source[40:42, 100:102, 0] = 255  # marker centred at (u, v) = (101, 41)
    settings = ImageAugmentation(resize_range=(1.0, 1.3), rotation_range=(-10.0, 10.0), flip=True)
    crop = sample_image_crop(settings, (160, 90), (48, 128), np.random.default_rng(seed), train=True)
    augmented = apply_image_crop(Image.fromarray(source), crop)
    assert augmented.size == (128, 48)
    expected = image_crop_matrix(crop, (160, 90)) @ [101.0, 41.0, 1.0, 1.0]
    np.testing.assert_allclose(marker_centroid(augmented), expected[:2], atol=0.35)


def test_normalize_image_values() -> None:
    image = Image.fromarray(np.full((2, 3, 3), 255, dtype=np.uint8))
    tensor = normalize_image(image)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    expected = (1.0 - torch.tensor(IMAGE_MEAN)) / torch.tensor(IMAGE_STD)
    torch.testing.assert_close(tensor[:, 1, 2], expected)


def box(x: float, y: float, yaw: float, vx: float = 0.0, vy: float = 0.0) -> np.ndarray:
    """A 4 x 2 x 1.5 box at height 0."""
    return np.array([[x, y, 0.0, 4.0, 2.0, 1.5, yaw, vx, vy]])


def test_points_in_boxes_exact() -> None:
    boxes = box(10.0, 0.0, np.pi / 2)  # long side along +y
    points = np.array([[10.0, 1.9, 0.0], [10.9, 0.0, 0.7], [11.1, 0.0, 0.0], [10.0, 0.0, 0.8]])
    np.testing.assert_array_equal(points_in_boxes(points, boxes)[:, 0], [True, True, False, False])


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        (rotation_z(np.pi / 2), [0.0, 10.0, 0.0, 4.0, 2.0, 1.5, np.pi / 2 + 0.3, -2.0, 1.0]),
        (np.diag([1.0, -1.0, 1.0, 1.0]), [10.0, 0.0, 0.0, 4.0, 2.0, 1.5, -0.3, 1.0, -2.0]),
        (np.diag([-1.0, 1.0, 1.0, 1.0]), [-10.0, 0.0, 0.0, 4.0, 2.0, 1.5, np.pi - 0.3, -1.0, 2.0]),
        (np.diag([2.0, 2.0, 2.0, 1.0]), [20.0, 0.0, 0.0, 8.0, 4.0, 3.0, 0.3, 2.0, 4.0]),
    ],
)
def test_transform_boxes_rotates_flips_scales(matrix: np.ndarray, expected: list[float]) -> None:
    moved = transform_boxes(box(10.0, 0.0, 0.3, 1.0, 2.0), matrix)
    np.testing.assert_allclose(moved[0], expected, atol=1e-9)


def test_points_stay_in_their_boxes_under_lidar_augmentation() -> None:
    rng = np.random.default_rng(0)
    boxes = np.concatenate([box(10.0, 5.0, 0.4), box(-8.0, 3.0, -1.2)])
    points = rng.uniform(-15, 15, size=(4000, 3))
    points[:, 2] = rng.uniform(-1, 1, size=4000)
    inside = points_in_boxes(points, boxes)
    assert inside.sum() > 20
    settings = LidarAugmentation()
    for seed in range(5):
        matrix = sample_lidar_aug(settings, np.random.default_rng(seed))
        moved_points = points @ matrix[:3, :3].T + matrix[:3, 3]
        np.testing.assert_array_equal(points_in_boxes(moved_points, transform_boxes(boxes, matrix)), inside)


def test_in_range_mask_half_open() -> None:
    xyz = np.array([[0.0, 0.0, 0.0], [54.0, 0.0, 0.0], [-54.0, -54.0, -5.0], [0.0, 0.0, 3.5]])
    np.testing.assert_array_equal(in_range_mask(xyz, (-54, -54, -5, 54, 54, 3)), [True, False, True, False])
    np.testing.assert_array_equal(in_range_mask(xyz, (-54, -54, -5, 54, 54, 3), dims=2), [True, False, True, True])


def project(points_xyz: np.ndarray, intrinsics: np.ndarray, cam2lidar: np.ndarray, img_aug: np.ndarray) -> np.ndarray:
    """Pixels (P, 2) and depth (P,) of LiDAR points, following docs/conventions.md."""
    camera = (np.linalg.inv(cam2lidar) @ np.c_[points_xyz, np.ones(len(points_xyz))].T)[:3]
    uvd = intrinsics @ camera
    pixels = np.stack([uvd[0] / uvd[2], uvd[1] / uvd[2], camera[2], np.ones(len(points_xyz))])
    return (img_aug @ pixels)[:3].T


def raw_sample(seen_augs: list[np.ndarray]) -> RawSample:
    """One camera looking along LiDAR +y (nuScenes-like mounting), points in front of it."""
    rng = np.random.default_rng(1)
    cam2lidar = np.eye(4)
    cam2lidar[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]  # cam z -> lidar +y
    points = np.c_[rng.uniform(-5, 5, 50), rng.uniform(5, 20, 50), rng.uniform(-1, 1, 50), np.zeros((50, 2))]

    def masks(lidar_aug: np.ndarray) -> np.ndarray:
        seen_augs.append(lidar_aug)
        return np.zeros((len(MAP_CLASSES), 200, 200), dtype=bool)

    return RawSample(
        images=[Image.fromarray(np.zeros((90, 160, 3), dtype=np.uint8))],
        image_sizes=[(160, 90)],
        intrinsics=np.array([[[100.0, 0.0, 80.0], [0.0, 100.0, 45.0], [0.0, 0.0, 1.0]]]),
        cam2lidar=cam2lidar[None],
        points=points.astype(np.float32),
        boxes=np.concatenate([box(0.0, 10.0, 0.2, 1.0, 0.0), box(0.0, 90.0, 0.0)]).astype(np.float32),
        labels=np.array([3, 4]),
        meta={"sample_token": "t"},
        bev_masks=masks,
    )


def test_sample_transform_keeps_projections_under_lidar_augmentation() -> None:
    seen_augs: list[np.ndarray] = []
    raw = raw_sample(seen_augs)
    wide_range = (-1000.0, -1000.0, -1000.0, 1000.0, 1000.0, 1000.0)
    transform = SampleTransform((48, 128), ImageAugmentation(), LidarAugmentation(), wide_range, train=True)
    sample = transform(raw, np.random.default_rng(3))
    lidar_aug = sample["meta"]["lidar_aug"]
    assert not np.allclose(lidar_aug, np.eye(4))
    np.testing.assert_array_equal(seen_augs[0], lidar_aug)
    assert sample["images"].shape == (1, 3, 48, 128) and sample["bev_masks"].dtype == torch.bool
    img_aug = sample["img_aug"][0].double().numpy()
    before = project(raw.points[:, :3], raw.intrinsics[0], raw.cam2lidar[0], img_aug)
    after = project(
        sample["points"][:, :3].double().numpy(),
        sample["intrinsics"][0].double().numpy(),
        sample["cam2lidar"][0].double().numpy(),
        img_aug,
    )
    np.testing.assert_allclose(after[:, :2], before[:, :2], atol=1e-3)
    np.testing.assert_allclose(after[:, 2], before[:, 2], atol=1e-4)  # depth along the camera axis is unscaled
    np.testing.assert_array_equal(sample["gt_labels"].numpy(), [3, 4])


def test_sample_transform_test_mode_filters_range_and_is_deterministic() -> None:
    transform = SampleTransform(
        (48, 128), ImageAugmentation(), LidarAugmentation(), (-54, -54, -5, 54, 54, 3), train=False
    )
    first = transform(raw_sample([]), np.random.default_rng(0))
    second = transform(raw_sample([]), np.random.default_rng(1))
    np.testing.assert_array_equal(first["meta"]["lidar_aug"], np.eye(4))
    torch.testing.assert_close(first["img_aug"], second["img_aug"])
    np.testing.assert_array_equal(first["gt_labels"].numpy(), [3])  # the box at y = 90 m is out of range
    assert first["gt_boxes"].shape == (1, 9) and first["gt_boxes"].dtype == torch.float32


def test_rasterize_geometries_known_polygon() -> None:
    grid_x, grid_y = bev_cell_centres(bound=2.0, resolution=1.0)  # centres -1.5, -0.5, 0.5, 1.5
    square = Polygon([(-1.0, 0.0), (2.0, 0.0), (2.0, 1.0), (-1.0, 1.0)])  # covers y = 0.5, x >= -0.5
    masks = rasterize_geometries([[square], []], grid_x, grid_y)
    expected = np.zeros((4, 4), dtype=bool)
    expected[2, 1:] = True  # row iy = 2 is y = 0.5; columns ix = 1..3 are x = -0.5..1.5
    np.testing.assert_array_equal(masks[0], expected)
    assert not masks[1].any()


def write_map(root: Path) -> None:
    """A boston-seaport map expansion with one drivable square and one lane divider."""
    corners = [(100.2, 200.1), (110.3, 200.1), (110.3, 205.4), (100.2, 205.4)]
    nodes = [{"token": f"n{i}", "x": x, "y": y} for i, (x, y) in enumerate(corners)]
    nodes += [{"token": "d0", "x": 90.0, "y": 190.3}, {"token": "d1", "x": 120.0, "y": 190.3}]
    layers = [
        "road_segment", "road_block", "lane", "ped_crossing", "walkway", "stop_line", "carpark_area",
        "road_divider", "traffic_light", "lane_connector",
    ]  # fmt: skip
    content = {name: [] for name in layers}
    content.update(
        version="1.3",
        canvas_edge=[3000.0, 3000.0],
        node=nodes,
        polygon=[{"token": "p0", "exterior_node_tokens": ["n0", "n1", "n2", "n3"], "holes": []}],
        line=[{"token": "l0", "node_tokens": ["d0", "d1"]}],
        drivable_area=[{"token": "da0", "polygon_tokens": ["p0"]}],
        lane_divider=[{"token": "ld0", "line_token": "l0", "lane_divider_segments": []}],
        arcline_path_3={},
        connectivity={},
    )
    (root / "maps" / "expansion").mkdir(parents=True)
    (root / "maps" / "expansion" / "boston-seaport.json").write_text(json.dumps(content))


def test_map_rasterizer_rotation_and_axis_order(tmp_path: Path) -> None:
    """LiDAR at global (105, 200) yawed 90 deg: LiDAR (x, y) is global (105 - y, 200 + x)."""
    write_map(tmp_path)
    rasterizer = MapRasterizer(tmp_path)
    lidar2global = pose_matrix([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)], [105.0, 200.0, 1.8])
    masks = rasterizer("boston-seaport", lidar2global, np.eye(4))
    assert masks.shape == (6, 200, 200) and masks.dtype == bool
    grid_x, grid_y = bev_cell_centres()
    global_x, global_y = 105.0 - grid_y, 200.0 + grid_x
    drivable = (global_x > 100.2) & (global_x < 110.3) & (global_y > 200.1) & (global_y < 205.4)
    np.testing.assert_array_equal(masks[MAP_CLASSES.index("drivable_area")], drivable)
    divider = (np.abs(global_y - 190.3) < 0.5) & (global_x > 90.0) & (global_x < 120.0)
    np.testing.assert_array_equal(masks[MAP_CLASSES.index("divider")], divider)
    assert not masks[MAP_CLASSES.index("walkway")].any()
    # Augmentations move the mask with the points: flipping x mirrors ix, a 90 deg turn rotates.
    flipped = rasterizer("boston-seaport", lidar2global, np.diag([-1.0, 1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(flipped, masks[:, :, ::-1])
    turned = rasterizer("boston-seaport", lidar2global, rotation_z(np.pi / 2))
    np.testing.assert_array_equal(turned, np.rot90(masks, k=-1, axes=(1, 2)))  # new[iy, ix] = old[N-1-ix, iy]


def test_map_rasterizer_unknown_location(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="atlantis.*unknown map location"):
        MapRasterizer(tmp_path).check_location("atlantis")
    with pytest.raises(DataError, match="boston-seaport.json.*not found"):
        MapRasterizer(tmp_path).check_location("boston-seaport")


def test_collate_batch_stacks_and_lists() -> None:
    samples = [
        {
            "images": torch.zeros(2, 3, 4, 5),
            "intrinsics": torch.eye(3).repeat(2, 1, 1),
            "cam2lidar": torch.eye(4).repeat(2, 1, 1),
            "img_aug": torch.eye(4).repeat(2, 1, 1),
            "points": torch.zeros(count, 5),
            "gt_boxes": torch.zeros(count - 1, 9),
            "gt_labels": torch.zeros(count - 1, dtype=torch.int64),
            "meta": {"sample_token": str(count)},
        }
        for count in (3, 7)
    ]
    batch = collate_batch(samples)
    assert batch["images"].shape == (2, 2, 3, 4, 5) and batch["cam2lidar"].shape == (2, 2, 4, 4)
    assert [len(points) for points in batch["points"]] == [3, 7]
    assert [meta["sample_token"] for meta in batch["meta"]] == ["3", "7"]
    assert "bev_masks" not in batch
    with pytest.raises(ValueError, match="sample 1 has keys"):
        collate_batch([samples[0], {key: value for key, value in samples[1].items() if key != "images"}])
    with pytest.raises(ValueError, match="no samples"):
        collate_batch([])


def test_readers_report_bad_files(tmp_path: Path) -> None:
    points_file = tmp_path / "cloud.pcd.bin"
    np.arange(10, dtype=np.float32).tofile(points_file)
    np.testing.assert_array_equal(read_points(points_file, 5)[1], [5, 6, 7, 8, 9])
    np.arange(11, dtype=np.float32).tofile(points_file)
    with pytest.raises(DataError, match=r"cloud\.pcd\.bin.*not a multiple of 5 float32"):
        read_points(points_file, 5)
    with pytest.raises(DataError, match="missing.bin.*not found"):
        read_points(tmp_path / "missing.bin", 5)
    points_file.write_bytes(b"")
    with pytest.raises(DataError, match=r"cloud\.pcd\.bin.*empty point cloud"):
        read_points(points_file, 5)
    jpeg = tmp_path / "image.jpg"
    Image.fromarray(np.full((16, 16, 3), 128, dtype=np.uint8)).save(jpeg)
    assert read_image(jpeg).size == (16, 16)
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    with pytest.raises(DataError, match="image.jpg.*corrupt"):
        read_image(jpeg)
