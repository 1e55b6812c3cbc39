"""Several cameras on one simulated robot: each sees a horizontal window of the scene.

The scene renderer draws one wide view; a robot that declares ``n`` image sensors gets ``n``
windows across it, in declaration order, overlapping a little (as real cameras around a robot
do), so each camera sees only part of the scene's objects and the fused view sees them all.
One camera: the whole view (the package's own robot, unchanged).
"""
from __future__ import annotations

import numpy as np

__all__ = ["camera_windows", "camera_view"]


def camera_windows(n: int, overlap: float = 0.15) -> list[tuple[float, float]]:
    """``n`` windows ``(x0, x1)`` (fractions of the view width) covering it left to right."""
    if n < 1:
        raise ValueError(f"need at least one camera, got {n}")
    if n == 1:
        return [(0.0, 1.0)]
    width = 1.0 / n
    return [(max(0.0, i * width - overlap / 2), min(1.0, (i + 1) * width + overlap / 2)) for i in range(n)]


def camera_view(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """The columns of ``image`` (H x W x C) inside ``window``."""
    w = image.shape[1]
    a = int(round(window[0] * w))
    b = max(a + 1, int(round(window[1] * w)))
    return np.ascontiguousarray(image[:, a:b])
