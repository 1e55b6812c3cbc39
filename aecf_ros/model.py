"""The perception model bundle: encoders + fusion + multi-label head + calibrator in one file.

``PerceptionModel`` is what every consumer of a trained model uses (the ROS nodes, ``aecf-ros
evaluate``, the demo). It holds

* ``camera_encoder`` (small CNN), ``lidar_encoder`` (PointNet) - trained in stage 1, saved;
  or a user's TorchScript file (``{type: torchscript, path: ...}``, see
  :mod:`aecf_ros.encoders.torchscript`) - frozen, NOT saved: the bundle records its path and
  the sha256 of the file (``encoder_files``), ``load_model`` reloads it and refuses a file whose
  hash differs;
* ``text_encoder`` - frozen (packaged MiniLM or the hashing encoder), NOT saved: it is recreated
  from its name in the config, and its id in ``encoder_ids`` lets a fusion node reject text
  embeddings produced by a different text model;
* ``fusion`` - any method of :func:`aecf_ros.core.baselines.build_fusion` (AECF or a baseline);
* ``head`` - linear (``head.hidden == 0``) or one-hidden-layer MLP giving one logit per class;
* ``calibrator`` - a global temperature, a per-presence-pattern temperature and a
  per-presence-pattern Platt scaler (temperature + per-class bias), fitted on validation data
  with simulated sensor drops; the default mode is the one with the lowest held-out ECE on
  validation (:class:`Calibrator`).

Each ``encode_<modality>(raw)`` call runs the encoder's own preprocessing
(``preprocess_image`` / ``preprocess_points`` + ``collate_points`` / the text encoder's tokenizer):
the exact code path used when the training embeddings were cached, so there is one path only.

File format (``save_model`` / ``load_model``): ONE ``torch.save`` file holding only plain
dicts, lists, strings, numbers and tensors, so it loads with ``torch.load(weights_only=True)``
(no pickled code runs when a file is opened)::

    {"format": "aecf_ros.model", "format_version": 2,
     "config": {...build_model config...}, "class_names": [...], "modalities": [...],
     "state_dicts": {"camera_encoder": ..., "lidar_encoder": ..., "fusion": ..., "head": ...,
                     "calibrator": ...},
     "calibration": {"default_mode": "presence_platt", "validation_ece": {mode: float},
                     "global_temperature": float, "presence_temperatures": {"101": T, ...},
                     "presence_platt": {"101": {"temperature": T, "bias": [C floats]}, ...}},
     "encoder_ids": {"camera": "...", "lidar": "...", "text": "..."},
     "encoder_files": {"camera": {"path": "/abs/trunk.pt", "sha256": "..."}},  # TorchScript only
     "embedding_dims": {...}, "metadata": {...training command, settings, metrics...}}

``load_model`` raises :class:`ModelLoadError` (a ``RuntimeError``) with a one-line reason for a
missing, truncated, corrupt or incompatible file; it never lets a raw torch traceback escape.
"""
from __future__ import annotations

import copy
import hashlib
import math
import io
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

FORMAT_NAME = "aecf_ros.model"
FORMAT_VERSION = 2  # 2: calibrator gained the presence-aware Platt scaler + default mode
MODALITIES: tuple[str, ...] = ("camera", "lidar", "text")
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "default.pt"


class ModelLoadError(RuntimeError):
    """A model file could not be used: missing, truncated, corrupt, or incompatible."""


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
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


def is_file_backed(encoder: nn.Module | None) -> bool:
    """A frozen encoder loaded from a user file (TorchScript): recorded by path + sha256 in the
    bundle instead of by weights."""
    return encoder is not None and bool(getattr(encoder, "frozen", False)) \
        and isinstance(getattr(encoder, "sha256", None), str)


