"""The text view: one operator/caption-like sentence about some of the scene's objects."""
from __future__ import annotations

import math

import numpy as np

from aecf_ros.data.classes import CLASS_NAMES
from aecf_ros.data.items import SceneItem, pick
from aecf_ros.data.scene_types import SceneConfig

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
        where = pick(rng, ("ahead", "in front", "straight ahead"))
    elif abs(az_deg) > 150:
        where = pick(rng, ("behind us", "behind the robot", "at the back"))
    else:
        where = pick(rng, ("on the left", "to the left")) if az_deg > 0 else pick(rng, ("on the right", "to the right"))
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


def make_text(items: list[SceneItem], cfg: SceneConfig, rng: np.random.Generator) -> tuple[str, set[str], set[str]]:
    """Returns (sentence, classes named, classes named correctly)."""
    by_class: dict[str, SceneItem] = {}
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
                spoken.append(pick(rng, absent))
    spoken = list(dict.fromkeys(spoken))  # a look-alike may duplicate a class already named
    if not spoken:
        return pick(rng, _EMPTY_SENTENCES), set(), set()
    phrases = []
    for c in spoken:
        phrase = pick(rng, _SYNONYMS[c])
        it = by_class.get(c)
        if it is not None:
            where = _direction(math.degrees(math.atan2(it.y, it.x)), math.hypot(it.x, it.y), rng)
            phrase = f"{phrase} {where}".strip()
        phrases.append(phrase)
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    template = pick(rng, ("There is {}.", "I can see {}.", "Caption: {}.", "Watch out for {}.",
                           "Operator note: {} nearby.", "Careful, {}.", "{}."))
    sentence = template.format(listed)
    words = [(_typo(w, rng) if rng.random() < cfg.text_typo_prob else w) for w in sentence.split(" ")]
    sentence = " ".join(words)
    sentence = sentence[0].upper() + sentence[1:]
    return sentence, set(spoken), set(spoken) & set(named)
