"""The knobs of the synthetic world: sizes, sensors and difficulty."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WorldConfig:
    """Everything that decides what the procedural world looks like.

    The same config and seed always give byte-identical files. Defaults follow
    nuScenes where it matters to loaders (20 Hz LiDAR, 2 Hz keyframes, 32 beams,
    six cameras) and are smaller where it only costs time (image size).

    Attributes:
        seed: seed of every random choice (layout, objects, noise, tokens).
        scenes: number of scenes (20 s each in nuScenes; here ``keyframes`` x 0.5 s).
        keyframes: annotated keyframes per scene (2 Hz).
        sweeps: LiDAR sweeps before each keyframe (nuScenes: 9 at 20 Hz).
        image_height: camera image height in pixels (nuScenes: 900).
        image_width: camera image width in pixels (nuScenes: 1600); intrinsics scale with it.
        lidar_beams: LiDAR rings, spread over ``lidar_fov_up``..``lidar_fov_down`` degrees.
        lidar_fov_up: elevation of the top beam in degrees.
        lidar_fov_down: elevation of the bottom beam in degrees.
        lidar_azimuth_resolution: degrees between two firings of one beam.
        lidar_max_range: returns beyond this many metres are lost.
        objects_per_frame: mean number of annotated objects around the ego at a time.
        val_fraction: share of scenes in the validation split (at least one scene).
        texture_noise: amplitude (0..1) of procedural texture noise on every surface.
        lighting_variation: how much sun direction, ambient and tint vary per scene (0..1).
        colour_variation: spread of per-instance colours within a class (0..1);
            at 1 every class draws from the same palette, so colour never gives the class away.
        clutter_density: poles, trees, hedges and buildings per 100 m of road side.
        lidar_range_noise: standard deviation of the range noise in metres.
        lidar_dropout: probability that a return is lost.
    """

    seed: int = 0
    scenes: int = 10
    keyframes: int = 40
    sweeps: int = 9
    image_height: int = 450
    image_width: int = 800
    lidar_beams: int = 32
    lidar_fov_up: float = 10.67
    lidar_fov_down: float = -30.67
    lidar_azimuth_resolution: float = 0.33
    lidar_max_range: float = 70.0
    objects_per_frame: int = 30
    val_fraction: float = 0.2
    texture_noise: float = 0.35
    lighting_variation: float = 0.6
    colour_variation: float = 0.9
    clutter_density: float = 6.0
    lidar_range_noise: float = 0.02
    lidar_dropout: float = 0.05

    def __post_init__(self) -> None:
        """Reject settings that cannot describe a world, naming the field."""
        positive = {
            "scenes": self.scenes,
            "keyframes": self.keyframes,
            "image_height": self.image_height,
            "image_width": self.image_width,
            "lidar_beams": self.lidar_beams,
            "lidar_azimuth_resolution": self.lidar_azimuth_resolution,
            "lidar_max_range": self.lidar_max_range,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"WorldConfig.{name} must be positive, got {value}")
        if self.scenes < 2:
            raise ValueError(f"WorldConfig.scenes must be at least 2 (one train, one val), got {self.scenes}")
        if self.keyframes < 2:
            raise ValueError(f"WorldConfig.keyframes must be at least 2 (velocities need two), got {self.keyframes}")
        if self.sweeps < 0 or self.objects_per_frame < 0:
            raise ValueError("WorldConfig.sweeps and WorldConfig.objects_per_frame must not be negative")
        if not self.lidar_fov_down < self.lidar_fov_up:
            raise ValueError(
                f"WorldConfig.lidar_fov_down ({self.lidar_fov_down}) must be below lidar_fov_up ({self.lidar_fov_up})"
            )
        for name in ("val_fraction", "texture_noise", "lighting_variation", "colour_variation", "lidar_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"WorldConfig.{name} must lie in [0, 1], got {value}")
        if self.clutter_density < 0 or self.lidar_range_noise < 0:
            raise ValueError("WorldConfig.clutter_density and WorldConfig.lidar_range_noise must not be negative")

    @property
    def train_scenes(self) -> int:
        """Number of training scenes (the rest are validation)."""
        return self.scenes - self.val_scenes

    @property
    def val_scenes(self) -> int:
        """Number of validation scenes: ``val_fraction`` of all, at least one, leaving one for training."""
        return min(self.scenes - 1, max(1, round(self.scenes * self.val_fraction)))

    @classmethod
    def tiny(cls, seed: int = 0) -> WorldConfig:
        """A world for tests: 2 scenes x 4 keyframes, 112x200 images, 2 sweeps, built in seconds."""
        return cls(
            seed=seed,
            scenes=2,
            keyframes=4,
            sweeps=2,
            image_height=112,
            image_width=200,
            lidar_azimuth_resolution=0.6,
            objects_per_frame=24,
            val_fraction=0.5,
        )
