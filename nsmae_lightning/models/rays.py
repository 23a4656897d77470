"""Rays and their targets for the three rendering views of NS-MAE (paper Sec. III-F/G).

Everything is in the keyframe LiDAR frame (docs/conventions.md). Pixel centres sit at
integer pixel coordinates (OpenCV): pixel `[v, u]` of an image is the point `(u, v)`,
and a LiDAR point projecting to `(u, v)` lands in pixel `[round(v), round(u)]`.
Ray directions are unit vectors, so a ray parameter `t` is a distance in metres from
the ray origin; every depth target is a distance along its ray from the ray origin,
which is what the renderer integrates (see `rendering.composite`).

- PER: real camera rays. Origin = camera centre, direction through an image pixel
  (img_aug undone, back-projected with the intrinsics, rotated with cam2lidar).
  Targets: RGB of the unmasked image, and the distance from the camera centre to the
  nearest LiDAR point projecting into that pixel (z-buffer).
- BEV: rays straight down from the top of the range through BEV cell centres.
  Target: distance from the top of the range to the highest LiDAR return of the pillar.
- Rand: random virtual pinhole cameras near the ego, LiDAR z-buffer depth targets.

Rays are drawn per step: `mode="uniform"` over all pixels / pillars, `mode="lidar"`
only through pixels / pillars hit by LiDAR (UniPAD's choice; every ray then carries
a depth target). Every ray is clipped to the pc range (near/far of the ray-box
intersection); rays that miss the range are dropped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import torch
from torch import Tensor

from nsmae_lightning.constants import IMAGE_MEAN, IMAGE_STD
from nsmae_lightning.models.device_constants import device_constant
from nsmae_lightning.models.discard import DISCARD_SLOTS, discard_index
from nsmae_lightning.models.small_inverse import affine_inverse, inverse_3x3

P = ParamSpec("P")
R = TypeVar("R")

RAY_MODES: tuple[str, ...] = ("uniform", "lidar")


@dataclass
class RayBundle:
    """A set of rays of one view over a whole batch, with their targets.

    Attributes:
        origins: (R, 3) ray origins, LiDAR frame.
        directions: (R, 3) unit directions.
        batch_index: (R,) int64 batch element of each ray.
        near: (R,) distance where the ray enters the pc range (>= 0).
        far: (R,) distance where it leaves the pc range (> near).
        depth_target: (R,) target distance along the ray (0 where `has_depth` is False).
        has_depth: (R,) bool, whether the ray has a LiDAR depth target.
        rgb_target: (R, 3) target colour in [0, 1] (PER only, else None).
    """

    origins: Tensor
    directions: Tensor
    batch_index: Tensor
    near: Tensor
    far: Tensor
    depth_target: Tensor
    has_depth: Tensor
    rgb_target: Tensor | None = None

    def __len__(self) -> int:
        return self.origins.shape[0]

    def select(self, keep: Tensor | slice) -> RayBundle:
        """The rays where `keep` (bool mask, index tensor or slice) selects."""
        if isinstance(keep, Tensor) and keep.dtype == torch.bool:
            keep = keep.nonzero().squeeze(1)  # one wait on the device for the mask, not one per field
        return RayBundle(
            origins=self.origins[keep],
            directions=self.directions[keep],
            batch_index=self.batch_index[keep],
            near=self.near[keep],
            far=self.far[keep],
            depth_target=self.depth_target[keep],
            has_depth=self.has_depth[keep],
            rgb_target=None if self.rgb_target is None else self.rgb_target[keep],
        )

    @staticmethod
    def concatenate(bundles: Sequence[RayBundle]) -> RayBundle:
        """Join bundles (e.g. one per batch element) into one."""
        rgb_parts = [bundle.rgb_target for bundle in bundles]
        return RayBundle(
            origins=torch.cat([bundle.origins for bundle in bundles]),
            directions=torch.cat([bundle.directions for bundle in bundles]),
            batch_index=torch.cat([bundle.batch_index for bundle in bundles]),
            near=torch.cat([bundle.near for bundle in bundles]),
            far=torch.cat([bundle.far for bundle in bundles]),
            depth_target=torch.cat([bundle.depth_target for bundle in bundles]),
            has_depth=torch.cat([bundle.has_depth for bundle in bundles]),
            rgb_target=None if any(part is None for part in rgb_parts) else torch.cat(rgb_parts),  # type: ignore[arg-type]
        )


def points_in_range(points_xyz: Tensor, pc_range: Sequence[float]) -> Tensor:
    """(P,) bool: points inside [x0, x1) x [y0, y1) x [z0, z1)."""
    lower = device_constant(pc_range[:3], points_xyz.device, points_xyz.dtype)
    upper = device_constant(pc_range[3:], points_xyz.device, points_xyz.dtype)
    return ((points_xyz >= lower) & (points_xyz < upper)).all(dim=-1)


def clip_to_range(origins: Tensor, directions: Tensor, pc_range: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Near/far distances of the ray-box intersection (slab method).

    Args:
        origins: (R, 3) ray origins.
        directions: (R, 3) unit directions.
        pc_range: (x0, y0, z0, x1, y1, z1).

    Returns:
        near (R,) clamped at 0 (origins inside start at 0) and far (R,); a ray misses
        the box where far <= near.
    """
    lower = device_constant(pc_range[:3], origins.device, origins.dtype)
    upper = device_constant(pc_range[3:], origins.device, origins.dtype)
    # Axis-parallel components get a tiny slope: the slab bounds become +-huge, as they should.
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    inverse = 1.0 / safe
    t_lower = (lower - origins) * inverse
    t_upper = (upper - origins) * inverse
    near = torch.minimum(t_lower, t_upper).amax(dim=-1).clamp_min(0.0)
    far = torch.maximum(t_lower, t_upper).amin(dim=-1)
    return near, far