def merge_config(base: Mapping, override: Mapping | None) -> dict:
    """Recursive dict merge (override wins); returns a new dict."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------------------------------
# component factories (one place that knows the constructors of the other packages)
# --------------------------------------------------------------------------------------------
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
         "curriculum": {"min_rate": 0.2, "max_rate": 0.7, "warmup_steps": 300}}

    Only the options a method takes are passed to :func:`aecf_ros.core.baselines.build_fusion`
    (the curriculum applies to aecf and every ablation except aecf_no_curriculum; missing
    curriculum keys take :class:`~aecf_ros.core.fusion.CurriculumConfig`'s defaults).
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


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------
class Calibrator(nn.Module):
    """Raw / global temperature / per-presence-pattern temperature / per-presence-pattern Platt
    scaling of head logits, plus the mode the model uses by default.

    Wraps :class:`aecf_ros.core.calibration.TemperatureScaler` (``global_scaler``),
    :class:`~aecf_ros.core.calibration.PresenceTemperatureScaler` (``presence_scaler``) and
    :class:`~aecf_ros.core.calibration.PresencePlattScaler` (``platt_scaler``: temperature + bias
    per pattern, per-class biases where the pattern has enough rows), all fitted on validation
    data with simulated sensor drops (:func:`fit`). ``forward(logits, present, mode)`` with
    ``mode`` in :attr:`MODES`: ``"none"`` identity, ``"global"``, ``"presence"``,
    ``"presence_platt"``; ``mode=None`` uses :attr:`default_mode`.

    The default mode is chosen on VALIDATION data only (:func:`fit` with ``select=True``): every
    mode is scored by 2-fold cross-fitting over validation samples (fit on one half, ECE on the
    other, both ways; the simulated-drop rows of one sample stay in one fold), as the mean over
    presence patterns of the held-out ECE; the lowest wins (ties go to the simpler mode). The
    held-out ECEs are kept in ``validation_ece`` (NaN = not measured). An unfitted calibrator,
    and one loaded from a format-1 bundle (which had no Platt scaler), defaults to
    ``"presence"``, the behaviour of those bundles. Everything lives in buffers (state dict).
    """

    MODES = ("none", "global", "presence", "presence_platt")

    def __init__(self, num_modalities: int = 3, min_samples: int = 30, num_classes: int = 14,
                 ece_bins: int = 15):
        super().__init__()
        from aecf_ros.core.calibration import (PresencePlattScaler, PresenceTemperatureScaler,
                                               TemperatureScaler)

        self.num_modalities = int(num_modalities)
        self.num_classes = int(num_classes)
        self.ece_bins = int(ece_bins)
        self.global_scaler = TemperatureScaler()
        self.presence_scaler = PresenceTemperatureScaler(self.num_modalities, min_samples=min_samples)
        self.platt_scaler = PresencePlattScaler(self.num_modalities, self.num_classes, min_samples=min_samples)
        self.register_buffer("default_mode_index", torch.tensor(self.MODES.index("presence")))
        self.register_buffer("validation_ece", torch.full((len(self.MODES),), float("nan")))

    # -- fitting ---------------------------------------------------------------------------
    def _fit_all(self, logits: Tensor, labels: Tensor, present: Tensor) -> None:
        self.global_scaler.fit(logits, labels)
        self.presence_scaler.fit(logits, labels, present)
        self.platt_scaler.fit(logits, labels, present)

    @torch.no_grad()
    def fit(self, logits: Tensor, labels: Tensor, present: Tensor, groups: Tensor | None = None,
            select: bool = True) -> "Calibrator":
        """Fit every scaler on validation logits[N, C], labels[N, C], present[N, M]; with
        ``select`` also choose :attr:`default_mode` by 2-fold cross-fitting (see the class
        docstring). ``groups`` (LongTensor[N], e.g. the validation sample index of each
        simulated-drop row) keeps rows of one sample in one fold; default: row index."""
        from aecf_ros.core.calibration import expected_calibration_error, presence_pattern_index

        logits = torch.as_tensor(logits).detach().cpu().double()
        labels = torch.as_tensor(labels).detach().cpu().double()
        present = torch.as_tensor(present).detach().cpu().bool()
        if groups is None:
            groups = torch.arange(logits.shape[0])
        groups = torch.as_tensor(groups).cpu().long()
        if groups.shape != (logits.shape[0],):
            raise ValueError(f"groups must be LongTensor[{logits.shape[0]}], got {tuple(groups.shape)}")
        if select:
            fold = groups % 2 == 1
            held_out = {mode: torch.empty_like(logits) for mode in self.MODES}
            probe = Calibrator(self.num_modalities, self.presence_scaler.min_samples, self.num_classes)
            ok = bool(fold.any()) and bool((~fold).any())
            for k in (False, True) if ok else ():
                fit_rows, test_rows = fold == k, fold != k
                probe._fit_all(logits[fit_rows], labels[fit_rows], present[fit_rows])
                for mode in self.MODES:
                    held_out[mode][test_rows] = probe(logits[test_rows], present[test_rows], mode)
            if ok:
                pattern = presence_pattern_index(present)
                scores = []
                for mode in self.MODES:
                    p = torch.sigmoid(held_out[mode])
                    eces = [expected_calibration_error(p[pattern == pid], labels[pattern == pid], self.ece_bins)
                            for pid in torch.unique(pattern).tolist()]
                    scores.append(float(np.mean(eces)))
                self.validation_ece.copy_(torch.tensor(scores))
                self.default_mode_index.fill_(int(np.argmin(scores)))  # first minimum: simplest
        self._fit_all(logits, labels, present)
        return self

    # -- setting / reading -----------------------------------------------------------------
    def set_global(self, temperature: float) -> None:
        self.global_scaler.temperature.fill_(float(temperature))

    def set_presence(self, temperatures: Mapping[str, float], default: float | None = None) -> None:
        """``{"101": T, ...}`` (keys in modality order); others get ``default`` (global T)."""
        fill = float(self.global_scaler.temperature) if default is None else float(default)
        self.presence_scaler.temperatures.fill_(fill)
        self.presence_scaler.global_temperature.fill_(fill)
        for key, t in temperatures.items():
            self.presence_scaler.temperatures[_pattern_index(key)] = float(t)

    def set_platt(self, params: Mapping[str, tuple[float, Any]]) -> None:
        """``{"101": (T, bias), ...}``; ``bias`` a number or C numbers. Other patterns keep theirs."""
        for key, (t, b) in params.items():
            idx = _pattern_index(key)
            self.platt_scaler.temperatures[idx] = float(t)
            self.platt_scaler.biases[idx] = torch.as_tensor(b, dtype=torch.float32).expand(self.num_classes)
        self.platt_scaler.fitted.fill_(True)

    @property
    def default_mode(self) -> str:
        return self.MODES[int(self.default_mode_index)]

    def set_default_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(f"calibration mode must be one of {self.MODES}, not {mode!r}")
        if mode == "presence_platt" and not bool(self.platt_scaler.fitted):
            raise ValueError("presence_platt needs a fitted Platt scaler (fit() or set_platt())")
        self.default_mode_index.fill_(self.MODES.index(mode))

    @property
    def global_temperature(self) -> float:
        return float(self.global_scaler.temperature)

    def _pattern_keys(self):
        for idx in range(1, 2 ** self.num_modalities):
            yield idx, "".join("1" if idx >> i & 1 else "0" for i in range(self.num_modalities))

    def presence_dict(self) -> dict[str, float]:
        """Temperature of every non-empty pattern, e.g. ``{"111": 1.1, "100": 1.8, ...}``."""
        return {key: float(self.presence_scaler.temperatures[idx]) for idx, key in self._pattern_keys()}

    def platt_dict(self) -> dict[str, dict]:
        """``{"111": {"temperature": T, "bias": [C floats]}, ...}`` for every non-empty pattern."""
        return {key: {"temperature": float(self.platt_scaler.temperatures[idx]),
                      "bias": [float(v) for v in self.platt_scaler.biases[idx]]}
                for idx, key in self._pattern_keys()}

    def validation_ece_dict(self) -> dict[str, float | None]:
        return {m: (None if math.isnan(float(v)) else float(v)) for m, v in zip(self.MODES, self.validation_ece)}

    def summary(self) -> dict:
        return {"default_mode": self.default_mode, "validation_ece": self.validation_ece_dict(),
                "global_temperature": self.global_temperature,
                "presence_temperatures": self.presence_dict(), "presence_platt": self.platt_dict()}

    # -- applying ----------------------------------------------------------------------------
    def forward(self, logits: Tensor, present: Tensor, mode: str | None = None) -> Tensor:
        mode = self.default_mode if mode is None else mode
        if mode == "none":
            return logits
        if mode == "global":
            return self.global_scaler(logits)
        if mode == "presence":
            return self.presence_scaler(logits, present.bool())
        if mode == "presence_platt":
            return self.platt_scaler(logits, present.bool())
        raise ValueError(f"calibration mode must be one of {self.MODES}, not {mode!r}")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also reads format-1 calibrators (no Platt scaler, no default mode): those keep the
        behaviour they were saved with (presence temperatures, ``platt_scaler.fitted`` False)."""
        new_keys = {k for k in self.state_dict() if k.startswith("platt_scaler.")} | {
            "default_mode_index", "validation_ece"}
        missing = set(self.state_dict()) - set(state_dict)
        if missing and missing <= new_keys and not (set(state_dict) - set(self.state_dict())):
            result = super().load_state_dict(state_dict, strict=False, assign=assign)
            self.platt_scaler.fitted.fill_(False)
            self.default_mode_index.fill_(self.MODES.index("presence"))
            self.validation_ece.fill_(float("nan"))
            return result
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _pattern_index(key: str) -> int:
    return sum(1 << i for i, ch in enumerate(key) if ch == "1")


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
def _state_hash(module: nn.Module) -> str:
    """Short content hash of a module's weights (deterministic over runs and devices)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:12]


def _out_dim(module: nn.Module) -> int:
    for name in ("out_dim", "embed_dim", "dim"):
        value = getattr(module, name, None)
        if isinstance(value, int):
            return int(value)
    raise ModelLoadError(f"{type(module).__name__} does not declare its output width (out_dim)")


def _arch_id(module: nn.Module, with_hash: bool = False) -> str:
    ident = getattr(module, "encoder_id", None)
    if callable(ident):
        ident = ident()
    if ident:
        return str(ident)
    name = type(module).__name__
    return f"{name}@{_state_hash(module)}" if with_hash else name


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> CUDA when available else CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return torch.device(name)


class PerceptionModel(nn.Module):
    """Encoders + fusion + head + calibrator; see the module docstring."""

    def __init__(self, config: Mapping):
        super().__init__()
        self.config = copy.deepcopy(dict(config))
        self.class_names: list[str] = list(self.config["class_names"])
        self.modalities: tuple[str, ...] = tuple(self.config.get("modalities") or MODALITIES)
        self.config["modalities"] = list(self.modalities)
        self.metadata: dict = {}
        # Encoders: a modality whose config entry is None has no encoder (embedding-only
        # models, e.g. trained on a user .npz feature file); its width then comes from
        # config["input_dims"].
        input_dims = dict(self.config.get("input_dims") or {})
        has = {m: m in ("camera", "lidar", "text") and self.config.get(m) is not None
               for m in self.modalities}
        self.camera_encoder = build_camera_encoder(self.config["camera"]) if has.get("camera") else None
        self.lidar_encoder = build_lidar_encoder(self.config["lidar"]) if has.get("lidar") else None
        text = build_text_encoder(self.config["text"]) if has.get("text") else None
        if text is not None:
            for p in text.parameters():
                p.requires_grad_(False)
            text.eval()
        # kept out of state_dict()/parameters(): frozen, recreated from its name on load
        object.__setattr__(self, "_text_encoder", text)
        encoders = {"camera": self.camera_encoder, "lidar": self.lidar_encoder, "text": text}
        self.embedding_dims: dict[str, int] = {}
        for m in self.modalities:
            if encoders.get(m) is not None:
                self.embedding_dims[m] = _out_dim(encoders[m])
            elif m in input_dims:
                self.embedding_dims[m] = int(input_dims[m])
            else:
                raise ValueError(f"modality {m!r} has neither an encoder config nor input_dims")
        self.fusion = build_fusion_from_config(
            self.config["fusion"], {m: self.embedding_dims[m] for m in self.modalities})
        hcfg = self.config.get("head", {})
        self.head = build_head(
            int(self.fusion_dim), len(self.class_names), int(hcfg.get("hidden", 0)),
            float(hcfg.get("dropout", 0.0)),
        )
        self.calibrator = Calibrator(len(self.modalities), num_classes=len(self.class_names))
        self._encoder_ids: dict[str, str] | None = None

    # -- properties ----------------------------------------------------------------------
    @property
    def text_encoder(self) -> nn.Module:
        return self._text_encoder

    @property
    def fusion_dim(self) -> int:
        return int(getattr(self.fusion, "output_dim", getattr(self.fusion, "embed_dim", self.config["fusion"]["embed_dim"])))

    @property
    def method(self) -> str:
        return str(self.config["fusion"]["method"])

    @property
    def device(self) -> torch.device:
        return next(self.head.parameters()).device

    def _apply(self, fn, *args, **kwargs):  # keep the frozen text encoder on the same device
        super()._apply(fn, *args, **kwargs)
        if self._text_encoder is not None:
            self._text_encoder._apply(fn, *args, **kwargs)
        return self

    @property
    def encoder_ids(self) -> dict[str, str]:
        """``{"camera": "CameraEncoder-<hash>", ...}``: architecture + short weight hash."""
        if self._encoder_ids is None:
            self.refresh_encoder_ids()
        return dict(self._encoder_ids)

    def refresh_encoder_ids(self) -> dict[str, str]:
        """Recompute ids after the encoder weights changed (training).

        camera/lidar: ``<architecture id>@<sha256 of the trained weights, 12 hex>``, or for a
        user's TorchScript file ``<architecture id>@<sha256 of the file, 64 hex>``; text: the
        frozen text encoder's own id (it names the model and hashes its weights/vocabulary).
        """
        ids = {}
        for m, enc in self.encoders().items():
            if m == "text":
                ids[m] = _arch_id(enc, with_hash=True)
            elif is_file_backed(enc):
                ids[m] = f"{_arch_id(enc)}@{enc.sha256}"
            else:
                ids[m] = f"{_arch_id(enc)}@{_state_hash(enc)}"
        self._encoder_ids = ids
        return dict(self._encoder_ids)

    def encoder_files(self) -> dict[str, dict]:
        """``{modality: {"path": absolute path, "sha256": hex}}`` of the file-backed encoders."""
        return {m: {"path": str(enc.path), "sha256": str(enc.sha256)}
                for m, enc in self.encoders().items() if is_file_backed(enc)}

    def encoders(self) -> dict[str, nn.Module]:
        """The modalities that have an encoder in this model -> encoder module."""
        all_enc = {"camera": self.camera_encoder, "lidar": self.lidar_encoder,
                   "text": self._text_encoder}
        return {m: e for m, e in all_enc.items() if e is not None and m in self.modalities}

    def _need(self, modality: str) -> nn.Module:
        enc = self.encoders().get(modality)
        if enc is None:
            raise RuntimeError(f"this model has no {modality} encoder (embedding-only model for "
                               f"modalities {list(self.modalities)})")
        return enc

    # -- encoders (single preprocessing path) ---------------------------------------------
    @torch.inference_mode()
    def encode_camera(self, rgb: np.ndarray) -> Tensor:
        """RGB uint8 HxWx3 (any size) -> embedding Tensor[D] (on the model device)."""
        self._need("camera")
        x = self.camera_encoder.preprocess(rgb).unsqueeze(0).to(self.device)
        was = self.camera_encoder.training
        self.camera_encoder.eval()
        try:
            return self.camera_encoder(x)[0]
        finally:
            self.camera_encoder.train(was)

    @torch.inference_mode()
    def encode_lidar(self, points: np.ndarray) -> Tensor:
        """Points float[N, >=3] (x, y, z[, intensity], sensor frame, metres) -> Tensor[D]."""
        from aecf_ros.encoders.lidar import collate_points

        self._need("lidar")
        pts, mask = collate_points([self.lidar_encoder.preprocess(points)])
        was = self.lidar_encoder.training
        self.lidar_encoder.eval()
        try:
            return self.lidar_encoder(pts.to(self.device), mask.to(self.device))[0]
        finally:
            self.lidar_encoder.train(was)

    @torch.inference_mode()
    def encode_text(self, text: str) -> Tensor:
        """A caption / operator sentence -> embedding Tensor[D]."""
        self._need("text")
        out = self._text_encoder.encode([text])
        if not isinstance(out, Tensor):
            out = torch.as_tensor(np.asarray(out), dtype=torch.float32)
        return out[0].to(self.device, torch.float32)

    def encode(self, modality: str, raw) -> Tensor:
        return getattr(self, f"encode_{modality}")(raw)

    # -- fusion + head ---------------------------------------------------------------------
    def forward(self, embeddings: Mapping[str, Tensor], present: Tensor, **fusion_kwargs):
        """Training path: ``(logits[B, C], FusionOutput)`` (no calibration, autograd on).
        ``fusion_kwargs`` go to the fusion (e.g. ``curriculum=False``)."""
        out = self.fusion(embeddings, present, **fusion_kwargs)
        return self.head(out.fused), out

    @torch.inference_mode()
    def predict(self, embeddings: Mapping[str, Tensor], present: Tensor,
                calibrated: bool | str = True):
        """``(probs[B, C], FusionOutput)``.

        ``embeddings[m]`` is Tensor[B, D_m] (rows of absent modalities may hold anything, e.g.
        zeros); ``present`` is Bool[B, M] in ``self.modalities`` order. ``calibrated`` is True
        (the calibrator's ``default_mode``, chosen on validation data), False (raw), or one of
        ``"none" | "global" | "presence" | "presence_platt"``.
        """
        dev = self.device
        emb = {m: torch.as_tensor(embeddings[m]).to(dev, torch.float32) for m in self.modalities}
        for m, t in emb.items():
            if t.dim() == 1:
                emb[m] = t.unsqueeze(0)
        present = torch.as_tensor(present).to(dev).bool()
        if present.dim() == 1:
            present = present.unsqueeze(0)
        was = self.training
        self.eval()
        try:
            logits, out = self.forward(emb, present)
        finally:
            self.train(was)
        if isinstance(calibrated, bool):
            mode = None if calibrated else "none"
        else:
            mode = str(calibrated)
        logits = self.calibrator(logits, out.present if out.present is not None else present, mode)
        return torch.sigmoid(logits), out

    # -- bookkeeping -------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, dict]:
        out = {}  # file-backed (TorchScript) encoders: recorded by path + sha256, not weights
        if self.camera_encoder is not None and not is_file_backed(self.camera_encoder):
            out["camera_encoder"] = self.camera_encoder.state_dict()
        if self.lidar_encoder is not None and not is_file_backed(self.lidar_encoder):
            out["lidar_encoder"] = self.lidar_encoder.state_dict()
        return {
            **out,
            "fusion": self.fusion.state_dict(),
            "head": self.head.state_dict(),
            "calibrator": self.calibrator.state_dict(),
        }


def build_model(config: Mapping | None = None, **overrides) -> PerceptionModel:
    """An untrained model. ``config`` None -> :func:`small_model_config` (tiny, for tests);
    partial configs are merged over :func:`default_model_config`."""
    if config is None:
        cfg = small_model_config()
    else:
        cfg = merge_model_config(default_model_config(), config)
    if overrides:
        cfg = merge_model_config(cfg, overrides)
    return PerceptionModel(cfg)


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------
def _plain(obj: Any) -> Any:
    """Reduce metadata to weights_only-safe plain values."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, str):  # also str subclasses such as torch.__version__
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def model_payload(model: PerceptionModel, extra: Mapping | None = None) -> dict:
    state = {k: {n: t.detach().cpu().clone() for n, t in sd.items()}
             for k, sd in model.trainable_state().items()}
    config = copy.deepcopy(dict(model.config))
    files = model.encoder_files()
    for m, rec in files.items():  # the absolute path, whatever the training config said
        config[m] = {**dict(config[m]), "path": rec["path"]}
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": _plain(config),
        "class_names": list(model.class_names),
        "modalities": list(model.modalities),
        "state_dicts": state,
        "calibration": model.calibrator.summary(),
        "encoder_ids": model.refresh_encoder_ids(),
        "encoder_files": files,
        "embedding_dims": dict(model.embedding_dims),
        "metadata": _plain(dict(extra or {})),
    }


