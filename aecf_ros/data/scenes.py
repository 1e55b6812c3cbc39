"""Seeded robot scenes: one multi-label truth seen by a camera, a 360-degree lidar and a text line.

A scene is a handful of objects (``CLASS_NAMES``) plus unlabelled clutter (walls, pillars,
bushes, plain signs, barriers, reflective bollards) placed on flat ground around the robot.
Every view is produced from the same object list, so the labels are exactly the classes that
are physically in the scene, and each view is *informative but incomplete*:

camera (forward, 90 deg field of view, 320x240 RGB, OpenCV-drawn front-view sprites)
    Sees only objects in front of the robot (about 60 % of them: half of the objects are placed
    in the field of view on purpose, the rest anywhere on the circle). Far objects are a few
    pixels, near ones may be cut by the image border, nearer objects and walls hide farther ones
    (painter's order), a lens blob hides part of the image in 15 % of frames, 15 % of frames
    are night (gain 0.12-0.3, strong noise), plus blur, colour cast and sensor noise.
    Good: colour-defined classes (stop_sign = red octagon, traffic_cone = orange, forklift =
    yellow, fire_extinguisher = red), bicycle (two wheels, invisible to lidar).
    Poor: door (muted rectangle, easily mistaken for a wall), trash_bin (dark box, looks like a
    pillar), chair (thin, dark), pallet (low and brown), and every class behind the robot.

lidar (16 rings from -15 to +15 deg, 900 azimuth steps, 30 m, mounted at 1 m, ray-cast)
    Sees all directions, but only what a ring hits: point density falls with range, low and
    flat things are hit by at most one or two rings, mesh-like objects let most rays through,
    and there is no colour (intensity is a reflectivity only). 6-8.5 k points a scene.
    Good: person, car, forklift, door (frame + plane), trash_bin (cylinder), chair at short
    range, anything behind the camera.
    Poor: pallet (14 cm high, half the rays pass through the fork openings: a low bump in the
    ground rings), traffic_cone and fire_extinguisher (small, and shaped and as reflective as
    the unlabelled bollard clutter), dog and cardboard_box (small: few points beyond ~8 m),
    bicycle and shopping_cart (thin frames, 25-35 % of rays hit), stop_sign (same geometry and
    reflectivity as the unlabelled plain sign, so lidar sees *a* sign but cannot tell which).

text (one operator/caption-like sentence)
    Mentions each present class with a class-specific probability (person/forklift/dog often,
    trash_bin/pallet rarely; about half of all present classes overall), by a synonym drawn from
    a list ("trolley", "lift truck", "pedestrian", ...), with a rough direction, typos in 4 % of
    words, and in 10 % of scenes a mistake: a mentioned class is replaced by a look-alike
    (car <-> forklift, cone <-> stop sign, ...) or an absent class is added. Some sentences
    mention nothing ("All clear.").

Speed: ``build_arrays(3000)`` takes about 16 s on one core (5.5 ms a scene: camera render,
lidar ray cast, text, resize, point subsample), 210 MB of arrays.

``modality_coverage(scenes)`` measures, per class, how often a present class is seen by each
view (camera: an object of the class has >= ``MIN_CAMERA_PIXELS`` visible pixels; lidar: >=
``MIN_LIDAR_POINTS`` points; text: the class is named). Measured over 400 scenes, seed 0::

    class              camera  lidar  text
    person             0.69    0.93   0.75
    car                0.72    0.99   0.59
    bicycle            0.66    0.59   0.48
    dog                0.58    0.68   0.61
    traffic_cone       0.56    0.50   0.59
    pallet             0.59    0.57   0.25
    door               0.60    0.94   0.38
    chair              0.61    0.64   0.31
    forklift           0.74    1.00   0.78
    shopping_cart      0.58    0.66   0.48
    trash_bin          0.69    0.95   0.25
    stop_sign          0.63    0.86   0.57
    fire_extinguisher  0.42    0.30   0.33
    cardboard_box      0.62    0.83   0.33
    mean               0.62    0.75   0.48

Coverage is "the view has signal", not "the class can be told apart": lidar returns from a
stop_sign look exactly like those of the unlabelled plain sign, a traffic cone or an
extinguisher like a reflective bollard, a door panel like a wall end; camera pixels of a trash
bin at night are near-black. ``test_data_scenes.py`` asserts the ranges and orderings above.

Generation is deterministic per ``(seed, index)`` and independent of call order: each scene
draws from ``numpy.random.SeedSequence([seed, index])`` (one child stream for the layout and one
for each view). ``SceneConfig`` holds every setting; its defaults are FIXED before any method
comparison and must never be tuned to favour a method.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from aecf_ros.data.classes import CLASS_INDEX, CLASS_NAMES, NUM_CLASSES

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


# --------------------------------------------------------------------------------------------
# object geometry (lidar) and sprites (camera)
# --------------------------------------------------------------------------------------------
# A primitive in the object's frame (x forward, y left, z up; origin on the ground):
#   ("box", cx, cy, z0, z1, half_x, half_y, hit_prob, reflectivity)
#   ("cyl", cx, cy, z0, z1, radius, 0.0, hit_prob, reflectivity)   vertical cylinder
# hit_prob < 1 models meshes and spokes that let rays through.


@dataclass
class _Item:
    """An object or clutter item while the scene is being built."""

    kind: str  # class name or clutter kind
    class_id: int  # -1 for clutter
    x: float
    y: float
    yaw: float
    prims: list
    radius: float
    sprite: Callable  # (painter, u, v_ground, scale_px_per_m) -> None
    camera_pixels: int = 0
    lidar_points: int = 0
    in_fov: bool = False


def _rand_colour(rng: np.random.Generator, base: Sequence[int], spread: int = 20) -> tuple[int, int, int]:
    c = np.clip(np.asarray(base) + rng.integers(-spread, spread + 1, size=3), 0, 255)
    return tuple(int(v) for v in c)


_PALETTE_VIVID = ((200, 30, 30), (30, 60, 190), (230, 230, 230), (30, 30, 30), (120, 120, 130),
                  (30, 140, 60), (200, 170, 40), (110, 40, 140))
_PALETTE_MUTED = ((120, 120, 120), (150, 140, 120), (90, 90, 95), (170, 165, 155), (110, 100, 90))


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


class _Painter:
    """Draws the same shapes into the RGB image and into an object-id mask (painter's order)."""

    def __init__(self, image: np.ndarray, mask: np.ndarray):
        self.image, self.mask, self.oid = image, mask, -1

    def _both(self, fn, colour, *args, **kw) -> None:
        fn(self.image, *args, color=colour, **kw)
        fn(self.mask, *args, color=int(self.oid), **kw)

    def rect(self, p0, p1, colour, thickness=-1):
        self._both(cv2.rectangle, colour, p0, p1, thickness=thickness)

    def poly(self, pts, colour):
        self._both(cv2.fillPoly, colour, [np.asarray(pts, np.int32)])

    def circle(self, c, r, colour, thickness=-1):
        self._both(cv2.circle, colour, c, max(int(r), 1), thickness=thickness)

    def line(self, p0, p1, colour, thickness=1):
        self._both(cv2.line, colour, p0, p1, thickness=max(int(thickness), 1))

    def ellipse(self, c, axes, colour, thickness=-1):
        self._both(cv2.ellipse, colour, c, (max(int(axes[0]), 1), max(int(axes[1]), 1)), 0, 0, 360,
                   thickness=thickness)


def _px(u: float, vg: float, s: float):
    """Metric front-view coordinates (right offset a, height h) -> integer pixel."""
    return lambda a, h: (int(round(u + a * s)), int(round(vg - h * s)))


def _make_person(rng):
    shirt, pants = _pick(rng, _PALETTE_VIVID), _pick(rng, _PALETTE_MUTED + ((40, 40, 90),))
    skin = _rand_colour(rng, _pick(rng, ((225, 190, 160), (170, 120, 90), (110, 75, 55))), 10)
    hgt = float(rng.uniform(0.9, 1.05))  # scale: adults and teenagers
    prims = [("cyl", 0.0, 0.1, 0.0, 0.85 * hgt, 0.08, 0, 1.0, 0.3),
             ("cyl", 0.0, -0.1, 0.0, 0.85 * hgt, 0.08, 0, 1.0, 0.3),
             ("box", 0.0, 0.0, 0.85 * hgt, 1.45 * hgt, 0.13, 0.22, 1.0, 0.35),
             ("cyl", 0.0, 0.0, 1.45 * hgt, 1.75 * hgt, 0.1, 0, 1.0, 0.25)]

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.15, 0), P(-0.03, 0.85 * hgt), pants)
        p.rect(P(0.03, 0), P(0.15, 0.85 * hgt), pants)
        p.rect(P(-0.22, 0.85 * hgt), P(0.22, 1.45 * hgt), shirt)
        p.rect(P(-0.3, 0.9 * hgt), P(-0.22, 1.4 * hgt), shirt)
        p.rect(P(0.22, 0.9 * hgt), P(0.3, 1.4 * hgt), shirt)
        p.circle(P(0, 1.6 * hgt), 0.13 * s, skin)
    return prims, 0.35, sprite


