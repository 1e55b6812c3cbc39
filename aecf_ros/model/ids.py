"""Encoder ids: what an encoder node stamps into ``ModalityEmbedding.encoder_id`` so a fusion
node can refuse embeddings of another encoder (architecture + weights hash, or file sha256)."""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from aecf_ros.model.errors import ModelLoadError


def is_file_backed(encoder: nn.Module | None) -> bool:
    """A frozen encoder loaded from a user file (TorchScript): recorded by path + sha256 in the
    bundle instead of by weights."""
    return encoder is not None and bool(getattr(encoder, "frozen", False)) \
        and isinstance(getattr(encoder, "sha256", None), str)


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