def _autocast_off(function: Callable[P, R]) -> Callable[P, R]:
    """Run ray geometry in its inputs' dtype whatever autocast says.

    Under bfloat16 autocast `@` rounds its operands to 8 mantissa bits: pixel coordinates of
    ~1,600 px move by up to 4 px and camera-frame points 50 m away by ~0.1 m, so targets and
    rays would disagree. The first argument's device names the autocast to switch off.
    """

    @functools.wraps(function)
    def without_autocast(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.autocast(device_type=args[0].device.type, enabled=False):  # type: ignore[attr-defined]
            return function(*args, **kwargs)

    return without_autocast


@_autocast_off
def pixel_rays(
    pixels: Tensor, camera: Tensor, intrinsics: Tensor, cam2lidar: Tensor, img_aug: Tensor
) -> tuple[Tensor, Tensor]:
    """Rays through pixels of augmented images.

    Args:
        pixels: (R, 2) (u', v') pixel coordinates in the augmented image.
        camera: (R,) index of each pixel's camera into the per-camera matrices.
        intrinsics: (N, 3, 3) intrinsics of the original images.
        cam2lidar: (N, 4, 4) camera -> LiDAR transforms.
        img_aug: (N, 4, 4) original pixel -> augmented pixel transforms.

    Returns:
        origins (R, 3) = camera centres and unit directions (R, 3), LiDAR frame.
    """
    # Invert per camera (closed form: small_inverse.py), then gather per ray.
    augmented = torch.cat([pixels, torch.ones_like(pixels)], dim=-1)  # (R, 4)
    original = (affine_inverse(img_aug)[camera] @ augmented.unsqueeze(-1)).squeeze(-1)  # (R, 4)
    homogeneous = torch.cat([original[:, :2], torch.ones_like(original[:, :1])], dim=-1)  # (R, 3)
    pixel_to_lidar = cam2lidar[:, :3, :3] @ inverse_3x3(intrinsics)  # (N, 3, 3)
    directions = (pixel_to_lidar[camera] @ homogeneous.unsqueeze(-1)).squeeze(-1)
    return cam2lidar[camera, :3, 3], torch.nn.functional.normalize(directions, dim=-1)


def padded_points(points: Sequence[Tensor], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per-sample point clouds as one padded tensor: xyz (B, P_max, 3) and present (B, P_max) bool.

    The sizes come from the tensors' shapes (known on the host), so padding waits on nothing.
    """
    xyz = torch.nn.utils.rnn.pad_sequence([cloud[:, :3].to(dtype) for cloud in points], batch_first=True)
    present = torch.nn.utils.rnn.pad_sequence(
        [torch.ones(cloud.shape[0], dtype=torch.bool, device=cloud.device) for cloud in points], batch_first=True
    )
    return xyz, present


@_autocast_off
def distance_images(
    points_xyz: Tensor,
    intrinsics: Tensor,
    cam2lidar: Tensor,
    img_aug: Tensor,
    height: int,
    width: int,
    use: Tensor | None = None,
) -> Tensor:
    """Z-buffers of LiDAR points for a batch: per pixel, the distance from the camera centre to the nearest point.

    Projection follows docs/conventions.md; points behind the camera (d <= 0.1 m) or
    outside the image are ignored. One batched projection and one scatter for the batch.

    Args:
        points_xyz: (B, P, 3) LiDAR points per sample (padded: see `use`).
        intrinsics: (B, N, 3, 3), cam2lidar: (B, N, 4, 4), img_aug: (B, N, 4, 4) per camera.
        height: image height (augmented image).
        width: image width.
        use: (B, P) bool, the points to project (default: all): padding and out-of-range points
            are masked instead of selected away, which would wait on the device for the size.

    Returns:
        (B, N, H, W) distances, `inf` where no point projects.
    """
    batch, cameras = intrinsics.shape[:2]
    homogeneous = torch.cat([points_xyz, torch.ones_like(points_xyz[..., :1])], dim=-1)  # (B, P, 4)
    camera_points = affine_inverse(cam2lidar) @ homogeneous.transpose(1, 2).unsqueeze(1)  # (B, N, 4, P)
    depth = camera_points[:, :, 2]  # (B, N, P)
    uvd = intrinsics @ camera_points[:, :, :3]  # (B, N, 3, P)
    pixel_uv = uvd[:, :, :2] / depth.clamp_min(1e-6).unsqueeze(2)  # (B, N, 2, P)
    original = torch.cat([pixel_uv, depth.unsqueeze(2), torch.ones_like(depth).unsqueeze(2)], dim=2)  # (B, N, 4, P)
    augmented = img_aug @ original  # (B, N, 4, P)
    column = torch.round(augmented[:, :, 0]).long()
    row = torch.round(augmented[:, :, 1]).long()
    visible = (depth > 0.1) & (column >= 0) & (column < width) & (row >= 0) & (row < height)
    if use is not None:
        visible = visible & use.unsqueeze(1)
    distance = (points_xyz.unsqueeze(1) - cam2lidar[:, :, None, :3, 3]).norm(dim=-1)  # (B, N, P)
    image_index = torch.arange(batch * cameras, device=points_xyz.device).view(batch, cameras, 1)
    pixels = batch * cameras * height * width
    # invisible points land in discard slots, dropped after: no boolean selection (a device wait)
    flat = discard_index((image_index * height + row) * width + column, visible, pixels)
    image = torch.full((pixels + DISCARD_SLOTS,), math.inf, device=points_xyz.device, dtype=points_xyz.dtype)
    image.scatter_reduce_(0, flat.reshape(-1), distance.reshape(-1), reduce="amin")
    return image[:pixels].view(batch, cameras, height, width)


def _candidates(depth: Tensor, mode: str) -> Tensor:
    """Where rays may be drawn: everywhere ("uniform") or where a LiDAR depth target exists ("lidar")."""
    if mode not in RAY_MODES:
        raise ValueError(f"ray mode must be one of {RAY_MODES}, got {mode!r}")
    return torch.isfinite(depth) if mode == "lidar" else torch.ones_like(depth, dtype=torch.bool)


def draw(candidate: Tensor, count: int | None) -> tuple[Tensor, Tensor]:
    """Per row of `candidate` (B, K) bool, up to `count` of its True entries, without replacement.

    Every row draws from its own candidates (a uniform random subset: the top `count` of random
    scores), listed in index order; rows with fewer candidates give all of them; `count` None gives
    every candidate. One wait on the device for the whole batch (the number of rays drawn).

    Returns:
        row (R,) and column (R,) of each drawn entry.
    """
    if count is None or count >= candidate.shape[1]:
        rows, columns = candidate.nonzero(as_tuple=True)
        return rows, columns
    scores = torch.where(candidate, torch.rand(candidate.shape, device=candidate.device), -1.0)
    top = scores.topk(count, dim=1)  # (B, count), in score order
    # listed in index order (a camera's pixels in raster order), not score order: neighbouring rays then
    # cross neighbouring voxels, whose reads and gradient atomics the render kernels find in cache
    # (render network 4.79 -> 4.59 GPU ms on an H200, benchmarks/RESULTS.md 2026-12-03)
    columns, order = top.indices.sort(dim=1)
    rows, slots = (top.values.gather(1, order) >= 0).nonzero(as_tuple=True)
    return rows, columns[rows, slots]


def _finish(
    origins: Tensor,
    directions: Tensor,
    depth: Tensor,
    rgb: Tensor | None,
    batch_index: Tensor,
    pc_range: Sequence[float],
) -> RayBundle:
    """Clip rays to the range, attach targets, drop rays that miss the range."""
    near, far = clip_to_range(origins, directions, pc_range)
    has_depth = torch.isfinite(depth)
    bundle = RayBundle(
        origins=origins,
        directions=directions,
        batch_index=batch_index,
        near=near,
        far=far,
        depth_target=torch.where(has_depth, depth, torch.zeros_like(depth)),
        has_depth=has_depth,
        rgb_target=rgb,
    )
    return bundle.select(far > near)


def camera_rays(
    distances: Tensor,
    intrinsics: Tensor,
    cam2lidar: Tensor,
    img_aug: Tensor,
    count: int | None,
    mode: str,
    pc_range: Sequence[float],
    images_rgb: Tensor | None = None,
) -> RayBundle:
    """Rays through pixels of the cameras of a batch (PER and Rand views).

    Args:
        distances: (B, N, H, W) z-buffers from `distance_images` (`inf` = no LiDAR).
        intrinsics: (B, N, 3, 3), cam2lidar: (B, N, 4, 4), img_aug: (B, N, 4, 4).
        count: rays to draw per batch element over all its cameras (None = every candidate pixel).
        mode: "uniform" (all pixels) or "lidar" (pixels with a LiDAR distance).
        pc_range: range the rays are clipped to.
        images_rgb: (B, N, 3, H, W) colour targets in [0, 1], or None for depth only.

    Returns:
        The rays with depth targets (and colour targets when images are given).
    """
    batch, cameras, height, width = distances.shape
    flat_distances = distances.reshape(batch, -1)
    sample, chosen = draw(_candidates(flat_distances, mode), count)
    camera = chosen // (height * width)
    row = (chosen // width) % height
    column = chosen % width
    pixels = torch.stack([column, row], dim=-1).to(distances.dtype)
    origins, directions = pixel_rays(
        pixels, sample * cameras + camera, intrinsics.flatten(0, 1), cam2lidar.flatten(0, 1), img_aug.flatten(0, 1)
    )
    rgb = None if images_rgb is None else images_rgb[sample, camera, :, row, column]  # (R, 3)
    return _finish(origins, directions, flat_distances[sample, chosen], rgb, sample, pc_range)


def denormalize_images(images: Tensor) -> Tensor:
    """Normalised images (..., 3, H, W) back to RGB in [0, 1] with constants.IMAGE_MEAN/STD."""
    mean = device_constant(IMAGE_MEAN, images.device, images.dtype).view(3, 1, 1)
    std = device_constant(IMAGE_STD, images.device, images.dtype).view(3, 1, 1)
    return (images * std + mean).clamp(0.0, 1.0)


def perspective_rays(
    batch: dict[str, object], pc_range: Sequence[float], count: int, mode: str, with_color: bool
) -> RayBundle:
    """PER rays over a batch: `count` rays per batch element, spread over its cameras.

    Args:
        batch: the unmasked batch (images, intrinsics, cam2lidar, img_aug, points).
        pc_range: (x0, y0, z0, x1, y1, z1).
        count: rays per batch element.
        mode: "uniform" or "lidar".
        with_color: attach RGB targets from the (de-normalised) images.

    Returns:
        The rays of all batch elements.
    """
    images: Tensor = batch["images"]  # type: ignore[assignment]
    height, width = images.shape[-2:]
    xyz, present = padded_points(batch["points"], images.dtype)  # type: ignore[arg-type]
    intrinsics, cam2lidar, img_aug = (batch[key] for key in ("intrinsics", "cam2lidar", "img_aug"))
    use = present & points_in_range(xyz, pc_range)
    distances = distance_images(xyz, intrinsics, cam2lidar, img_aug, height, width, use)  # type: ignore[arg-type]
    colors = denormalize_images(images) if with_color else None
    return camera_rays(distances, intrinsics, cam2lidar, img_aug, count, mode, pc_range, colors)  # type: ignore[arg-type]


def pillar_depths(
    points_xyz: Tensor, pc_range: Sequence[float], grid_shape: tuple[int, int], use: Tensor | None = None
) -> Tensor:
    """BEV depth targets of a batch: distance from the top of the range to each pillar's highest return.

    Args:
        points_xyz: (B, P, 3) LiDAR points per sample (points outside the range are ignored).
        pc_range: (x0, y0, z0, x1, y1, z1).
        grid_shape: (Ny, Nx) of the BEV grid over the range.
        use: (B, P) bool, the points to use (default: all; e.g. not the padding).

    Returns:
        (B, Ny * Nx) distances `z1 - z_max`, `inf` for empty pillars.
    """
    batch = points_xyz.shape[0]
    size_y, size_x = grid_shape
    x0, y0, _, x1, y1, z1 = pc_range
    cells = size_y * size_x
    column = ((points_xyz[..., 0] - x0) / ((x1 - x0) / size_x)).long().clamp(0, size_x - 1)
    row = ((points_xyz[..., 1] - y0) / ((y1 - y0) / size_y)).long().clamp(0, size_y - 1)
    inside = points_in_range(points_xyz, pc_range)
    if use is not None:
        inside = inside & use
    sample = torch.arange(batch, device=points_xyz.device).unsqueeze(1)
    # points outside the range land in discard slots, dropped after (no boolean selection)
    cell = discard_index(sample * cells + row * size_x + column, inside, batch * cells)
    highest = torch.full((batch * cells + DISCARD_SLOTS,), -math.inf, device=points_xyz.device, dtype=points_xyz.dtype)
    highest.scatter_reduce_(0, cell.reshape(-1), points_xyz[..., 2].reshape(-1), reduce="amax")
    return (z1 - highest[: batch * cells]).view(batch, cells)


def pillar_depth(points_xyz: Tensor, pc_range: Sequence[float], grid_shape: tuple[int, int]) -> Tensor:
    """`pillar_depths` of one sample: points (P, 3) -> (Ny, Nx)."""
    return pillar_depths(points_xyz[None], pc_range, grid_shape)[0].view(grid_shape)


def bev_rays(
    points: Sequence[Tensor],
    pc_range: Sequence[float],
    grid_shape: tuple[int, int],
    count: int | None,
    mode: str,
) -> RayBundle:
    """BEV rays: straight down from the top of the range through BEV cell centres.

    Args:
        points: per batch element (P, >=3) LiDAR points.
        pc_range: (x0, y0, z0, x1, y1, z1).
        grid_shape: (Ny, Nx) of the BEV embedding.
        count: rays per batch element (None = every candidate pillar).
        mode: "uniform" (all pillars) or "lidar" (pillars with a return).

    Returns:
        The rays of all batch elements; `depth_target = z1 - z_max` of the pillar.
    """
    xyz, present = padded_points(points, torch.float32)
    depth = pillar_depths(xyz, pc_range, grid_shape, present)  # (B, cells)
    sample, chosen = draw(_candidates(depth, mode), count)
    origins, directions = pillar_rays(chosen, pc_range, grid_shape)
    return _finish(origins, directions, depth[sample, chosen], None, sample, pc_range)


def pillar_rays(cells: Tensor, pc_range: Sequence[float], grid_shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Downward rays from the top of the range through BEV cell centres.

    Args:
        cells: (K,) flat cell indices `iy * Nx + ix`.
        pc_range: (x0, y0, z0, x1, y1, z1).
        grid_shape: (Ny, Nx).

    Returns:
        origins (K, 3) at `(x_centre, y_centre, z1)` and directions (K, 3) = (0, 0, -1).
    """
    size_y, size_x = grid_shape
    x0, y0, _, x1, y1, z1 = pc_range
    centre_x = x0 + ((cells % size_x).float() + 0.5) * (x1 - x0) / size_x
    centre_y = y0 + ((cells // size_x).float() + 0.5) * (y1 - y0) / size_y
    origins = torch.stack([centre_x, centre_y, torch.full_like(centre_x, z1)], dim=-1)
    return origins, device_constant((0.0, 0.0, -1.0), origins.device, origins.dtype).expand_as(origins)


def virtual_cameras(
    count: int,
    image_size: tuple[int, int],
    fov_deg: float,
    origin_radius: float,
    height_range: tuple[float, float],
    pitch_range_deg: tuple[float, float],
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Random pinhole cameras near the ego (the Rand view).

    Origins are uniform over a disc of `origin_radius` around the LiDAR at a height
    in `height_range`; yaw is uniform over the circle, pitch uniform in
    `pitch_range_deg` (positive looks up). Camera axes: x right, y down, z forward.

    Returns:
        intrinsics (count, 3, 3) with `fov_deg` horizontal field of view and
        cam2lidar (count, 4, 4).
    """
    height, width = image_size
    radius = origin_radius * torch.sqrt(torch.rand(count, device=device))
    angle = 2.0 * math.pi * torch.rand(count, device=device)
    lift = height_range[0] + (height_range[1] - height_range[0]) * torch.rand(count, device=device)
    yaw = 2.0 * math.pi * torch.rand(count, device=device)
    pitch_low, pitch_high = (math.radians(value) for value in pitch_range_deg)
    pitch = pitch_low + (pitch_high - pitch_low) * torch.rand(count, device=device)
    forward = torch.stack([pitch.cos() * yaw.cos(), pitch.cos() * yaw.sin(), pitch.sin()], dim=-1)
    up = device_constant((0.0, 0.0, 1.0), forward.device, forward.dtype).expand_as(forward)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=-1)
    down = torch.linalg.cross(forward, right)
    cam2lidar = torch.eye(4, device=device).repeat(count, 1, 1)
    cam2lidar[:, :3, :3] = torch.stack([right, down, forward], dim=-1)  # columns = camera axes
    cam2lidar[:, :3, 3] = torch.stack([radius * angle.cos(), radius * angle.sin(), lift], dim=-1)
    focal = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    intrinsics = device_constant(
        ((focal, 0.0, (width - 1) / 2.0), (0.0, focal, (height - 1) / 2.0), (0.0, 0.0, 1.0)), device
    ).repeat(count, 1, 1)
    return intrinsics, cam2lidar


def random_view_rays(
    points: Sequence[Tensor],
    pc_range: Sequence[float],
    cameras_per_sample: int,
    count: int,
    mode: str,
    image_size: tuple[int, int],
    fov_deg: float,
    origin_radius: float,
    height_range: tuple[float, float],
    pitch_range_deg: tuple[float, float],
) -> RayBundle:
    """Rand rays: random virtual cameras per batch element, LiDAR z-buffer depth targets.

    Args:
        points: per batch element (P, >=3) LiDAR points.
        pc_range: (x0, y0, z0, x1, y1, z1).
        cameras_per_sample: virtual cameras drawn per batch element.
        count: rays per batch element.
        mode: "uniform" or "lidar".
        image_size, fov_deg, origin_radius, height_range, pitch_range_deg: see
            `virtual_cameras`.

    Returns:
        The rays of all batch elements.
    """
    xyz, present = padded_points(points, torch.float32)
    batch = xyz.shape[0]
    intrinsics, cam2lidar = virtual_cameras(
        batch * cameras_per_sample, image_size, fov_deg, origin_radius, height_range, pitch_range_deg, xyz.device
    )
    intrinsics = intrinsics.view(batch, cameras_per_sample, 3, 3)
    cam2lidar = cam2lidar.view(batch, cameras_per_sample, 4, 4)
    img_aug = torch.eye(4, device=xyz.device).expand(batch, cameras_per_sample, 4, 4)
    use = present & points_in_range(xyz, pc_range)
    distances = distance_images(xyz, intrinsics, cam2lidar, img_aug, *image_size, use)
    return camera_rays(distances, intrinsics, cam2lidar, img_aug, count, mode, pc_range)
