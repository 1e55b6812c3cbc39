"""The object classes a ground robot meets indoors (warehouse, shop) and outdoors (street, yard).

``CLASS_NAMES`` fixes the label order of every multi-hot vector in the package (scenes, feature
files, model heads). Append new classes at the end only: a model bundle stores the names it was
trained with and checks them, so re-ordering would silently swap predictions.
"""
from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "person",
    "car",
    "bicycle",
    "dog",
    "traffic_cone",
    "pallet",
    "door",
    "chair",
    "forklift",
    "shopping_cart",
    "trash_bin",
    "stop_sign",
    "fire_extinguisher",
    "cardboard_box",
)
NUM_CLASSES: int = len(CLASS_NAMES)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
