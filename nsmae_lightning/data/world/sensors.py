"""LiDAR scans and camera images ray-cast from one frame's geometry.

Both sensors read the same primitives and painted ground, so a LiDAR point
projected into an image lands on the surface it hit. Colours are shaded with a
Lambert term plus ambient light under the scene's lighting, multiplied by
procedural texture noise fixed to each surface (so it moves with the object).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from nsmae_lightning.data.world import classes as cls
from nsmae_lightning.data.world.config import WorldConfig
from nsmae_lightning.data.world.layout import GROUND_COLOURS, GROUND_INTENSITY, RASTER_RESOLUTION
from nsmae_lightning.data.world.raycast import HIT_GROUND, HIT_NOTHING, cast_rays, render_depth, value_noise
from nsmae_lightning.data.world.rig import lidar_ray_directions
from nsmae_lightning.data.world.scene import Lighting, Primitives

MIN_LIDAR_RANGE = 1.0


@dataclass
class CameraImage:
    """A rendered camera image and how much of each object it shows.

    Attributes:
        rgb: (H, W, 3) uint8.
        depth: (H, W) float64 depth along the optical axis (inf for sky).
        visible_pixels: (num_objects,) pixels where the object is the nearest surface.
        alone_pixels: (num_objects,) pixels the object would cover with nothing in front.
    """

    rgb: np.ndarray
    depth: np.ndarray
    visible_pixels: np.ndarray
    alone_pixels: np.ndarray


@numba.njit(cache=True)
def _ground_lookup(ground: np.ndarray, x: float, y: float) -> int:
    """Ground material under global (x, y); grass off the canvas."""
    col = int(np.floor(x / RASTER_RESOLUTION))
    row = int(np.floor(y / RASTER_RESOLUTION))
    if row < 0 or col < 0 or row >= ground.shape[0] or col >= ground.shape[1]:
        return 0
    return ground[row, col]


@numba.njit(cache=True)
def _surface_noise(x: float, y: float, z: float, seed: int) -> float:
    """Two octaves of value noise (fine grain plus blotches), in [-0.5, 0.5)."""
    fine = value_noise(x * 6.0, y * 6.0, z * 6.0, seed)
    coarse = value_noise(x * 0.7, y * 0.7, z * 0.7, seed + 7919)
    return 0.45 * fine + 0.55 * coarse - 0.5


@numba.njit(cache=True)
def _shade(
    origin: np.ndarray,
    directions: np.ndarray,
    depth: np.ndarray,
    hit_id: np.ndarray,
    normal: np.ndarray,
    prims: np.ndarray,
    prim_colours: np.ndarray,
    prim_seeds: np.ndarray,
    ground: np.ndarray,
    ground_colours: np.ndarray,
    sun: np.ndarray,
    ambient: float,
    diffuse: float,
    tint: np.ndarray,
    sky_zenith: np.ndarray,
    sky_horizon: np.ndarray,
    texture_noise: float,
    seed: int,
) -> np.ndarray:
    """Colour of every pixel (H, W, 3) float in 0..1 from its hit; directions (H, W, 3) have camera z = 1."""
    height, width = depth.shape
    rgb = np.zeros((height, width, 3))
    for row in range(height):
        for col in range(width):
            p = hit_id[row, col]
            dx, dy, dz = directions[row, col, 0], directions[row, col, 1], directions[row, col, 2]
            if p == HIT_NOTHING:
                norm = np.sqrt(dx * dx + dy * dy + dz * dz)
                up = max(0.0, dz / norm)
                for c in range(3):
                    rgb[row, col, c] = sky_horizon[c] + (sky_zenith[c] - sky_horizon[c]) * np.sqrt(up)
                continue
            t = depth[row, col]
            x, y, z = origin[0] + t * dx, origin[1] + t * dy, origin[2] + t * dz
            if p == HIT_GROUND:
                material = _ground_lookup(ground, x, y)
                albedo = ground_colours[material]
                grain = _surface_noise(x, y, 0.0, seed + material)
            else:
                albedo = prim_colours[p]
                # texture coordinates fixed to the primitive: rotate into its frame
                rx, ry = x - prims[p, 0], y - prims[p, 1]
                lx = prims[p, 6] * rx + prims[p, 7] * ry
                ly = -prims[p, 7] * rx + prims[p, 6] * ry
                grain = _surface_noise(lx, ly, z - prims[p, 2], prim_seeds[p])
            lambert = max(0.0, normal[row, col, 0] * sun[0] + normal[row, col, 1] * sun[1] + normal[row, col, 2] * sun[2])
            light = ambient + diffuse * lambert
            shade = light * (1.0 + 2.0 * texture_noise * grain)
            for c in range(3):
                rgb[row, col, c] = albedo[c] * shade * tint[c]
    return rgb


def render_camera(
    prims: Primitives,
    num_objects: int,
    ground: np.ndarray,
    cam2global: np.ndarray,
    intrinsics: np.ndarray,
    height: int,
    width: int,
    lighting: Lighting,
    cfg: WorldConfig,
    rng: np.random.Generator,
) -> CameraImage:
    """Ray-cast and shade one camera image.

    Args:
        prims: the frame's primitives (global frame).
        num_objects: number of objects in the scene (length of the visibility counts).
        ground: painted ground raster.
        cam2global: 4x4 camera -> global transform at the exposure time.
        intrinsics: 3x3 pinhole matrix.
        height: image rows.
        width: image columns.
        lighting: the scene's light.
        cfg: world config (texture noise).
        rng: generator for the sensor noise.

    Returns:
        The image, its depth and per-object visibility counts.
    """
    rotation = cam2global[:3, :3]
    origin = cam2global[:3, 3].copy()
    depth, hit_id, normal, visible, alone = render_depth(
        origin, rotation.copy(), intrinsics, height, width, prims.table, prims.owners, num_objects
    )
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays_cam = np.stack(
        [(cols - intrinsics[0, 2]) / intrinsics[0, 0], (rows - intrinsics[1, 2]) / intrinsics[1, 1], np.ones_like(cols)],
        axis=-1,
    )  # (H, W, 3), camera z = 1
    directions = rays_cam @ rotation.T
    prim_seeds = (prims.owners * 131 + np.arange(len(prims.owners)) * 7 + cfg.seed * 1000003).astype(np.int64)
    rgb = _shade(
        origin,
        np.ascontiguousarray(directions),
        depth,
        hit_id,
        normal,
        prims.table,
        prims.colours,
        prim_seeds,
        ground,
        np.array(GROUND_COLOURS),
        lighting.sun,
        lighting.ambient,
        lighting.diffuse,
        lighting.tint,
        lighting.sky_zenith,
        lighting.sky_horizon,
        cfg.texture_noise,
        cfg.seed,
    )
    rgb += rng.normal(0.0, 0.01, rgb.shape)  # sensor noise
    rgb8 = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return CameraImage(rgb8, depth, visible, alone)


def lidar_scan(
    prims: Primitives, ground: np.ndarray, lidar2global: np.ndarray, cfg: WorldConfig, rng: np.random.Generator
) -> np.ndarray:
    """One LiDAR revolution in nuScenes' layout.

    Args:
        prims: the frame's primitives (global frame).
        ground: painted ground raster.
        lidar2global: 4x4 LiDAR -> global transform at the sweep's timestamp.
        cfg: world config (beams, resolution, range, noise, dropout).
        rng: generator for phase, noise and dropout.

    Returns:
        (N, 5) float32 x, y, z, intensity (0..255), ring index in the LiDAR frame.
    """
    phase = float(rng.uniform(0.0, cfg.lidar_azimuth_resolution))
    directions, ring = lidar_ray_directions(
        cfg.lidar_beams, cfg.lidar_fov_up, cfg.lidar_fov_down, cfg.lidar_azimuth_resolution, phase
    )
    rotation = lidar2global[:3, :3]
    origin = lidar2global[:3, 3].copy()
    world_directions = np.ascontiguousarray(directions @ rotation.T)
    distance, hit_id, normal = cast_rays(origin, world_directions, prims.table, cfg.lidar_max_range)
    keep = (hit_id != HIT_NOTHING) & (distance >= MIN_LIDAR_RANGE)
    keep &= rng.random(len(keep)) >= cfg.lidar_dropout
    distance, hit_id, normal = distance[keep], hit_id[keep], normal[keep]
    directions, world_directions, ring = directions[keep], world_directions[keep], ring[keep]

    hits = origin + world_directions * distance[:, None]
    reflectivity = np.empty(len(distance))
    on_ground = hit_id == HIT_GROUND
    col = np.clip((hits[on_ground, 0] / RASTER_RESOLUTION).astype(np.int64), 0, ground.shape[1] - 1)
    row = np.clip((hits[on_ground, 1] / RASTER_RESOLUTION).astype(np.int64), 0, ground.shape[0] - 1)
    reflectivity[on_ground] = np.array(GROUND_INTENSITY)[ground[row, col]]
    reflectivity[~on_ground] = np.array(cls.MATERIAL_INTENSITY)[prims.materials[hit_id[~on_ground]]]
    incidence = np.abs(np.sum(normal * world_directions, axis=1))
    intensity = reflectivity * (0.35 + 0.65 * incidence) * np.exp(-distance / 150.0)
    intensity *= np.exp(rng.normal(0.0, 0.15, len(intensity)))
    intensity = np.clip(np.round(intensity), 0, 255)

    noisy = distance + rng.normal(0.0, cfg.lidar_range_noise, len(distance))
    points = np.empty((len(distance), 5), np.float32)
    points[:, :3] = directions * noisy[:, None]
    points[:, 3] = intensity
    points[:, 4] = ring
    return points
