"""Baseline fusion methods with the same interface and ``FusionOutput`` as :class:`AECFusion`.

* :class:`ConcatFusion`   zero-filled projections + presence flags -> MLP.
* :class:`MeanFusion`     mean of the present projections.
* :class:`AttentionFusion` the AECF gate without curriculum; ``moddrop_p > 0`` adds ModDrop
  (uniform random modality dropout in training, at least one modality kept).

For concat and mean, ``weights`` reports uniform weights over the present modalities (so
``entropy`` is 1 with >= 2 present). ``build_fusion(method, ...)`` builds any of them by name and
:func:`objective_flags` says which AECF loss terms a method trains with.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional

import torch
from torch import Tensor, nn

from . import functional as AF
from .fusion import AECFusion, CurriculumConfig, FusionBase, FusionOutput

__all__ = [
    "ConcatFusion",
    "MeanFusion",
    "AttentionFusion",
    "FUSION_METHODS",
    "AECF_ABLATIONS",
    "build_fusion",
    "objective_flags",
    "moddrop_mask",
]


def _uniform_weights(present: Tensor, dtype: torch.dtype) -> Tensor:
    counts = present.sum(dim=-1, keepdim=True).clamp(min=1)
    return (present.float() / counts.float()).to(dtype)


def moddrop_mask(present: Tensor, p: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """ModDrop: drop each present modality independently with probability ``p``, keeping at least
    one (a uniformly chosen originally-present one) in every row that had any.

    Args:
        present (BoolTensor[B, M]): available modalities.
        p (float): drop probability in [0, 1].
        generator (torch.Generator, optional): RNG.

    Returns:
        BoolTensor[B, M], a subset of ``present``; rows that had any modality keep >= 1.
    """
    if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
        raise ValueError(f"moddrop probability has to be between 0 and 1, but got {p}")
    if present.dim() != 2 or present.dtype != torch.bool:
        raise ValueError(f"present must be a BoolTensor[B, M], but got {present.dtype} {tuple(present.shape)}")
    with torch.no_grad():
        rng_device = generator.device if generator is not None else present.device
        u_drop = torch.rand(present.shape, generator=generator, device=rng_device).to(present.device)
        u_keep = torch.rand(present.shape, generator=generator, device=rng_device).to(present.device)
        kept = present & (u_drop >= p)
        rescue = present.any(dim=-1) & ~kept.any(dim=-1)
        choice = torch.where(present, u_keep, torch.full_like(u_keep, -1.0)).argmax(dim=-1)
        one_hot = torch.nn.functional.one_hot(choice, present.shape[1]).bool()
        return kept | (one_hot & rescue.unsqueeze(1))


class ConcatFusion(FusionBase):
    """Concatenate zero-filled per-modality projections and the presence flags, then an MLP.

    Args:
        input_dims (Mapping[str, int]): modality -> width.
        embed_dim (int): fused width ``E``.
        hidden (int): MLP hidden width (default ``2 * embed_dim``).
    """

    def __init__(self, input_dims: Mapping[str, int], embed_dim: int = 128, *, hidden: Optional[int] = None) -> None:
        super().__init__(input_dims, embed_dim)
        hidden = hidden or 2 * embed_dim
        self.mlp = nn.Sequential(
            nn.Linear(self.num_modalities * embed_dim + self.num_modalities, hidden),
            nn.GELU(),
            nn.Linear(hidden, embed_dim),
        )

    def forward(self, embeddings: Mapping[str, Tensor], present: Optional[Tensor] = None, *,
                curriculum: Optional[bool] = None) -> FusionOutput:
        """Same contract as :meth:`AECFusion.forward` (``curriculum`` has no effect)."""
        present = self._validate(embeddings, present)
        projections = self._project(embeddings, present)
        stacked = self._stack(projections)
        flat = torch.cat([stacked.flatten(1), present.to(stacked.dtype)], dim=-1)
        no_input = ~present.any(dim=-1)
        fused = self.mlp(flat)
        fused = torch.where(no_input.unsqueeze(1), 0.0, fused)
        weights = _uniform_weights(present, stacked.dtype)
        return FusionOutput(fused, weights, AF.gate_entropy(weights, present), no_input, present, projections)


class MeanFusion(FusionBase):
    """Mean of the present modalities' projections (zeros when none is present)."""

    def forward(self, embeddings: Mapping[str, Tensor], present: Optional[Tensor] = None, *,
                curriculum: Optional[bool] = None) -> FusionOutput:
        """Same contract as :meth:`AECFusion.forward` (``curriculum`` has no effect)."""
        present = self._validate(embeddings, present)
        projections = self._project(embeddings, present)
        stacked = self._stack(projections)
        weights = _uniform_weights(present, stacked.dtype)
        fused = self._weighted_sum(weights, stacked)
        no_input = ~present.any(dim=-1)
        return FusionOutput(fused, weights, AF.gate_entropy(weights, present), no_input, present, projections)