def _make_car(rng):
    body = _pick(rng, _PALETTE_VIVID)
    length, width = float(rng.uniform(3.8, 4.8)), float(rng.uniform(1.7, 1.9))
    prims = [("box", 0.0, 0.0, 0.3, 1.0, length / 2, width / 2, 1.0, 0.5),
             ("box", -0.2, 0.0, 1.0, 1.45, length / 4, width / 2 - 0.1, 1.0, 0.3)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            prims.append(("box", sx * length * 0.33, sy * (width / 2 - 0.15), 0.0, 0.3, 0.3, 0.12, 1.0, 0.1))

    def sprite(p, u, vg, s, yaw_view=float(rng.uniform(0, 1))):
        w = width + (length - width) * yaw_view  # how much side is seen
        P = _px(u, vg, s)
        p.rect(P(-w / 2, 0.3), P(w / 2, 1.0), body)
        p.rect(P(-w * 0.3, 1.0), P(w * 0.3, 1.45), body)
        p.rect(P(-w * 0.25, 1.05), P(w * 0.25, 1.4), (60, 70, 85))
        for a in (-0.35 * w, 0.35 * w):
            p.circle(P(a, 0.3), 0.3 * s, (20, 20, 20))
        p.rect(P(-w / 2, 0.75), P(-w / 2 + 0.2, 0.85), (240, 230, 170))
    return prims, max(length, width) / 2 + 0.1, sprite


def _make_bicycle(rng):
    frame = _pick(rng, _PALETTE_VIVID)
    prims = [("box", 0.5, 0.0, 0.0, 0.66, 0.33, 0.03, 0.25, 0.4),
             ("box", -0.5, 0.0, 0.0, 0.66, 0.33, 0.03, 0.25, 0.4),
             ("box", 0.0, 0.0, 0.4, 0.95, 0.45, 0.03, 0.35, 0.45),
             ("box", 0.45, 0.0, 0.95, 1.0, 0.05, 0.3, 0.5, 0.45)]

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        t = max(1, int(0.05 * s))
        for a in (-0.5, 0.5):
            p.circle(P(a, 0.33), 0.33 * s, (25, 25, 25), thickness=t)
        pts = [P(-0.5, 0.33), P(0, 0.33), P(0.25, 0.85), P(-0.2, 0.85), P(-0.5, 0.33)]
        for a, b in zip(pts[:-1], pts[1:]):
            p.line(a, b, frame, t)
        p.line(P(0, 0.33), P(-0.2, 0.85), frame, t)
        p.line(P(0.25, 0.85), P(0.5, 0.33), frame, t)
        p.line(P(0.2, 1.0), P(0.35, 1.0), (25, 25, 25), t)
        p.line(P(-0.3, 0.95), P(-0.12, 0.95), (25, 25, 25), t + 1)
    return prims, 0.9, sprite


def _make_dog(rng):
    fur = _rand_colour(rng, _pick(rng, ((140, 90, 50), (30, 25, 20), (215, 200, 170), (200, 150, 70))), 15)
    size = float(rng.uniform(0.7, 1.2))
    prims = [("box", 0.0, 0.0, 0.3 * size, 0.55 * size, 0.35 * size, 0.12 * size, 1.0, 0.2),
             ("box", 0.38 * size, 0.0, 0.45 * size, 0.72 * size, 0.1 * size, 0.08 * size, 1.0, 0.2)]
    for sx in (-0.25, 0.25):
        for sy in (-0.08, 0.08):
            prims.append(("box", sx * size, sy * size, 0.0, 0.3 * size, 0.03, 0.03, 0.8, 0.2))

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.ellipse(P(0, 0.45 * size), (0.35 * size * s, 0.13 * size * s), fur)
        p.circle(P(0.36 * size, 0.62 * size), 0.11 * size * s, fur)
        p.poly([P(0.3 * size, 0.72 * size), P(0.36 * size, 0.8 * size), P(0.4 * size, 0.7 * size)], fur)
        for a in (-0.28, -0.18, 0.18, 0.28):
            p.line(P(a * size, 0.4 * size), P(a * size, 0.0), fur, 0.05 * size * s)
        p.line(P(-0.33 * size, 0.5 * size), P(-0.5 * size, 0.7 * size), fur, 0.04 * size * s)
    return prims, 0.5 * size, sprite


def _make_traffic_cone(rng):
    orange = _rand_colour(rng, (245, 110, 20), 15)
    prims = [("box", 0.0, 0.0, 0.0, 0.04, 0.18, 0.18, 1.0, 0.5),
             ("cyl", 0.0, 0.0, 0.04, 0.25, 0.13, 0, 1.0, 0.6),
             ("cyl", 0.0, 0.0, 0.25, 0.5, 0.09, 0, 1.0, 0.8),
             ("cyl", 0.0, 0.0, 0.5, 0.7, 0.05, 0, 1.0, 0.6)]

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.2, 0), P(0.2, 0.05), orange)
        p.poly([P(-0.16, 0.05), P(0.16, 0.05), P(0.02, 0.7), P(-0.02, 0.7)], orange)
        p.poly([P(-0.1, 0.32), P(0.1, 0.32), P(0.08, 0.45), P(-0.08, 0.45)], (245, 245, 245))
    return prims, 0.3, sprite


