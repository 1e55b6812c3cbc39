"""The camera view: forward pinhole rendering of the items' sprites in painter's order, then
lighting, lens blob, blur and sensor noise."""
from __future__ import annotations

import math

import cv2
import numpy as np

from aecf_ros.data.catalogue import PALETTE_MUTED, Painter, rand_colour
from aecf_ros.data.items import SceneItem, pick
from aecf_ros.data.scene_types import SceneConfig


def render_camera(items: list[SceneItem], cfg: SceneConfig, rng: np.random.Generator):
    W, H = cfg.image_width, cfg.image_height
    f = cfg.focal_px
    cx, cy = W / 2.0, H / 2.0
    img = np.empty((H, W, 3), np.uint8)
    mask = np.full((H, W), -1, np.int32)
    horizon = int(cy)
    outdoor = rng.random() < 0.5
    sky = rand_colour(rng, (150, 190, 230) if outdoor else (110, 110, 115), 20)
    ground = rand_colour(rng, pick(rng, ((90, 90, 95), (150, 145, 135), (90, 120, 100))), 15)
    img[:horizon] = sky
    img[horizon:] = ground
    painter = Painter(img, mask)
    for _ in range(int(rng.integers(2, 7))):  # far background: buildings / shelving
        x0 = int(rng.integers(-20, W))
        painter.rect((x0, horizon - int(rng.integers(8, 60))), (x0 + int(rng.integers(15, 90)), horizon),
                     pick(rng, PALETTE_MUTED))
    for _ in range(int(rng.integers(0, 5))):  # floor marks
        y = int(rng.integers(horizon + 5, H))
        painter.line((int(rng.integers(0, W)), y), (int(rng.integers(0, W)), y + int(rng.integers(-5, 6))),
                     rand_colour(rng, ground, 30), 1)
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
