"""Plans of the world: per location a layout, ground raster and static clutter; per scene a drive.

A scene is a straight drive along one road of its location's grid. Everything
in it is placed in corridor coordinates (``along`` the ego's heading from its
start, ``left`` of the road's centre line) and converted to the global frame:
traffic in the lanes, parked vehicles in the parking strips and car parks,
stopped queues on the cross roads, pedestrians on the walkways and a
construction zone closing the opposite outer lane. Objects move with constant
velocity, so their state at any timestamp (keyframe, sweep or camera exposure)
is exact and the devkit's velocities (from neighbouring annotations) are true.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from nuscenes.utils import splits
from shapely.geometry import Point

from nsmae_lightning.data.world import classes as cls
from nsmae_lightning.data.world.config import WorldConfig
from nsmae_lightning.data.world.layout import (
    CARRIAGEWAY_HALF_WIDTH,
    LANE_WIDTH,
    LANES_PER_DIRECTION,
    LOCATIONS,
    MAP_MARGIN,
    PARKING_WIDTH,
    ROAD_HALF_WIDTH,
    WALKWAY_OUTER,
    CityLayout,
    build_layout,
    paint_ground,
)
from nsmae_lightning.data.world.raycast import KIND_BOX, KIND_CYLINDER, PRIM_COLUMNS
from nsmae_lightning.data.world.rig import rotation_z, transform

KEYFRAME_INTERVAL = 0.5  # seconds between keyframes (2 Hz)
SCENE_START_US = 1_533_151_603_547_590  # first scene's first keyframe (a real nuScenes-era timestamp)
SCENE_GAP_US = 100_000_000  # 100 s between scene starts
VISIBLE_RADIUS = 110.0  # primitives farther than this from the ego are left out of a frame
MAX_EGO_SPEED = 11.0
TOW_GAP = 1.0  # metres between a truck and the trailer it tows

# Classes a track may hold, with sampling weights.
TRAFFIC_MIX = {"car": 0.58, "truck": 0.1, "bus": 0.07, "trailer": 0.05, "motorcycle": 0.1, "bicycle": 0.06,
               "construction_vehicle": 0.04}  # fmt: skip
PARKED_MIX = {"car": 0.6, "truck": 0.1, "trailer": 0.08, "motorcycle": 0.1, "bicycle": 0.1, "traffic_cone": 0.02}
WALKWAY_MIX = {"pedestrian": 0.84, "bicycle": 0.06, "barrier": 0.05, "traffic_cone": 0.05}
QUEUE_MIX = {"car": 0.7, "truck": 0.12, "bus": 0.08, "motorcycle": 0.1}


@dataclass
class Primitives:
    """Geometry the ray caster sees, with what the sensors need to know about each primitive.

    Attributes:
        table: (P, PRIM_COLUMNS) float64, see ``raycast``.
        owners: (P,) int64 object index, -1 for clutter.
        materials: (P,) int64 ``classes.MATERIAL_*``.
        colours: (P, 3) float64 albedo 0..1.
    """

    table: np.ndarray
    owners: np.ndarray
    materials: np.ndarray
    colours: np.ndarray

    @staticmethod
    def concat(parts: list[Primitives]) -> Primitives:
        """Stack several primitive sets (an empty list gives an empty set)."""
        if not parts:
            return Primitives(np.zeros((0, PRIM_COLUMNS)), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)))
        return Primitives(
            np.concatenate([p.table for p in parts]),
            np.concatenate([p.owners for p in parts]),
            np.concatenate([p.materials for p in parts]),
            np.concatenate([p.colours for p in parts]),
        )

    def select(self, mask: np.ndarray) -> Primitives:
        """The primitives where ``mask`` is true."""
        return Primitives(self.table[mask], self.owners[mask], self.materials[mask], self.colours[mask])


def primitive_rows(
    centres: np.ndarray, half_sizes: np.ndarray, yaws: np.ndarray, cylinder: np.ndarray
) -> np.ndarray:
    """Primitive table rows from centres (N, 3), half sizes (N, 3), yaws (N,) and a cylinder flag (N,)."""
    rows = np.zeros((len(centres), PRIM_COLUMNS))
    rows[:, 0:3] = centres
    rows[:, 3:6] = half_sizes
    rows[:, 6] = np.cos(yaws)
    rows[:, 7] = np.sin(yaws)
    rows[:, 8] = np.where(cylinder, KIND_CYLINDER, KIND_BOX)
    return rows


@dataclass
class WorldObject:
    """One annotated object of a scene.

    Attributes:
        class_name: detection class (``constants.DETECTION_CLASSES``).
        shape: key of ``classes.SHAPES``.
        size: (3,) length, width, height in metres.
        start: (2,) box centre x, y (global) at the scene's first keyframe.
        yaw: heading, counter-clockwise from global +x.
        velocity: (2,) m/s in the global frame (constant).
        colours: (2, 3) main and secondary albedo.
        attribute: nuScenes attribute name, '' for none.
        kitti_type: KITTI label type, '' when KITTI would not label it.
    """

    class_name: str
    shape: str
    size: np.ndarray
    start: np.ndarray
    yaw: float
    velocity: np.ndarray
    colours: np.ndarray
    attribute: str
    kitti_type: str

    def centre(self, time: float) -> np.ndarray:
        """(3,) box centre at ``time`` seconds after the scene's first keyframe."""
        xy = self.start + self.velocity * time
        return np.array([xy[0], xy[1], self.size[2] / 2])


