"""City layout of one map location: a grid of roads with lanes, crossings, walkways, car parks.

Every road has two lanes per direction (right-hand traffic), a parking strip on
each side and a walkway beyond the kerb. The layout gives the map-expansion
layers as polygons and polylines (global frame, metres) and paints them into a
ground raster (materials with markings) that the sensors read when a ray hits
the ground.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from shapely.geometry import Polygon, box
from shapely.ops import unary_union

# the nuScenes map-expansion layers the world draws (map_expansion.py writes them in this order)
POLYGON_LAYERS: tuple[str, ...] = (
    "drivable_area",
    "road_segment",
    "lane",
    "ped_crossing",
    "walkway",
    "stop_line",
    "carpark_area",
)
LINE_LAYERS: tuple[str, ...] = ("road_divider", "lane_divider")

LANE_WIDTH = 3.5
LANES_PER_DIRECTION = 2
PARKING_WIDTH = 2.5
WALKWAY_WIDTH = 4.0
CROSSING_WIDTH = 4.0
STOP_LINE_DEPTH = 0.5
BLOCK_SPACING = 140.0
MAP_MARGIN = 90.0
RASTER_RESOLUTION = 0.1  # metres per ground-raster pixel (also the devkit's map-mask resolution)

CARRIAGEWAY_HALF_WIDTH = LANE_WIDTH * LANES_PER_DIRECTION  # kerb-free lanes, each side of the centre line
ROAD_HALF_WIDTH = CARRIAGEWAY_HALF_WIDTH + PARKING_WIDTH  # to the kerb
WALKWAY_OUTER = ROAD_HALF_WIDTH + WALKWAY_WIDTH

# Ground materials painted into the raster: colour (0..1) and LiDAR intensity (0..255).
GROUND_GRASS = 0
GROUND_ASPHALT = 1
GROUND_WALKWAY = 2
GROUND_WHITE_PAINT = 3
GROUND_YELLOW_PAINT = 4
GROUND_CARPARK = 5
GROUND_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.32, 0.44, 0.2),
    (0.3, 0.3, 0.32),
    (0.62, 0.6, 0.57),
    (0.9, 0.9, 0.88),
    (0.86, 0.7, 0.16),
    (0.22, 0.23, 0.25),
)
GROUND_INTENSITY: tuple[float, ...] = (20.0, 6.0, 28.0, 110.0, 90.0, 8.0)

# The real nuScenes map names (NuScenesMap accepts only these).
LOCATIONS: tuple[str, ...] = (
    "boston-seaport",
    "singapore-onenorth",
    "singapore-queenstown",
    "singapore-hollandvillage",
)


@dataclass
class CityLayout:
    """The map of one location.

    Attributes:
        location: nuScenes map name.
        size: side of the square canvas in metres (global x, y in [0, size]).
        road_offsets: centre-line coordinate of the roads; the same list for roads
            along x (at these y) and roads along y (at these x).
        polygons: map-expansion polygon layer -> list of shapely polygons.
        lines: map-expansion line layer -> list of (K, 2) polylines.
        segment_is_intersection: for each ``road_segment`` polygon, whether it is an intersection.
        crossing_segment: for each ``ped_crossing``, the index of its intersection road segment.
        stop_line_crossing: for each ``stop_line``, the index of the crossing it guards.
        paint: (polygon, ground material) in painting order, markings last.
    """

    location: str
    size: float
    road_offsets: list[float]
    polygons: dict[str, list[Polygon]] = field(default_factory=dict)
    lines: dict[str, list[np.ndarray]] = field(default_factory=dict)
    segment_is_intersection: list[bool] = field(default_factory=list)
    crossing_segment: list[int] = field(default_factory=list)
    stop_line_crossing: list[int] = field(default_factory=list)
    paint: list[tuple[Polygon, int]] = field(default_factory=list)


def _road_rect(axis: int, offset: float, lo: float, hi: float, half_width: float) -> Polygon:
    """A rectangle along a road: ``lo..hi`` along the road, ``offset +- half_width`` across it."""
    if axis == 0:
        return box(lo, offset - half_width, hi, offset + half_width)
    return box(offset - half_width, lo, offset + half_width, hi)


def _band(axis: int, offset: float, lo: float, hi: float, left: float, right: float) -> Polygon:
    """A rectangle along a road between lateral offsets ``left`` and ``right`` (absolute ordering free)."""
    a, b = sorted((offset + left, offset + right))
    if axis == 0:
        return box(lo, a, hi, b)
    return box(a, lo, b, hi)


def _line(axis: int, offset: float, lo: float, hi: float, lateral: float) -> np.ndarray:
    """A straight polyline along a road at a lateral offset, (2, 2)."""
    if axis == 0:
        return np.array([[lo, offset + lateral], [hi, offset + lateral]])
    return np.array([[offset + lateral, lo], [offset + lateral, hi]])


def _dashes(axis: int, offset: float, lo: float, hi: float, lateral: float, width: float) -> list[Polygon]:
    """Dashed marking (3 m paint, 6 m gap) along a road."""
    starts = np.arange(lo + 1.0, hi - 3.0, 9.0)
    return [_band(axis, offset, s, s + 3.0, lateral - width / 2, lateral + width / 2) for s in starts]


def road_intervals(offsets: list[float], size: float) -> list[tuple[float, float]]:
    """Stretches of a road between intersections (and the canvas edges)."""
    edges = [0.0] + [e for c in offsets for e in (c - ROAD_HALF_WIDTH, c + ROAD_HALF_WIDTH)] + [size]
    return [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]


def build_layout(location: str, roads_per_axis: int, min_size: float, rng: np.random.Generator) -> CityLayout:
    """Lay out a grid city.

    Args:
        location: nuScenes map name.
        roads_per_axis: how many roads run along x (and along y).
        min_size: the canvas is at least this many metres across (to fit the scenes' trajectories).
        rng: generator for the car parks' placement.

    Returns:
        The layout with every map layer filled.
    """
    size = max(2 * MAP_MARGIN + (roads_per_axis - 1) * BLOCK_SPACING, min_size)
    size = float(np.ceil(size / 10.0) * 10.0)
    count = int((size - 2 * MAP_MARGIN) // BLOCK_SPACING) + 1
    offsets = [size / 2 + (i - (count - 1) / 2) * BLOCK_SPACING for i in range(count)]
    layout = CityLayout(location=location, size=size, road_offsets=offsets)
    polygons: dict[str, list[Polygon]] = {name: [] for name in POLYGON_LAYERS}
    lines: dict[str, list[np.ndarray]] = {name: [] for name in LINE_LAYERS}
    markings: list[tuple[Polygon, int]] = []
    intervals = road_intervals(offsets, size)

    roads = [_road_rect(axis, c, 0.0, size, ROAD_HALF_WIDTH) for axis in (0, 1) for c in offsets]
    drivable = unary_union(roads)
    polygons["drivable_area"] = list(getattr(drivable, "geoms", [drivable]))

    for cx in offsets:
        for cy in offsets:
            polygons["road_segment"].append(box(cx - ROAD_HALF_WIDTH, cy - ROAD_HALF_WIDTH, cx + ROAD_HALF_WIDTH, cy + ROAD_HALF_WIDTH))
            layout.segment_is_intersection.append(True)
    intersection_index = {(cx, cy): i for i, (cx, cy) in enumerate((cx, cy) for cx in offsets for cy in offsets)}

    for axis in (0, 1):
        for c in offsets:
            for lo, hi in intervals:
                polygons["road_segment"].append(_road_rect(axis, c, lo, hi, ROAD_HALF_WIDTH))
                layout.segment_is_intersection.append(False)
                for lane in range(LANES_PER_DIRECTION):
                    for side in (-1.0, 1.0):
                        inner, outer = side * lane * LANE_WIDTH, side * (lane + 1) * LANE_WIDTH
                        polygons["lane"].append(_band(axis, c, lo, hi, inner, outer))
                lines["road_divider"].append(_line(axis, c, lo, hi, 0.0))
                for side in (-1.0, 1.0):
                    lines["lane_divider"].append(_line(axis, c, lo, hi, side * LANE_WIDTH))
                    markings += [(p, GROUND_WHITE_PAINT) for p in _dashes(axis, c, lo, hi, side * LANE_WIDTH, 0.15)]
                    edge = side * CARRIAGEWAY_HALF_WIDTH
                    markings.append((_band(axis, c, lo, hi, edge - 0.075, edge + 0.075), GROUND_WHITE_PAINT))
                    markings.append((_band(axis, c, lo, hi, side * 0.1 - 0.05, side * 0.1 + 0.05), GROUND_YELLOW_PAINT))

            # crossings and stop lines on the four arms of every intersection on this road
            for cross in offsets:
                for arm in (-1.0, 1.0):
                    near = cross + arm * (ROAD_HALF_WIDTH + 0.5)
                    far = cross + arm * (ROAD_HALF_WIDTH + 0.5 + CROSSING_WIDTH)
                    lo, hi = sorted((near, far))
                    if lo < 0.0 or hi > size:
                        continue
                    crossing = _road_rect(axis, c, lo, hi, ROAD_HALF_WIDTH)
                    polygons["ped_crossing"].append(crossing)
                    key = (cross, c) if axis == 0 else (c, cross)
                    layout.crossing_segment.append(intersection_index[key])
                    for stripe in np.arange(-ROAD_HALF_WIDTH + 0.25, ROAD_HALF_WIDTH - 0.25, 1.0):
                        markings.append((_band(axis, c, lo, hi, stripe, stripe + 0.5), GROUND_WHITE_PAINT))
                    # incoming traffic on this arm travels towards the intersection (-arm along the road);
                    # with right-hand traffic its lanes lie at +arm (axis 0) / -arm (axis 1) laterally.
                    lateral_sign = arm if axis == 0 else -arm
                    stop_near = cross + arm * (ROAD_HALF_WIDTH + 1.0 + CROSSING_WIDTH)
                    s_lo, s_hi = sorted((stop_near, stop_near + arm * STOP_LINE_DEPTH))
                    stop = _band(axis, c, s_lo, s_hi, 0.0, lateral_sign * CARRIAGEWAY_HALF_WIDTH)
                    polygons["stop_line"].append(stop)
                    layout.stop_line_crossing.append(len(polygons["ped_crossing"]) - 1)
                    markings.append((stop, GROUND_WHITE_PAINT))

    # walkways: the road-side band of every block; car parks inside some blocks
    block_edges = road_intervals(offsets, size)
    for x_lo, x_hi in block_edges:
        for y_lo, y_hi in block_edges:
            block = box(x_lo, y_lo, x_hi, y_hi)
            inner = box(
                x_lo + (WALKWAY_WIDTH if x_lo > 0 else 0.0),
                y_lo + (WALKWAY_WIDTH if y_lo > 0 else 0.0),
                x_hi - (WALKWAY_WIDTH if x_hi < size else 0.0),
                y_hi - (WALKWAY_WIDTH if y_hi < size else 0.0),
            )
            walkway = block.difference(inner)
            polygons["walkway"] += list(getattr(walkway, "geoms", [walkway]))
            if rng.random() < 0.5:
                x_min, y_min, x_max, y_max = inner.bounds
                depth, length = 18.0, 40.0
                if x_max - x_min < length + 20 or y_max - y_min < length + 20:
                    continue
                along_x = bool(rng.random() < 0.5)
                start = float(rng.uniform(10.0, (x_max - x_min if along_x else y_max - y_min) - length - 10.0))
                if along_x:
                    carpark = box(x_min + start, y_min, x_min + start + length, y_min + depth)
                else:
                    carpark = box(x_min, y_min + start, x_min + depth, y_min + start + length)
                polygons["carpark_area"].append(carpark)

    paint: list[tuple[Polygon, int]] = [(p, GROUND_ASPHALT) for p in polygons["drivable_area"]]
    paint += [(p, GROUND_WALKWAY) for p in polygons["walkway"]]
    for carpark in polygons["carpark_area"]:
        paint.append((carpark, GROUND_CARPARK))
        x_min, y_min, x_max, y_max = carpark.bounds
        along_x = x_max - x_min > y_max - y_min
        for s in np.arange(0.0, max(x_max - x_min, y_max - y_min), 2.6):
            if along_x:
                paint.append((box(x_min + s, y_min, x_min + s + 0.12, y_min + 5.5), GROUND_WHITE_PAINT))
            else:
                paint.append((box(x_min, y_min + s, x_min + 5.5, y_min + s + 0.12), GROUND_WHITE_PAINT))
    layout.polygons = polygons
    layout.lines = lines
    layout.paint = paint + markings
    return layout


def _fill(polygons: list[tuple[Polygon, int]], size: float, resolution: float, background: int) -> np.ndarray:
    """Fill (polygon, value) pairs in order (holes get the background) into a raster.

    Pixel (row, col) covers global (x, y) = ((col, row) + 0.5) * resolution.
    """
    pixels = int(round(size / resolution))
    image = Image.new("L", (pixels, pixels), background)
    draw = ImageDraw.Draw(image)
    for polygon, value in polygons:
        draw.polygon([(x / resolution, y / resolution) for x, y in polygon.exterior.coords], fill=value)
        for hole in polygon.interiors:
            draw.polygon([(x / resolution, y / resolution) for x, y in hole.coords], fill=background)
    return np.asarray(image, dtype=np.uint8)


def paint_ground(layout: CityLayout, resolution: float = RASTER_RESOLUTION) -> np.ndarray:
    """Rasterise the layout's ground materials, (rows = y / resolution, cols = x / resolution) uint8."""
    return _fill(layout.paint, layout.size, resolution, GROUND_GRASS)


def rasterise(polygons: list[Polygon], size: float, resolution: float) -> np.ndarray:
    """A 0/1 mask (rows = y / resolution, cols = x / resolution) of the union of ``polygons``."""
    return _fill([(p, 1) for p in polygons], size, resolution, 0)
