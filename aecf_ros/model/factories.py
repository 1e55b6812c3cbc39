"""Component factories: the one place that knows the constructors of encoders, fusion and head."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn


def build_camera_encoder(cfg: Mapping) -> nn.Module:
    from aecf_ros.encoders import build_encoder

    return build_encoder("camera", dict(cfg))


def build_lidar_encoder(cfg: Mapping) -> nn.Module:
    from aecf_ros.encoders import build_encoder

    return build_encoder("lidar", dict(cfg))


def build_text_encoder(cfg: Mapping) -> nn.Module:
    from aecf_ros.encoders import build_encoder

    return build_encoder("text", dict(cfg))


def build_head(in_dim: int, num_classes: int, hidden: int = 0, dropout: float = 0.0) -> nn.Module:
    """Multi-label head: one logit per class."""
    if not hidden:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, num_classes))
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
    )


def build_fusion_from_config(cfg: Mapping, input_dims: Mapping[str, int]) -> nn.Module:
    """Fusion module from the plain-dict ``fusion`` config section::

        {"method": "aecf", "embed_dim": 64, "gate_hidden": 64, "moddrop_p": 0.3,
         "concat_hidden": null, "presence_tokens": true,
         "curriculum": {"min_rate": 0.3, "max_rate": 0.9, "warmup_fraction": 0.435}}

    Only the options a method takes are passed to :func:`aecf_ros.core.baselines.build_fusion`
    (the curriculum applies to aecf and every ablation except aecf_no_curriculum; missing
    curriculum keys take :class:`~aecf_ros.core.fusion.CurriculumConfig`'s defaults; a bundle
    saved with ``warmup_steps`` keeps that fixed warm-up).
    """
    from aecf_ros.core.baselines import build_fusion
    from aecf_ros.core.fusion import CurriculumConfig

    method = str(cfg["method"])
    kw: dict[str, Any] = {}
    if method == "concat":
        if cfg.get("concat_hidden"):
            kw["hidden"] = int(cfg["concat_hidden"])
    elif method != "mean":
        if cfg.get("gate_hidden"):
            kw["gate_hidden"] = int(cfg["gate_hidden"])
        if method == "moddrop" and cfg.get("moddrop_p") is not None:
            kw["moddrop_p"] = float(cfg["moddrop_p"])
        if method.startswith("aecf"):
            kw["presence_tokens"] = bool(cfg.get("presence_tokens", True))
            if method != "aecf_no_curriculum":
                kw["curriculum"] = CurriculumConfig(**dict(cfg.get("curriculum") or {}))
    return build_fusion(method, dict(input_dims), int(cfg.get("embed_dim", 64)), **kw)