@dataclass
class Lighting:
    """A scene's light: sun direction, ambient and direct strength, colour tint, sky.

    Attributes:
        sun: (3,) unit vector towards the sun.
        ambient: ambient light level.
        diffuse: direct light level.
        tint: (3,) RGB multiplier of all light.
        sky_zenith: (3,) sky colour straight up.
        sky_horizon: (3,) sky colour at the horizon.
    """

    sun: np.ndarray
    ambient: float
    diffuse: float
    tint: np.ndarray
    sky_zenith: np.ndarray
    sky_horizon: np.ndarray


@dataclass
class ScenePlan:
    """One drive: where, when, the ego's motion, the objects and the light.

    Attributes:
        index: scene index in the world (0-based).
        name: nuScenes scene name (from the devkit's official split lists).
        split: "train" or "val".
        location: nuScenes map name.
        start_us: timestamp of the first keyframe in microseconds.
        origin: (2,) corridor origin on the road centre line (global).
        heading: ego yaw (global).
        ego_speed: ego speed in m/s.
        objects: the scene's annotated objects.
        lighting: the scene's light.
        description: one line about the scene.
    """

    index: int
    name: str
    split: str
    location: str
    start_us: int
    origin: np.ndarray
    heading: float
    ego_speed: float
    objects: list[WorldObject]
    lighting: Lighting
    description: str

    @cached_property
    def parts(self) -> ObjectParts:
        """The objects' parts (built on first use, once every object is placed)."""
        return ObjectParts.build(self.objects)

    def to_global(self, along: np.ndarray | float, left: np.ndarray | float) -> np.ndarray:
        """Global (x, y) of corridor coordinates, shape (..., 2)."""
        forward = np.array([np.cos(self.heading), np.sin(self.heading)])
        leftward = np.array([-forward[1], forward[0]])
        return self.origin + np.multiply.outer(along, forward) + np.multiply.outer(left, leftward)

    def ego2global(self, time: float) -> np.ndarray:
        """4x4 ego -> global transform at ``time`` seconds after the first keyframe."""
        xy = self.to_global(self.ego_speed * time, -LANE_WIDTH / 2)
        return transform(rotation_z(self.heading), (xy[0], xy[1], 0.0))

    def timestamp(self, time: float) -> int:
        """Microsecond timestamp of ``time`` seconds after the first keyframe."""
        return self.start_us + int(round(time * 1e6))


@dataclass
class LocationWorld:
    """Static world of one location: layout, painted ground and clutter.

    Attributes:
        layout: map layers.
        ground: (rows, cols) uint8 ground materials at ``layout.RASTER_RESOLUTION``.
        clutter: poles, trees, hedges and buildings.
    """

    layout: CityLayout
    ground: np.ndarray
    clutter: Primitives


def _pick_colour(rng: np.random.Generator, prior: tuple[int, ...], variation: float) -> np.ndarray:
    """An instance colour: the class prior or, with probability ``variation``, any palette colour; jittered."""
    palette = np.array(cls.PALETTE)
    index = int(rng.integers(len(palette))) if rng.random() < variation else int(rng.choice(prior))
    jitter = rng.normal(0.0, 0.04 + 0.06 * variation, 3)
    return np.clip(palette[index] * rng.uniform(0.8, 1.1) + jitter, 0.02, 0.98)