def save_model(model: PerceptionModel, path: str | os.PathLike, extra: Mapping | None = None) -> Path:
    """Write the bundle atomically (temp file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = model_payload(model, extra)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    try:  # never write a file load_model would refuse
        torch.load(tmp, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        tmp.unlink(missing_ok=True)
        raise ValueError(f"model bundle would not be weights_only-loadable: {exc}") from None
    os.replace(tmp, path)
    return path


def read_model_file(path: str | os.PathLike) -> dict:
    """Load and validate the raw bundle dict (no model construction); ModelLoadError on failure."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc}") from None
    if not data:
        raise ModelLoadError(f"model file {path} is empty")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelLoadError(
            f"model file {path} is truncated or not a torch checkpoint "
            f"({len(data)} bytes, no valid archive directory)")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any torch/pickle failure is a corrupt file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model file {path} is corrupt or unsafe to load: {first[:200]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ModelLoadError(f"{path} is a torch file but not an aecf_ros model bundle "
                             f"(missing format tag {FORMAT_NAME!r})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ModelLoadError(f"{path} has model format version {version!r}; this aecf_ros reads "
                             f"versions 1..{FORMAT_VERSION} - upgrade aecf_ros or retrain")
    for key in ("config", "class_names", "state_dicts", "calibration"):
        if key not in payload:
            raise ModelLoadError(f"{path} is incompatible: bundle has no {key!r} entry")
    return payload


def locate_encoder_file(bundle: Path, modality: str, record: Mapping,
                        override: str | os.PathLike | None = None) -> Path:
    """The file of a file-backed (TorchScript) encoder whose sha256 is ``record["sha256"]``.

    ``override`` given: that file only. Otherwise, in order: the recorded path (a relative one
    also relative to the bundle's folder), then a file of the same name next to the bundle. The
    first whose content hash matches wins; ``ModelLoadError`` if none exists (missing) or none
    matches (the file was replaced by a different one)."""
    want = str(record.get("sha256", ""))
    recorded = Path(str(record.get("path", "")))
    if override is not None:
        candidates = [Path(override).expanduser()]
    else:
        candidates = [recorded]
        if not recorded.is_absolute():
            candidates.append(bundle.parent / recorded)
        candidates.append(bundle.parent / recorded.name)
    seen, mismatched = set(), []
    for cand in candidates:
        key = os.path.abspath(cand)
        if key in seen:
            continue
        seen.add(key)
        if not cand.is_file():
            continue
        from aecf_ros.encoders.torchscript import file_sha256

        try:
            got = file_sha256(cand)
        except OSError as exc:
            mismatched.append(f"{cand} (unreadable: {exc})")
            continue
        if got == want:
            return cand
        mismatched.append(f"{cand} (sha256 {got[:16]}...)")
    hint = (f"restore the original file, or pass load_model(..., encoder_paths={{{modality!r}: "
            f"<copy of the original>}}), or put the original next to the bundle as "
            f"{bundle.parent / recorded.name}")
    if mismatched:
        raise ModelLoadError(
            f"{bundle}: the {modality} encoder file changed since training: "
            f"{'; '.join(mismatched)} does not match the recorded sha256 {want[:16]}... of "
            f"{recorded}; the fusion was trained on that file's embeddings - {hint}, or retrain")
    looked = ", ".join(str(c) for c in candidates)
    raise ModelLoadError(f"{bundle}: {modality} encoder file not found (looked at {looked}); the "
                         f"bundle was trained with {recorded} (sha256 {want[:16]}...) - {hint}")


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "auto",
               encoder_paths: Mapping[str, str | os.PathLike] | None = None) -> PerceptionModel:
    """Rebuild a :class:`PerceptionModel` from a bundle (``None`` -> the shipped default).

    A bundle trained with a user's TorchScript encoder records that file's path and sha256;
    the file is looked up by :func:`locate_encoder_file` (recorded path, then the same file
    name next to the bundle) or taken from ``encoder_paths`` (``{"camera": "/new/trunk.pt"}``,
    for a moved file); its content must hash to the recorded sha256."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    payload = read_model_file(path)
    dev = resolve_device(device)
    config = dict(payload["config"])
    config["class_names"] = list(payload["class_names"])
    files = payload.get("encoder_files") or {}
    encoder_paths = dict(encoder_paths or {})
    unknown = set(encoder_paths) - set(files)
    if unknown:
        raise ModelLoadError(f"encoder_paths names {sorted(unknown)}, but {path} has file-backed "
                             f"encoders only for {sorted(files) or 'no modality'}")
    for m, rec in files.items():
        found = locate_encoder_file(path, m, rec, encoder_paths.get(m))
        config[m] = {**dict(config[m]), "path": str(found)}
    try:
        model = PerceptionModel(config)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{path} is incompatible with this aecf_ros: cannot build the model "
                             f"from its config ({type(exc).__name__}: {exc})") from None
    states = payload["state_dicts"]
    names = [n for n in ("camera_encoder", "lidar_encoder")
             if getattr(model, n) is not None and not is_file_backed(getattr(model, n))]
    for name in names + ["fusion", "head", "calibrator"]:
        if name not in states:
            raise ModelLoadError(f"{path} is incompatible: no weights for {name}")
        try:
            getattr(model, name).load_state_dict(states[name], strict=True)
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0]
            raise ModelLoadError(f"{path} is incompatible: weights for {name} do not match "
                                 f"this architecture ({first[:200]})") from None
    model.metadata = dict(payload.get("metadata", {}))
    model.eval()
    model.to(dev)
    ids = model.refresh_encoder_ids()
    saved = payload.get("encoder_ids") or {}
    for m in ("camera", "lidar"):
        if m in files and m in ids and saved.get(m) != ids[m]:
            raise ModelLoadError(f"{path}: the {m} encoder built from {config[m]['path']} has id "
                                 f"{ids[m]}, the bundle recorded {saved.get(m)} (file changed "
                                 f"while loading, or different input size)")
        elif m in saved and m in ids and saved[m] != ids[m]:
            raise ModelLoadError(f"{path} is corrupt: {m} weights hash {ids[m]} differs from the "
                                 f"recorded {saved[m]}")
    if "text" in saved and "text" in ids and saved["text"] != ids["text"]:
        raise ModelLoadError(f"{path} was trained with text encoder {saved['text']} but this "
                             f"machine builds {ids['text']}; its embeddings would not match")
    return model
