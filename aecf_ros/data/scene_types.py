"""What a scene is: the generator's settings (:class:`SceneConfig`), one labelled object
(:class:`SceneObject`) and the scene with its three views (:class:`Scene`)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aecf_ros.data.classes import CLASS_NAMES

MIN_CAMERA_PIXELS = 30
MIN_LIDAR_POINTS = 8

# point_source values for points that belong to no labelled object
SOURCE_GROUND = -1
SOURCE_CLUTTER = -2


@dataclass(frozen=True)
class SceneConfig:
    """Every setting of the scene generator.

    The defaults were fixed before any fusion method was compared and must never be tuned to
    favour one. Change them only for a new, separately named benchmark.

    Camera: ``image_width`` x ``image_height`` RGB (320x240), ``camera_hfov_deg`` horizontal
    field of view (90), mounted ``sensor_height_m`` (1.0 m) above ground, looking forward (+x).
    Lidar: ``lidar_rings`` (16) between ``lidar_min_elevation_deg`` and
    ``lidar_max_elevation_deg`` (-15..+15), ``lidar_azimuth_steps`` per revolution (900 = 0.4
    deg), ``lidar_max_range_m`` (30), Gaussian range noise ``lidar_range_noise_m`` (2 cm), each
    return dropped with ``lidar_dropout_prob`` (3 %), up to ``lidar_max_dust_points`` (60)
    spurious points near the sensor. Same mount as the camera.
    Layout: ``min_objects``..``max_objects`` labelled objects (2..6, repeats of a class
    allowed) at ``min_range_m``..``max_range_m`` (2.5..16 m); each object lies in the camera's
    field of view with probability ``front_bias`` (0.5), otherwise anywhere around the robot;
    ``min_clutter``..``max_clutter`` unlabelled clutter items (1..4).
    Camera nuisances: ``night_prob`` (0.15), ``blur_prob`` (0.3), ``lens_blob_prob`` (0.15).
    Text: mention probabilities per class are multiplied by ``text_mention_scale`` (1.0);
    ``text_mistake_prob`` (0.1) per scene; ``text_typo_prob`` (0.04) per word.
    """

    image_width: int = 320
    image_height: int = 240
    camera_hfov_deg: float = 90.0
    sensor_height_m: float = 1.0
    lidar_rings: int = 16
    lidar_min_elevation_deg: float = -15.0
    lidar_max_elevation_deg: float = 15.0
    lidar_azimuth_steps: int = 900
    lidar_max_range_m: float = 30.0
    lidar_range_noise_m: float = 0.02
    lidar_dropout_prob: float = 0.03
    lidar_max_dust_points: int = 60
    min_objects: int = 2
    max_objects: int = 6
    min_range_m: float = 2.5
    max_range_m: float = 16.0
    front_bias: float = 0.5
    min_clutter: int = 1
    max_clutter: int = 4
    night_prob: float = 0.15
    blur_prob: float = 0.3
    lens_blob_prob: float = 0.15
    text_mention_scale: float = 1.0
    text_mistake_prob: float = 0.1
    text_typo_prob: float = 0.04

    def __post_init__(self) -> None:
        if self.image_width < 8 or self.image_height < 8:
            raise ValueError(f"image must be at least 8x8, got {self.image_width}x{self.image_height}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if not 0 < self.min_range_m < self.max_range_m:
            raise ValueError(f"need 0 < min_range_m < max_range_m, got {self.min_range_m}, {self.max_range_m}")

    @property
    def focal_px(self) -> float:
        return 0.5 * self.image_width / math.tan(math.radians(0.5 * self.camera_hfov_deg))


@dataclass(frozen=True)
class SceneObject:
    """One labelled object of a scene and how much of it each view got."""

    class_id: int
    class_name: str
    x_m: float  # forward
    y_m: float  # left
    yaw_rad: float
    in_camera_fov: bool
    camera_pixels: int  # visible pixels in the final image (after occlusion and lens blob)
    lidar_points: int  # returns in ``Scene.points``
    mentioned: bool  # named (correctly) in the text

    @property
    def range_m(self) -> float:
        return math.hypot(self.x_m, self.y_m)

    @property
    def azimuth_deg(self) -> float:
        return math.degrees(math.atan2(self.y_m, self.x_m))


@dataclass
class Scene:
    """One scene: ground truth and the three sensor views.

    labels       uint8[C] multi-hot over ``CLASS_NAMES``
    image        uint8[H, W, 3] RGB
    points       float32[N, 4] x (forward), y (left), z (up, ground = -sensor height), intensity [0, 1]
                 in the sensor frame
    point_source int16[N] index into ``objects``, ``SOURCE_GROUND`` or ``SOURCE_CLUTTER``
    text         one sentence
    text_classes uint8[C] the classes the sentence names (right or wrong)
    """

    index: int
    seed: int
    labels: np.ndarray
    image: np.ndarray
    points: np.ndarray
    point_source: np.ndarray
    text: str
    text_classes: np.ndarray
    objects: tuple[SceneObject, ...]
    is_night: bool = False

    @property
    def class_names(self) -> list[str]:
        return [CLASS_NAMES[i] for i in np.flatnonzero(self.labels)]
