"""Per-sample transforms shared by every dataset: image resize/crop/flip/rotate, LiDAR
global augmentation of points, boxes and BEV masks, point-cloud range filtering.

Pixel coordinates are continuous (pixel `i` covers [i, i + 1)), which is what PIL's
resize/crop/rotate obey, so `img_aug` maps a projected point onto exactly the pixel
that shows it. The LiDAR augmentation is one 4x4 matrix `lidar_aug` (rotation about
+z, uniform scale, axis flips, translation) applied to everything in the LiDAR frame
and folded into `cam2lidar` (docs/conventions.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from nsmae_lightning.constants import IMAGE_MEAN, IMAGE_STD
from nsmae_lightning.data.geometry import rotation_z, transform_points, wrap_angle


@dataclass(frozen=True)
class ImageAugmentation:
    """Image augmentation settings (BEVFusion's ImageAug3D recipe, made source-size relative).

    The resize factor is `final_width / source_width * factor`, so the same settings work
    for 1600x900 nuScenes images and for smaller synthetic ones. BEVFusion's 256x704
    recipe (resize_lim 0.38..0.55, test 0.48 of 1600x900) is factor 0.864..1.25, test 1.091;
    the 128x352 recipe halves both, giving the same factors.

    Args:
        resize_range: training range of the factor on top of the width-matching scale.
        test_resize: the deterministic factor used when not augmenting.
        bottom_crop_range: fraction of the resized height cut from the bottom (train range;
            its mean is used at test time).
        rotation_range: training in-plane rotation range in degrees (counter-clockwise).
        flip: whether training flips images left-right with probability 0.5.
    """

    resize_range: tuple[float, float] = (0.864, 1.25)
    test_resize: float = 1.091
    bottom_crop_range: tuple[float, float] = (0.0, 0.0)
    rotation_range: tuple[float, float] = (-5.4, 5.4)
    flip: bool = True


@dataclass(frozen=True)
class LidarAugmentation:
    """Global LiDAR augmentation settings (BEVFusion's GlobalRotScaleTrans + RandomFlip3D).

    Args:
        rotation_range: rotation about +z in radians.
        scale_range: uniform scale factor range.
        translation_std: standard deviation (m) of a Gaussian translation on x, y and z.
        flip: whether the axes of `flip_axes` are each negated with probability 0.5.
        flip_axes: the axes that may flip: ("x", "y") around the car (nuScenes); ("y",)
            for a forward-only range such as KITTI's, where an x flip would empty it.
    """

    rotation_range: tuple[float, float] = (-0.785, 0.785)
    scale_range: tuple[float, float] = (0.9, 1.1)
    translation_std: float = 0.5
    flip: bool = True
    flip_axes: tuple[str, ...] = ("x", "y")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.flip_axes) - {"x", "y"})
        if unknown:
            raise ValueError(f"LidarAugmentation.flip_axes may hold 'x' and 'y', got {unknown}")


# DataModules save these settings as hyper-parameters, so checkpoints hold them; allow-list
# them for `torch.load(weights_only=True)`, which Lightning uses to resume (`ckpt_path=`).
torch.serialization.add_safe_globals([ImageAugmentation, LidarAugmentation])


@dataclass(frozen=True)
class ImageCrop:
    """One drawn image augmentation: resized size, crop box, flip and rotation."""

    resized_size: tuple[int, int]  # (W, H) after resize
    crop_box: tuple[int, int, int, int]  # (left, top, right, bottom) in the resized image
    flip: bool
    rotation_deg: float


def sample_image_crop(
    settings: ImageAugmentation,
    source_size: tuple[int, int],
    final_size: tuple[int, int],
    rng: np.random.Generator,
    train: bool,
) -> ImageCrop:
    """Draw (train) or fix (test: mean resize, centre-bottom crop) an image augmentation.

    Args:
        settings: the augmentation ranges.
        source_size: (W, H) of the original image.
        final_size: (H, W) of the image in the batch.
        rng: source of randomness (unused when not training).
        train: draw random parameters instead of the deterministic test ones.
    """
    source_width, source_height = source_size
    final_height, final_width = final_size
    base_scale = final_width / source_width
    if train:
        scale = base_scale * rng.uniform(*settings.resize_range)
        bottom_fraction = rng.uniform(*settings.bottom_crop_range)
    else:
        scale = base_scale * settings.test_resize
        bottom_fraction = float(np.mean(settings.bottom_crop_range))
    resized_width, resized_height = int(source_width * scale), int(source_height * scale)
    top = int((1.0 - bottom_fraction) * resized_height) - final_height
    slack = max(0, resized_width - final_width)
    left = int(rng.uniform(0, slack)) if train else slack // 2
    flip = bool(train and settings.flip and rng.random() < 0.5)
    rotation = float(rng.uniform(*settings.rotation_range)) if train else 0.0
    return ImageCrop(
        resized_size=(resized_width, resized_height),
        crop_box=(left, top, left + final_width, top + final_height),
        flip=flip,
        rotation_deg=rotation,
    )


def image_crop_matrix(crop: ImageCrop, source_size: tuple[int, int]) -> np.ndarray:
    """The 4x4 `img_aug` of a crop: original pixel (u, v, d, 1) -> augmented pixel.

    Args:
        crop: the augmentation applied to the image.
        source_size: (W, H) of the original image.
    """
    left, top, right, bottom = crop.crop_box
    final_width, final_height = right - left, bottom - top
    scale_crop = np.array(
        [
            [crop.resized_size[0] / source_size[0], 0.0, -left],
            [0.0, crop.resized_size[1] / source_size[1], -top],
            [0.0, 0.0, 1.0],
        ]
    )
    flip = np.array([[-1.0, 0.0, final_width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if crop.flip else np.eye(3)
    # PIL rotates the content counter-clockwise on screen about the image centre.
    theta = np.deg2rad(crop.rotation_deg)
    rotation = np.array([[np.cos(theta), np.sin(theta), 0.0], [-np.sin(theta), np.cos(theta), 0.0], [0.0, 0.0, 1.0]])
    centre = np.array([final_width / 2.0, final_height / 2.0])
    rotation[:2, 2] = centre - rotation[:2, :2] @ centre
    pixel_map = rotation @ flip @ scale_crop  # (3, 3) on (u, v, 1)
    img_aug = np.eye(4)
    img_aug[:2, :2] = pixel_map[:2, :2]
    img_aug[:2, 3] = pixel_map[:2, 2]
    return img_aug


def apply_image_crop(image: Image.Image, crop: ImageCrop) -> Image.Image:
    """Resize, crop, flip and rotate a PIL image as `crop` says (areas outside are black)."""
    augmented = image.resize(crop.resized_size, resample=Image.BILINEAR).crop(crop.crop_box)
    if crop.flip:
        augmented = augmented.transpose(Image.FLIP_LEFT_RIGHT)
    if crop.rotation_deg != 0.0:
        augmented = augmented.rotate(crop.rotation_deg, resample=Image.BILINEAR)
    return augmented


def normalize_image(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 (3, H, W), scaled to 0..1 and normalised with IMAGE_MEAN/STD."""
    # One fused NumPy pass (x / 255 - mean) / std = x * a + b; per-op torch calls cost more in workers.
    std = np.asarray(IMAGE_STD, dtype=np.float32)
    scale = 1.0 / (255.0 * std)
    offset = -np.asarray(IMAGE_MEAN, dtype=np.float32) / std
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray((pixels * scale + offset).transpose(2, 0, 1)))  # (3, H, W)


def sample_lidar_aug(settings: LidarAugmentation, rng: np.random.Generator) -> np.ndarray:
    """Draw the 4x4 LiDAR augmentation `flip @ translate @ scale @ rotate_z`."""
    rotation = rotation_z(rng.uniform(*settings.rotation_range))
    scale = np.diag([*([rng.uniform(*settings.scale_range)] * 3), 1.0])
    translation = np.eye(4)
    translation[:3, 3] = rng.normal(0.0, settings.translation_std, size=3)
    flip = np.eye(4)
    if settings.flip:
        # Both draws happen whatever flip_axes says, so the random stream does not depend on it.
        for axis, name in enumerate(("x", "y")):
            negate = rng.random() < 0.5
            flip[axis, axis] = -1.0 if negate and name in settings.flip_axes else 1.0
    return flip @ translation @ scale @ rotation


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Move (M, 9) boxes (x, y, z, l, w, h, yaw, vx, vy) through a similarity transform.

    `matrix` must keep +z up (rotation about z, uniform scale, x/y flips, translation), which
    every LiDAR augmentation here does: centres move as points, sizes and velocities scale,
    and the heading vector is mapped to give the new yaw.
    """
    linear = matrix[:3, :3]
    scale = float(np.cbrt(abs(np.linalg.det(linear))))
    moved = boxes.astype(np.float64)
    moved[:, :3] = transform_points(matrix, moved[:, :3])
    moved[:, 3:6] *= scale
    heading = np.stack([np.cos(moved[:, 6]), np.sin(moved[:, 6])], axis=1) @ linear[:2, :2].T  # (M, 2)
    moved[:, 6] = wrap_angle(np.arctan2(heading[:, 1], heading[:, 0]))
    moved[:, 7:9] = moved[:, 7:9] @ linear[:2, :2].T
    return moved.astype(boxes.dtype)


def points_in_boxes(points_xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(P, M) bool: whether each point lies inside (or on) each 9-dof box."""
    offsets = points_xyz[:, None, :3].astype(np.float64) - boxes[None, :, :3]  # (P, M, 3)
    cos_yaw, sin_yaw = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    along = offsets[..., 0] * cos_yaw + offsets[..., 1] * sin_yaw
    across = -offsets[..., 0] * sin_yaw + offsets[..., 1] * cos_yaw
    half_sizes = boxes[:, 3:6] / 2.0 + 1e-6
    return (
        (np.abs(along) <= half_sizes[:, 0])
        & (np.abs(across) <= half_sizes[:, 1])
        & (np.abs(offsets[..., 2]) <= half_sizes[:, 2])
    )


def in_range_mask(xyz: np.ndarray, point_cloud_range: tuple[float, ...], dims: int = 3) -> np.ndarray:
    """Bool mask of rows whose first `dims` coordinates lie in [min, max) of the range."""
    low = np.asarray(point_cloud_range[:dims])
    high = np.asarray(point_cloud_range[3 : 3 + dims])
    return np.all((xyz[:, :dims] >= low) & (xyz[:, :dims] < high), axis=1)


@dataclass
class RawSample:
    """A sample as read from disk, in the (un-augmented) keyframe LiDAR frame.

    Attributes:
        images: one RGB image per camera, or None when images are not loaded.
        image_sizes: (W, H) of each original image.
        intrinsics: float (N, 3, 3) of the original images.
        cam2lidar: float (N, 4, 4).
        points: float32 (P, 5) x, y, z, intensity, dt.
        boxes: float (M, 9).
        labels: int (M,).
        meta: the batch's per-sample meta dict (without `lidar_aug`).
        bev_masks: given the 4x4 LiDAR augmentation, the (6, 200, 200) bool masks; None
            when the dataset has none.
        obstacle_boxes: float (K, 9) labelled boxes that are not targets (other classes,
            too few points); augmentations that paste objects must not overlap them.
    """

    images: list[Image.Image] | None
    image_sizes: list[tuple[int, int]]
    intrinsics: np.ndarray
    cam2lidar: np.ndarray
    points: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any]
    bev_masks: Callable[[np.ndarray], np.ndarray] | None = field(default=None)
    obstacle_boxes: np.ndarray | None = field(default=None)


