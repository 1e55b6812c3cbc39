"""The lidar view: a 360-degree multi-ring ray cast against the scene's items and the ground."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from aecf_ros.data.items import SceneItem
from aecf_ros.data.scene_types import SOURCE_CLUTTER, SOURCE_GROUND, SceneConfig


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


def _cast(item: SceneItem, dirs: np.ndarray, h: float, rng: np.random.Generator):
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


def render_lidar(items: list[SceneItem], cfg: SceneConfig, rng: np.random.Generator):
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
