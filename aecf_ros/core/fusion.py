"""AECFusion: entropy-gated fusion of per-modality embeddings with a masking curriculum.

Paper: "Robust Multimodal Learning via Entropy-Gated Contrastive Fusion", arXiv 2505.15417.

Interface (shared by every fusion method, see docs/ARCHITECTURE.md)::

    out: FusionOutput = fusion(embeddings: Mapping[str, Tensor[B, D_m]], present: BoolTensor[B, M])

The maths lives in :mod:`aecf_ros.core.functional`; the modules here hold parameters and
configuration only.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Dict, Mapping, NamedTuple, Optional

import torch
from torch import Tensor, nn

from . import functional as AF

__all__ = ["CURRICULUM_RULES", "CurriculumConfig", "FusionOutput", "ModalityProjection", "FusionBase", "AECFusion",
           "INPUT_ABS_LIMIT", "DEFAULT_WARMUP_FRACTION", "REFERENCE_TRAINING_STEPS"]

#: Largest |value| of an input embedding at which the fusion is exact in float16 as well as
#: float32 (a projection row of up to 1024 inputs stays far below float16's 65504). The maths
#: below stays finite for ANY finite input (rows are pre-scaled, LayerNorm is scale-invariant);
#: run-time callers drop and count inputs beyond this bound as ``out_of_range``.
INPUT_ABS_LIMIT = 1.0e4
_HALF_PRESCALE = 64.0


CURRICULUM_RULES = ("rank", "entropy", "uniform")

#: Optimiser steps of the benchmark's stage 2 (``config/train.yaml``): 30 epochs x 23 steps
#: (3000 training samples, batch 128, the last partial batch dropped) = 690. The shipped model
#: and every benchmark result were trained with a 300-step warm-up over these 690 steps.
REFERENCE_TRAINING_STEPS = 690
#: Default warm-up as a fraction of training: ``round(0.435 * 690) = 300``, so the benchmark's
#: schedule is reproduced step for step (0.435 of 30 epochs = 13.05 epochs), and any other
#: data size or epoch count gets the same curriculum shape over its own training length.
DEFAULT_WARMUP_FRACTION = 0.435


@dataclass
class CurriculumConfig:
    """AECF masking curriculum (the defaults are the benchmark's recommendation: ``min_rate``
    0.3 / ``max_rate`` 0.9 won the equal-budget sweep on VALIDATION, mean over both regimes,
    ``docs/results/sweep/``).

    Attributes:
        rule: ``"rank"`` (default): a sample's masking probability grows with the RANK of its
            gate's confidence (low entropy) within the batch, from ``min_rate`` to ``max_rate``
            (:func:`~aecf_ros.core.functional.ranked_mask_probability`), so the mean rate stays
            ``(min_rate + max_rate) / 2`` however uniform the entropy regulariser keeps the gate.
            ``"entropy"``: the original absolute rule ``p = base_rate * (1 - H)`` (kept as an
            ablation: with the entropy regulariser it masked 2.2 % (standard) and 6.6 % (dominant) of
            modalities in the benchmark, docs/results/).
            ``"uniform"``: the control for the entropy ranking (an ablation, never a default):
            every eligible sample gets the rank rule's mean rate ``(min_rate + max_rate) / 2``
            (same warm-up) and the dropped modalities are chosen uniformly at random, not by
            gate weight; so it masks exactly as much as ``"rank"`` does, without the entropy.
        min_rate, max_rate: rank rule's per-modality drop probability for the least / most
            confident sample of a batch, 0 <= min_rate <= max_rate <= 1.
        base_rate: entropy rule's drop probability for a fully confident (entropy 0) gate.
        warmup_fraction: the drop probability ramps linearly from 0 over this fraction of
            training, in [0, 1] (0 = no warm-up). Scale-free: tell the fusion how long training
            is with ``fusion.set_training_length(total_optimiser_steps)`` (``aecf-ros train``
            does), advance it with ``fusion.step()`` once per optimiser step. The default 0.435
            is the benchmark's schedule exactly (300 of its 690 steps,
            :data:`DEFAULT_WARMUP_FRACTION`). Without a training length the fusion assumes the
            benchmark's :data:`REFERENCE_TRAINING_STEPS` (690, so 300 warm-up steps by default)
            and warns once.
        warmup_steps: explicit override in optimiser steps (>= 0; 0 means no warm-up), for old
            configs and bundles; when set, ``warmup_fraction`` and the training length are not
            used (as ``warmup_steps`` overrides ``warmup_ratio`` in HF ``TrainingArguments``).
            ``None`` (default): the warm-up is ``warmup_fraction`` of training.
        min_present: never mask below this many present modalities (>= 1 keeps a prediction).
        enabled: master switch (``curriculum=None`` in ``forward`` means on iff training and this).
    """

    rule: str = "rank"
    min_rate: float = 0.3
    max_rate: float = 0.9
    base_rate: float = 0.5
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION
    warmup_steps: Optional[int] = None
    min_present: int = 1
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.rule not in CURRICULUM_RULES:
            raise ValueError(f"rule has to be one of {CURRICULUM_RULES}, but got {self.rule!r}")
        for name in ("base_rate", "min_rate", "max_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} has to be between 0 and 1, but got {value}")
        if self.min_rate > self.max_rate:
            raise ValueError(f"min_rate has to be <= max_rate, but got {self.min_rate} > {self.max_rate}")
        wf = self.warmup_fraction
        if isinstance(wf, bool) or not (isinstance(wf, (int, float)) and 0.0 <= wf <= 1.0):
            raise ValueError(f"warmup_fraction has to be between 0 and 1, but got {wf!r}")
        if self.warmup_steps is not None and (
            isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0
        ):
            raise ValueError(f"warmup_steps has to be a non-negative int or None, but got {self.warmup_steps!r}")
        if isinstance(self.min_present, bool) or not isinstance(self.min_present, int) or self.min_present < 0:
            raise ValueError(f"min_present has to be a non-negative int, but got {self.min_present!r}")

    def warmup_length(self, total_steps: int) -> int:
        """Warm-up in optimiser steps for a training of ``total_steps`` (> 0) steps:
        ``warmup_steps`` when set, else ``warmup_fraction * total_steps`` rounded half up (at
        least 1 step when the fraction is > 0). ``warmup_length(690) == 300`` by default."""
        _positive_int(total_steps, "total_steps")
        if self.warmup_steps is not None:
            return self.warmup_steps
        if self.warmup_fraction == 0:
            return 0
        return max(1, int(math.floor(self.warmup_fraction * total_steps + 0.5)))


_DEFAULT = object()  # "use the recommended CurriculumConfig()" (None means no curriculum)


class FusionOutput(NamedTuple):
    """What every fusion method returns.

    fused       Tensor[B, E]      fused embedding (finite; zeros where no_input)
    weights     Tensor[B, M]      gate weights; exactly 0 for absent; rows sum to 1 unless no_input
    entropy     Tensor[B]         H(p) / log(#present) in [0, 1]; 0 where <= 1 modality present
    no_input    BoolTensor[B]     True where no modality was present
    present     BoolTensor[B, M]  the mask actually used (after curriculum masking in training)
    projections dict[str, Tensor[B, E]]  per-modality projections (InfoNCE); zeros where absent
    """

    fused: Tensor
    weights: Tensor
    entropy: Tensor
    no_input: Tensor
    present: Tensor
    projections: Dict[str, Tensor]


class ModalityProjection(nn.Module):
    """Linear -> LayerNorm -> GELU projection of one modality to the shared width.

    Args:
        in_dim (int): the modality's embedding width ``D_m``.
        embed_dim (int): shared width ``E``.
    """

    def __init__(self, in_dim: int, embed_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        """Tensor[B, D_m] -> Tensor[B, E]; finite for any finite input.

        LayerNorm is invariant to scaling its input, so a row whose largest |value| exceeds
        :data:`INPUT_ABS_LIMIT` is divided by ``s = max|x| / INPUT_ABS_LIMIT`` first and the
        bias by the same ``s``: ``LN(W x / s + b / s) == LN(W x + b)`` (up to LayerNorm's eps),
        without the overflow of ``W x`` (1e30 inputs) or its squares (1e20 inputs) in float32.
        Rows within the limit are computed exactly as ``LN(W x + b)``. In float16/bfloat16 the
        pre-scaling starts at 64 so that ``W x`` stays far below float16's 65504.
        """
        limit = INPUT_ABS_LIMIT if x.dtype in (torch.float32, torch.float64) else _HALF_PRESCALE
        scale = (x.detach().abs().amax(dim=-1, keepdim=True) / limit).clamp(min=1.0)
        h = nn.functional.linear(x / scale, self.linear.weight) + self.linear.bias / scale
        return self.act(self.norm(h))


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} has to be a positive int, but got {value!r}")
    return value


class FusionBase(nn.Module):
    """Shared plumbing: modality order, input validation, per-modality projections.

    Subclasses implement ``_fuse(projections, present, training_mask)``.

    Args:
        input_dims (Mapping[str, int]): modality name -> embedding width; its order is the
            column order of ``present`` and of ``FusionOutput.weights``.
        embed_dim (int): shared/fused width ``E``.
    """

    def __init__(self, input_dims: Mapping[str, int], embed_dim: int = 128) -> None:
        super().__init__()
        if not isinstance(input_dims, Mapping) or len(input_dims) == 0:
            raise ValueError(f"input_dims has to be a non-empty mapping name -> width, but got {input_dims!r}")
        for name, dim in input_dims.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"modality names have to be non-empty strings, but got {name!r}")
            _positive_int(dim, f"input_dims[{name!r}]")
        self.embed_dim = _positive_int(embed_dim, "embed_dim")
        self.modalities = tuple(input_dims.keys())
        self.input_dims = dict(input_dims)
        self.projections = nn.ModuleDict(
            {name: ModalityProjection(dim, embed_dim) for name, dim in input_dims.items()}
        )

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    def _validate(self, embeddings: Mapping[str, Tensor], present: Optional[Tensor]) -> Tensor:
        """Check inputs; return the presence mask as BoolTensor[B, M]."""
        if not isinstance(embeddings, Mapping):
            raise ValueError(f"embeddings must be a mapping modality -> Tensor[B, D], got {type(embeddings).__name__}")
        for name in embeddings:
            if name not in self.input_dims:
                raise ValueError(f"unknown modality '{name}'; this fusion expects {list(self.modalities)}")
        batch = -1
        for name in self.modalities:
            if name not in embeddings:
                raise ValueError(
                    f"missing embedding for modality '{name}' (pass zeros and present=False for an absent sensor)"
                )
            x = embeddings[name]
            if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.input_dims[name]:
                shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(
                    f"embedding for modality '{name}' must have shape [B, {self.input_dims[name]}], but got {shape}"
                )
            if batch < 0:
                batch = x.shape[0]
            elif x.shape[0] != batch:
                raise ValueError(
                    f"embedding for modality '{name}' has batch size {x.shape[0]}, expected {batch}"
                )
        first = embeddings[self.modalities[0]]
        if present is None:
            present = torch.ones(batch, self.num_modalities, dtype=torch.bool, device=first.device)
            return self._finite_rows(embeddings, self.modalities, present)
        if not isinstance(present, Tensor):
            raise ValueError(f"present must be a BoolTensor[B, M], but got {type(present).__name__}")
        if present.shape != (batch, self.num_modalities):
            raise ValueError(
                f"present must have shape [{batch}, {self.num_modalities}], but got {tuple(present.shape)}"
            )
        if present.dtype.is_floating_point or present.dtype.is_complex:
            raise ValueError(f"present must be a bool (or integer 0/1) tensor, but got dtype {present.dtype}")
        return present.to(device=first.device, dtype=torch.bool)

    @staticmethod
    def _finite_rows(embeddings: Mapping[str, Tensor], modalities, present: Tensor) -> Tensor:
        """``present`` with rows whose embedding holds a NaN or inf marked absent: a broken
        input is a missing sensor, never a poisoned output (``out.present`` reports it)."""
        finite = torch.stack([torch.isfinite(embeddings[n]).all(dim=-1) for n in modalities], dim=1)
        return present & finite

    def _project(self, embeddings: Mapping[str, Tensor], present: Tensor) -> Dict[str, Tensor]:
        """Project each modality; absent rows are zeroed BEFORE projection (so NaN/garbage from a
        dead sensor cannot leak through ``0 * NaN``) and after it (so they contribute nothing)."""
        out: Dict[str, Tensor] = {}
        for m, name in enumerate(self.modalities):
            col = present[:, m : m + 1]
            x = embeddings[name]
            x = torch.where(col, x, 0.0)  # (a scalar: no zeros tensor allocated per call)
            z = self.projections[name](x)
            out[name] = torch.where(col, z, 0.0)
        return out

    @staticmethod
    def _stack(projections: Dict[str, Tensor]) -> Tensor:
        return torch.stack(list(projections.values()), dim=1)  # [B, M, E]

    @staticmethod
    def _weighted_sum(weights: Tensor, stacked: Tensor) -> Tensor:
        return (weights.unsqueeze(-1).to(stacked.dtype) * stacked).sum(dim=1)

    def _use_training_mask(self, curriculum: Optional[bool]) -> bool:
        if curriculum is None:
            return self.training and self._training_mask_enabled()
        return bool(curriculum)

    def _training_mask_enabled(self) -> bool:
        return False


class AECFusion(FusionBase):
    """Adaptive Entropy-Gated Contrastive Fusion (drop-in ``nn.Module``).

    Each modality is projected (Linear + LayerNorm + GELU) to width ``E``; a gate scores each
    present modality, a masked softmax turns the scores into weights (EXACTLY 0 for absent
    modalities) and the fused embedding is the weighted sum of the projections.

    Gate choice: a shared per-modality MLP scorer ``s_m = MLP(z_m) + b_m`` (``b_m`` a learned
    per-modality bias) rather than one MLP over the concatenation of all modalities. The score
    of a modality depends only on its own projection, so (a) absent modalities cannot influence
    present ones through zero-filled inputs, which a concat gate would see as a shifted input
    distribution for every presence pattern; (b) it works for any number of modalities and is
    permutation-equivariant. It is learned-query attention pooling with a non-linear key (an MLP
    can flag a degraded embedding, e.g. a blacked-out camera, which a linear query-key dot
    product struggles with) and values = projections, so the fused vector lives in the same
    space that InfoNCE aligns.

    Curriculum (training only, see :class:`CurriculumConfig`): from the current batch's gate,
    the DETACHED normalised entropy sets a per-sample masking probability (confident gate ->
    mask more); modalities are dropped preferring the dominant one; the gate is re-normalised
    over the remaining ones and the output is computed from that masked set
    (``out.present`` reports it).

    Warm-up: call ``set_training_length(total_optimiser_steps)`` before training and
    ``step()`` after every optimiser step; the masking rate ramps from 0 over
    ``curriculum.warmup_fraction`` of training (see :class:`CurriculumConfig`).

    Run-time knobs (buffers, saved in ``state_dict``): ``set_gate_prior(temperature, bias)``.

    Args:
        input_dims (Mapping[str, int]): modality -> embedding width (order = column order).
        embed_dim (int): fused width ``E``.
        curriculum (CurriculumConfig | None): masking curriculum; the recommended
            ``CurriculumConfig()`` when not given, None disables it.
        gate_hidden (int): hidden width of the gate MLP.
        presence_tokens (bool): add a learned "missing" vector per absent modality to the fused
            embedding (zero-initialised), so the head knows which sensors are gone and can
            adjust its confidence per presence pattern (default True).
        generator (torch.Generator, optional): RNG for curriculum masks (global RNG if None).
    """

    def __init__(
        self,
        input_dims: Mapping[str, int],
        embed_dim: int = 128,
        *,
        curriculum: Optional[CurriculumConfig] = _DEFAULT,  # type: ignore[assignment]
        gate_hidden: int = 64,
        presence_tokens: bool = True,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__(input_dims, embed_dim)
        if curriculum is _DEFAULT:
            curriculum = CurriculumConfig()
        if curriculum is not None and not isinstance(curriculum, CurriculumConfig):
            raise ValueError(f"curriculum has to be a CurriculumConfig or None, but got {curriculum!r}")
        _positive_int(gate_hidden, "gate_hidden")
        self.curriculum = curriculum
        self.generator = generator
        self.gate = nn.Sequential(nn.Linear(embed_dim, gate_hidden), nn.GELU(), nn.Linear(gate_hidden, 1))
        self.modality_logit_bias = nn.Parameter(torch.zeros(self.num_modalities))
        self.presence_tokens = bool(presence_tokens)
        if self.presence_tokens:
            self.missing_token = nn.Parameter(torch.zeros(self.num_modalities, embed_dim))
        self.register_buffer("gate_temperature", torch.ones(()))
        self.register_buffer("gate_prior_bias", torch.zeros(self.num_modalities))
        self.curriculum_step = 0
        self.training_steps: Optional[int] = None  # set_training_length(); None = not told
        self._warned_no_length = False
        self.training_mask_calls = 0  # counts how often training-only masking actually ran

    # ----------------------------------------------------------------- run-time knobs
    def set_gate_prior(
        self, temperature: Optional[float] = None, bias: Optional[Mapping[str, float]] = None
    ) -> None:
        """Adjust the gate at run time without retraining.

        Args:
            temperature (float, optional): > 0; gate logits are divided by it (> 1 flattens the
                gate towards uniform over present modalities, < 1 sharpens it).
            bias (Mapping[str, float], optional): added to that modality's gate logit (e.g.
                ``{"lidar": -1.0}`` to trust a lidar known to be degraded less). Modalities not
                named keep their current bias.
        """
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
                math.isfinite(temperature) and temperature > 0
            ):
                raise ValueError(f"gate temperature has to be a finite number > 0, but got {temperature!r}")
        if bias is not None:
            if not isinstance(bias, Mapping):
                raise ValueError(f"gate bias has to be a mapping modality -> float, but got {bias!r}")
            for name, value in bias.items():
                if name not in self.modalities:
                    raise ValueError(f"gate bias names unknown modality '{name}'; expected one of {list(self.modalities)}")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"gate bias for '{name}' has to be a finite number, but got {value!r}")
        if temperature is not None:
            self.gate_temperature.fill_(float(temperature))
        if bias is not None:
            for name, value in bias.items():
                self.gate_prior_bias[self.modalities.index(name)] = float(value)

    # ----------------------------------------------------------------- curriculum warm-up
    def step(self) -> None:
        """Advance the curriculum warm-up by one optimiser step."""
        self.curriculum_step += 1

    def set_step(self, step: int) -> None:
        """Set the curriculum warm-up position (e.g. when resuming training)."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step has to be a non-negative int, but got {step!r}")
        self.curriculum_step = step

    def set_training_length(self, total_steps: int) -> None:
        """Tell the curriculum how many optimiser steps training has in all (e.g.
        ``epochs * len(loader)``), so that the warm-up is ``curriculum.warmup_fraction`` of it
        whatever the data size. Call before training (again when resuming is fine)."""
        self.training_steps = _positive_int(total_steps, "total_steps")

    def warmup_length(self) -> int:
        """The curriculum warm-up in optimiser steps (0 = none): ``curriculum.warmup_steps``
        when set, else ``warmup_fraction`` of the training length given to
        :meth:`set_training_length`; without one, of :data:`REFERENCE_TRAINING_STEPS` (the
        benchmark's 690 steps), with a warning once."""
        cur = self.curriculum
        if cur is None:
            return 0
        if cur.warmup_steps is not None:
            return cur.warmup_steps
        total = self.training_steps
        if total is None:
            total = REFERENCE_TRAINING_STEPS
            if cur.warmup_fraction > 0 and not self._warned_no_length:
                self._warned_no_length = True
                warnings.warn(
                    f"AECFusion: curriculum warmup_fraction={cur.warmup_fraction} but no training length "
                    f"was set; assuming {REFERENCE_TRAINING_STEPS} optimiser steps (warm-up "
                    f"{cur.warmup_length(total)} steps). Call fusion.set_training_length(epochs * "
                    f"len(loader)) before training, or give CurriculumConfig(warmup_steps=N).",
                    UserWarning, stacklevel=3)
        return cur.warmup_length(total)

    def warmup_factor(self) -> float:
        """Curriculum ramp in [0, 1] at the current step."""
        length = self.warmup_length()
        if length == 0:
            return 1.0
        return min(1.0, self.curriculum_step / length)

    def _training_mask_enabled(self) -> bool:
        return self.curriculum is not None and self.curriculum.enabled

    # ----------------------------------------------------------------- forward
    def gate_logits(self, stacked: Tensor) -> Tensor:
        """Tensor[B, M, E] projections -> Tensor[B, M] gate logits (prior bias and temperature applied)."""
        scores = self.gate(stacked).squeeze(-1) + self.modality_logit_bias.to(stacked.dtype)
        scores = scores + self.gate_prior_bias.to(stacked.dtype)
        return scores / self.gate_temperature.to(stacked.dtype)

    def _training_mask(self, present: Tensor, logits: Tensor) -> Tensor:
        """Training-only re-masking of ``present`` (AECF curriculum)."""
        if self.curriculum is None:
            raise ValueError("curriculum=True requested but this AECFusion has no CurriculumConfig")
        self.training_mask_calls += 1
        cur = self.curriculum
        with torch.no_grad():
            weights = AF.masked_softmax(logits.detach(), present)
            entropy = AF.gate_entropy(weights, present)
            eligible = present.sum(dim=-1) > cur.min_present
            if cur.rule == "rank":
                prob = AF.ranked_mask_probability(entropy, eligible, cur.min_rate, cur.max_rate,
                                                  self.warmup_factor())
            elif cur.rule == "uniform":  # same mean rate as "rank", no entropy, no gate weights
                rate = 0.5 * (cur.min_rate + cur.max_rate) * self.warmup_factor()
                prob = eligible.float() * rate
                weights = present.float()
            else:
                prob = AF.curriculum_mask_probability(entropy, cur.base_rate, self.warmup_factor())
            return AF.sample_curriculum_mask(
                present, weights, prob, self.curriculum.min_present, generator=self.generator
            )

    def forward(
        self,
        embeddings: Mapping[str, Tensor],
        present: Optional[Tensor] = None,
        *,
        curriculum: Optional[bool] = None,
    ) -> FusionOutput:
        """Fuse per-modality embeddings.

        Args:
            embeddings (Mapping[str, Tensor[B, D_m]]): one tensor per modality (zeros are fine
                for absent ones; their values are never used).
            present (BoolTensor[B, M], optional): presence mask; all True if None.
            curriculum (bool, optional): None = training-time masking iff ``self.training`` and
                it is enabled; False forces it off (full-set prediction); True forces it on.

        Returns:
            FusionOutput (see class docstring); ``present`` is the mask actually used.
        """
        present = self._validate(embeddings, present)
        return self._forward_checked(embeddings, present, curriculum)

    def _forward_checked(self, embeddings, present: Tensor, curriculum: Optional[bool]) -> FusionOutput:
        projections = self._project(embeddings, present)
        stacked = self._stack(projections)
        logits = self.gate_logits(stacked)
        if self._use_training_mask(curriculum):
            used = self._training_mask(present, logits)
            projections = {n: torch.where(used[:, m : m + 1], z, 0.0)
                           for m, (n, z) in enumerate(projections.items())}
            stacked = self._stack(projections)
        else:
            used = present
        weights = AF.masked_softmax(logits, used)
        entropy = AF.gate_entropy(weights, used)
        fused = self._weighted_sum(weights, stacked)
        any_used = used.any(dim=-1, keepdim=True)
        no_input = ~any_used.squeeze(1)
        if self.presence_tokens:
            # + the learned token of each absent modality, in rows where anything is present
            absent = (any_used & ~used).to(fused.dtype)
            fused = torch.addmm(fused, absent, self.missing_token.to(fused.dtype))
        return FusionOutput(fused, weights, entropy, no_input, used, projections)