@dataclass(frozen=True)
class SampleTransform:
    """Turns a RawSample into one sample of the batch contract (docs/conventions.md).

    Args:
        image_size: (H, W) of the batch images.
        image_aug: image augmentation ranges.
        lidar_aug: LiDAR augmentation ranges.
        point_cloud_range: (xmin, ymin, zmin, xmax, ymax, zmax); points outside are dropped,
            boxes whose centre is outside in x/y are dropped.
        train: draw random augmentations (else deterministic resize + centre-bottom crop
            and no LiDAR augmentation).
        gt_sampler: object pasting (GT-database sampling) applied first when training, in the
            un-augmented LiDAR frame; None for none.
    """

    image_size: tuple[int, int]
    image_aug: ImageAugmentation
    lidar_aug: LidarAugmentation
    point_cloud_range: tuple[float, ...]
    train: bool
    gt_sampler: Callable[[RawSample, np.random.Generator], RawSample] | None = None

    def __call__(self, raw: RawSample, rng: np.random.Generator) -> dict[str, Any]:
        """Augment and tensorise `raw`; `rng` supplies every random draw."""
        if self.train and self.gt_sampler is not None:
            raw = self.gt_sampler(raw, rng)
        lidar_aug = sample_lidar_aug(self.lidar_aug, rng) if self.train else np.eye(4)
        crops = [
            sample_image_crop(self.image_aug, size, self.image_size, rng, self.train) for size in raw.image_sizes
        ]
        img_aug = np.stack([image_crop_matrix(crop, size) for crop, size in zip(crops, raw.image_sizes)])
        points = raw.points.copy()
        points[:, :3] = transform_points(lidar_aug, points[:, :3])
        points = points[in_range_mask(points, self.point_cloud_range)]
        boxes = transform_boxes(raw.boxes.reshape(-1, 9), lidar_aug)
        keep_boxes = in_range_mask(boxes, self.point_cloud_range, dims=2)
        sample: dict[str, Any] = {
            "intrinsics": torch.as_tensor(raw.intrinsics, dtype=torch.float32).reshape(-1, 3, 3),
            "cam2lidar": torch.as_tensor(lidar_aug @ raw.cam2lidar, dtype=torch.float32).reshape(-1, 4, 4),
            "img_aug": torch.as_tensor(img_aug, dtype=torch.float32).reshape(-1, 4, 4),
            "points": torch.as_tensor(points, dtype=torch.float32),
            "gt_boxes": torch.as_tensor(boxes[keep_boxes], dtype=torch.float32),
            "gt_labels": torch.as_tensor(raw.labels.reshape(-1)[keep_boxes], dtype=torch.int64),
            "meta": {**raw.meta, "lidar_aug": lidar_aug},
        }
        if raw.images is not None:
            sample["images"] = torch.stack(
                [normalize_image(apply_image_crop(image, crop)) for image, crop in zip(raw.images, crops)]
            )
        if raw.bev_masks is not None:
            sample["bev_masks"] = torch.from_numpy(np.ascontiguousarray(raw.bev_masks(lidar_aug)))
        return sample
