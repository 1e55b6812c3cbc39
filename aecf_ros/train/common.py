"""What stage 1 and stage 2 both use: the cached-embedding set and the cosine LR factor.

Its own module so that ``stage1`` (which produces :class:`EmbeddingSet`) and ``stage2`` (which
trains on it with the same schedule as stage 1) do not import each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from aecf_ros.graph import MODALITIES


@dataclass
class EmbeddingSet:
    """Cached embeddings of one split: per-modality Tensor[N, D_m], labels[N, C], present[N, M]."""

    embeddings: dict[str, Tensor]
    labels: Tensor
    present: Tensor
    modalities: tuple[str, ...] = MODALITIES
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx) -> "EmbeddingSet":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return EmbeddingSet({m: t[idx] for m, t in self.embeddings.items()}, self.labels[idx],
                            self.present[idx], self.modalities, dict(self.meta))

    def tensors(self) -> list[Tensor]:
        return [self.embeddings[m] for m in self.modalities] + [self.labels, self.present]


def stage1_lr_factor(step: int, total: int, warmup: int = 0) -> float:
    """LR multiplier at optimiser step ``step``: linear warm-up ``(step + 1) / warmup`` for the
    first ``warmup`` steps, times a cosine decay from 1 to 0 over ``total`` steps."""
    ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return ramp * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
