"""KittiDataModule: calibration and label conversion on a hand-built frame (exact values),
the batch contract and projections on the tiny KITTI world, and the bad-input cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nsmae_lightning.constants import KITTI_CLASSES
from nsmae_lightning.data import KittiDataModule
from nsmae_lightning.data.errors import DataError
from nsmae_lightning.data.kitti import read_calib, read_labels
from nsmae_lightning.data.transforms import points_in_boxes

IMAGE_SIZE = (48, 160)
# Standard KITTI mounting: velodyne x forward, y left, z up; camera x right, y down, z forward.
VELO_TO_CAM = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
P2 = np.array([[100.0, 0.0, 100.0, 100.0 * 0.06], [0.0, 100.0, 30.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
CAR_LABEL = "Car 0.00 0 0.00 10.0 10.0 50.0 40.0 1.50 1.60 4.00 1.00 1.50 10.00 0.00"


def write_frame(root: Path, frame_id: str = "000000", split: str = "train") -> None:
    """One KITTI frame: a car 10 m ahead holding 27 velodyne points, a DontCare, a Van."""
    training = root / "training"
    for folder in ("calib", "image_2", "velodyne", "label_2"):
        (training / folder).mkdir(parents=True, exist_ok=True)
    numbers = lambda values: " ".join(f"{value:.6f}" for value in np.ravel(values))  # noqa: E731
    (training / "calib" / f"{frame_id}.txt").write_text(
        f"P0: {numbers(P2)}\nP1: {numbers(P2)}\nP2: {numbers(P2)}\nP3: {numbers(P2)}\n"
        f"R0_rect: {numbers(np.eye(3))}\nTr_velo_to_cam: {numbers(VELO_TO_CAM)}\n"
        f"Tr_imu_to_velo: {numbers(VELO_TO_CAM)}\n"
    )
    (training / "label_2" / f"{frame_id}.txt").write_text(
        f"{CAR_LABEL}\nDontCare -1 -1 -10 0 0 5 5 -1 -1 -1 -1000 -1000 -1000 -10\n"
        "Van 0.00 0 0.00 0 0 5 5 2.0 1.8 5.0 -3.0 1.7 20.0 0.3\n"
    )
    grid = np.stack(np.meshgrid([-0.5, 0.0, 0.5], [-1.0, 0.0, 1.0], [-0.5, 0.0, 0.5], indexing="ij"), -1)
    car_points = grid.reshape(-1, 3) + [10.0 + 0.27, -1.0, -0.75 - 0.08]  # car centre in the velodyne frame
    points = np.c_[np.r_[car_points, [[30.0, 5.0, 0.0], [-5.0, 0.0, 0.0]]], np.full(29, 0.5)]
    points.astype(np.float32).tofile(training / "velodyne" / f"{frame_id}.bin")
    Image.fromarray(np.full((60, 200, 3), 90, dtype=np.uint8)).save(training / "image_2" / f"{frame_id}.png")
    (root / "ImageSets").mkdir(exist_ok=True)
    with (root / "ImageSets" / f"{split}.txt").open("a") as split_file:
        split_file.write(f"{frame_id}\n")


def test_calibration_projects_like_p2(tmp_path: Path) -> None:
    write_frame(tmp_path)
    calib = read_calib(tmp_path / "training" / "calib" / "000000.txt")
    np.testing.assert_allclose(calib["intrinsics"], P2[:, :3])
    points = np.array([[10.0, 2.0, 0.5, 1.0], [25.0, -3.0, -1.0, 1.0]]).T  # (4, P)
    via_contract = calib["intrinsics"] @ (np.linalg.inv(calib["cam2lidar"]) @ points)[:3]
    velo_to_cam = np.vstack([VELO_TO_CAM, [0.0, 0.0, 0.0, 1.0]])
    via_p2 = P2 @ velo_to_cam @ points
    np.testing.assert_allclose(via_contract, via_p2, atol=1e-6)


def test_labels_become_lidar_frame_boxes(tmp_path: Path) -> None:
    """Car at rect (1, 1.5, 10) bottom, h 1.5, ry 0 (heading camera +x = velodyne -y)."""
    write_frame(tmp_path)
    calib = read_calib(tmp_path / "training" / "calib" / "000000.txt")
    boxes, labels = read_labels(tmp_path / "training" / "label_2" / "000000.txt", calib["rect2lidar"])
    np.testing.assert_array_equal(labels, [KITTI_CLASSES.index("Car")])
    expected = [10.0 + 0.27, -1.0, -0.75 - 0.08, 4.0, 1.6, 1.5, -np.pi / 2, 0.0, 0.0]
    np.testing.assert_allclose(boxes[0], expected, atol=1e-5)


def test_bad_calibration_and_label_files_name_the_file(tmp_path: Path) -> None:
    write_frame(tmp_path)
    calib_path = tmp_path / "training" / "calib" / "000000.txt"
    label_path = tmp_path / "training" / "label_2" / "000000.txt"
    good = calib_path.read_text()
    calib_path.write_text(good.replace("P2: 100.000000", "P2: nan"))
    with pytest.raises(DataError, match=r"000000\.txt: non-finite value in P2"):
        read_calib(calib_path)
    zeros = " ".join(["0"] * 12)
    calib_path.write_text("\n".join(f"P2: {zeros}" if line.startswith("P2:") else line for line in good.splitlines()))
    with pytest.raises(DataError, match=r"000000\.txt: singular calibration"):
        read_calib(calib_path)
    calib_path.write_bytes(b"P2: \xff\xfe binary")
    with pytest.raises(DataError, match=r"000000\.txt: calibration file is not UTF-8 text"):
        read_calib(calib_path)
    calib_path.write_text(good)
    calib = read_calib(calib_path)
    label_path.write_text(CAR_LABEL.replace("10.00 0.00", "nan 0.00") + "\n")
    with pytest.raises(DataError, match=r"000000\.txt: line 1: non-finite field"):
        read_labels(label_path, calib["rect2lidar"])


def make_datamodule(root: Path, **overrides: Any) -> KittiDataModule:
    """A small single-process KittiDataModule."""
    settings: dict[str, Any] = dict(image_size=IMAGE_SIZE, batch_size=1, num_workers=0)
    settings.update(overrides)
    return KittiDataModule(str(root), **settings)


def test_hand_built_frame_batch(tmp_path: Path) -> None:
    write_frame(tmp_path, split="val")
    datamodule = make_datamodule(tmp_path)
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    assert "bev_masks" not in batch
    assert batch["images"].shape == (1, 1, 3, *IMAGE_SIZE)
    points = batch["points"][0]
    assert points.shape == (28, 5)  # the point behind the sensor is out of range
    torch.testing.assert_close(points[:, 3], torch.full((28,), 127.5))  # reflectance 0.5 -> 127.5
    assert (points[:, 4] == 0).all()
    np.testing.assert_array_equal(batch["gt_labels"][0].numpy(), [0])  # the Van and DontCare are dropped
    assert points_in_boxes(points[:, :3].numpy(), batch["gt_boxes"][0].numpy()).sum() == 27


def test_batch_contract_on_the_world(tiny_kitti_world: Path) -> None:
    datamodule = make_datamodule(tiny_kitti_world, batch_size=2)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert set(batch) == {"images", "intrinsics", "cam2lidar", "img_aug", "points", "gt_boxes", "gt_labels", "meta"}
    assert sum(len(boxes) for boxes in batch["gt_boxes"]) > 0  # augmentation may push one frame's boxes out of range
    for key, shape in (("images", (2, 1, 3, *IMAGE_SIZE)), ("intrinsics", (2, 1, 3, 3)), ("img_aug", (2, 1, 4, 4))):
        assert batch[key].shape == shape and batch[key].dtype == torch.float32
    assert batch["cam2lidar"].shape == (2, 1, 4, 4)
    for points, boxes, labels in zip(batch["points"], batch["gt_boxes"], batch["gt_labels"]):
        assert points.shape[1] == 5 and len(points) > 100 and boxes.shape[1] == 9
        assert labels.dtype == torch.int64 and labels.shape == (len(boxes),) and bool((labels < len(KITTI_CLASSES)).all())
        assert (points[:, 0] >= 0).all() and (points[:, 0] < 70.4).all()
        torch.testing.assert_close(boxes[:, 7:], torch.zeros(len(boxes), 2))


def test_points_in_boxes_project_into_the_labelled_2d_boxes(tiny_kitti_world: Path) -> None:
    datamodule = make_datamodule(tiny_kitti_world, min_lidar_points=5)
    datamodule.setup("validate")
    dataset = datamodule.val_dataset
    checked = 0
    for index in range(len(dataset)):
        sample = dataset[index]
        frame_id = sample["meta"]["sample_token"]
        label_path = tiny_kitti_world / "training" / "label_2" / f"{frame_id}.txt"
        calib = read_calib(tiny_kitti_world / "training" / "calib" / f"{frame_id}.txt")
        all_boxes, _ = read_labels(label_path, calib["rect2lidar"])
        boxes_2d = [
            [float(value) for value in line.split()[4:8]]
            for line in label_path.read_text().splitlines()
            if line.split() and line.split()[0] in KITTI_CLASSES
        ]
        boxes = sample["gt_boxes"].double().numpy()
        points = sample["points"][:, :3].double().numpy()
        camera = np.linalg.inv(sample["cam2lidar"][0].double().numpy()) @ np.c_[points, np.ones(len(points))].T
        uvd = sample["intrinsics"][0].double().numpy() @ camera[:3]
        pixels = uvd[:2] / uvd[2]  # (2, P) in the original image
        inside = points_in_boxes(points, boxes)
        for box_index, box in enumerate(boxes):
            label_index = int(np.argmin(np.linalg.norm(all_boxes[:, :3] - box[:3], axis=1)))
            np.testing.assert_allclose(all_boxes[label_index], box, atol=1e-4)
            x1, y1, x2, y2 = boxes_2d[label_index]
            box_pixels = pixels[:, inside[:, box_index] & (camera[2] > 0.5)]
            if box_pixels.shape[1] == 0:
                continue
            checked += 1
            within = (box_pixels[0] >= x1 - 2) & (box_pixels[0] <= x2 + 2)
            within &= (box_pixels[1] >= y1 - 2) & (box_pixels[1] <= y2 + 2)
            assert within.mean() > 0.95
    assert checked > 0


@pytest.mark.parametrize(
    ("relative_path", "content", "problem"),
    [
        ("training/velodyne/000000.bin", b"\0" * 20, "truncated point cloud: 20 bytes is not a multiple of 4 float32"),
        ("training/velodyne/000000.bin", None, "point cloud file not found"),
        ("training/calib/000000.txt", b"P2: 1 2 3\n", "P2 missing or not 12 numbers"),
        ("training/image_2/000000.png", b"not a png", "corrupt image"),
        ("training/label_2/000000.txt", None, "label file not found"),
    ],
)
def test_bad_files(tmp_path: Path, relative_path: str, content: bytes | None, problem: str) -> None:
    write_frame(tmp_path, "000000")
    write_frame(tmp_path, "000001")
    (tmp_path / "ImageSets" / "val.txt").write_text("000001\n")
    path = tmp_path / relative_path
    path.unlink()
    if content is not None:
        path.write_bytes(content)
    datamodule = make_datamodule(tmp_path)
    datamodule.setup("fit")
    with pytest.raises(DataError, match=f"{path.name}: {problem}"):
        datamodule.train_dataset[0]
    skipping = make_datamodule(tmp_path, skip_bad_samples=True)
    skipping.setup("fit")
    assert [batch["meta"][0]["sample_token"] for batch in skipping.train_dataloader()] == ["000001", "000001"]
    assert skipping.num_skipped_samples == 1


def test_missing_root_and_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere: dataset root does not exist"):
        make_datamodule(tmp_path / "nowhere").setup("fit")
    write_frame(tmp_path)
    with pytest.raises(DataError, match=r"val\.txt: split file for 'val' not found"):
        make_datamodule(tmp_path).setup("fit")
