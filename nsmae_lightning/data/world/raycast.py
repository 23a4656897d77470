"""Analytic ray casting against the world's primitives and its ground plane (numba).

The scene is a ground plane ``z = 0`` plus a list of primitives: oriented boxes
(yawed about +z) and vertical cylinders. Both sensors use the same intersection
routines, so a LiDAR return and a camera pixel that look at the same spot agree.

Primitive table (float64, one row per primitive), see ``PRIM_*`` column indices:
centre x, y, z, half length (radius for a cylinder), half width, half height,
cos(yaw), sin(yaw), kind (``KIND_BOX`` or ``KIND_CYLINDER``).
"""

from __future__ import annotations

import numba
import numpy as np

PRIM_COLUMNS = 9
KIND_BOX = 0.0
KIND_CYLINDER = 1.0
HIT_GROUND = -1
HIT_NOTHING = -2
_NEAR = 0.05


@numba.njit(cache=True, inline="always")
def _intersect_box(
    prim: np.ndarray, ox: float, oy: float, oz: float, dx: float, dy: float, dz: float
) -> tuple[float, float, float, float]:
    """Entry distance along the ray and the outward normal (world frame) of a yawed box; inf if missed."""
    cos_yaw, sin_yaw = prim[6], prim[7]
    rx, ry, rz = ox - prim[0], oy - prim[1], oz - prim[2]
    # ray in the box frame (rotate by -yaw)
    lox = cos_yaw * rx + sin_yaw * ry
    loy = -sin_yaw * rx + cos_yaw * ry
    ldx = cos_yaw * dx + sin_yaw * dy
    ldy = -sin_yaw * dx + cos_yaw * dy
    origin = (lox, loy, rz)
    direction = (ldx, ldy, dz)
    half = (prim[3], prim[4], prim[5])
    t_near = -np.inf
    t_far = np.inf
    axis = -1
    sign = 1.0
    for k in range(3):
        if abs(direction[k]) < 1e-12:
            if origin[k] < -half[k] or origin[k] > half[k]:
                return np.inf, 0.0, 0.0, 0.0
            continue
        t1 = (-half[k] - origin[k]) / direction[k]
        t2 = (half[k] - origin[k]) / direction[k]
        face_sign = -1.0
        if t1 > t2:
            t1, t2 = t2, t1
            face_sign = 1.0
        if t1 > t_near:
            t_near = t1
            axis = k
            sign = face_sign
        if t2 < t_far:
            t_far = t2
        if t_near > t_far:
            return np.inf, 0.0, 0.0, 0.0
    if t_near <= _NEAR or axis < 0:
        return np.inf, 0.0, 0.0, 0.0
    if axis == 0:
        return t_near, sign * cos_yaw, sign * sin_yaw, 0.0
    if axis == 1:
        return t_near, -sign * sin_yaw, sign * cos_yaw, 0.0
    return t_near, 0.0, 0.0, sign


@numba.njit(cache=True, inline="always")
def _intersect_cylinder(
    prim: np.ndarray, ox: float, oy: float, oz: float, dx: float, dy: float, dz: float
) -> tuple[float, float, float, float]:
    """Entry distance and outward normal of a vertical cylinder (side or top cap); inf if missed."""
    radius, half_height = prim[3], prim[5]
    rx, ry, rz = ox - prim[0], oy - prim[1], oz - prim[2]
    a = dx * dx + dy * dy
    best = np.inf
    nx, ny, nz = 0.0, 0.0, 0.0
    if a > 1e-12:
        b = rx * dx + ry * dy
        c = rx * rx + ry * ry - radius * radius
        disc = b * b - a * c
        if disc >= 0.0:
            t = (-b - np.sqrt(disc)) / a
            z = rz + t * dz
            if t > _NEAR and -half_height <= z <= half_height:
                best = t
                nx, ny = (rx + t * dx) / radius, (ry + t * dy) / radius
    if dz < -1e-12:
        t = (half_height - rz) / dz
        if _NEAR < t < best:
            px, py = rx + t * dx, ry + t * dy
            if px * px + py * py <= radius * radius:
                best = t
                nx, ny, nz = 0.0, 0.0, 1.0
    return best, nx, ny, nz