def _make_pallet(rng):
    wood = _rand_colour(rng, (170, 125, 75), 20)
    prims = [("box", 0.0, 0.0, 0.0, 0.14, 0.6, 0.4, 0.5, 0.3)]  # fork openings: half the rays pass

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.6, 0.1), P(0.6, 0.14), wood)
        p.rect(P(-0.6, 0.0), P(0.6, 0.03), wood)
        for a in (-0.55, 0.0, 0.55):
            p.rect(P(a - 0.05, 0.03), P(a + 0.05, 0.1), wood)
    return prims, 0.75, sprite


def _make_door(rng):
    panel, frame = _pick(rng, _PALETTE_MUTED + ((120, 80, 50),)), _pick(rng, _PALETTE_MUTED)
    prims = [("box", 0.0, 0.0, 0.0, 2.0, 0.025, 0.45, 1.0, 0.35),
             ("box", 0.05, 0.5, 0.0, 2.1, 0.08, 0.05, 1.0, 0.4),
             ("box", 0.05, -0.5, 0.0, 2.1, 0.08, 0.05, 1.0, 0.4),
             ("box", 0.05, 0.0, 2.0, 2.12, 0.08, 0.55, 1.0, 0.4)]

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.55, 0), P(0.55, 2.12), frame)
        p.rect(P(-0.45, 0), P(0.45, 2.0), panel)
        p.circle(P(0.35, 1.0), 0.04 * s, (200, 190, 120))
        if s > 20:
            p.rect(P(-0.3, 1.3), P(0.3, 1.8), tuple(int(0.8 * c) for c in panel), thickness=1)
    return prims, 0.7, sprite


def _make_chair(rng):
    col = _pick(rng, ((30, 30, 30), (90, 60, 40), (40, 50, 100), (110, 110, 110)))
    prims = [("box", 0.0, 0.0, 0.42, 0.47, 0.22, 0.22, 1.0, 0.3),
             ("box", -0.2, 0.0, 0.47, 0.9, 0.03, 0.22, 1.0, 0.3)]
    for sx in (-0.19, 0.19):
        for sy in (-0.19, 0.19):
            prims.append(("box", sx, sy, 0.0, 0.42, 0.02, 0.02, 1.0, 0.3))

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        t = 0.04 * s
        for a in (-0.2, 0.2):
            p.line(P(a, 0), P(a, 0.45), col, t)
        p.rect(P(-0.23, 0.42), P(0.23, 0.47), col)
        p.rect(P(-0.21, 0.5), P(0.21, 0.9), col)
    return prims, 0.35, sprite


def _make_forklift(rng):
    body = _rand_colour(rng, _pick(rng, ((235, 190, 20), (240, 130, 20), (200, 40, 30))), 12)
    prims = [("box", 0.0, 0.0, 0.1, 1.3, 1.0, 0.55, 1.0, 0.5),
             ("box", 0.0, 0.0, 2.0, 2.1, 0.55, 0.55, 0.5, 0.4),
             ("box", 1.05, 0.35, 0.0, 2.4, 0.05, 0.05, 1.0, 0.45),
             ("box", 1.05, -0.35, 0.0, 2.4, 0.05, 0.05, 1.0, 0.45),
             ("box", 1.6, 0.25, 0.05, 0.1, 0.5, 0.05, 1.0, 0.45),
             ("box", 1.6, -0.25, 0.05, 0.1, 0.5, 0.05, 1.0, 0.45)]
    for sx in (-0.5, 0.5):
        for sy in (-0.5, 0.5):
            prims.append(("box", sx, sy, 1.3, 2.0, 0.03, 0.03, 1.0, 0.4))

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.55, 0.1), P(0.55, 1.3), body)
        for a in (-0.5, 0.5):
            p.line(P(a, 1.3), P(a, 2.0), (40, 40, 40), 0.05 * s)
        p.rect(P(-0.6, 2.0), P(0.6, 2.1), (40, 40, 40))
        for a in (-0.35, 0.35):
            p.rect(P(a - 0.05, 0), P(a + 0.05, 2.4), (70, 70, 75))
        p.rect(P(-0.45, 0.05), P(0.45, 0.1), (70, 70, 75))
        for a in (-0.4, 0.4):
            p.circle(P(a, 0.25), 0.25 * s, (20, 20, 20))
    return prims, 2.1, sprite


