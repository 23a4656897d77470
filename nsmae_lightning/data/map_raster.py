"""BEV map masks from the nuScenes map expansion, on the (augmented) LiDAR-frame grid.

Every cell centre of the 200x200 grid (docs/conventions.md: `[cls, iy, ix]`, centre
`x = -50 + (ix + 0.5) * 0.5`) is mapped back through the LiDAR augmentation and
`lidar2global` into map coordinates and tested against the map polygons (dividers are
lines, widened to `divider_width` with flat ends). Testing the cell centres themselves keeps the mask
exact under any rotation, scale, flip or translation, with no half-pixel shifts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import shapely
from nuscenes.map_expansion.map_api import NuScenesMap
from nuscenes.map_expansion.map_api import locations as KNOWN_LOCATIONS
from shapely.geometry.base import BaseGeometry

from nsmae_lightning.constants import MAP_BOUND, MAP_CLASS_LAYERS, MAP_CLASSES, MAP_RESOLUTION
from nsmae_lightning.data.errors import DataError

LINE_LAYERS: frozenset[str] = frozenset({"lane_divider", "road_divider"})


def bev_cell_centres(bound: float = MAP_BOUND, resolution: float = MAP_RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every BEV cell centre, each (Ny, Nx), indexed [iy, ix]."""
    cells = int(round(2 * bound / resolution))
    centres = -bound + (np.arange(cells) + 0.5) * resolution
    grid_y, grid_x = np.meshgrid(centres, centres, indexing="ij")
    return grid_x, grid_y


def rasterize_geometries(
    class_geometries: Sequence[Sequence[BaseGeometry]], map_x: np.ndarray, map_y: np.ndarray
) -> np.ndarray:
    """Which query points fall inside each class's geometries.

    Args:
        class_geometries: per class, polygons (lines must already be buffered to areas).
        map_x: x of the query points in the geometries' frame, any shape S.
        map_y: y of the query points, shape S.

    Returns:
        bool (C, *S).
    """
    flat_x, flat_y = np.ravel(map_x), np.ravel(map_y)
    masks = np.zeros((len(class_geometries), flat_x.size), dtype=bool)
    for class_index, geometries in enumerate(class_geometries):
        for geometry in geometries:
            # Exact test only for the points inside the geometry's bounding box: most map
            # elements cover a small part of the grid, and contains_xy is the costly step.
            xmin, ymin, xmax, ymax = geometry.bounds
            candidates = np.flatnonzero((flat_x >= xmin) & (flat_x <= xmax) & (flat_y >= ymin) & (flat_y <= ymax))
            if candidates.size:
                shapely.prepare(geometry)
                inside = shapely.contains_xy(geometry, flat_x[candidates], flat_y[candidates])
                masks[class_index, candidates[inside]] = True
    return masks.reshape(len(class_geometries), *np.shape(map_x))


class MapRasterizer:
    """Rasterizes the six MAP_CLASSES around a LiDAR pose; one NuScenesMap per location, cached.

    The cache fills lazily, so each DataLoader worker loads its own maps.

    Args:
        dataroot: nuScenes root holding `maps/expansion/<location>.json`.
        bound: half extent of the grid in metres.
        resolution: cell size in metres.
        divider_width: width in metres given to the divider lines.
    """

    def __init__(
        self,
        dataroot: str | Path,
        bound: float = MAP_BOUND,
        resolution: float = MAP_RESOLUTION,
        divider_width: float = 1.0,
    ) -> None:
        self.dataroot = Path(dataroot)
        self.bound = bound
        self.resolution = resolution
        self.divider_width = divider_width
        self._maps: dict[str, NuScenesMap] = {}

    def check_location(self, location: str) -> None:
        """Raise DataError if `location` has no map expansion NuScenesMap can load."""
        if location not in KNOWN_LOCATIONS:
            raise DataError(location, f"unknown map location; the map expansion knows {sorted(KNOWN_LOCATIONS)}")
        map_file = self.dataroot / "maps" / "expansion" / f"{location}.json"
        if not map_file.is_file():
            raise DataError(map_file, f"map expansion file for location {location!r} not found")

    def map_for(self, location: str) -> NuScenesMap:
        """The (cached) NuScenesMap of a location."""
        if location not in self._maps:
            self.check_location(location)
            map_file = self.dataroot / "maps" / "expansion" / f"{location}.json"
            try:
                self._maps[location] = NuScenesMap(dataroot=str(self.dataroot), map_name=location)
            except (ValueError, KeyError, TypeError) as error:  # json.JSONDecodeError is a ValueError
                # the devkit's own error names neither the file nor the problem in words
                raise DataError(map_file, f"cannot read the map expansion: {type(error).__name__}: {error}") from error
        return self._maps[location]

    def __call__(self, location: str, lidar2global: np.ndarray, lidar_aug: np.ndarray) -> np.ndarray:
        """The bool (6, Ny, Nx) masks of MAP_CLASSES on the augmented LiDAR-frame grid.

        Args:
            location: the log's map location.
            lidar2global: 4x4 keyframe LiDAR -> global.
            lidar_aug: 4x4 LiDAR augmentation applied to the sample (identity if none).
        """
        grid_x, grid_y = bev_cell_centres(self.bound, self.resolution)
        grid_to_global = lidar2global @ np.linalg.inv(lidar_aug)
        cell_centres = np.stack([grid_x.ravel(), grid_y.ravel(), np.zeros(grid_x.size), np.ones(grid_x.size)])
        global_xy = (grid_to_global @ cell_centres)[:2]  # (2, Ny * Nx)
        # Query the map on an axis-aligned patch around the cells; geometries come back
        # shifted so the patch centre is the origin.
        low, high = global_xy.min(axis=1) - 1.0, global_xy.max(axis=1) + 1.0
        centre = (low + high) / 2.0
        patch_box = (float(centre[0]), float(centre[1]), float(high[1] - low[1]), float(high[0] - low[0]))
        layer_names = sorted({layer for name in MAP_CLASSES for layer in MAP_CLASS_LAYERS[name]})
        layer_geometries = dict(self.map_for(location).get_map_geom(patch_box, 0.0, layer_names))
        class_geometries = [
            [
                geometry.buffer(self.divider_width / 2.0, cap_style="flat") if layer in LINE_LAYERS else geometry
                for layer in MAP_CLASS_LAYERS[name]
                for geometry in layer_geometries.get(layer, [])
            ]
            for name in MAP_CLASSES
        ]
        local_xy = global_xy - centre[:, None]
        masks = rasterize_geometries(class_geometries, local_xy[0], local_xy[1])  # (C, Ny * Nx)
        return masks.reshape(len(MAP_CLASSES), *grid_x.shape)
