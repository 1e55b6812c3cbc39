"""How often each view shows a present class (the table in :mod:`aecf_ros.data.scenes`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from aecf_ros.data.classes import NUM_CLASSES
from aecf_ros.data.scene_types import MIN_CAMERA_PIXELS, MIN_LIDAR_POINTS, Scene


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
