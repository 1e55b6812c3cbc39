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

Speed: ``aecf_ros.train.arrays.build_arrays(3000)`` takes about 16 s on one core (5.5 ms a
scene: camera render, lidar ray cast, text, resize, point subsample), 210 MB of arrays.

``aecf_ros.data.coverage.modality_coverage(scenes)`` measures, per class, how often a present
class is seen by each view (camera: an object of the class has >= ``MIN_CAMERA_PIXELS`` visible pixels; lidar: >=
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
from typing import Iterator

import numpy as np

from aecf_ros.data.camera import render_camera
from aecf_ros.data.catalogue import CLASS_MAKERS, CLUTTER_MAKERS
from aecf_ros.data.classes import CLASS_INDEX, CLASS_NAMES, NUM_CLASSES
from aecf_ros.data.items import SceneItem, pick
from aecf_ros.data.lidar import render_lidar
from aecf_ros.data.scene_types import (  # noqa: F401  (the scene types are part of this module's API)
    MIN_CAMERA_PIXELS, MIN_LIDAR_POINTS, SOURCE_CLUTTER, SOURCE_GROUND, Scene, SceneConfig, SceneObject)
from aecf_ros.data.text import make_text


def _place(rng, cfg: SceneConfig, radius: float, placed: list[SceneItem], in_front: bool):
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
    items: list[SceneItem] = []
    for cid in class_ids:
        name = CLASS_NAMES[int(cid)]
        prims, radius, sprite = CLASS_MAKERS[name](rng)
        x, y = _place(rng, cfg, radius, items, rng.random() < cfg.front_bias)
        items.append(SceneItem(name, int(cid), x, y, float(rng.uniform(-np.pi, np.pi)), prims, radius, sprite))
    n_labelled = len(items)
    for _ in range(int(rng.integers(cfg.min_clutter, cfg.max_clutter + 1))):
        kind = pick(rng, tuple(CLUTTER_MAKERS))
        prims, radius, sprite = CLUTTER_MAKERS[kind](rng)
        x, y = _place(rng, cfg, radius, items, rng.random() < cfg.front_bias)
        items.append(SceneItem(kind, -1, x, y, float(rng.uniform(-np.pi, np.pi)), prims, radius, sprite))

    image, night = render_camera(items, cfg, np.random.default_rng(camera_ss))
    points, source = render_lidar(items, cfg, np.random.default_rng(lidar_ss))
    counts = np.bincount(source[source >= 0], minlength=len(items))
    text, spoken, named_right = make_text(items[:n_labelled], cfg, np.random.default_rng(text_ss))

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
