"""The nuScenes map expansion (``maps/expansion/<location>.json``) of a city layout.

Records follow map-expansion v1.3, which ``NuScenesMap`` loads: geometry lives
in ``node`` / ``line`` / ``polygon``, and every semantic layer points at it by
token. Lanes also get straight arcline paths and (empty) connectivity so that
the lane API works.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from shapely.geometry import Polygon

from nsmae_lightning.data.world.layout import LINE_LAYERS, POLYGON_LAYERS, CityLayout
from nsmae_lightning.data.world.tokens import make_token

MAP_EXPANSION_VERSION = "1.3"


class _Geometry:
    """Collects node, line and polygon records with deterministic tokens."""

    def __init__(self, seed: int, location: str) -> None:
        self.seed = seed
        self.location = location
        self.nodes: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []
        self.polygons: list[dict[str, Any]] = []

    def _node(self, x: float, y: float) -> str:
        token = make_token(self.seed, "map_node", self.location, len(self.nodes))
        self.nodes.append({"token": token, "x": round(float(x), 4), "y": round(float(y), 4)})
        return token

    def _ring(self, coords: Any) -> list[str]:
        points = list(coords)[:-1]  # shapely rings repeat the first point at the end
        return [self._node(x, y) for x, y in points]

    def polygon(self, polygon: Polygon) -> str:
        """Add a polygon (with holes) and return its token."""
        token = make_token(self.seed, "map_polygon", self.location, len(self.polygons))
        self.polygons.append(
            {
                "token": token,
                "exterior_node_tokens": self._ring(polygon.exterior.coords),
                "holes": [{"node_tokens": self._ring(hole.coords)} for hole in polygon.interiors],
            }
        )
        return token

    def line(self, points: np.ndarray) -> tuple[str, list[str]]:
        """Add a polyline; returns its token and its node tokens."""
        token = make_token(self.seed, "map_line", self.location, len(self.lines))
        node_tokens = [self._node(x, y) for x, y in points]
        self.lines.append({"token": token, "node_tokens": node_tokens})
        return token, node_tokens


def _straight_arcline(polygon: Polygon) -> list[dict[str, Any]]:
    """A straight arcline path down the long axis of a rectangular lane polygon."""
    x_min, y_min, x_max, y_max = polygon.bounds
    if x_max - x_min >= y_max - y_min:
        start, end, yaw = [x_min, (y_min + y_max) / 2], [x_max, (y_min + y_max) / 2], 0.0
    else:
        start, end, yaw = [(x_min + x_max) / 2, y_min], [(x_min + x_max) / 2, y_max], float(np.pi / 2)
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    return [
        {
            "start_pose": [float(start[0]), float(start[1]), yaw],
            "end_pose": [float(end[0]), float(end[1]), yaw],
            "shape": "LSR",
            "radius": 999.999,
            "segment_length": [0.0, length, 0.0],
        }
    ]


def expansion_json(layout: CityLayout, seed: int) -> dict[str, Any]:
    """Every map-expansion layer of a layout as a JSON-ready dict.

    Args:
        layout: the location's layout.
        seed: world seed (tokens).

    Returns:
        The map-expansion document for ``maps/expansion/<location>.json``.
    """
    geometry = _Geometry(seed, layout.location)
    location = layout.location
    records: dict[str, Any] = {}

    def layer_token(layer: str, index: int) -> str:
        return make_token(seed, "map", location, layer, index)

    drivable_token = layer_token("drivable_area", 0)
    records["drivable_area"] = [
        {"token": drivable_token, "polygon_tokens": [geometry.polygon(p) for p in layout.polygons["drivable_area"]]}
    ]
    records["road_segment"] = [
        {
            "token": layer_token("road_segment", i),
            "polygon_token": geometry.polygon(p),
            "is_intersection": bool(layout.segment_is_intersection[i]),
            "drivable_area_token": drivable_token,
        }
        for i, p in enumerate(layout.polygons["road_segment"])
    ]
    records["lane"] = [
        {
            "token": layer_token("lane", i),
            "polygon_token": geometry.polygon(p),
            "lane_type": "CAR",
            "from_edge_line_token": "",
            "to_edge_line_token": "",
            "left_lane_divider_segments": [],
            "right_lane_divider_segments": [],
        }
        for i, p in enumerate(layout.polygons["lane"])
    ]
    records["ped_crossing"] = [
        {
            "token": layer_token("ped_crossing", i),
            "polygon_token": geometry.polygon(p),
            "road_segment_token": layer_token("road_segment", layout.crossing_segment[i]),
        }
        for i, p in enumerate(layout.polygons["ped_crossing"])
    ]
    records["walkway"] = [
        {"token": layer_token("walkway", i), "polygon_token": geometry.polygon(p)}
        for i, p in enumerate(layout.polygons["walkway"])
    ]
    records["stop_line"] = [
        {
            "token": layer_token("stop_line", i),
            "polygon_token": geometry.polygon(p),
            "stop_line_type": "PED_CROSSING",
            "ped_crossing_tokens": [layer_token("ped_crossing", layout.stop_line_crossing[i])],
            "traffic_light_tokens": [],
            "road_block_token": "",
        }
        for i, p in enumerate(layout.polygons["stop_line"])
    ]
    records["carpark_area"] = [
        {
            "token": layer_token("carpark_area", i),
            "polygon_token": geometry.polygon(p),
            "orientation": 0.0,
            "road_block_token": "",
        }
        for i, p in enumerate(layout.polygons["carpark_area"])
    ]
    records["road_divider"] = []
    for i, points in enumerate(layout.lines["road_divider"]):
        line_token, _ = geometry.line(points)
        records["road_divider"].append(
            {"token": layer_token("road_divider", i), "line_token": line_token, "road_segment_token": ""}
        )
    records["lane_divider"] = []
    for i, points in enumerate(layout.lines["lane_divider"]):
        line_token, node_tokens = geometry.line(points)
        records["lane_divider"].append(
            {
                "token": layer_token("lane_divider", i),
                "line_token": line_token,
                "lane_divider_segments": [{"node_token": n, "segment_type": "DOUBLE_DASHED_WHITE"} for n in node_tokens],
            }
        )
    lane_tokens = [record["token"] for record in records["lane"]]
    document: dict[str, Any] = {
        "version": MAP_EXPANSION_VERSION,
        "canvas_edge": [float(layout.size), float(layout.size)],
        "node": geometry.nodes,
        "line": geometry.lines,
        "polygon": geometry.polygons,
        **records,
        "road_block": [],
        "traffic_light": [],
        "lane_connector": [],
        "arcline_path_3": {t: _straight_arcline(p) for t, p in zip(lane_tokens, layout.polygons["lane"])},
        "connectivity": {t: {"incoming": [], "outgoing": []} for t in lane_tokens},
    }
    return document