class AttentionFusion(AECFusion):
    """The AECF gate without curriculum, optionally with ModDrop training.

    Args:
        input_dims, embed_dim, gate_hidden, generator: as :class:`AECFusion`.
        moddrop_p (float): ModDrop probability in training (0 = plain attention fusion).
    """

    def __init__(self, input_dims: Mapping[str, int], embed_dim: int = 128, *, gate_hidden: int = 64,
                 moddrop_p: float = 0.0, generator: Optional[torch.Generator] = None) -> None:
        if not (isinstance(moddrop_p, (int, float)) and 0.0 <= moddrop_p <= 1.0):
            raise ValueError(f"moddrop_p has to be between 0 and 1, but got {moddrop_p}")
        super().__init__(input_dims, embed_dim, curriculum=None, gate_hidden=gate_hidden,
                         presence_tokens=False, generator=generator)
        self.moddrop_p = float(moddrop_p)

    def _training_mask_enabled(self) -> bool:
        return self.moddrop_p > 0.0

    def _training_mask(self, present: Tensor, logits: Tensor) -> Tensor:
        self.training_mask_calls += 1
        return moddrop_mask(present, self.moddrop_p, generator=self.generator)


FUSION_METHODS = (
    "concat",
    "mean",
    "attention",
    "moddrop",
    "aecf",
    "aecf_no_curriculum",
    "aecf_no_entropy",
    "aecf_no_calibration",
    "aecf_no_distillation",
    "aecf_no_presence",
    "aecf_entropy_rule",
    "aecf_uniform_mask",
)

#: AECF ablations: method name -> what it switches off (one part each; "aecf" is the full method).
AECF_ABLATIONS = {
    "aecf_no_curriculum": "no masking curriculum (full inputs + objective only)",
    "aecf_no_entropy": "no entropy regulariser",
    "aecf_no_calibration": "no subset-calibration hinge",
    "aecf_no_distillation": "no subset-to-full self-distillation",
    "aecf_no_presence": "no learned missing-modality tokens",
    "aecf_entropy_rule": "original absolute curriculum p = base_rate (1 - H) instead of the batch rank",
    "aecf_uniform_mask": "masking at the rank rule's mean rate, samples and sensors chosen uniformly "
                         "at random (no entropy ranking, no gate-weighted choice)",
}


def objective_flags(method: str) -> Dict[str, bool]:
    """Which :class:`~aecf_ros.core.losses.AECFObjective` terms a method trains with.

    Returns ``{"use_entropy", "use_infonce", "use_calibration", "use_distillation"}`` (bools),
    ready for ``AECFObjective(**objective_flags(method))``. Baselines train on the task loss only.
    """
    if method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion method '{method}'; expected one of {list(FUSION_METHODS)}")
    if not method.startswith("aecf"):
        return {"use_entropy": False, "use_infonce": False, "use_calibration": False,
                "use_distillation": False}
    return {
        "use_entropy": method != "aecf_no_entropy",
        "use_infonce": True,
        "use_calibration": method != "aecf_no_calibration",
        "use_distillation": method != "aecf_no_distillation",
    }


def build_fusion(method: str, input_dims: Mapping[str, int], embed_dim: int = 128, **kw) -> nn.Module:
    """Build a fusion module by name (one of ``FUSION_METHODS``).

    Keyword arguments go to the constructor: ``hidden`` (concat); ``gate_hidden``, ``generator``
    (attention/moddrop/aecf*); ``moddrop_p`` (moddrop, default 0.3); ``curriculum`` (aecf and
    its ablations that keep a curriculum; default ``CurriculumConfig()``; ``aecf_entropy_rule``
    forces ``rule="entropy"``, ``aecf_uniform_mask`` ``rule="uniform"``); ``presence_tokens`` (aecf*, forced off by ``aecf_no_presence``).
    """
    if method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion method '{method}'; expected one of {list(FUSION_METHODS)}")
    if method == "concat":
        return ConcatFusion(input_dims, embed_dim, **kw)
    if method == "mean":
        if kw:
            raise ValueError(f"mean fusion takes no options, but got {sorted(kw)}")
        return MeanFusion(input_dims, embed_dim)
    if method == "attention":
        return AttentionFusion(input_dims, embed_dim, **kw)
    if method == "moddrop":
        kw.setdefault("moddrop_p", 0.3)
        return AttentionFusion(input_dims, embed_dim, **kw)
    if method == "aecf_no_curriculum":
        kw.pop("curriculum", None)
        return AECFusion(input_dims, embed_dim, curriculum=None, **kw)
    if method == "aecf_no_presence":
        kw["presence_tokens"] = False
    curriculum = kw.pop("curriculum", None) or CurriculumConfig()
    if method == "aecf_entropy_rule":
        curriculum = dataclasses.replace(curriculum, rule="entropy")
    if method == "aecf_uniform_mask":
        curriculum = dataclasses.replace(curriculum, rule="uniform")
    return AECFusion(input_dims, embed_dim, curriculum=curriculum, **kw)
