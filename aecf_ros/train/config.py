"""Training configuration: YAML file (``config/train.yaml``) + dotted CLI overrides.

``load_config(path, overrides)`` merges, in order: the built-in defaults below, the YAML file,
then ``overrides`` such as ``["stage2.epochs=5", "model.fusion.method=concat"]`` (values parsed
as YAML, so ``5`` is an int, ``[0, 1]`` a list, ``null`` None). Unknown top-level sections are an
error (typos should not silently train the default).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
from aecf_ros.resources import package_file  # noqa: E402
DEFAULT_CONFIG_PATH = package_file("config", "train.yaml")  # source tree, ament index or install share/

from aecf_ros.core.baselines import FUSION_METHODS as METHODS  # noqa: E402  (one list)
from aecf_ros.model.config import merge_config  # noqa: E402  (one recursive merge, model/ and train/)

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "device": "auto",
    "threads": 0,
    "out": "build/train/model.pt",
    "workdir": "build/train",
    "cache_dir": "build/cache",
    "progress": True,
    "data": {"n_encoder": 3000, "n_train": 3000, "n_val": 1000, "n_test": 2000, "seed": 1234,
             "scene": {}},
    # merged over aecf_ros.model.default_model_config(): camera / lidar / text / fusion / head
    "model": {"fusion": {"method": "aecf"}},
    "stage1": {"epochs": 30, "batch_size": 32, "lr": 4e-4, "lr_lidar": 2e-3, "weight_decay": 0.05,
               "warmup_steps": 0, "augment": True, "seed": 0},
    "stage2": {"epochs": 30, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4,
               "objective": {}},
    "evaluate": {"scenario_seed": 0, "drop_rates": [0.1, 0.3, 0.5, 0.7], "ece_bins": 15},
    "benchmark": {"methods": list(METHODS), "seeds": [0, 1, 2]},
}


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = cfg
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def get_dotted(cfg: Mapping, dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for k in dotted.split("."):
        if not isinstance(node, Mapping) or k not in node:
            return default
        node = node[k]
    return node


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key.path=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def read_yaml_mapping(path: str | Path, what: str, known: Iterable[str], keys: str) -> dict:
    """The YAML mapping in ``path`` (an empty file is ``{}``); ``FileNotFoundError`` names it
    ``what``, ``ValueError`` rejects another top level or top-level ``keys`` not in ``known``
    (typos should not silently run the defaults). Training configs and sweep specs read this way."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    unknown = set(loaded) - set(known)
    if unknown:
        raise ValueError(f"{path}: unknown {keys} {sorted(unknown)}; known {sorted(known)}")
    return loaded


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        cfg = merge_config(cfg, read_yaml_mapping(path, "training config", DEFAULTS, "section(s)"))
    for item in overrides:
        key, value = parse_override(item)
        if key.split(".")[0] not in DEFAULTS:
            raise ValueError(f"override {item!r}: unknown section {key.split('.')[0]!r}")
        set_dotted(cfg, key, value)
    method = cfg["model"]["fusion"]["method"]
    if method not in METHODS:
        raise ValueError(f"unknown fusion method {method!r}; choose from {', '.join(METHODS)}")
    return cfg


def model_config(cfg: Mapping) -> dict:
    """The PerceptionModel config of a training config (defaults + ``model`` section).

    An encoder section with another ``type`` than the default (e.g. ``model.camera: {type:
    torchscript, path: trunk.pt, input_size: [224, 224]}``) replaces the default section
    instead of inheriting its keys (:func:`aecf_ros.model.merge_model_config`)."""
    from aecf_ros.model import default_model_config, merge_model_config

    return merge_model_config(default_model_config(), cfg["model"])
