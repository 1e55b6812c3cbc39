"""Model configurations: the shipped family, the tiny test one, and how overrides merge."""
from __future__ import annotations

import copy
from typing import Mapping

from aecf_ros.graph import MODALITIES


def default_model_config() -> dict:
    """The configuration of the shipped model family (sizes used by ``aecf-ros train``)."""
    from aecf_ros.data.classes import CLASS_NAMES

    return {
        "class_names": list(CLASS_NAMES),
        "camera": {"embed_dim": 64, "width": 16},
        "lidar": {"embed_dim": 64, "width": 32, "max_points": 1024},
        "text": {"name": "minilm"},
        "fusion": {"method": "aecf", "embed_dim": 64, "gate_hidden": 64, "moddrop_p": 0.3,
                   "concat_hidden": None,
                   "presence_tokens": True,
                   "curriculum": {}},  # {} = the recommended CurriculumConfig()
        "head": {"hidden": 64, "dropout": 0.1},
    }


def small_model_config() -> dict:
    """A tiny configuration for tests (seconds to build and run on a CPU)."""
    cfg = default_model_config()
    cfg["camera"] = {"embed_dim": 16, "width": 8}
    cfg["lidar"] = {"embed_dim": 16, "width": 8, "max_points": 256}
    cfg["text"] = {"name": "hashing", "dim": 16}
    cfg["fusion"] = merge_config(cfg["fusion"], {"embed_dim": 16, "gate_hidden": 16,
                                                 "curriculum": {"warmup_steps": 10}})
    cfg["head"] = {"hidden": 0, "dropout": 0.0}
    return cfg


def merge_model_config(base: Mapping, override: Mapping | None) -> dict:
    """:func:`merge_config` for model configs: an encoder section (camera / lidar / text) of
    another ``type`` (``name`` for text) REPLACES the base section instead of merging keys into
    it (``{type: torchscript, path: ...}`` over the default CNN must not inherit ``embed_dim``);
    see :func:`aecf_ros.encoders.merge_encoder_spec`."""
    from aecf_ros.encoders import merge_encoder_spec

    override = dict(override or {})
    enc = {m: override.pop(m) for m in MODALITIES if m in override}
    out = merge_config(base, override)
    for m, spec in enc.items():
        out[m] = merge_encoder_spec(m, out.get(m), spec)
    return out


def merge_config(base: Mapping, override: Mapping | None) -> dict:
    """Recursive dict merge (override wins); returns a new dict.

    A mapping over a mapping merges key by key; anything else (a list, a scalar, ``None``)
    replaces the base value. ``override=None`` is ``{}``. The result shares nothing with either
    argument (deep copies). The one merge of the package: model configs, the training config
    (``aecf_ros.train.config.load_config``), sweep specs and benchmark regimes all use it."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
