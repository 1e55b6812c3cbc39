"""aecf_ros.encoders: sensor data -> embeddings, one preprocessing path for training and run time.

``build_encoder(modality, spec)`` builds any encoder from a small spec:

    build_encoder("camera")                                   # CameraEncoder, 128-d
    build_encoder("camera", {"embed_dim": 64, "width": 16})
    build_encoder("camera", {"type": "torchscript", "path": "trunk.pt", "input_size": [224, 224]})
    build_encoder("lidar", {"embed_dim": 64})                 # LidarEncoder (PointNet)
    build_encoder("lidar", {"type": "torchscript", "path": "pointnet.pt", "max_points": 2048})
    build_encoder("text")                                     # packaged MiniLM, 384-d
    build_encoder("text", "hashing")  /  build_encoder("text", {"name": "hashing", "dim": 64})

Every encoder has ``encoder_id`` (architecture + sizes; the model bundle appends a weights
hash) and ``out_dim``/``dim``. TorchScript encoders are frozen (``frozen = True``) and carry
``path`` + ``sha256`` of their file (:mod:`aecf_ros.encoders.torchscript`).

``merge_encoder_spec`` is how configs combine: an override of another ``type`` (``name`` for
text) REPLACES the base section, the same type merges key by key. Heavy imports (sentence-transformers) happen only when a MiniLM
encoder is built.
"""
from __future__ import annotations

from typing import Any, Mapping

from aecf_ros.graph import MODALITIES

DEFAULT_CAMERA_DIM = 128
DEFAULT_LIDAR_DIM = 128
DEFAULT_TEXT_DIM = 384  # MiniLM; the hashing encoder defaults to 256
DEFAULT_DIMS: dict[str, int] = {"camera": DEFAULT_CAMERA_DIM, "lidar": DEFAULT_LIDAR_DIM, "text": DEFAULT_TEXT_DIM}

_DEFAULT_TYPES = {"camera": "cnn", "lidar": "pointnet", "text": "minilm"}


def _normalise_spec(modality: str, spec: str | Mapping[str, Any] | None) -> tuple[str, dict]:
    if spec is None:
        return _DEFAULT_TYPES[modality], {}
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"encoder spec must be None, a name or a mapping, got {type(spec).__name__}")
    kwargs = dict(spec)
    kind = kwargs.pop("type", None) or kwargs.pop("name", None) or _DEFAULT_TYPES[modality]
    return str(kind), kwargs


def build_encoder(modality: str, spec: str | Mapping[str, Any] | None = None):
    """Build the encoder of ``modality`` ("camera", "lidar", "text") from ``spec`` (see module doc)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    kind, kwargs = _normalise_spec(modality, spec)
    if modality == "camera":
        if kind == "cnn":
            from aecf_ros.encoders.camera import CameraEncoder
            return CameraEncoder(**kwargs)
        if kind == "torchscript":
            from aecf_ros.encoders.camera import TorchScriptImageEncoder
            if "input_size" in kwargs:
                kwargs["input_size"] = tuple(kwargs["input_size"])
            return TorchScriptImageEncoder(**kwargs)
    elif modality == "lidar":
        if kind == "pointnet":
            from aecf_ros.encoders.lidar import LidarEncoder
            return LidarEncoder(**kwargs)
        if kind == "torchscript":
            from aecf_ros.encoders.lidar import TorchScriptPointEncoder
            return TorchScriptPointEncoder(**kwargs)
    else:
        from aecf_ros.encoders.text import TextEncoder
        return TextEncoder(name=kind, **kwargs)
    raise ValueError(f"unknown {modality} encoder type {kind!r}")


def encoder_kind(modality: str, spec: str | Mapping[str, Any] | None) -> str:
    """The encoder type a spec builds ("cnn", "torchscript", "pointnet", "hashing", ...)."""
    return _normalise_spec(modality, spec)[0]


def merge_encoder_spec(modality: str, base, override):
    """``override`` over ``base`` for one encoder section: a different type replaces the base
    section (its keys, e.g. the CNN's ``embed_dim``, mean nothing to a TorchScript trunk);
    the same type merges key by key (recursively); ``None`` means "no encoder"."""
    import copy

    if override is None or not isinstance(override, Mapping) or not isinstance(base, Mapping):
        return copy.deepcopy(override)
    if modality in MODALITIES and encoder_kind(modality, base) != encoder_kind(modality, override):
        return copy.deepcopy(dict(override))
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_encoder_spec("", out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
