"""Training arrays: generated scenes straight into compact arrays, through the encoders' own
size-reducing steps (so training and run time share one preprocessing path)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aecf_ros.data.classes import NUM_CLASSES
from aecf_ros.data.scenes import SceneConfig, generate_scenes


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