def _make_shopping_cart(rng):
    metal = _rand_colour(rng, (175, 175, 180), 15)
    handle = _pick(rng, ((200, 30, 30), (30, 60, 190), (40, 40, 40)))
    prims = [("box", 0.0, 0.0, 0.45, 1.0, 0.45, 0.27, 0.3, 0.6),
             ("box", 0.0, 0.0, 0.05, 0.15, 0.4, 0.25, 0.3, 0.6),
             ("box", -0.5, 0.0, 0.95, 1.05, 0.03, 0.27, 0.6, 0.5)]

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        t = max(1, int(0.02 * s))
        p.rect(P(-0.3, 0.45), P(0.3, 1.0), metal, thickness=t)
        for a in np.linspace(-0.3, 0.3, 7)[1:-1]:
            p.line(P(a, 0.45), P(a, 1.0), metal, t)
        for h in (0.63, 0.82):
            p.line(P(-0.3, h), P(0.3, h), metal, t)
        p.line(P(-0.2, 0.45), P(-0.2, 0.1), metal, t)
        p.line(P(0.2, 0.45), P(0.2, 0.1), metal, t)
        p.rect(P(-0.32, 1.0), P(0.32, 1.06), handle)
        for a in (-0.22, 0.22):
            p.circle(P(a, 0.05), 0.05 * s, (30, 30, 30))
    return prims, 0.55, sprite


def _make_trash_bin(rng):
    col = _rand_colour(rng, _pick(rng, ((40, 70, 45), (60, 60, 65), (35, 45, 80))), 10)
    prims = [("cyl", 0.0, 0.0, 0.0, 1.0, 0.3, 0, 1.0, 0.25),
             ("cyl", 0.0, 0.0, 1.0, 1.05, 0.33, 0, 1.0, 0.25)]

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.3, 0), P(0.3, 1.0), col)
        p.rect(P(-0.33, 1.0), P(0.33, 1.06), tuple(int(0.7 * c) for c in col))
    return prims, 0.35, sprite


def _sign_prims():
    # Shared by stop_sign and the unlabelled plain sign: lidar cannot tell them apart.
    return [("box", 0.0, 0.0, 0.0, 1.75, 0.03, 0.03, 1.0, 0.5),
            ("box", 0.0, 0.0, 1.75, 2.5, 0.01, 0.375, 1.0, 0.9)]


def _make_stop_sign(rng):
    red = _rand_colour(rng, (210, 25, 30), 12)

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.03, 0), P(0.03, 1.75), (150, 150, 150))
        ang = np.deg2rad(22.5 + 45 * np.arange(8))
        p.poly([P(0.375 * math.cos(a), 2.125 + 0.375 * math.sin(a)) for a in ang], red)
        p.rect(P(-0.25, 2.09), P(0.25, 2.16), (245, 245, 245))
    return _sign_prims(), 0.4, sprite


def _make_fire_extinguisher(rng):
    z0 = 0.0 if rng.random() < 0.5 else 0.8  # on the floor or wall-mounted
    red = _rand_colour(rng, (200, 20, 25), 10)
    prims = [("cyl", 0.0, 0.0, z0, z0 + 0.5, 0.08, 0, 1.0, 0.4),
             ("cyl", 0.0, 0.0, z0 + 0.5, z0 + 0.6, 0.03, 0, 1.0, 0.3)]

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.08, z0), P(0.08, z0 + 0.5), red)
        p.rect(P(-0.03, z0 + 0.5), P(0.03, z0 + 0.6), (25, 25, 25))
        p.line(P(0.03, z0 + 0.57), P(0.12, z0 + 0.3), (25, 25, 25), 0.02 * s)
    return prims, 0.12, sprite


def _make_cardboard_box(rng):
    n = int(rng.integers(1, 4))
    sizes = [float(rng.uniform(0.3, 0.6)) for _ in range(n)]
    tan = _rand_colour(rng, (190, 150, 100), 15)
    prims, z = [], 0.0
    for k, d in enumerate(sizes):
        prims.append(("box", 0.0, 0.0, z, z + d, d / 2, d / 2, 1.0, 0.3))
        z += d

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        z = 0.0
        for d in sizes:
            p.rect(P(-d / 2, z), P(d / 2, z + d), tan)
            p.rect(P(-d / 2, z + d - 0.02), P(d / 2, z + d), tuple(int(0.75 * c) for c in tan))
            p.line(P(0, z + d), P(0, z + d * 0.6), (200, 180, 140), 0.03 * s)
            z += d
    return prims, 0.45, sprite


_CLASS_MAKERS = {
    "person": _make_person, "car": _make_car, "bicycle": _make_bicycle, "dog": _make_dog,
    "traffic_cone": _make_traffic_cone, "pallet": _make_pallet, "door": _make_door,
    "chair": _make_chair, "forklift": _make_forklift, "shopping_cart": _make_shopping_cart,
    "trash_bin": _make_trash_bin, "stop_sign": _make_stop_sign,
    "fire_extinguisher": _make_fire_extinguisher, "cardboard_box": _make_cardboard_box,
}
assert set(_CLASS_MAKERS) == set(CLASS_NAMES)


# --- unlabelled clutter: present in both sensors, never in the labels -------------------------
def _make_wall(rng):
    length = float(rng.uniform(2.0, 6.0))
    col = _pick(rng, _PALETTE_MUTED + ((150, 80, 60),))

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-length / 2, 0), P(length / 2, 2.5), col)
    return [("box", 0.0, 0.0, 0.0, 2.5, 0.1, length / 2, 1.0, 0.35)], length / 2, sprite