def make_object(
    rng: np.random.Generator,
    cfg: WorldConfig,
    class_name: str,
    centre_xy: np.ndarray,
    yaw: float,
    speed: float,
    state: str,
) -> WorldObject:
    """Draw one object's size, colours, attribute and KITTI type.

    Args:
        rng: generator.
        cfg: world config (colour variation).
        class_name: detection class.
        centre_xy: (2,) global box centre at the first keyframe.
        yaw: heading (global).
        speed: along the heading, m/s.
        state: "moving", "stopped" or "parked" (the vehicle/pedestrian/cycle attribute follows from it).

    Returns:
        The object.
    """
    spec = cls.OBJECT_CLASSES[class_name]
    size = np.array(spec.size) * np.clip(1.0 + spec.size_spread * rng.normal(size=3), 0.75, 1.3)
    shape = class_name
    attribute = ""
    kitti_type = ""
    if class_name == "car":
        kitti_type = "Car"
        if rng.random() < 0.15:  # vans are cars in nuScenes, Van in KITTI
            size = np.array([5.1, 2.0, 2.1]) * np.clip(1.0 + 0.05 * rng.normal(size=3), 0.85, 1.15)
            kitti_type = "Van"
    elif class_name == "truck":
        kitti_type = "Truck"
    elif class_name in ("bus", "trailer", "construction_vehicle"):
        kitti_type = "Misc"
    if class_name in ("car", "truck", "bus", "trailer", "construction_vehicle"):
        attribute = {"moving": "vehicle.moving", "stopped": "vehicle.stopped", "parked": "vehicle.parked"}[state]
    elif class_name in ("motorcycle", "bicycle"):
        ridden = state != "parked"
        attribute = "cycle.with_rider" if ridden else "cycle.without_rider"
        shape = f"{class_name}_rider" if ridden else class_name
        if not ridden:
            size[2] *= 0.72
        kitti_type = "Cyclist" if ridden else ""
    elif class_name == "pedestrian":
        attribute = "pedestrian.moving" if state == "moving" else "pedestrian.standing"
        kitti_type = "Pedestrian"
        if state == "parked":  # a pedestrian who stays put: standing or sitting
            if rng.random() < 0.15:
                attribute = "pedestrian.sitting_lying_down"
                size[2] *= 0.68
                kitti_type = "Person_sitting"
    colours = np.stack(
        [
            _pick_colour(rng, spec.palette_prior, cfg.colour_variation),
            _pick_colour(rng, tuple(range(len(cls.PALETTE))), 1.0),
        ]
    )
    velocity = speed * np.array([np.cos(yaw), np.sin(yaw)])
    return WorldObject(class_name, shape, size, np.asarray(centre_xy, float), float(yaw), velocity, colours,
                       attribute, kitti_type)  # fmt: skip


@dataclass
class ObjectParts:
    """Every part of every object of a scene, in object frames, ready to be posed at any time.

    Attributes:
        owners: (Q,) object index of each part (parts of one object are consecutive).
        local_centres: (Q, 3) part centre relative to its object's box centre, object frame.
        half_sizes: (Q, 3) half length, width, height (radius in the first for cylinders).
        cylinder: (Q,) whether the part is a vertical cylinder.
        materials: (Q,) ``classes.MATERIAL_*``.
        colours: (Q, 3) albedo.
    """

    owners: np.ndarray
    local_centres: np.ndarray
    half_sizes: np.ndarray
    cylinder: np.ndarray
    materials: np.ndarray
    colours: np.ndarray

    @staticmethod
    def build(objects: list[WorldObject]) -> ObjectParts:
        """Expand each object's shape into parts scaled to its size and coloured by its instance colours."""
        owners, centres, halves, cylinders, materials, colours = [], [], [], [], [], []
        material_colours = np.array(cls.MATERIAL_COLOURS)
        for index, obj in enumerate(objects):
            parts = cls.SHAPES[obj.shape]
            lo = np.array([[p.x_range[0], p.y_range[0], p.z_range[0]] for p in parts]) * obj.size
            hi = np.array([[p.x_range[1], p.y_range[1], p.z_range[1]] for p in parts]) * obj.size
            cylinder = np.array([p.cylinder for p in parts])
            half = (hi - lo) / 2
            half[cylinder, 0] = np.minimum(half[cylinder, 0], half[cylinder, 1])
            part_materials = np.array([p.material for p in parts], np.int64)
            base = material_colours[part_materials]
            base[np.isin(part_materials, (cls.MATERIAL_PAINT, cls.MATERIAL_RETROREFLECTIVE))] = obj.colours[0]
            base[part_materials == cls.MATERIAL_CLOTH] = obj.colours[1]
            owners.append(np.full(len(parts), index, np.int64))
            centres.append((lo + hi) / 2 - np.array([0.0, 0.0, obj.size[2] / 2]))
            halves.append(half)
            cylinders.append(cylinder)
            materials.append(part_materials)
            colours.append(base)
        if not objects:
            empty = np.zeros((0, 3))
            return ObjectParts(np.zeros(0, np.int64), empty, empty, np.zeros(0, bool), np.zeros(0, np.int64), empty)
        return ObjectParts(*(np.concatenate(x) for x in (owners, centres, halves, cylinders, materials, colours)))


