"""What stage 1 and stage 2 both use: the cached-embedding set, the cosine LR factor and the
resumable state of a training loop (:func:`loop_state` / :func:`resume_loop`).

Its own module so that ``stage1`` (which produces :class:`EmbeddingSet`) and ``stage2`` (which
trains on it with the same schedule as stage 1) do not import each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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


def loop_state(epoch: int, opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator, history: dict,
               **extra: Any) -> dict:
    """The state a training loop hands to ``on_epoch_end`` after ``epoch`` epochs: optimiser,
    LR scheduler, the data loader's RNG and the history, plus the loop's own ``extra`` entries
    (stage 1: ``net``, ``augment_rng``; stage 2: ``torch_rng``, ``curriculum_step``)."""
    return {"epoch": epoch, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "loader_rng": gen.get_state(), **extra, "history": history}


def resume_loop(state: dict, opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator) -> tuple[int, dict]:
    """Restore the common part of a :func:`loop_state` into ``opt``, ``sched`` and ``gen``;
    returns (the epoch to start at, the history so far). The loop restores its extras itself."""
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["loader_rng"])
    return int(state["epoch"]), state["history"]