@numba.njit(cache=True, inline="always")
def _intersect(
    prim: np.ndarray, ox: float, oy: float, oz: float, dx: float, dy: float, dz: float
) -> tuple[float, float, float, float]:
    """Dispatch on the primitive kind."""
    if prim[8] == KIND_CYLINDER:
        return _intersect_cylinder(prim, ox, oy, oz, dx, dy, dz)
    return _intersect_box(prim, ox, oy, oz, dx, dy, dz)


@numba.njit(cache=True)
def _azimuth_bins(
    origin: np.ndarray, prims: np.ndarray, max_distance: float, num_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Which primitives each azimuth sector (seen from ``origin``) can contain, in CSR form.

    A ray whose horizontal direction has azimuth phi can only meet a primitive whose
    bounding circle (radius r at horizontal distance d) spans phi, i.e.
    |phi - atan2| <= asin(r / d); primitives around the origin go into every sector.

    Returns:
        offsets (num_bins + 1,) and primitive indices, sector b holding
        ``indices[offsets[b]:offsets[b + 1]]``.
    """
    bin_width = 2 * np.pi / num_bins
    first = np.zeros(prims.shape[0], dtype=np.int64)
    count = np.zeros(prims.shape[0], dtype=np.int64)
    per_bin = np.zeros(num_bins + 1, dtype=np.int64)
    for p in range(prims.shape[0]):
        radius = prims[p, 3] if prims[p, 8] == KIND_CYLINDER else np.sqrt(prims[p, 3] ** 2 + prims[p, 4] ** 2)
        cx, cy = prims[p, 0] - origin[0], prims[p, 1] - origin[1]
        distance = np.sqrt(cx * cx + cy * cy)
        if distance - radius > max_distance:
            continue
        if distance <= radius + 1e-3:
            first[p], count[p] = 0, num_bins
        else:
            centre = np.arctan2(cy, cx)
            half = np.arcsin(radius / distance)
            lo = int(np.floor((centre - half) / bin_width))
            hi = int(np.floor((centre + half) / bin_width))
            first[p], count[p] = lo, min(hi - lo + 1, num_bins)
        for k in range(count[p]):
            per_bin[(first[p] + k) % num_bins + 1] += 1
    offsets = np.cumsum(per_bin)
    indices = np.empty(offsets[-1], dtype=np.int64)
    fill = offsets[:-1].copy()
    for p in range(prims.shape[0]):  # ascending p keeps each sector's list in primitive order
        for k in range(count[p]):
            b = (first[p] + k) % num_bins
            indices[fill[b]] = p
            fill[b] += 1
    return offsets, indices


@numba.njit(cache=True)
def cast_rays(
    origin: np.ndarray, directions: np.ndarray, prims: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast rays from one origin against every primitive and the ground plane.

    Primitives are bucketed by azimuth sector first, so each ray only tests the few
    that lie in its direction.

    Args:
        origin: (3,) ray origin in the world frame.
        directions: (R, 3) unit ray directions in the world frame.
        prims: (P, PRIM_COLUMNS) primitive table.
        max_distance: hits farther than this are ignored.

    Returns:
        distance (R,) (inf where nothing was hit), hit id (R,) int64 (primitive
        index, ``HIT_GROUND`` or ``HIT_NOTHING``) and normal (R, 3).
    """
    num_bins = 1440
    bin_width = 2 * np.pi / num_bins
    offsets, indices = _azimuth_bins(origin, prims, max_distance, num_bins)
    num_rays = directions.shape[0]
    distance = np.full(num_rays, np.inf)
    hit_id = np.full(num_rays, HIT_NOTHING, dtype=np.int64)
    normal = np.zeros((num_rays, 3))
    ox, oy, oz = origin[0], origin[1], origin[2]
    for r in range(num_rays):
        dx, dy, dz = directions[r, 0], directions[r, 1], directions[r, 2]
        best = max_distance
        if dz < -1e-9:
            t_ground = -oz / dz
            if t_ground < best:
                best = t_ground
                hit_id[r] = HIT_GROUND
                normal[r, 2] = 1.0
        if dx * dx + dy * dy < 1e-12:  # straight up or down: every sector
            lo, hi = 0, num_bins - 1
        else:
            lo = int(np.floor(np.arctan2(dy, dx) / bin_width)) % num_bins
            hi = lo
        for b in range(lo, hi + 1):
            for slot in range(offsets[b], offsets[b + 1]):
                p = indices[slot]
                t, nx, ny, nz = _intersect(prims[p], ox, oy, oz, dx, dy, dz)
                if t < best:
                    best = t
                    hit_id[r] = p
                    normal[r, 0], normal[r, 1], normal[r, 2] = nx, ny, nz
        if hit_id[r] != HIT_NOTHING:
            distance[r] = best
    return distance, hit_id, normal


@numba.njit(cache=True)
def render_depth(
    origin: np.ndarray,
    cam2world: np.ndarray,
    intrinsics: np.ndarray,
    height: int,
    width: int,
    prims: np.ndarray,
    owners: np.ndarray,
    num_owners: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast a pinhole camera, visiting only the pixels each primitive's bounding box covers.

    Rays go through pixel centres; a ray's direction has camera-frame z = 1, so
    the distance along it is the pixel's depth.

    Args:
        origin: (3,) camera centre in the world frame.
        cam2world: (3, 3) rotation from camera axes (x right, y down, z forward) to the world.
        intrinsics: (3, 3) pinhole matrix.
        height: image rows.
        width: image columns.
        prims: (P, PRIM_COLUMNS) primitive table.
        owners: (P,) object index of each primitive (-1 for clutter); parts of one
            object must be consecutive.
        num_owners: number of objects.

    Returns:
        depth (H, W) (inf for sky), hit id (H, W) (primitive index, ``HIT_GROUND`` or
        ``HIT_NOTHING``), normal (H, W, 3), visible pixels per object and pixels
        per object had it been alone (both (num_owners,)).
    """
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    world2cam = cam2world.T
    depth = np.full((height, width), np.inf)
    hit_id = np.full((height, width), HIT_NOTHING, dtype=np.int64)
    normal = np.zeros((height, width, 3))
    alone_pixels = np.zeros(num_owners, dtype=np.int64)
    stamp = np.full((height, width), -1, dtype=np.int64)
    ox, oy, oz = origin[0], origin[1], origin[2]
    corner = np.empty(3)
    for p in range(prims.shape[0]):
        prim = prims[p]
        cos_yaw, sin_yaw = prim[6], prim[7]
        u_min, u_max, v_min, v_max = np.inf, -np.inf, np.inf, -np.inf
        behind = 0
        for corner_index in range(8):
            sl = 1.0 if corner_index & 1 else -1.0
            sw = 1.0 if corner_index & 2 else -1.0
            sh = 1.0 if corner_index & 4 else -1.0
            lx, ly = sl * prim[3], sw * (prim[3] if prim[8] == KIND_CYLINDER else prim[4])
            corner[0] = prim[0] + cos_yaw * lx - sin_yaw * ly - ox
            corner[1] = prim[1] + sin_yaw * lx + cos_yaw * ly - oy
            corner[2] = prim[2] + sh * prim[5] - oz
            zc = world2cam[2, 0] * corner[0] + world2cam[2, 1] * corner[1] + world2cam[2, 2] * corner[2]
            if zc < _NEAR:
                behind += 1
                continue
            xc = world2cam[0, 0] * corner[0] + world2cam[0, 1] * corner[1] + world2cam[0, 2] * corner[2]
            yc = world2cam[1, 0] * corner[0] + world2cam[1, 1] * corner[1] + world2cam[1, 2] * corner[2]
            u = fx * xc / zc + cx
            v = fy * yc / zc + cy
            u_min, u_max = min(u_min, u), max(u_max, u)
            v_min, v_max = min(v_min, v), max(v_max, v)
        if behind == 8:
            continue
        if behind > 0:
            col_lo, col_hi, row_lo, row_hi = 0, width - 1, 0, height - 1
        else:
            col_lo, col_hi = max(0, int(np.floor(u_min))), min(width - 1, int(np.ceil(u_max)))
            row_lo, row_hi = max(0, int(np.floor(v_min))), min(height - 1, int(np.ceil(v_max)))
        owner = owners[p]
        for row in range(row_lo, row_hi + 1):
            yn = (row + 0.5 - cy) / fy
            for col in range(col_lo, col_hi + 1):
                xn = (col + 0.5 - cx) / fx
                dx = cam2world[0, 0] * xn + cam2world[0, 1] * yn + cam2world[0, 2]
                dy = cam2world[1, 0] * xn + cam2world[1, 1] * yn + cam2world[1, 2]
                dz = cam2world[2, 0] * xn + cam2world[2, 1] * yn + cam2world[2, 2]
                t, nx, ny, nz = _intersect(prim, ox, oy, oz, dx, dy, dz)
                if t == np.inf:
                    continue
                if owner >= 0 and stamp[row, col] != owner:
                    stamp[row, col] = owner
                    alone_pixels[owner] += 1
                if t < depth[row, col]:
                    depth[row, col] = t
                    hit_id[row, col] = p
                    normal[row, col, 0], normal[row, col, 1], normal[row, col, 2] = nx, ny, nz
    visible_pixels = np.zeros(num_owners, dtype=np.int64)
    for row in range(height):
        yn = (row + 0.5 - cy) / fy
        for col in range(width):
            p = hit_id[row, col]
            if p >= 0:
                if owners[p] >= 0:
                    visible_pixels[owners[p]] += 1
                continue
            xn = (col + 0.5 - cx) / fx
            dz = cam2world[2, 0] * xn + cam2world[2, 1] * yn + cam2world[2, 2]
            if dz < -1e-9:
                depth[row, col] = -oz / dz
                hit_id[row, col] = HIT_GROUND
                normal[row, col, 2] = 1.0
    return depth, hit_id, normal, visible_pixels, alone_pixels


@numba.njit(cache=True, inline="always")
def _lattice_hash(ix: int, iy: int, iz: int, seed: int) -> float:
    """A deterministic pseudo-random value in [0, 1) for an integer lattice point."""
    h = (ix * 374761393 + iy * 668265263 + iz * 2147483647 + seed * 1274126177) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF) / 16777216.0


@numba.njit(cache=True)
def value_noise(x: float, y: float, z: float, seed: int) -> float:
    """Smooth 3D value noise in [0, 1) (trilinear over a hashed integer lattice, smoothstep weights)."""
    x0, y0, z0 = np.floor(x), np.floor(y), np.floor(z)
    fx, fy, fz = x - x0, y - y0, z - z0
    fx, fy, fz = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy), fz * fz * (3 - 2 * fz)
    ix, iy, iz = int(x0), int(y0), int(z0)
    total = 0.0
    for corner in range(8):
        cx, cy, cz = corner & 1, (corner >> 1) & 1, (corner >> 2) & 1
        weight = (fx if cx else 1 - fx) * (fy if cy else 1 - fy) * (fz if cz else 1 - fz)
        total += weight * _lattice_hash(ix + cx, iy + cy, iz + cz, seed)
    return total