def _make_pillar(rng):
    col = _pick(rng, _PALETTE_MUTED)

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.2, 0), P(0.2, 3.0), col)
    return [("box", 0.0, 0.0, 0.0, 3.0, 0.2, 0.2, 1.0, 0.3)], 0.3, sprite


def _make_bush(rng):
    green = _rand_colour(rng, (50, 120, 45), 20)

    def sprite(p, u, vg, s):
        p.ellipse(_px(u, vg, s)(0, 0.4), (0.5 * s, 0.4 * s), green)
    return [("cyl", 0.0, 0.0, 0.0, 0.8, 0.5, 0, 0.5, 0.15)], 0.55, sprite


def _make_plain_sign(rng):
    col = _pick(rng, ((30, 70, 180), (30, 130, 60), (235, 235, 235), (240, 200, 30)))

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.03, 0), P(0.03, 1.75), (150, 150, 150))
        p.rect(P(-0.35, 1.75), P(0.35, 2.5), col)
    return _sign_prims(), 0.4, sprite


def _make_barrier(rng):
    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        for k, a in enumerate(np.linspace(-0.9, 0.9, 7)[:-1]):
            p.rect(P(a, 0.6), P(a + 0.3, 0.9), (220, 30, 30) if k % 2 else (240, 240, 240))
        for a in (-0.85, 0.85):
            p.rect(P(a - 0.03, 0), P(a + 0.03, 0.6), (100, 100, 100))
    return [("box", 0.0, 0.0, 0.6, 0.9, 0.05, 0.9, 1.0, 0.7),
            ("box", 0.0, 0.85, 0.0, 0.6, 0.03, 0.03, 1.0, 0.4),
            ("box", 0.0, -0.85, 0.0, 0.6, 0.03, 0.03, 1.0, 0.4)], 0.95, sprite


def _make_bollard(rng):
    # Reflective post: to lidar a small bright cylinder, like a traffic cone or an extinguisher.
    col = _pick(rng, ((235, 200, 30), (120, 120, 125), (30, 30, 30)))

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.1, 0), P(0.1, 0.8), col)
        p.rect(P(-0.1, 0.6), P(0.1, 0.68), (235, 235, 235))
    return [("cyl", 0.0, 0.0, 0.0, 0.8, 0.1, 0, 1.0, 0.8)], 0.15, sprite


_CLUTTER_MAKERS = {"wall": _make_wall, "pillar": _make_pillar, "bush": _make_bush,
                   "plain_sign": _make_plain_sign, "barrier": _make_barrier, "bollard": _make_bollard}


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------
_MENTION_PROB = {
    "person": 0.8, "car": 0.6, "bicycle": 0.5, "dog": 0.7, "traffic_cone": 0.5, "pallet": 0.3,
    "door": 0.4, "chair": 0.4, "forklift": 0.75, "shopping_cart": 0.5, "trash_bin": 0.3,
    "stop_sign": 0.55, "fire_extinguisher": 0.35, "cardboard_box": 0.4,
}
_SYNONYMS = {
    "person": ("a person", "a pedestrian", "a worker", "someone", "a man", "a woman", "a child"),
    "car": ("a car", "a vehicle", "a sedan", "a parked car", "a van", "an SUV"),
    "bicycle": ("a bicycle", "a bike", "a push bike", "a parked bike"),
    "dog": ("a dog", "a puppy", "a dog off its leash", "a pet"),
    "traffic_cone": ("a traffic cone", "a cone", "an orange cone", "a safety cone", "a pylon"),
    "pallet": ("a pallet", "a wooden pallet", "a skid"),
    "door": ("a door", "a doorway", "an entrance", "a door frame"),
    "chair": ("a chair", "a seat", "an office chair", "a stool"),
    "forklift": ("a forklift", "a lift truck", "a fork truck", "a reach truck"),
    "shopping_cart": ("a shopping cart", "a trolley", "a cart", "a shopping trolley"),
    "trash_bin": ("a trash bin", "a garbage can", "a bin", "a waste bin", "a dustbin"),
    "stop_sign": ("a stop sign", "a red stop sign", "a sign saying stop", "a stop board"),
    "fire_extinguisher": ("a fire extinguisher", "an extinguisher", "fire safety kit"),
    "cardboard_box": ("a cardboard box", "a box", "some boxes", "a carton", "a parcel"),
}
_LOOK_ALIKE = {
    "car": "forklift", "forklift": "car", "bicycle": "shopping_cart", "shopping_cart": "bicycle",
    "traffic_cone": "stop_sign", "stop_sign": "traffic_cone", "pallet": "cardboard_box",
    "cardboard_box": "pallet", "trash_bin": "fire_extinguisher", "fire_extinguisher": "trash_bin",
    "dog": "person", "person": "dog", "door": "chair", "chair": "door",
}
_EMPTY_SENTENCES = ("All clear.", "Nothing to report.", "Path looks clear.", "Continue the patrol.",
                    "Driving to the next waypoint.", "No comment.")


def _direction(az_deg: float, range_m: float, rng: np.random.Generator) -> str:
    if rng.random() < 0.35:
        return ""
    if abs(az_deg) < 30:
        where = _pick(rng, ("ahead", "in front", "straight ahead"))
    elif abs(az_deg) > 150:
        where = _pick(rng, ("behind us", "behind the robot", "at the back"))
    else:
        where = _pick(rng, ("on the left", "to the left")) if az_deg > 0 else _pick(rng, ("on the right", "to the right"))
    if range_m < 5 and rng.random() < 0.5:
        where = "close by " + where
    elif range_m > 11 and rng.random() < 0.5:
        where = "far " + where
    return where


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 2))
    if rng.random() < 0.5:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i + 1:]  # drop one


