"""Names and conventions shared by data, models and evaluation (see docs/conventions.md)."""

# nuScenes detection classes, in the order every head and metric uses.
DETECTION_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)

# BEV map segmentation classes (BEVFusion's six); "divider" = lane_divider + road_divider.
MAP_CLASSES: tuple[str, ...] = (
    "drivable_area",
    "ped_crossing",
    "walkway",
    "stop_line",
    "carpark_area",
    "divider",
)

# nuScenes map-expansion layers behind each map class.
MAP_CLASS_LAYERS: dict[str, tuple[str, ...]] = {
    "drivable_area": ("drivable_area",),
    "ped_crossing": ("ped_crossing",),
    "walkway": ("walkway",),
    "stop_line": ("stop_line",),
    "carpark_area": ("carpark_area",),
    "divider": ("lane_divider", "road_divider"),
}

# The six nuScenes cameras, in the order of the batch's N axis.
CAMERAS: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)

KITTI_CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
# KITTI object types with a 3D box that are not detection targets (DontCare has no 3D box).
KITTI_OTHER_TYPES: tuple[str, ...] = ("Van", "Truck", "Person_sitting", "Tram", "Misc")
# KITTI difficulties easy / moderate / hard: an object belongs to the first level whose
# limits it meets (2D box height >= px, occlusion <= level, truncation <= fraction).
KITTI_MIN_HEIGHT: tuple[float, ...] = (40.0, 25.0, 25.0)
KITTI_MAX_OCCLUSION: tuple[int, ...] = (0, 1, 2)
KITTI_MAX_TRUNCATION: tuple[float, ...] = (0.15, 0.30, 0.50)

# ImageNet statistics used to normalise images (RGB, 0..1 scale).
IMAGE_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGE_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Paper geometry (Sec. IV-A): point-cloud range and voxel size, nuScenes.
PC_RANGE_NUSCENES: tuple[float, ...] = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
VOXEL_SIZE_NUSCENES: tuple[float, ...] = (0.075, 0.075, 0.2)
# BEV map segmentation grid: 200 x 200 cells of 0.5 m over [-50, 50] m.
MAP_BOUND: float = 50.0
MAP_RESOLUTION: float = 0.5
