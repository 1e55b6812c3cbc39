"""``PerceptionModel``: encoders + fusion + head + calibrator, and ``build_model``."""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from aecf_ros.graph import MODALITIES
from aecf_ros.model.calibrator import Calibrator
from aecf_ros.model.config import default_model_config, merge_model_config, small_model_config
from aecf_ros.model.errors import ModelLoadError
from aecf_ros.model.factories import (build_camera_encoder, build_fusion_from_config, build_head,
                                      build_lidar_encoder, build_text_encoder)
from aecf_ros.model.ids import _arch_id, _out_dim, _state_hash, is_file_backed

#: the encoder families a model can hold (one module each, shared by the sensors of the family)
FAMILIES = ("camera", "lidar", "text")


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode inside the block, its own mode restored after. A module already in
    eval mode (the nodes' loaded models) is not touched: ``train()`` walks every submodule, which
    was 40 % of the fusion node's per-output step (``predict``: eval() + train() over ~70 modules)."""
    if not module.training:
        yield
        return
    module.eval()
    try:
        yield
    finally:
        module.train(True)


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
        # sensor name -> the encoder family that encodes it (``camera`` CNN, ``lidar`` PointNet,
        # ``text``; None: embeddings arrive ready). Sensors of one family share its encoder's
        # weights (two cameras, one CNN). Default: the package's own camera/lidar/text names.
        families = dict(self.config.get("sensor_families") or {})
        self.sensor_families: dict[str, str | None] = {
            m: families.get(m, m if m in FAMILIES else None) for m in self.modalities}
        unknown = {f for f in self.sensor_families.values() if f is not None and f not in FAMILIES}
        if unknown:
            raise ValueError(f"unknown encoder famil{'y' if len(unknown) == 1 else 'ies'} {sorted(unknown)} "
                             f"(known: {', '.join(FAMILIES)})")
        self.config["sensor_families"] = dict(self.sensor_families)
        used = set(self.sensor_families.values())
        has = {f: f in used and self.config.get(f) is not None for f in FAMILIES}
        self.camera_encoder = build_camera_encoder(self.config["camera"]) if has["camera"] else None
        self.lidar_encoder = build_lidar_encoder(self.config["lidar"]) if has["lidar"] else None
        text = build_text_encoder(self.config["text"]) if has["text"] else None
        if text is not None:
            for p in text.parameters():
                p.requires_grad_(False)
            text.eval()
        # kept out of state_dict()/parameters(): frozen, recreated from its name on load
        object.__setattr__(self, "_text_encoder", text)
        self.embedding_dims: dict[str, int] = {}
        for m in self.modalities:
            enc = self.family_encoders().get(self.sensor_families[m])
            if enc is not None:
                self.embedding_dims[m] = _out_dim(enc)
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

    def _drop_inference_cache(self) -> None:
        self.__dict__.pop("_camera_inference", None)  # prepare_inference() makes it again

    def train(self, mode: bool = True):
        self._drop_inference_cache()  # weights may change from here on
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._drop_inference_cache()
        return super().load_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):  # keep the frozen text encoder on the same device
        self._drop_inference_cache()
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
            if self.sensor_families[m] == "text":
                ids[m] = _arch_id(enc, with_hash=True)
            elif is_file_backed(enc):
                ids[m] = f"{_arch_id(enc)}@{enc.sha256}"
            else:
                ids[m] = f"{_arch_id(enc)}@{_state_hash(enc)}"
        self._encoder_ids = ids
        return dict(self._encoder_ids)

    def encoder_files(self) -> dict[str, dict]:
        """``{family: {"path": absolute path, "sha256": hex}}`` of the file-backed encoders."""
        return {f: {"path": str(enc.path), "sha256": str(enc.sha256)}
                for f, enc in self.family_encoders().items() if is_file_backed(enc)}

    def family_encoders(self) -> dict[str, nn.Module]:
        """Encoder family (``camera`` / ``lidar`` / ``text``) -> its module, for those built."""
        all_enc = {"camera": self.camera_encoder, "lidar": self.lidar_encoder,
                   "text": self._text_encoder}
        return {f: e for f, e in all_enc.items() if e is not None}

    def encoders(self) -> dict[str, nn.Module]:
        """The modalities (sensor names) that have an encoder in this model -> encoder module
        (sensors of one family map to the same module)."""
        fam = self.family_encoders()
        return {m: fam[f] for m, f in self.sensor_families.items() if f in fam}

    def sensors_record(self) -> list[dict]:
        """What the bundle records of its sensors: name, encoder family, encoder id, and which
        sensors share that encoder's weights."""
        ids = self.encoder_ids
        out = []
        for m in self.modalities:
            f = self.sensor_families[m]
            out.append({"name": m, "family": f, "encoder_id": ids.get(m, ""),
                        "shares_encoder_with": [o for o in self.modalities
                                                if o != m and f is not None and self.sensor_families[o] == f]})
        return out

    def _need(self, family: str) -> nn.Module:
        enc = self.family_encoders().get(family)
        if enc is None:
            raise RuntimeError(f"this model has no {family} encoder (embedding-only model for "
                               f"modalities {list(self.modalities)})")
        return enc

    # -- encoders (single preprocessing path) ---------------------------------------------
    @torch.inference_mode()
    def encode_camera(self, rgb: np.ndarray) -> Tensor:
        """RGB uint8 HxWx3 (any size) -> embedding Tensor[D] (on the model device)."""
        self._need("camera")
        x = self.camera_encoder.preprocess(rgb).unsqueeze(0).to(self.device)
        fast = self.__dict__.get("_camera_inference")
        if fast is not None and not self.camera_encoder.training:
            return fast(x)[0]
        with _eval_mode(self.camera_encoder):
            return self.camera_encoder(x)[0]

    def prepare_inference(self) -> list[str]:
        """Speed up batch-1 encoding for a model that only runs inference (the nodes call it after
        loading): the built-in camera CNN is replaced, at inference, by a frozen trace of its
        weights (:meth:`~aecf_ros.encoders.camera.CameraEncoder.frozen_for_inference`, CPU only).
        Returns what was prepared. Training (``.train()``) uses the module itself; after changing
        weights call this again."""
        from aecf_ros.encoders.camera import CameraEncoder

        done = []
        if isinstance(self.camera_encoder, CameraEncoder) and self.device.type == "cpu":
            object.__setattr__(self, "_camera_inference", self.camera_encoder.frozen_for_inference())
            done.append("camera")
        return done

    @torch.inference_mode()
    def encode_lidar(self, points: np.ndarray) -> Tensor:
        """Points float[N, >=3] (x, y, z[, intensity], sensor frame, metres) -> Tensor[D]."""
        from aecf_ros.encoders.lidar import collate_points

        self._need("lidar")
        pts, mask = collate_points([self.lidar_encoder.preprocess(points)])
        with _eval_mode(self.lidar_encoder):
            return self.lidar_encoder(pts.to(self.device), mask.to(self.device))[0]

    @torch.inference_mode()
    def encode_text(self, text: str) -> Tensor:
        """A caption / operator sentence -> embedding Tensor[D]."""
        self._need("text")
        out = self._text_encoder.encode([text])
        if not isinstance(out, Tensor):
            out = torch.as_tensor(np.asarray(out), dtype=torch.float32)
        return out[0].to(self.device, torch.float32)

    def encode(self, modality: str, raw) -> Tensor:
        """Embedding of one sensor's raw input, by the encoder of that sensor's family."""
        family = self.sensor_families.get(modality)
        if family is None:
            raise RuntimeError(f"this model encodes no {modality!r} input (sensors with encoders: "
                               f"{sorted(self.encoders())})")
        return getattr(self, f"encode_{family}")(raw)

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
        with _eval_mode(self):  # (a model already in eval mode, e.g. a node's, is not re-walked)
            logits, out = self.forward(emb, present)
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
