"""GT-database sampling ("DB"): what enters the database, collision checks, the points that move
with pasted boxes, and that only the labelled subset of a label-ratio run feeds the database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Polygon

from nsmae_lightning.constants import KITTI_CLASSES
from nsmae_lightning.data import KittiDataModule
from nsmae_lightning.data.geometry import box_corners
from nsmae_lightning.data.gt_sampler import DatabaseFrame, GTDatabase, GTSampler, GTSamplerConfig, collision_free
from nsmae_lightning.data.kitti import read_calib, read_labels, read_split
from nsmae_lightning.data.splits import select_labelled
from nsmae_lightning.data.transforms import RawSample, points_in_boxes

CAR, PEDESTRIAN, CYCLIST = (KITTI_CLASSES.index(name) for name in ("Car", "Pedestrian", "Cyclist"))


def box(x: float, y: float, length: float = 4.0, width: float = 2.0, yaw: float = 0.0) -> list[float]:
    """A 9-dof box standing on z = -1 (1.6 m high)."""
    return [x, y, -1.0, length, width, 1.6, yaw, 0.0, 0.0]


def footprint(row: np.ndarray) -> Polygon:
    """The BEV rectangle of a box, from its corners (independent of the sampler's IoU code)."""
    corners = box_corners(row[None])[0][::2, :2]  # bottom corners: (-l,-w), (-l,+w), (+l,-w), (+l,+w)
    return Polygon(corners[[0, 1, 3, 2]])


def grid_points(row: list[float], count_per_axis: int, intensity: float) -> np.ndarray:
    """(count^3, 5) points filling the inner 80% of an axis-aligned box."""
    axes = [np.linspace(-0.4, 0.4, count_per_axis) * size + centre for centre, size in zip(row[:3], row[3:6])]
    xyz = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return np.c_[xyz, np.full(len(xyz), intensity), np.zeros(len(xyz))].astype(np.float32)


def test_collision_check_is_greedy_and_exact() -> None:
    existing = np.array([box(0.0, 0.0)])
    candidates = np.array(
        [
            box(3.9, 0.0),  # 0: overlaps the existing box by 0.1 m -> rejected
            box(10.0, 0.0),  # 1: free -> accepted
            box(10.5, 0.5, yaw=0.7),  # 2: overlaps candidate 1 -> rejected
            box(4.05, 0.0),  # 3: clear of the existing box; overlaps only candidate 0, which was rejected
            box(0.0, 2.0),  # 4: shares an edge with the existing box (zero area) -> accepted
        ]
    )
    accepted = collision_free(candidates, existing)
    np.testing.assert_array_equal(accepted, [1, 3, 4])
    kept = [footprint(row) for row in np.concatenate([existing, candidates[accepted]])]
    for first in range(len(kept)):
        for second in range(first + 1, len(kept)):
            assert kept[first].intersection(kept[second]).area == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_array_equal(collision_free(candidates[:2], np.zeros((0, 9))), [0, 1])


def hand_built_database() -> tuple[GTDatabase, dict[str, np.ndarray]]:
    """Five frames; returns the database and each frame's car points."""
    car_boxes = {
        "a": box(10.0, 0.0), "b": box(20.0, 5.0), "c": box(30.0, -5.0), "d": box(20.0, 5.6), "e": box(20.4, 5.0)
    }  # fmt: skip
    car_points = {frame: grid_points(row, 3, intensity=index) for index, (frame, row) in enumerate(car_boxes.items())}
    pedestrian = box(5.0, 3.0, 0.8, 0.6)
    cyclist = box(8.0, -3.0, 1.8, 0.6)
    frames = []
    for frame_id, car in car_boxes.items():
        points, boxes, labels, difficulty = [car_points[frame_id]], [car], [CAR], [1]
        if frame_id == "a":  # a pedestrian with 2 points (< 5) and a cyclist of difficulty -1
            points += [grid_points(pedestrian, 1, 9.0), grid_points(pedestrian, 1, 9.0), grid_points(cyclist, 2, 9.0)]
            points.append(np.array([[40.0, 0.0, 0.0, 9.0, 0.0]], np.float32))  # background
            boxes += [pedestrian, cyclist]
            labels += [PEDESTRIAN, CYCLIST]
            difficulty += [0, -1]
        arrays = (np.array(boxes), np.array(labels), np.array(difficulty))
        frames.append(DatabaseFrame(frame_id, np.concatenate(points), *arrays))
    config = GTSamplerConfig(sample_groups={"Car": 10, "Pedestrian": 2, "Cyclist": 2})
    return GTDatabase.build(frames, KITTI_CLASSES, config), car_points


def test_database_keeps_objects_that_pass_the_filters() -> None:
    database, car_points = hand_built_database()
    # The pedestrian (2 points) and the cyclist (difficulty -1) stay out; every car (27 points) is in.
    assert database.frame_ids.tolist() == ["a", "b", "c", "d", "e"]
    np.testing.assert_array_equal(database.labels, [CAR] * 5)
    np.testing.assert_array_equal(np.diff(database.point_offsets), [27] * 5)
    for index, frame_id in enumerate(database.frame_ids):
        np.testing.assert_array_equal(database.object_points(index), car_points[frame_id])
    kept_cyclist = GTDatabase.build(
        [DatabaseFrame("x", grid_points(box(8, -3, 1.8, 0.6), 2, 0.0), np.array([box(8, -3, 1.8, 0.6)]),
                       np.array([CYCLIST]), np.array([-1]))],
        KITTI_CLASSES, GTSamplerConfig(min_points={"Cyclist": 8}, exclude_difficulties=()),
    )  # fmt: skip
    assert kept_cyclist.labels.tolist() == [CYCLIST] and len(kept_cyclist.object_points(0)) == 8


def test_pasted_objects_avoid_boxes_and_bring_their_points() -> None:
    database, car_points = hand_built_database()
    existing_car = box(10.0, 0.3)  # frame a's car would land on it
    van = box(30.0, -5.0, 5.0, 2.0)  # an obstacle (not a target class): frame c's car would land on it
    inside_b = grid_points(box(20.0, 5.0), 2, intensity=50.0)  # 8 of the frame's own points where b's car goes
    background = np.array([[2.0, 2.0, 0.0, 60.0, 0.0], [45.0, -9.0, 0.5, 61.0, 0.0]], np.float32)
    raw = RawSample(
        images=None, image_sizes=[(200, 60)], intrinsics=np.eye(3)[None], cam2lidar=np.eye(4)[None],
        points=np.concatenate([grid_points(existing_car, 2, 70.0), inside_b, background]),
        boxes=np.array([existing_car], np.float32), labels=np.array([CAR]), meta={"sample_token": "t"},
        obstacle_boxes=np.array([van], np.float32),
    )  # fmt: skip
    sampler = GTSampler(database, GTSamplerConfig(sample_groups={"Car": 10}), KITTI_CLASSES)
    for seed in range(5):
        out = sampler(raw, np.random.default_rng(seed))
        # a (on the car) and c (on the van) collide; b, d, e overlap each other: exactly one of them.
        assert out.meta["gt_sampled"] == 1 and out.labels.tolist() == [CAR, CAR]
        pasted = out.boxes[1]
        source = next(frame for frame in "bde" if np.allclose(database.boxes[database.frame_ids == frame][0], pasted))
        np.testing.assert_array_equal(out.boxes[0], raw.boxes[0])
        inside = points_in_boxes(out.points[:, :3], pasted[None])[:, 0]
        np.testing.assert_array_equal(out.points[inside], car_points[source])  # its points, and only those
        kept_own = raw.points[~points_in_boxes(raw.points[:, :3], pasted[None])[:, 0]]
        np.testing.assert_array_equal(out.points[~inside], kept_own)  # every other point stays, in order
        # b and e cover all 8 of the frame's points there, d (0.6 m to the left) the 4 with y = 5.8.
        assert len(raw.points) - len(kept_own) == {"b": 8, "d": 4, "e": 8}[source]
        for other in (raw.boxes[0], van):
            assert footprint(pasted).intersection(footprint(np.asarray(other))).area == 0.0


def test_limit_whole_scene_and_bad_config() -> None:
    database, _ = hand_built_database()
    raw = RawSample(
        images=None, image_sizes=[(1, 1)], intrinsics=np.eye(3)[None], cam2lidar=np.eye(4)[None],
        points=np.zeros((0, 5), np.float32), boxes=np.array([box(50.0, 0.0)] * 2, np.float32),
        labels=np.array([CAR, CAR]), meta={},
    )  # fmt: skip
    limited = GTSampler(database, GTSamplerConfig(sample_groups={"Car": 3}, limit_whole_scene=True), KITTI_CLASSES)
    assert len(limited.draw(raw, np.random.default_rng(0))) == 1  # 3 wanted, 2 already there
    with pytest.raises(ValueError, match=r"sample_groups names unknown classes \['Truck'\]"):
        GTSampler(database, GTSamplerConfig(sample_groups={"Truck": 2}), KITTI_CLASSES)


def test_only_the_labelled_subset_feeds_the_database(tiny_kitti_world: Path) -> None:
    config = GTSamplerConfig(
        sample_groups={"Car": 3, "Pedestrian": 2, "Cyclist": 2},
        min_points={"Car": 1, "Pedestrian": 1, "Cyclist": 1},
        exclude_difficulties=(),  # the tiny world's small images leave most objects without a difficulty
    )
    datamodule = KittiDataModule(
        str(tiny_kitti_world), image_size=(48, 160), batch_size=1, num_workers=0, gt_sampler=config,
        label_ratio=0.5, split_seed=3,
    )  # fmt: skip
    datamodule.setup("fit")
    train_ids = read_split(tiny_kitti_world, "train")
    labelled = select_labelled(train_ids, 0.5, split_seed=3)
    assert len(labelled) == 2
    assert datamodule.labelled_split.tokens == labelled
    assert len(datamodule.train_dataset) == len(train_ids)  # repeated to the split's length
    database = datamodule.gt_database
    expected = 0
    for frame_id in train_ids:
        training = tiny_kitti_world / "training"
        calib = read_calib(training / "calib" / f"{frame_id}.txt")
        boxes, _ = read_labels(training / "label_2" / f"{frame_id}.txt", calib["rect2lidar"])
        points = np.fromfile(training / "velodyne" / f"{frame_id}.bin", np.float32).reshape(-1, 4)
        in_database = int((points_in_boxes(points[:, :3], boxes).sum(axis=0) >= 1).sum())
        if frame_id in labelled:
            expected += in_database
        else:
            assert in_database > 0  # an unlabelled frame that would have fed the database
    assert set(database.frame_ids) <= set(labelled) and len(database) == expected > 0
    sample = datamodule.train_dataset[0]
    assert sample["meta"]["gt_sampled"] >= 0 and len(sample["gt_boxes"]) == len(sample["gt_labels"])
