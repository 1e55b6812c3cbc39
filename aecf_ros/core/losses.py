"""AECF training objective: task BCE + entropy regulariser + cross-modal InfoNCE +
subset-calibration penalty (arXiv 2505.15417) + subset-to-full self-distillation, each
switchable for ablations. The defaults are the benchmark's recommendation.

Typical training step (after ``fusion.set_training_length(epochs * len(loader))`` once, so the
curriculum warm-up is its fraction of training)::

    out_full = fusion(emb, present, curriculum=False)   # full available set
    out_sub = fusion(emb, present)                       # curriculum-masked in train mode
    losses = objective(out_sub, out_full, head(out_sub.fused), head(out_full.fused), targets)
    losses["total"].backward(); optimiser.step(); fusion.step()
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import functional as AF
from .fusion import FusionOutput

__all__ = ["AECFObjective"]


def _non_negative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} has to be a finite non-negative number, but got {value!r}")
    return float(value)


class AECFObjective(nn.Module):
    """AECF loss with switchable terms.

    Terms (all scalars, returned in a dict with ``total``):
      * ``task``: BCE-with-logits on the subset (curriculum-masked) logits plus on the full logits.
      * ``entropy``: :func:`~aecf_ros.core.functional.entropy_regulariser` on the FULL-set gate
        (where collapse onto one sensor shows), coefficient ``entropy_coef`` or the linear
        schedule ``entropy_coef -> entropy_coef_end`` over ``schedule_steps``; optionally adaptive.
        Negative: minimising it raises entropy.
      * ``infonce``: ``infonce_coef *`` :func:`~aecf_ros.core.functional.info_nce` on the full-set
        projections.
      * ``calibration``: ``calibration_coef *``
        :func:`~aecf_ros.core.functional.subset_calibration_penalty`, averaged over rows where
        the subset really lost a modality.
      * ``distillation``: ``distill_coef *`` :func:`~aecf_ros.core.functional.subset_distillation`
        (the subset prediction toward the stop-gradient full-set probabilities), on the same rows.
    A switched-off term is reported as a detached 0 and contributes nothing (no graph).

    Args:
        entropy_coef, entropy_coef_end, schedule_steps, entropy_adaptive: entropy term.
        infonce_coef, infonce_temperature: InfoNCE term.
        calibration_coef: calibration term.
        distill_coef: self-distillation term.
        use_entropy, use_infonce, use_calibration, use_distillation: ablation switches
            (see :func:`~aecf_ros.core.baselines.objective_flags`).
    """

    def __init__(
        self,
        *,
        entropy_coef: float = 0.05,
        entropy_coef_end: Optional[float] = None,
        schedule_steps: Optional[int] = None,
        entropy_adaptive: bool = True,
        infonce_coef: float = 0.1,
        infonce_temperature: float = 0.1,
        calibration_coef: float = 0.5,
        distill_coef: float = 1.0,
        use_entropy: bool = True,
        use_infonce: bool = True,
        use_calibration: bool = True,
        use_distillation: bool = True,
    ) -> None:
        super().__init__()
        self.entropy_coef = _non_negative(entropy_coef, "entropy_coef")
        self.entropy_coef_end = None if entropy_coef_end is None else _non_negative(entropy_coef_end, "entropy_coef_end")
        if self.entropy_coef_end is not None and (
            isinstance(schedule_steps, bool) or not isinstance(schedule_steps, int) or schedule_steps <= 0
        ):
            raise ValueError(f"schedule_steps has to be a positive int when entropy_coef_end is set, but got {schedule_steps!r}")
        self.schedule_steps = schedule_steps
        self.entropy_adaptive = bool(entropy_adaptive)
        self.infonce_coef = _non_negative(infonce_coef, "infonce_coef")
        self.infonce_temperature = _non_negative(infonce_temperature, "infonce_temperature")
        if self.infonce_temperature == 0:
            raise ValueError("infonce_temperature has to be > 0, but got 0")
        self.calibration_coef = _non_negative(calibration_coef, "calibration_coef")
        self.use_entropy = bool(use_entropy)
        self.use_infonce = bool(use_infonce)
        self.use_calibration = bool(use_calibration)
        self.distill_coef = _non_negative(distill_coef, "distill_coef")
        self.use_distillation = bool(use_distillation)

    def entropy_coefficient(self, step: Optional[int] = None) -> float:
        """Entropy coefficient at ``step`` (constant unless a schedule is configured)."""
        if self.entropy_coef_end is None or step is None:
            return self.entropy_coef
        return AF.entropy_coefficient_schedule(step, self.schedule_steps, self.entropy_coef, self.entropy_coef_end)

    def forward(
        self,
        out_subset: FusionOutput,
        out_full: FusionOutput,
        logits_subset: Tensor,
        logits_full: Tensor,
        targets: Tensor,
        step: Optional[int] = None,
    ) -> Dict[str, Tensor]:
        """Compute the loss terms.

        Args:
            out_subset (FusionOutput): fusion output on the curriculum-masked set.
            out_full (FusionOutput): fusion output on the full available set (``curriculum=False``).
            logits_subset (Tensor[B, C]): head logits from ``out_subset.fused``.
            logits_full (Tensor[B, C]): head logits from ``out_full.fused``.
            targets (Tensor[B, C]): multi-hot labels in {0, 1}.
            step (int, optional): optimiser step for the entropy schedule.

        Returns:
            dict with scalar tensors ``total``, ``task``, ``entropy``, ``infonce``, ``calibration``,
            ``distillation``.
        """
        if logits_subset.shape != logits_full.shape or logits_full.shape != targets.shape or targets.dim() != 2:
            raise ValueError(
                f"logits_subset {tuple(logits_subset.shape)}, logits_full {tuple(logits_full.shape)} and "
                f"targets {tuple(targets.shape)} must all be [B, C]"
            )
        targets = targets.to(torch.float32)
        task = F.binary_cross_entropy_with_logits(logits_subset.float(), targets) + \
            F.binary_cross_entropy_with_logits(logits_full.float(), targets)
        zero = torch.zeros((), device=task.device)
        entropy = infonce = calibration = distillation = zero
        if self.use_entropy:
            entropy = AF.entropy_regulariser(
                out_full.weights, out_full.present, self.entropy_coefficient(step), adaptive=self.entropy_adaptive
            )
        if self.use_infonce and self.infonce_coef > 0:
            infonce = self.infonce_coef * AF.info_nce(out_full.projections, out_full.present, self.infonce_temperature)
        changed = (out_subset.present != out_full.present).any(dim=-1)
        if self.use_calibration and self.calibration_coef > 0:
            calibration = self.calibration_coef * AF.subset_calibration_penalty(
                logits_subset, logits_full, row_mask=changed
            )
        if self.use_distillation and self.distill_coef > 0:
            distillation = self.distill_coef * AF.subset_distillation(
                logits_subset, logits_full, row_mask=changed
            )
        total = task + entropy + infonce + calibration + distillation
        return {"total": total, "task": task, "entropy": entropy, "infonce": infonce,
                "calibration": calibration, "distillation": distillation}