def object_primitives(plan: ScenePlan, time: float, centre: np.ndarray, radius: float) -> Primitives:
    """The parts of every object within ``radius`` of ``centre`` (2,) at ``time``, owners = object index."""
    parts = plan.parts
    starts = np.array([obj.start for obj in plan.objects]).reshape(-1, 2)
    velocities = np.array([obj.velocity for obj in plan.objects]).reshape(-1, 2)
    yaws = np.array([obj.yaw for obj in plan.objects])
    heights = np.array([obj.size[2] for obj in plan.objects])
    positions = starts + velocities * time  # (M, 2)
    near_objects = np.hypot(*(positions - centre).T) <= radius
    keep = near_objects[parts.owners]
    owners = parts.owners[keep]
    cos_yaw, sin_yaw = np.cos(yaws[owners]), np.sin(yaws[owners])
    local = parts.local_centres[keep]
    world = np.empty_like(local)
    world[:, 0] = positions[owners, 0] + cos_yaw * local[:, 0] - sin_yaw * local[:, 1]
    world[:, 1] = positions[owners, 1] + sin_yaw * local[:, 0] + cos_yaw * local[:, 1]
    world[:, 2] = heights[owners] / 2 + local[:, 2]
    table = primitive_rows(world, parts.half_sizes[keep], yaws[owners], parts.cylinder[keep])
    return Primitives(table, owners, parts.materials[keep], parts.colours[keep])


def frame_primitives(plan: ScenePlan, world: LocationWorld, time: float, centre: np.ndarray) -> Primitives:
    """Everything a sensor near ``centre`` (2,) can hit at ``time``: the scene's objects and nearby clutter."""
    clutter = world.clutter
    near = np.hypot(clutter.table[:, 0] - centre[0], clutter.table[:, 1] - centre[1]) < VISIBLE_RADIUS
    return Primitives.concat([object_primitives(plan, time, centre, VISIBLE_RADIUS), clutter.select(near)])


