"""An object or clutter item while a scene is being built, and the seeded pick every view uses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

# A primitive in the object's frame (x forward, y left, z up; origin on the ground):
#   ("box", cx, cy, z0, z1, half_x, half_y, hit_prob, reflectivity)
#   ("cyl", cx, cy, z0, z1, radius, 0.0, hit_prob, reflectivity)   vertical cylinder
# hit_prob < 1 models meshes and spokes that let rays through.


@dataclass
class SceneItem:
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


def pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]
