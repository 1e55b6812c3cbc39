"""The object catalogue: per class (and per unlabelled clutter kind) the lidar geometry
(primitives, see :mod:`aecf_ros.data.items`) and the camera sprite of one random instance."""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from aecf_ros.data.classes import CLASS_NAMES
from aecf_ros.data.items import pick


def rand_colour(rng: np.random.Generator, base: Sequence[int], spread: int = 20) -> tuple[int, int, int]:
    c = np.clip(np.asarray(base) + rng.integers(-spread, spread + 1, size=3), 0, 255)
    return tuple(int(v) for v in c)


PALETTE_VIVID = ((200, 30, 30), (30, 60, 190), (230, 230, 230), (30, 30, 30), (120, 120, 130),
                  (30, 140, 60), (200, 170, 40), (110, 40, 140))
PALETTE_MUTED = ((120, 120, 120), (150, 140, 120), (90, 90, 95), (170, 165, 155), (110, 100, 90))


class Painter:
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
    shirt, pants = pick(rng, PALETTE_VIVID), pick(rng, PALETTE_MUTED + ((40, 40, 90),))
    skin = rand_colour(rng, pick(rng, ((225, 190, 160), (170, 120, 90), (110, 75, 55))), 10)
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
    body = pick(rng, PALETTE_VIVID)
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
    frame = pick(rng, PALETTE_VIVID)
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
    fur = rand_colour(rng, pick(rng, ((140, 90, 50), (30, 25, 20), (215, 200, 170), (200, 150, 70))), 15)
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
    orange = rand_colour(rng, (245, 110, 20), 15)
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
    wood = rand_colour(rng, (170, 125, 75), 20)
    prims = [("box", 0.0, 0.0, 0.0, 0.14, 0.6, 0.4, 0.5, 0.3)]  # fork openings: half the rays pass

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.6, 0.1), P(0.6, 0.14), wood)
        p.rect(P(-0.6, 0.0), P(0.6, 0.03), wood)
        for a in (-0.55, 0.0, 0.55):
            p.rect(P(a - 0.05, 0.03), P(a + 0.05, 0.1), wood)
    return prims, 0.75, sprite


def _make_door(rng):
    panel, frame = pick(rng, PALETTE_MUTED + ((120, 80, 50),)), pick(rng, PALETTE_MUTED)
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
    col = pick(rng, ((30, 30, 30), (90, 60, 40), (40, 50, 100), (110, 110, 110)))
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
    body = rand_colour(rng, pick(rng, ((235, 190, 20), (240, 130, 20), (200, 40, 30))), 12)
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
    metal = rand_colour(rng, (175, 175, 180), 15)
    handle = pick(rng, ((200, 30, 30), (30, 60, 190), (40, 40, 40)))
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
    col = rand_colour(rng, pick(rng, ((40, 70, 45), (60, 60, 65), (35, 45, 80))), 10)
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
    red = rand_colour(rng, (210, 25, 30), 12)

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.03, 0), P(0.03, 1.75), (150, 150, 150))
        ang = np.deg2rad(22.5 + 45 * np.arange(8))
        p.poly([P(0.375 * math.cos(a), 2.125 + 0.375 * math.sin(a)) for a in ang], red)
        p.rect(P(-0.25, 2.09), P(0.25, 2.16), (245, 245, 245))
    return _sign_prims(), 0.4, sprite


def _make_fire_extinguisher(rng):
    z0 = 0.0 if rng.random() < 0.5 else 0.8  # on the floor or wall-mounted
    red = rand_colour(rng, (200, 20, 25), 10)
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
    tan = rand_colour(rng, (190, 150, 100), 15)
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


CLASS_MAKERS = {
    "person": _make_person, "car": _make_car, "bicycle": _make_bicycle, "dog": _make_dog,
    "traffic_cone": _make_traffic_cone, "pallet": _make_pallet, "door": _make_door,
    "chair": _make_chair, "forklift": _make_forklift, "shopping_cart": _make_shopping_cart,
    "trash_bin": _make_trash_bin, "stop_sign": _make_stop_sign,
    "fire_extinguisher": _make_fire_extinguisher, "cardboard_box": _make_cardboard_box,
}
assert set(CLASS_MAKERS) == set(CLASS_NAMES)


# --- unlabelled clutter: present in both sensors, never in the labels -------------------------
def _make_wall(rng):
    length = float(rng.uniform(2.0, 6.0))
    col = pick(rng, PALETTE_MUTED + ((150, 80, 60),))

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-length / 2, 0), P(length / 2, 2.5), col)
    return [("box", 0.0, 0.0, 0.0, 2.5, 0.1, length / 2, 1.0, 0.35)], length / 2, sprite


def _make_pillar(rng):
    col = pick(rng, PALETTE_MUTED)

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.2, 0), P(0.2, 3.0), col)
    return [("box", 0.0, 0.0, 0.0, 3.0, 0.2, 0.2, 1.0, 0.3)], 0.3, sprite


def _make_bush(rng):
    green = rand_colour(rng, (50, 120, 45), 20)

    def sprite(p, u, vg, s):
        p.ellipse(_px(u, vg, s)(0, 0.4), (0.5 * s, 0.4 * s), green)
    return [("cyl", 0.0, 0.0, 0.0, 0.8, 0.5, 0, 0.5, 0.15)], 0.55, sprite


def _make_plain_sign(rng):
    col = pick(rng, ((30, 70, 180), (30, 130, 60), (235, 235, 235), (240, 200, 30)))

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
    col = pick(rng, ((235, 200, 30), (120, 120, 125), (30, 30, 30)))

    def sprite(p, u, vg, s):
        P = _px(u, vg, s)
        p.rect(P(-0.1, 0), P(0.1, 0.8), col)
        p.rect(P(-0.1, 0.6), P(0.1, 0.68), (235, 235, 235))
    return [("cyl", 0.0, 0.0, 0.0, 0.8, 0.1, 0, 1.0, 0.8)], 0.15, sprite


CLUTTER_MAKERS = {"wall": _make_wall, "pillar": _make_pillar, "bush": _make_bush,
                   "plain_sign": _make_plain_sign, "barrier": _make_barrier, "bollard": _make_bollard}