def _clutter(layout: CityLayout, density: float, rng: np.random.Generator) -> Primitives:
    """Poles, trees, hedges along every road side and buildings set back in the blocks."""
    centres, halves, yaws, cylinders, materials, colours = [], [], [], [], [], []

    def add(centre: tuple[float, float, float], half: tuple[float, float, float], yaw: float, cylinder: bool,
            material: int, colour: np.ndarray) -> None:  # fmt: skip
        centres.append(centre)
        halves.append(half)
        yaws.append(yaw)
        cylinders.append(cylinder)
        materials.append(material)
        colours.append(colour)

    carparks = [p.buffer(2.0) for p in layout.polygons["carpark_area"]]
    junction_clearance = WALKWAY_OUTER + 3.0
    step = 100.0 / density if density > 0 else np.inf
    material_colours = np.array(cls.MATERIAL_COLOURS)
    for axis in (0, 1):
        for offset in layout.road_offsets:
            for side in (-1.0, 1.0):
                along = rng.uniform(0.0, step) if np.isfinite(step) else layout.size
                while along < layout.size:
                    kind = rng.random()
                    lateral = side * (WALKWAY_OUTER - 0.4 if kind < 0.4 else WALKWAY_OUTER + 1.5)
                    x, y = (along, offset + lateral) if axis == 0 else (offset + lateral, along)
                    clear = min(abs(along - c) for c in layout.road_offsets) > junction_clearance
                    if clear and not any(p.contains(Point(x, y)) for p in carparks):
                        tone = rng.uniform(0.75, 1.15)
                        if kind < 0.4:  # pole (lamp or sign post) with a small head
                            height = rng.uniform(4.0, 9.0)
                            add((x, y, height / 2), (0.13, 0.13, height / 2), 0.0, True, cls.MATERIAL_METAL,
                                material_colours[cls.MATERIAL_METAL] * tone)  # fmt: skip
                            add((x, y, height + 0.2), (0.5, 0.3, 0.2), float(rng.uniform(0, np.pi)), False,
                                cls.MATERIAL_METAL, material_colours[cls.MATERIAL_METAL] * tone * 0.8)  # fmt: skip
                        elif kind < 0.8:  # tree: trunk and canopy
                            trunk, crown = rng.uniform(1.8, 3.0), rng.uniform(1.2, 2.6)
                            add((x, y, trunk / 2), (0.18, 0.18, trunk / 2), 0.0, True, cls.MATERIAL_BARK,
                                material_colours[cls.MATERIAL_BARK] * tone)  # fmt: skip
                            add((x, y, trunk + crown), (crown, crown, crown), 0.0, True, cls.MATERIAL_FOLIAGE,
                                material_colours[cls.MATERIAL_FOLIAGE] * tone)  # fmt: skip
                        else:  # hedge along the walkway
                            length, height = rng.uniform(2.0, 6.0), rng.uniform(0.8, 1.6)
                            add((x, y, height / 2), (length / 2, 0.5, height / 2), 0.0 if axis == 0 else np.pi / 2,
                                False, cls.MATERIAL_FOLIAGE, material_colours[cls.MATERIAL_FOLIAGE] * tone)  # fmt: skip
                    along += rng.uniform(0.5, 1.5) * step
                # buildings, set back from the walkway
                along = rng.uniform(0.0, 20.0)
                while along < layout.size:
                    length, depth, height = rng.uniform(12, 40), rng.uniform(10, 25), rng.uniform(5, 35)
                    setback = WALKWAY_OUTER + rng.uniform(4.0, 12.0)
                    mid = along + length / 2
                    lateral = side * (setback + depth / 2)
                    x, y = (mid, offset + lateral) if axis == 0 else (offset + lateral, mid)
                    clear = min(abs(mid - c) for c in layout.road_offsets) > junction_clearance + length / 2 + depth
                    if clear and rng.random() < min(1.0, 0.15 * density) and not any(
                        p.intersects(Point(x, y).buffer(max(length, depth) / 2)) for p in carparks
                    ):
                        half = (length / 2, depth / 2, height / 2) if axis == 0 else (depth / 2, length / 2, height / 2)
                        facade = np.array(cls.PALETTE[int(rng.integers(len(cls.PALETTE)))]) * 0.5 + 0.25
                        add((x, y, height / 2), half, 0.0, False, cls.MATERIAL_FACADE, facade * rng.uniform(0.8, 1.1))
                    along += length + rng.uniform(2.0, 15.0)
    if not centres:
        return Primitives.concat([])
    count = len(centres)
    return Primitives(
        primitive_rows(np.array(centres), np.array(halves), np.array(yaws), np.array(cylinders)),
        np.full(count, -1, np.int64),
        np.array(materials, np.int64),
        np.clip(np.array(colours), 0.0, 1.0),
    )