def _make_text(items: list[_Item], cfg: SceneConfig, rng: np.random.Generator) -> tuple[str, set[str], set[str]]:
    """Returns (sentence, classes named, classes named correctly)."""
    by_class: dict[str, _Item] = {}
    for it in sorted(items, key=lambda it: math.hypot(it.x, it.y)):
        by_class.setdefault(it.kind, it)  # the nearest instance is the one an operator names
    named = [c for c in by_class if rng.random() < min(1.0, _MENTION_PROB[c] * cfg.text_mention_scale)]
    rng.shuffle(named)
    spoken = list(named)
    if rng.random() < cfg.text_mistake_prob:
        if spoken and rng.random() < 0.6:
            k = int(rng.integers(len(spoken)))
            spoken[k] = _LOOK_ALIKE[spoken[k]]
        else:
            absent = [c for c in CLASS_NAMES if c not in by_class]
            if absent:
                spoken.append(_pick(rng, absent))
    spoken = list(dict.fromkeys(spoken))  # a look-alike may duplicate a class already named
    if not spoken:
        return _pick(rng, _EMPTY_SENTENCES), set(), set()
    phrases = []
    for c in spoken:
        phrase = _pick(rng, _SYNONYMS[c])
        it = by_class.get(c)
        if it is not None:
            where = _direction(math.degrees(math.atan2(it.y, it.x)), math.hypot(it.x, it.y), rng)
            phrase = f"{phrase} {where}".strip()
        phrases.append(phrase)
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    template = _pick(rng, ("There is {}.", "I can see {}.", "Caption: {}.", "Watch out for {}.",
                           "Operator note: {} nearby.", "Careful, {}.", "{}."))
    sentence = template.format(listed)
    words = [(_typo(w, rng) if rng.random() < cfg.text_typo_prob else w) for w in sentence.split(" ")]
    sentence = " ".join(words)
    sentence = sentence[0].upper() + sentence[1:]
    return sentence, set(spoken), set(spoken) & set(named)


# --------------------------------------------------------------------------------------------
# lidar ray casting
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _ray_table(cfg: SceneConfig):
    elev = np.deg2rad(np.linspace(cfg.lidar_min_elevation_deg, cfg.lidar_max_elevation_deg, cfg.lidar_rings))
    az = np.arange(cfg.lidar_azimuth_steps) * (2 * np.pi / cfg.lidar_azimuth_steps) - np.pi
    ce, se = np.cos(elev)[:, None], np.sin(elev)[:, None]
    dirs = np.stack(np.broadcast_arrays(ce * np.cos(az)[None], ce * np.sin(az)[None], se), axis=-1)
    with np.errstate(divide="ignore"):
        t_ground = np.where(se[:, 0] < 0, cfg.sensor_height_m / -se[:, 0], np.inf)
    t_ground = np.where(t_ground * ce[:, 0] <= cfg.lidar_max_range_m, t_ground, np.inf)
    return dirs.astype(np.float64), az, t_ground


