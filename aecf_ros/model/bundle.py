"""The bundle file format: one ``torch.save`` file of plain values, written atomically and
read with ``weights_only=True``; see :mod:`aecf_ros.model` for the layout."""
from __future__ import annotations

import copy
import io
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor

from aecf_ros.model.errors import ModelLoadError
from aecf_ros.model.ids import is_file_backed
from aecf_ros.model.perception import PerceptionModel, resolve_device

FORMAT_NAME = "aecf_ros.model"
FORMAT_VERSION = 2  # 2: calibrator gained the presence-aware Platt scaler + default mode
DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "default.pt"


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
        "sensors": model.sensors_record(),
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
               encoder_paths: Mapping[str, str | os.PathLike] | None = None,
               parts: Iterable[str] | None = None) -> PerceptionModel:
    """Rebuild a :class:`PerceptionModel` from a bundle (``None`` -> the shipped default).

    A bundle trained with a user's TorchScript encoder records that file's path and sha256;
    the file is looked up by :func:`locate_encoder_file` (recorded path, then the same file
    name next to the bundle) or taken from ``encoder_paths`` (``{"camera": "/new/trunk.pt"}``,
    for a moved file); its content must hash to the recorded sha256.

    ``parts``: build only these encoders (modality names) and skip the others (``["camera"]`` for
    the camera encoder node, ``["fusion"]`` or ``[]`` for the fusion node: no encoder at all). The
    fusion, head and calibrator (small) are always built; a skipped encoder's embedding width and
    id come from the bundle (``embedding_dims``, ``encoder_ids``), so ``encoder_ids`` is complete
    either way. ``None``: everything."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    payload = read_model_file(path)
    dev = resolve_device(device)
    config = dict(payload["config"])
    config["class_names"] = list(payload["class_names"])
    fusion_cfg = config.get("fusion")
    if isinstance(fusion_cfg, Mapping) and str(fusion_cfg.get("method", "")).startswith("aecf") \
            and "presence_tokens" not in fusion_cfg:
        # saved before AECF had learned missing-modality tokens (the shipped default.pt among
        # them): it was trained without them, so it is rebuilt without them
        config["fusion"] = {**dict(fusion_cfg), "presence_tokens": False}
    skipped, skipped_families = _skipped_encoders(payload, config, parts)
    files = {m: r for m, r in (payload.get("encoder_files") or {}).items() if m not in skipped_families}
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
    for m in (m for m in ids if model.sensor_families.get(m) in ("camera", "lidar")):
        family = model.sensor_families[m]
        if family in files and saved.get(m) != ids[m]:
            raise ModelLoadError(f"{path}: the {m} encoder built from {config[family]['path']} has id "
                                 f"{ids[m]}, the bundle recorded {saved.get(m)} (file changed "
                                 f"while loading, or different input size)")
        elif m in saved and m in ids and saved[m] != ids[m]:
            raise ModelLoadError(f"{path} is corrupt: {m} weights hash {ids[m]} differs from the "
                                 f"recorded {saved[m]}")
    for m in (m for m in ids if model.sensor_families.get(m) == "text"):
        if m in saved and saved[m] != ids[m]:
            raise ModelLoadError(f"{path} was trained with text encoder {saved[m]} but this "
                                 f"machine builds {ids[m]}; its embeddings would not match")
    if skipped:
        model._encoder_ids = {**{m: saved[m] for m in skipped if m in saved}, **ids}
    return model


def _skipped_encoders(payload: Mapping, config: dict, parts: Iterable[str] | None) -> tuple[list[str], list[str]]:
    """Modalities (sensor names) whose encoder is not built and the encoder families left out
    (``config[family] = None``; the sensors' widths from ``embedding_dims``). A family is built
    when any wanted sensor uses it (two cameras share one CNN)."""
    if parts is None:
        return [], []
    from aecf_ros.model.perception import FAMILIES

    wanted = set(parts)
    dims = dict(payload.get("embedding_dims") or {})
    modalities = list(config.get("modalities") or payload.get("modalities") or ())
    families = dict(config.get("sensor_families") or {})
    family_of = {m: families.get(m, m if m in FAMILIES else None) for m in modalities}
    skipped, skipped_families = [], []
    for f in FAMILIES:
        users = [m for m in modalities if family_of[m] == f]
        if not users or config.get(f) is None or any(m in wanted for m in users):
            continue
        if any(m not in dims for m in users):  # an old bundle without recorded widths: build it after all
            continue
        config[f] = None
        config["input_dims"] = {**dict(config.get("input_dims") or {}), **{m: int(dims[m]) for m in users}}
        skipped += users
        skipped_families.append(f)
    return skipped, skipped_families