def _lighting(rng: np.random.Generator, variation: float) -> Lighting:
    """Sun, ambient, tint and sky of one scene; ``variation`` widens every range around a noon-like default."""
    elevation = np.deg2rad(np.clip(50.0 + variation * rng.uniform(-35.0, 25.0), 10.0, 85.0))
    azimuth = rng.uniform(0.0, 2 * np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    tint = 1.0 + variation * rng.uniform(-0.12, 0.12, 3)
    overcast = variation * rng.uniform(0.0, 1.0)
    return Lighting(
        sun=sun,
        ambient=0.45 + 0.2 * overcast,
        diffuse=0.75 - 0.45 * overcast,
        tint=tint,
        sky_zenith=np.array([0.35, 0.55, 0.85]) * (1 - overcast) + np.array([0.6, 0.62, 0.65]) * overcast,
        sky_horizon=np.array([0.75, 0.82, 0.9]) * (1 - overcast) + np.array([0.78, 0.78, 0.78]) * overcast,
    )


def _sample_class(rng: np.random.Generator, mix: dict[str, float]) -> str:
    """Draw a class name from a weighted mix."""
    names = list(mix)
    weights = np.array([mix[n] for n in names])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _footprint(name: str) -> float:
    """Track length an object of class ``name`` reserves (a trailer reserves room for its truck)."""
    if name == "trailer":
        return (cls.OBJECT_CLASSES["trailer"].size[0] + TOW_GAP + cls.OBJECT_CLASSES["truck"].size[0]) * 1.15
    spec = cls.OBJECT_CLASSES[name]
    return max(spec.size[0], spec.size[1]) * 1.3


def _fill_track(
    rng: np.random.Generator,
    lo: float,
    hi: float,
    mix: dict[str, float],
    mandatory: list[str],
    mean_gap: float,
    first: float,
) -> list[tuple[str, float]]:
    """Classes and centre positions along a 1D track: the mandatory classes from ``first`` on, then random ones.

    Args:
        rng: generator.
        lo: track start (corridor ``along``).
        hi: track end.
        mix: class weights for the random objects.
        mandatory: classes placed first, in order, from ``first`` forward.
        mean_gap: mean free space between two objects in metres.
        first: where the first mandatory object starts.

    Returns:
        (class name, centre along) pairs, non-overlapping.
    """
    placed: list[tuple[str, float]] = []
    cursor = first
    queue = list(mandatory)
    while cursor < hi:
        name = queue.pop(0) if queue else _sample_class(rng, mix)
        length = _footprint(name)
        placed.append((name, cursor + length / 2))
        cursor += length + rng.exponential(mean_gap) + 1.0
    cursor = first - 1.0 - rng.exponential(mean_gap)
    while cursor > lo:
        name = _sample_class(rng, mix)
        length = _footprint(name)
        placed.append((name, cursor - length / 2))
        cursor -= length + rng.exponential(mean_gap) + 1.0
    return placed


def _plan_scene_objects(
    rng: np.random.Generator, cfg: WorldConfig, plan: ScenePlan, layout: CityLayout, duration: float
) -> str:
    """Populate ``plan.objects``; returns a short description of the scene's contents."""
    objects = plan.objects
    span = plan.ego_speed * duration
    reach = 80.0
    # free space per object on each of ~9 tracks so that about objects_per_frame lie within +-50 m
    mean_gap = max(2.0, 9 * 100.0 / max(cfg.objects_per_frame, 1) - 4.0)

    def place(name: str, along: float, left: float, yaw: float, speed: float, state: str) -> None:
        objects.append(make_object(rng, cfg, name, plan.to_global(along, left), yaw, speed, state))

    # construction zone in the opposite outer lane, ahead of the ego's start
    zone_start = float(rng.uniform(8.0, 20.0 + 0.6 * span))
    zone_length = float(rng.uniform(20.0, 32.0))
    barrier_left = LANE_WIDTH + 0.4
    for along in np.arange(zone_start, zone_start + zone_length, 2.7):
        place("barrier", along, barrier_left + rng.normal(0, 0.05), plan.heading + np.pi / 2 + rng.normal(0, 0.05), 0.0, "parked")
    for step, along in enumerate(np.arange(zone_start - 8.0, zone_start - 0.5, 1.6)):
        place("traffic_cone", along, CARRIAGEWAY_HALF_WIDTH - 0.4 - step * 0.45, rng.uniform(0, np.pi), 0.0, "parked")
    place("construction_vehicle", zone_start + zone_length / 2, CARRIAGEWAY_HALF_WIDTH,
          plan.heading + np.pi * float(rng.integers(2)) + rng.normal(0, 0.1), 0.0, "parked")  # fmt: skip

    # traffic lanes: (left offset, direction sign, speed); the ego lane moves with the ego
    opposite_speed = float(rng.uniform(0.0, MAX_EGO_SPEED))
    lanes = [
        (-LANE_WIDTH / 2, 1.0, plan.ego_speed, ["car"]),
        (-1.5 * LANE_WIDTH, 1.0, float(rng.uniform(0.0, MAX_EGO_SPEED)), ["truck", "bus", "motorcycle"]),
        (LANE_WIDTH / 2, -1.0, opposite_speed, ["car", "bicycle"]),
    ]
    for left, sign, speed, mandatory in lanes:
        relative = (plan.ego_speed - sign * speed) * duration
        lo, hi = min(0.0, relative) - reach, max(0.0, relative) + reach
        first = float(rng.uniform(10.0, 16.0))
        state = "moving" if speed > 0.3 else "stopped"
        for name, along in _fill_track(rng, lo, hi, TRAFFIC_MIX, mandatory, mean_gap, first):
            if left == -LANE_WIDTH / 2 and -12.0 < along < 9.0:
                continue  # the ego's own spot
            yaw = plan.heading + (0.0 if sign > 0 else np.pi)
            if name == "trailer":  # trailers are towed: the slot holds the trailer behind its truck
                half_slot = _footprint(name) / 1.15 / 2
                trailer_length, truck_length = cls.OBJECT_CLASSES["trailer"].size[0], cls.OBJECT_CLASSES["truck"].size[0]
                place("truck", along + sign * (half_slot - truck_length / 2), left, yaw, speed, state)
                along -= sign * (half_slot - trailer_length / 2)
            place(name, along, left + rng.normal(0, 0.15), yaw + rng.normal(0, 0.02), speed, state)

    # parking strips (the left one ends at the construction zone)
    for side in (-1.0, 1.0):
        left = side * (CARRIAGEWAY_HALF_WIDTH + PARKING_WIDTH / 2)
        mandatory = ["trailer", "motorcycle", "bicycle", "car"] if side < 0 else ["car"]
        for name, along in _fill_track(rng, -reach, span + reach, PARKED_MIX, mandatory, mean_gap, float(rng.uniform(-4.0, 6.0))):
            if side > 0 and zone_start - 10.0 < along < zone_start + zone_length + 6.0:
                continue
            if any(abs(along - a) < ROAD_HALF_WIDTH + 6.0 for a in _intersections_along(plan, layout)):
                continue
            flip = np.pi if (side > 0) != (rng.random() < 0.1) else 0.0
            name_left = left + (0.35 if name in ("motorcycle", "bicycle") else 0.0) * side
            place(name, along, name_left, plan.heading + flip + rng.normal(0, 0.04), 0.0, "parked")

    # walkways: pedestrians walking along or standing, some parked bikes, barriers, cones
    for side in (-1.0, 1.0):
        centre_left = side * (ROAD_HALF_WIDTH + 2.0)
        mandatory = ["pedestrian", "pedestrian"]
        for name, along in _fill_track(rng, -reach, span + reach, WALKWAY_MIX, mandatory, mean_gap * 0.6, float(rng.uniform(0.0, 12.0))):
            if name == "pedestrian":
                left = centre_left + rng.uniform(-0.8, 0.8)
                if rng.random() < 0.6:
                    sign = 1.0 if rng.random() < 0.5 else -1.0
                    yaw = plan.heading + (0.0 if sign > 0 else np.pi) + rng.normal(0, 0.1)
                    place(name, along, left, yaw, float(rng.uniform(0.8, 1.7)), "moving")
                else:
                    place(name, along, left, float(rng.uniform(-np.pi, np.pi)), 0.0, "parked")
            else:  # bikes, barriers and cones stand along the kerb
                yaw = plan.heading + (np.pi / 2 if name == "barrier" else 0.0) + rng.normal(0, 0.1)
                place(name, along, centre_left - side * 0.6, yaw, 0.0, "parked")

    # queues waiting at the stop lines of the cross roads, and parked cars in nearby car parks
    for crossing in _intersections_along(plan, layout):
        if not -reach < crossing < span + reach:
            continue
        for side in (-1.0, 1.0):  # approaching from the left (side +1) or from the right (side -1)
            heading = plan.heading - side * np.pi / 2
            for lane in range(LANES_PER_DIRECTION):
                # right-hand traffic: the approaching lanes lie behind (side +1) or ahead of the crossing
                along = crossing - side * (LANE_WIDTH / 2 + lane * LANE_WIDTH)
                distance = ROAD_HALF_WIDTH + 6.0 + rng.exponential(3.0)  # behind the stop line
                for _ in range(int(rng.integers(0, 3))):
                    name = _sample_class(rng, QUEUE_MIX)
                    length = cls.OBJECT_CLASSES[name].size[0] * 1.25
                    place(name, along, side * (distance + length / 2), heading + rng.normal(0, 0.02), 0.0, "stopped")
                    distance += length + rng.uniform(1.0, 3.0)
    _fill_carparks(rng, cfg, plan, layout, span, reach)
    return f"straight drive at {plan.ego_speed:.1f} m/s, construction zone at {zone_start:.0f} m"


def _intersections_along(plan: ScenePlan, layout: CityLayout) -> list[float]:
    """Corridor ``along`` positions of the cross roads."""
    forward = np.array([np.cos(plan.heading), np.sin(plan.heading)])
    axis = int(abs(forward[1]) > 0.5)
    return [float((c - plan.origin[axis]) * forward[axis]) for c in layout.road_offsets]


def _fill_carparks(
    rng: np.random.Generator, cfg: WorldConfig, plan: ScenePlan, layout: CityLayout, span: float, reach: float
) -> None:
    """Park cars side by side in the car parks near the drive."""
    for carpark in layout.polygons["carpark_area"]:
        x_min, y_min, x_max, y_max = carpark.bounds
        centre = np.array([(x_min + x_max) / 2, (y_min + y_max) / 2])
        start, end = plan.to_global(0.0, 0.0), plan.to_global(span, 0.0)
        if np.hypot(*(centre - start)) > reach + 40 and np.hypot(*(centre - end)) > reach + 40:
            continue
        along_x = x_max - x_min > y_max - y_min
        for slot in np.arange(1.3, max(x_max - x_min, y_max - y_min) - 1.3, 2.6):
            if rng.random() > 0.6:
                continue
            name = "car" if rng.random() < 0.9 else "motorcycle"
            position = np.array([x_min + slot, y_min + 2.8]) if along_x else np.array([x_min + 2.8, y_min + slot])
            yaw = (np.pi / 2 if along_x else 0.0) + np.pi * float(rng.integers(2)) + rng.normal(0, 0.04)
            plan.objects.append(make_object(rng, cfg, name, position, yaw, 0.0, "parked"))


def plan_world(cfg: WorldConfig) -> tuple[dict[str, LocationWorld], list[ScenePlan]]:
    """Plan the whole world: locations (layout, ground, clutter) and every scene.

    Scenes are spread over the four nuScenes locations in turn; the first
    ``cfg.train_scenes`` scenes are training scenes (named after the devkit's
    ``splits.train``), the rest validation scenes (``splits.val``).

    Args:
        cfg: world config.

    Returns:
        location name -> static world, and the scene plans in order.
    """
    if cfg.train_scenes > len(splits.train) or cfg.val_scenes > len(splits.val):
        raise ValueError(
            f"WorldConfig.scenes={cfg.scenes} needs more scene names than nuScenes has "
            f"({len(splits.train)} train, {len(splits.val)} val)"
        )
    duration = (cfg.keyframes - 1) * KEYFRAME_INTERVAL
    used_locations = [LOCATIONS[i % len(LOCATIONS)] for i in range(cfg.scenes)]
    worlds: dict[str, LocationWorld] = {}
    for location_index, location in enumerate(LOCATIONS):
        count = used_locations.count(location)
        if count == 0:
            continue
        rng = np.random.default_rng([cfg.seed, 1, location_index])
        roads = min(6, max(2, (count + 1) // 2 + 1))
        layout = build_layout(location, roads, MAX_EGO_SPEED * duration + 2 * MAP_MARGIN + 40.0, rng)
        worlds[location] = LocationWorld(layout, paint_ground(layout), _clutter(layout, cfg.clutter_density, rng))

    plans = []
    for index in range(cfg.scenes):
        rng = np.random.default_rng([cfg.seed, 2, index])
        location = used_locations[index]
        layout = worlds[location].layout
        slot = index // len(LOCATIONS)
        offsets = layout.road_offsets
        axis = slot % 2
        road = offsets[(slot // 2) % len(offsets)]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        heading = (0.0 if axis == 0 else np.pi / 2) + (0.0 if sign > 0 else np.pi)
        ego_speed = 0.0 if rng.random() < 0.1 else float(rng.uniform(2.0, MAX_EGO_SPEED))
        span = ego_speed * duration
        free = layout.size - 2 * MAP_MARGIN - span
        start_along = MAP_MARGIN + float(rng.uniform(0.0, max(free, 0.0)))  # distance from the canvas edge
        along_coordinate = start_along if sign > 0 else layout.size - start_along
        origin = np.array([along_coordinate, road]) if axis == 0 else np.array([road, along_coordinate])
        is_train = index < cfg.train_scenes
        name = splits.train[index] if is_train else splits.val[index - cfg.train_scenes]
        plan = ScenePlan(
            index=index,
            name=name,
            split="train" if is_train else "val",
            location=location,
            start_us=SCENE_START_US + index * SCENE_GAP_US,
            origin=origin,
            heading=float(heading),
            ego_speed=ego_speed,
            objects=[],
            lighting=_lighting(rng, cfg.lighting_variation),
            description="",
        )
        plan.description = _plan_scene_objects(rng, cfg, plan, layout, duration)
        plans.append(plan)
    return worlds, plans
