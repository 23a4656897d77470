"""The world's object classes: nuScenes names, sizes, shapes built from parts, materials.

Each detection class maps to one real nuScenes category, so the devkit's
``category_to_detection_name`` turns our annotations into its 10 detection
classes. Objects are unions of parts (boxes and cylinders in the object's own
frame, as fractions of its length, width and height), so their LiDAR and image
silhouettes are not plain boxes while the annotated box still encloses them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Materials: base RGB colour (0..1) and LiDAR reflectivity (nuScenes intensity scale 0..255).
MATERIAL_PAINT = 0  # takes the instance colour
MATERIAL_GLASS = 1
MATERIAL_TYRE = 2
MATERIAL_SKIN = 3
MATERIAL_CLOTH = 4  # takes the instance's second colour
MATERIAL_METAL = 5
MATERIAL_CONCRETE = 6
MATERIAL_FOLIAGE = 7
MATERIAL_BARK = 8
MATERIAL_FACADE = 9
MATERIAL_RETROREFLECTIVE = 10  # takes the instance colour, bright in LiDAR

MATERIAL_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.5, 0.5, 0.5),
    (0.12, 0.16, 0.2),
    (0.06, 0.06, 0.06),
    (0.78, 0.6, 0.48),
    (0.3, 0.3, 0.35),
    (0.55, 0.57, 0.6),
    (0.62, 0.6, 0.56),
    (0.2, 0.42, 0.16),
    (0.33, 0.24, 0.15),
    (0.6, 0.55, 0.5),
    (0.5, 0.5, 0.5),
)
MATERIAL_INTENSITY: tuple[float, ...] = (40.0, 8.0, 3.0, 18.0, 14.0, 60.0, 30.0, 22.0, 16.0, 26.0, 150.0)

# A shared palette of real-world object colours; every class draws from it.
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.92, 0.92, 0.9),  # white
    (0.08, 0.08, 0.09),  # black
    (0.45, 0.46, 0.48),  # grey
    (0.7, 0.71, 0.73),  # silver
    (0.65, 0.1, 0.1),  # red
    (0.12, 0.22, 0.55),  # blue
    (0.14, 0.38, 0.2),  # green
    (0.9, 0.75, 0.1),  # yellow
    (0.95, 0.45, 0.08),  # orange
    (0.4, 0.27, 0.15),  # brown
    (0.8, 0.72, 0.58),  # beige
)


@dataclass(frozen=True)
class Part:
    """One primitive of an object, in fractions of the object's box.

    Attributes:
        x_range: (start, end) along the heading, in fractions of the length, box centre at 0.
        y_range: (start, end) to the left, in fractions of the width.
        z_range: (bottom, top), in fractions of the height above the ground.
        material: one of the ``MATERIAL_*`` indices.
        cylinder: a vertical cylinder inscribed in the part's footprint instead of a box.
    """

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    z_range: tuple[float, float]
    material: int
    cylinder: bool = False


def _wheels(x_front: float, x_back: float, length: float, height: float) -> tuple[Part, ...]:
    """Four dark wheels at the box corners."""
    wheels = []
    for x_centre in (x_front, x_back):
        for y_range in ((-0.5, -0.36), (0.36, 0.5)):
            wheels.append(Part((x_centre - length / 2, x_centre + length / 2), y_range, (0.0, height), MATERIAL_TYRE))
    return tuple(wheels)


_RIDER = (
    Part((-0.22, 0.12), (-0.35, 0.35), (0.52, 0.86), MATERIAL_CLOTH),
    Part((-0.12, 0.05), (-0.15, 0.15), (0.86, 1.0), MATERIAL_SKIN),
)

SHAPES: dict[str, tuple[Part, ...]] = {
    "car": (
        Part((-0.5, 0.5), (-0.5, 0.5), (0.18, 0.58), MATERIAL_PAINT),
        Part((-0.32, 0.16), (-0.44, 0.44), (0.58, 1.0), MATERIAL_GLASS),
        Part((-0.3, 0.14), (-0.46, 0.46), (0.93, 1.0), MATERIAL_PAINT),
        *_wheels(0.32, -0.32, 0.16, 0.3),
    ),
    "truck": (
        Part((0.3, 0.5), (-0.5, 0.5), (0.12, 0.62), MATERIAL_PAINT),
        Part((0.32, 0.48), (-0.46, 0.46), (0.62, 0.82), MATERIAL_GLASS),
        Part((-0.5, 0.28), (-0.5, 0.5), (0.16, 1.0), MATERIAL_FACADE),
        *_wheels(0.38, -0.36, 0.1, 0.24),
    ),
    "construction_vehicle": (
        Part((-0.5, 0.3), (-0.5, 0.5), (0.2, 0.45), MATERIAL_PAINT),
        Part((-0.15, 0.2), (-0.5, 0.05), (0.45, 0.95), MATERIAL_GLASS),
        Part((-0.5, -0.2), (-0.4, 0.4), (0.45, 0.7), MATERIAL_PAINT),
        Part((0.2, 0.5), (-0.08, 0.08), (0.35, 1.0), MATERIAL_METAL),
        Part((0.3, 0.5), (-0.5, 0.5), (0.0, 0.25), MATERIAL_METAL),
        *_wheels(0.12, -0.34, 0.2, 0.35),
    ),
    "bus": (
        Part((-0.5, 0.5), (-0.5, 0.5), (0.1, 0.55), MATERIAL_PAINT),
        Part((-0.48, 0.5), (-0.5, 0.5), (0.55, 0.88), MATERIAL_GLASS),
        Part((-0.5, 0.5), (-0.5, 0.5), (0.88, 1.0), MATERIAL_PAINT),
        *_wheels(0.33, -0.28, 0.08, 0.18),
    ),
    "trailer": (
        Part((-0.5, 0.42), (-0.5, 0.5), (0.3, 1.0), MATERIAL_PAINT),
        Part((0.42, 0.5), (-0.06, 0.06), (0.28, 0.38), MATERIAL_METAL),
        *_wheels(-0.3, -0.4, 0.07, 0.28),
    ),
    "barrier": (
        Part((-0.5, 0.5), (-0.5, 0.5), (0.55, 1.0), MATERIAL_RETROREFLECTIVE),
        Part((-0.5, 0.5), (-0.45, -0.3), (0.0, 0.55), MATERIAL_CONCRETE),
        Part((-0.5, 0.5), (0.3, 0.45), (0.0, 0.55), MATERIAL_CONCRETE),
    ),
    "motorcycle": (
        Part((-0.32, 0.3), (-0.2, 0.2), (0.25, 0.55), MATERIAL_PAINT),
        Part((0.25, 0.5), (-0.06, 0.06), (0.0, 0.42), MATERIAL_TYRE),
        Part((-0.5, -0.25), (-0.06, 0.06), (0.0, 0.42), MATERIAL_TYRE),
        Part((0.2, 0.3), (-0.5, 0.5), (0.55, 0.62), MATERIAL_METAL),
    ),
    "bicycle": (
        Part((-0.3, 0.3), (-0.05, 0.05), (0.38, 0.55), MATERIAL_PAINT),
        Part((0.22, 0.5), (-0.04, 0.04), (0.0, 0.5), MATERIAL_TYRE),
        Part((-0.5, -0.22), (-0.04, 0.04), (0.0, 0.5), MATERIAL_TYRE),
        Part((0.24, 0.3), (-0.5, 0.5), (0.55, 0.6), MATERIAL_METAL),
    ),
    "pedestrian": (
        Part((-0.3, 0.3), (-0.45, -0.05), (0.0, 0.47), MATERIAL_CLOTH),
        Part((-0.3, 0.3), (0.05, 0.45), (0.0, 0.47), MATERIAL_CLOTH),
        Part((-0.5, 0.5), (-0.5, 0.5), (0.47, 0.84), MATERIAL_PAINT),
        Part((-0.25, 0.25), (-0.25, 0.25), (0.86, 1.0), MATERIAL_SKIN, cylinder=True),
    ),
    "traffic_cone": (
        Part((-0.5, 0.5), (-0.5, 0.5), (0.0, 0.07), MATERIAL_PAINT),
        Part((-0.35, 0.35), (-0.35, 0.35), (0.07, 0.45), MATERIAL_PAINT, cylinder=True),
        Part((-0.24, 0.24), (-0.24, 0.24), (0.45, 0.75), MATERIAL_RETROREFLECTIVE, cylinder=True),
        Part((-0.13, 0.13), (-0.13, 0.13), (0.75, 1.0), MATERIAL_PAINT, cylinder=True),
    ),
}
# Two-wheelers with a rider add the rider's torso and head (inside the annotated box).
SHAPES["motorcycle_rider"] = SHAPES["motorcycle"][:3] + _RIDER
SHAPES["bicycle_rider"] = SHAPES["bicycle"][:3] + _RIDER


@dataclass(frozen=True)
class ObjectClass:
    """A detection class as the world draws it.

    Attributes:
        name: the nuScenes detection class name (``constants.DETECTION_CLASSES``).
        category: the nuScenes category it is written as.
        size: mean (length, width, height) in metres.
        size_spread: relative standard deviation of each size.
        palette_prior: indices into ``PALETTE`` the class favours when colour variation is low.
    """

    name: str
    category: str
    size: tuple[float, float, float]
    size_spread: float
    palette_prior: tuple[int, ...]


OBJECT_CLASSES: dict[str, ObjectClass] = {
    spec.name: spec
    for spec in (
        ObjectClass("car", "vehicle.car", (4.62, 1.95, 1.73), 0.1, (0, 1, 2, 3, 4, 5)),
        ObjectClass("truck", "vehicle.truck", (6.9, 2.51, 2.84), 0.15, (0, 0, 2, 5)),
        ObjectClass("construction_vehicle", "vehicle.construction", (6.4, 2.8, 3.2), 0.15, (7, 8)),
        ObjectClass("bus", "vehicle.bus.rigid", (11.0, 2.94, 3.47), 0.08, (4, 0, 6)),
        ObjectClass("trailer", "vehicle.trailer", (10.5, 2.9, 3.9), 0.15, (0, 2, 3)),
        ObjectClass("barrier", "movable_object.barrier", (0.5, 2.53, 0.98), 0.1, (0, 4, 7)),
        ObjectClass("motorcycle", "vehicle.motorcycle", (2.11, 0.77, 1.47), 0.08, (1, 4, 5)),
        ObjectClass("bicycle", "vehicle.bicycle", (1.7, 0.6, 1.29), 0.08, (1, 2, 5, 6)),
        ObjectClass("pedestrian", "human.pedestrian.adult", (0.73, 0.67, 1.77), 0.08, (1, 2, 5, 9)),
        ObjectClass("traffic_cone", "movable_object.trafficcone", (0.41, 0.41, 1.07), 0.1, (8, 8, 0)),
    )
}

# Every category and attribute the world writes (nuScenes names and descriptions).
CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "vehicle.car": "Vehicle designed primarily for personal use, e.g. sedans, hatch-backs, wagons, vans, SUVs.",
    "vehicle.truck": "Vehicles primarily designed to haul cargo including pick-ups, lorrys, trucks and semi-tractors.",
    "vehicle.construction": "Vehicles primarily designed for construction. Typically very slow moving or stationary.",
    "vehicle.bus.rigid": "Rigid bus.",
    "vehicle.trailer": "Any vehicle trailer, both for trucks, cars and bikes.",
    "movable_object.barrier": "Temporary road barrier placed in the scene in order to redirect traffic.",
    "vehicle.motorcycle": "Gasoline or electric powered 2-wheeled vehicle designed to move rapidly on the road.",
    "vehicle.bicycle": "Human or electric powered 2-wheeled vehicle designed to travel at lower speeds.",
    "human.pedestrian.adult": "Adult subcategory.",
    "movable_object.trafficcone": "All types of traffic cone.",
}
ATTRIBUTE_DESCRIPTIONS: dict[str, str] = {
    "vehicle.moving": "Vehicle is moving.",
    "vehicle.stopped": "Vehicle, with a driver/rider in/on it, is currently stationary but has an intent to move.",
    "vehicle.parked": "Vehicle is stationary (usually for longer duration) with no immediate intent to move.",
    "cycle.with_rider": "There is someone riding a bicycle or motorcycle.",
    "cycle.without_rider": "There is NO rider on a bicycle or motorcycle.",
    "pedestrian.moving": "The human is moving.",
    "pedestrian.standing": "The human is standing.",
    "pedestrian.sitting_lying_down": "The human is sitting or lying down.",
}
VISIBILITY_LEVELS: tuple[tuple[str, str, str], ...] = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)


def visibility_token(visible_fraction: float) -> str:
    """The nuScenes visibility token ("1".."4") of a visible fraction in [0, 1]."""
    for upper, token in ((0.4, "1"), (0.6, "2"), (0.8, "3")):
        if visible_fraction < upper:
            return token
    return "4"