def _cast(item: _Item, dirs: np.ndarray, h: float, rng: np.random.Generator):
    """Ray-cast ``dirs`` [R, K, 3] (from (0, 0, h)) against one item -> (t [R, K], reflectivity)."""
    c, s = math.cos(item.yaw), math.sin(item.yaw)
    # sensor origin and ray directions in the item's frame
    ox, oy = -(c * item.x + s * item.y), -(-s * item.x + c * item.y)
    dx = c * dirs[..., 0] + s * dirs[..., 1]
    dy = -s * dirs[..., 0] + c * dirs[..., 1]
    dz = dirs[..., 2]
    best = np.full(dx.shape, np.inf)
    refl = np.zeros(dx.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ix, iy, iz = 1.0 / dx, 1.0 / dy, 1.0 / dz
        for kind, cx, cy, z0, z1, a, b, hit_prob, reflectivity in item.prims:
            if kind == "box":
                tx0, tx1 = (cx - a - ox) * ix, (cx + a - ox) * ix
                ty0, ty1 = (cy - b - oy) * iy, (cy + b - oy) * iy
                tz0, tz1 = (z0 - h) * iz, (z1 - h) * iz
                t_near = np.fmax(np.fmax(np.fmin(tx0, tx1), np.fmin(ty0, ty1)), np.fmin(tz0, tz1))
                t_far = np.fmin(np.fmin(np.fmax(tx0, tx1), np.fmax(ty0, ty1)), np.fmax(tz0, tz1))
                t = np.where((t_far >= t_near) & (t_near > 0), t_near, np.inf)
            else:  # vertical cylinder: side, then top cap
                px, py = ox - cx, oy - cy
                qa = dx * dx + dy * dy
                qb = 2 * (px * dx + py * dy)
                qc = px * px + py * py - a * a
                disc = qb * qb - 4 * qa * qc
                t = (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa)
                z = h + t * dz
                t = np.where((disc >= 0) & (t > 0) & (z >= z0) & (z <= z1), t, np.inf)
                t_top = (z1 - h) * iz
                hx, hy = px + t_top * dx, py + t_top * dy
                t_top = np.where((dz < 0) & (t_top > 0) & (hx * hx + hy * hy <= a * a), t_top, np.inf)
                t = np.fmin(t, t_top)
            if hit_prob < 1.0:
                t = np.where(rng.random(t.shape) < hit_prob, t, np.inf)
            closer = t < best
            best = np.where(closer, t, best)
            refl = np.where(closer, reflectivity, refl)
    return best, refl


def _render_lidar(items: list[_Item], cfg: SceneConfig, rng: np.random.Generator):
    dirs, az, t_ground = _ray_table(cfg)
    n_az = cfg.lidar_azimuth_steps
    step = 2 * np.pi / n_az
    h = cfg.sensor_height_m
    t_hit = np.repeat(t_ground[:, None], n_az, axis=1)
    refl = np.full(t_hit.shape, 0.12)
    source = np.full(t_hit.shape, SOURCE_GROUND, dtype=np.int16)
    for k, it in enumerate(items):
        dist = math.hypot(it.x, it.y)
        half = math.asin(min(1.0, it.radius / max(dist, 1e-6))) + 2 * step
        centre = math.atan2(it.y, it.x)
        cols = np.arange(math.floor((centre - half + np.pi) / step), math.ceil((centre + half + np.pi) / step) + 1) % n_az
        cols = np.unique(cols)
        t, r = _cast(it, dirs[:, cols], h, rng)
        cur = t_hit[:, cols]
        closer = t < cur
        t_hit[:, cols] = np.where(closer, t, cur)
        refl[:, cols] = np.where(closer, r, refl[:, cols])
        source[:, cols] = np.where(closer, k if it.class_id >= 0 else SOURCE_CLUTTER, source[:, cols])
    valid = np.isfinite(t_hit) & (rng.random(t_hit.shape) >= cfg.lidar_dropout_prob)
    t = t_hit[valid] + rng.normal(0.0, cfg.lidar_range_noise_m, size=int(valid.sum()))
    xyz = dirs[valid] * t[:, None]
    keep = np.hypot(xyz[:, 0], xyz[:, 1]) <= cfg.lidar_max_range_m
    inten = np.clip(refl[valid] * rng.uniform(0.85, 1.15, size=t.shape), 0.0, 1.0)
    src = source[valid]
    pts = np.concatenate([xyz, inten[:, None]], axis=1)[keep]
    src = src[keep]
    n_dust = int(rng.integers(0, cfg.lidar_max_dust_points + 1))
    if n_dust:
        r = rng.uniform(0.5, 6.0, n_dust)
        a = rng.uniform(-np.pi, np.pi, n_dust)
        dust = np.stack([r * np.cos(a), r * np.sin(a), rng.uniform(-h, 1.0, n_dust),
                         rng.uniform(0.0, 0.1, n_dust)], axis=1)
        pts = np.concatenate([pts, dust])
        src = np.concatenate([src, np.full(n_dust, SOURCE_CLUTTER, np.int16)])
    return pts.astype(np.float32), src


# --------------------------------------------------------------------------------------------
# camera rendering
# --------------------------------------------------------------------------------------------
def _render_camera(items: list[_Item], cfg: SceneConfig, rng: np.random.Generator):
    W, H = cfg.image_width, cfg.image_height
    f = cfg.focal_px
    cx, cy = W / 2.0, H / 2.0
    img = np.empty((H, W, 3), np.uint8)
    mask = np.full((H, W), -1, np.int32)
    horizon = int(cy)
    outdoor = rng.random() < 0.5
    sky = _rand_colour(rng, (150, 190, 230) if outdoor else (110, 110, 115), 20)
    ground = _rand_colour(rng, _pick(rng, ((90, 90, 95), (150, 145, 135), (90, 120, 100))), 15)
    img[:horizon] = sky
    img[horizon:] = ground
    painter = _Painter(img, mask)
    for _ in range(int(rng.integers(2, 7))):  # far background: buildings / shelving
        x0 = int(rng.integers(-20, W))
        painter.rect((x0, horizon - int(rng.integers(8, 60))), (x0 + int(rng.integers(15, 90)), horizon),
                     _pick(rng, _PALETTE_MUTED))
    for _ in range(int(rng.integers(0, 5))):  # floor marks
        y = int(rng.integers(horizon + 5, H))
        painter.line((int(rng.integers(0, W)), y), (int(rng.integers(0, W)), y + int(rng.integers(-5, 6))),
                     _rand_colour(rng, ground, 30), 1)
    order = sorted(range(len(items)), key=lambda k: -items[k].x)
    for k in order:
        it = items[k]
        if it.x < 0.3:
            continue
        u = cx - f * it.y / it.x
        s = f / it.x
        vg = cy + f * cfg.sensor_height_m / it.x
        it.in_fov = abs(math.degrees(math.atan2(it.y, it.x))) <= cfg.camera_hfov_deg / 2
        if abs(u - cx) > W / 2 + it.radius * s:
            continue
        painter.oid = k
        it.sprite(painter, u, vg, s)

    # lighting, lens, optics, sensor
    night = rng.random() < cfg.night_prob
    gain = rng.uniform(0.12, 0.3) if night else rng.uniform(0.6, 1.25)
    cast = rng.uniform(0.88, 1.12, size=3)
    shade = np.linspace(1.0, rng.uniform(0.7, 1.3), W, dtype=np.float32)[None, :, None]
    out = img.astype(np.float32) * (np.float32(gain) * cast.astype(np.float32))[None, None, :] * shade
    if rng.random() < cfg.lens_blob_prob:
        blob = np.zeros((H, W), np.uint8)
        cv2.ellipse(blob, (int(rng.integers(0, W)), int(rng.integers(0, H))),
                    (int(rng.integers(W // 8, W // 3)), int(rng.integers(H // 8, H // 3))),
                    float(rng.uniform(0, 180)), 0, 360, 255, -1)
        covered = blob > 0
        out[covered] = out[covered] * 0.1 + np.float32(rng.uniform(20, 60))
        mask[covered] = -1
    if rng.random() < cfg.blur_prob:
        sigma = rng.uniform(0.6, 2.0)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    sigma_n = rng.uniform(8, 16) if night else rng.uniform(1.5, 6)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma_n)
    image = np.clip(out, 0, 255).astype(np.uint8)
    counts = np.bincount(mask[mask >= 0].ravel(), minlength=len(items))
    for k, it in enumerate(items):
        it.camera_pixels = int(counts[k])
    return image, bool(night)


# --------------------------------------------------------------------------------------------
# scene assembly
# --------------------------------------------------------------------------------------------
def _place(rng, cfg: SceneConfig, radius: float, placed: list[_Item], in_front: bool):
    for _ in range(30):
        r = rng.uniform(cfg.min_range_m + radius * 0.5, cfg.max_range_m)
        if in_front:
            az = rng.uniform(-0.47, 0.47) * math.radians(cfg.camera_hfov_deg)
        else:
            az = rng.uniform(-np.pi, np.pi)
        x, y = r * math.cos(az), r * math.sin(az)
        if all(math.hypot(x - o.x, y - o.y) > 0.8 * (radius + o.radius) for o in placed):
            return x, y
    return x, y  # crowded: accept an overlap rather than loop forever


def generate_scene(index: int, seed: int = 0, config: SceneConfig = SceneConfig()) -> Scene:
    """The scene number ``index`` of the stream ``seed`` (deterministic, call-order independent)."""
    if index < 0:
        raise ValueError(f"scene index must be >= 0, got {index}")
    layout_ss, camera_ss, lidar_ss, text_ss = np.random.SeedSequence([int(seed), int(index)]).spawn(4)
    rng = np.random.default_rng(layout_ss)
    cfg = config
    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    class_ids = rng.integers(0, NUM_CLASSES, size=n_obj)
    items: list[_Item] = []
    for cid in class_ids:
        name = CLASS_NAMES[int(cid)]
        prims, radius, sprite = _CLASS_MAKERS[name](rng)
        x, y = _place(rng, cfg, radius, items, rng.random() < cfg.front_bias)
        items.append(_Item(name, int(cid), x, y, float(rng.uniform(-np.pi, np.pi)), prims, radius, sprite))
    n_labelled = len(items)
    for _ in range(int(rng.integers(cfg.min_clutter, cfg.max_clutter + 1))):
        kind = _pick(rng, tuple(_CLUTTER_MAKERS))
        prims, radius, sprite = _CLUTTER_MAKERS[kind](rng)
        x, y = _place(rng, cfg, radius, items, rng.random() < cfg.front_bias)
        items.append(_Item(kind, -1, x, y, float(rng.uniform(-np.pi, np.pi)), prims, radius, sprite))

    image, night = _render_camera(items, cfg, np.random.default_rng(camera_ss))
    points, source = _render_lidar(items, cfg, np.random.default_rng(lidar_ss))
    counts = np.bincount(source[source >= 0], minlength=len(items))
    text, spoken, named_right = _make_text(items[:n_labelled], cfg, np.random.default_rng(text_ss))

    labels = np.zeros(NUM_CLASSES, np.uint8)
    labels[np.unique(class_ids)] = 1
    text_classes = np.zeros(NUM_CLASSES, np.uint8)
    for c in spoken:
        text_classes[CLASS_INDEX[c]] = 1
    objects = tuple(
        SceneObject(it.class_id, it.kind, float(it.x), float(it.y), float(it.yaw), bool(it.in_fov),
                    int(it.camera_pixels), int(counts[k]), it.kind in named_right)
        for k, it in enumerate(items[:n_labelled]))
    return Scene(index=int(index), seed=int(seed), labels=labels, image=image, points=points,
                 point_source=source, text=text, text_classes=text_classes, objects=objects,
                 is_night=night)


def generate_scenes(n: int, seed: int = 0, config: SceneConfig = SceneConfig(), start: int = 0) -> Iterator[Scene]:
    """Scenes ``start`` .. ``start + n - 1`` of stream ``seed``, lazily."""
    for index in range(start, start + n):
        yield generate_scene(index, seed, config)


def modality_coverage(scenes: Sequence[Scene]) -> dict[str, np.ndarray]:
    """Per class, the fraction of scenes containing it in which each view shows it.

    Returns ``{"camera": float[C], "lidar": float[C], "text": float[C], "support": int[C]}``;
    classes never present get NaN. Thresholds: ``MIN_CAMERA_PIXELS``, ``MIN_LIDAR_POINTS``;
    text counts a class only when named correctly.
    """
    seen = {m: np.zeros(NUM_CLASSES) for m in ("camera", "lidar", "text")}
    support = np.zeros(NUM_CLASSES, np.int64)
    for sc in scenes:
        support += sc.labels.astype(np.int64)
        for m, test in (("camera", lambda o: o.camera_pixels >= MIN_CAMERA_PIXELS),
                        ("lidar", lambda o: o.lidar_points >= MIN_LIDAR_POINTS),
                        ("text", lambda o: o.mentioned)):
            hit = {o.class_id for o in sc.objects if test(o)}
            for c in hit:
                seen[m][c] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {m: np.where(support > 0, v / support, np.nan) for m, v in seen.items()}
    out["support"] = support
    return out


# --------------------------------------------------------------------------------------------
# arrays for training
# --------------------------------------------------------------------------------------------
@dataclass
class SceneArrays:
    """A block of scenes as arrays, already through the encoders' size-reducing steps.

    labels      uint8[N, C]
    images      uint8[N, h, w, 3] resized by ``aecf_ros.encoders.camera.resize_image`` (so
                ``preprocess_image(images[i])`` equals ``preprocess_image(scene.image)``)
    points      float32[N, P, 4] metric points chosen by ``aecf_ros.encoders.lidar.select_points``
                (so ``preprocess_points(points[i, :n])`` equals ``preprocess_points(scene.points)``),
                zero-padded after ``point_counts[i]``
    point_counts int32[N]
    texts       list[str] (N)
    indices     int64[N] scene indices
    """

    labels: np.ndarray
    images: np.ndarray
    points: np.ndarray
    point_counts: np.ndarray
    texts: list[str]
    indices: np.ndarray
    seed: int = 0
    config: SceneConfig = field(default_factory=SceneConfig)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def points_of(self, i: int) -> np.ndarray:
        return self.points[i, : int(self.point_counts[i])]


def build_arrays(n: int, seed: int = 0, config: SceneConfig = SceneConfig(), start: int = 0,
                 image_size: tuple[int, int] | None = None, max_points: int | None = None) -> SceneArrays:
    """Generate scenes ``start..start+n-1`` straight into compact arrays (no list of Scenes).

    ``image_size`` (h, w) defaults to the camera encoder's input size and ``max_points`` to the
    lidar encoder's; both steps are the encoders' own functions, so training on these arrays and
    encoding raw sensor data at run time go through one preprocessing path.
    """
    from aecf_ros.encoders.camera import INPUT_SIZE, resize_image
    from aecf_ros.encoders.lidar import MAX_POINTS, select_points

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    h, w = image_size or INPUT_SIZE
    p = int(max_points or MAX_POINTS)
    labels = np.zeros((n, NUM_CLASSES), np.uint8)
    images = np.zeros((n, h, w, 3), np.uint8)
    points = np.zeros((n, p, 4), np.float32)
    counts = np.zeros(n, np.int32)
    texts: list[str] = []
    for i, sc in enumerate(generate_scenes(n, seed, config, start)):
        labels[i] = sc.labels
        images[i] = resize_image(sc.image, (h, w))
        chosen = select_points(sc.points, p)
        points[i, : len(chosen)] = chosen
        counts[i] = len(chosen)
        texts.append(sc.text)
    return SceneArrays(labels, images, points, counts, texts, np.arange(start, start + n), seed, config)
