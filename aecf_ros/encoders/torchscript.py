"""Loading a user's TorchScript encoder file (shared by the camera and lidar wrappers).

A file-backed encoder is frozen (eval mode, no gradients) and identified by the sha256 of the
file's bytes: the model bundle records ``{"path", "sha256"}`` instead of the weights, and
:func:`aecf_ros.model.load_model` refuses a file whose hash differs (the file was swapped).
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

_CHUNK = 1 << 20


class EncoderLoadError(ValueError):
    """An encoder file could not be used (missing, not TorchScript, wrong output)."""


def file_sha256(path: str | Path) -> str:
    """Full hex sha256 of a file's bytes (streamed: works for multi-GB trunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def load_scripted(path: str | Path, what: str) -> tuple[torch.jit.ScriptModule, Path, str]:
    """``(frozen module on CPU, resolved path, sha256 of the bytes loaded)``.

    The bytes are read once, hashed and loaded from memory, so the hash is the hash of exactly
    what runs. ``EncoderLoadError`` (naming the file) for a missing or non-TorchScript file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise EncoderLoadError(f"TorchScript {what} encoder not found: {path}")
    data = path.read_bytes()
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError / ValueError / zipfile errors
        raise EncoderLoadError(f"{path} is not a loadable TorchScript module: {exc}") from exc
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module, path.resolve(), hashlib.sha256(data).hexdigest()
