"""Pure tensor functions behind Adaptive Entropy-Gated Contrastive Fusion (AECF).

Paper: "Robust Multimodal Learning via Entropy-Gated Contrastive Fusion", arXiv 2505.15417.

Every function here is stateless, takes explicit tensors and returns tensors; the modules in
``fusion.py`` / ``losses.py`` only hold configuration and call these. Argument errors raise a
``ValueError`` naming the offending value before any computation.

Conventions
-----------
``B`` batch, ``M`` modalities (in the fusion module's ``modalities`` order), ``E`` embedding
width, ``C`` classes. ``present`` is a ``BoolTensor[B, M]``: True where that modality's
embedding is valid for that sample.

Unlike the public reference implementation, each piece here really acts:
* the curriculum mask is returned to the caller, which computes the output FROM it
  (``AECFusion`` tests prove the masked set changes the output);
* the entropy regulariser is differentiable w.r.t. the gate weights (and so the gate parameters);
  minimising it raises gate entropy.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "masked_softmax",
    "gate_entropy",
    "curriculum_mask_probability",
    "ranked_mask_probability",
    "sample_curriculum_mask",
    "entropy_regulariser",
    "entropy_coefficient_schedule",
    "info_nce",
    "subset_calibration_penalty",
    "subset_distillation",
    "binary_confidence",
]


def _check_present(present: Tensor, name: str = "present") -> None:
    if not isinstance(present, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, but got {type(present).__name__}")
    if present.dim() != 2:
        raise ValueError(f"{name} must have shape [B, M], but got shape {tuple(present.shape)}")
    if present.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor, but got dtype {present.dtype}")


def _check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, but got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )


def masked_softmax(logits: Tensor, present: Tensor) -> Tensor:
    """Softmax over the present entries of each row; absent entries get EXACTLY zero.

    Absent logits are replaced by ``-inf`` (not a large negative constant, which leaks a tiny
    weight and overflows in half precision). Rows with nothing present would be all ``-inf``
    (NaN softmax), so their logits are replaced by zeros first and the result is then multiplied
    by ``present``: such rows come back as exact zeros, with finite gradients.

    Args:
        logits (Tensor[B, M]): unnormalised scores, any floating dtype.
        present (BoolTensor[B, M]): which entries take part.

    Returns:
        Tensor[B, M] in ``logits.dtype``: rows sum to 1 over present entries, 0 where absent;
        all-zero rows where nothing is present. Computed in float32 for half-precision inputs.
    """
    _check_present(present)
    _check_same_shape(logits, present, "logits", "present")
    any_present = present.any(dim=-1, keepdim=True)
    work = logits.float()
    masked = torch.where(present, work, float("-inf"))
    masked = torch.where(any_present, masked, 0.0)
    weights = torch.softmax(masked, dim=-1) * present.to(work.dtype)
    return weights.to(logits.dtype)


def gate_entropy(weights: Tensor, present: Tensor) -> Tensor:
    """Normalised Shannon entropy of the gate distribution over the present modalities.

    ``H = -sum_m p_m log p_m / log(n_present)`` with ``p`` the weights renormalised over the
    present modalities (absent entries are ignored even if non-zero) and ``0 log 0 = 0``.

    Args:
        weights (Tensor[B, M]): non-negative gate weights.
        present (BoolTensor[B, M]): which modalities are present.

    Returns:
        Tensor[B] in ``weights.dtype`` within [0, 1]: 1 for a uniform gate, 0 for a one-hot
        gate, and exactly 0 where at most one modality is present (including all-absent rows,
        which stay finite). Differentiable w.r.t. ``weights`` (no NaN gradient at zeros).
    """
    _check_present(present)
    _check_same_shape(weights, present, "weights", "present")
    w = weights.float() * present.float()
    total = w.sum(dim=-1, keepdim=True)
    p = w / torch.where(total > 0, total, 1.0)
    positive = p > 0
    # Guard log(0): its gradient would be -inf and poison the backward pass via 0 * inf.
    safe_p = torch.where(positive, p, 1.0)
    plogp = torch.where(positive, p * torch.log(safe_p), 0.0)
    raw = -plogp.sum(dim=-1)
    n_present = present.sum(dim=-1)
    denom = torch.log(n_present.clamp(min=2).float())
    normalised = torch.where(n_present > 1, raw / denom, 0.0)
    return normalised.clamp(0.0, 1.0).to(weights.dtype)


def curriculum_mask_probability(entropy: Tensor, base_rate: float, warmup_factor: float = 1.0) -> Tensor:
    """Per-sample probability of masking modalities in the AECF curriculum.

    ``p = base_rate * warmup_factor * (1 - H)``: a confident (low-entropy) gate is the one that
    over-relies on one sensor, so its samples are masked more; an uncertain gate is masked less.
    The entropy is detached: the curriculum is a data augmentation, not a training signal.

    Args:
        entropy (Tensor[B]): normalised gate entropy in [0, 1] (values outside are clamped).
        base_rate (float): masking probability for a fully confident gate, in [0, 1].
        warmup_factor (float): ramp in [0, 1] (0 at the start of training, 1 after warm-up).

    Returns:
        Tensor[B] in [0, base_rate * warmup_factor], float32.
    """
    if not (isinstance(base_rate, (int, float)) and 0.0 <= base_rate <= 1.0):
        raise ValueError(f"base_rate has to be between 0 and 1, but got {base_rate}")
    if not (isinstance(warmup_factor, (int, float)) and 0.0 <= warmup_factor <= 1.0):
        raise ValueError(f"warmup_factor has to be between 0 and 1, but got {warmup_factor}")
    if not isinstance(entropy, Tensor) or entropy.dim() != 1:
        shape = tuple(entropy.shape) if isinstance(entropy, Tensor) else type(entropy).__name__
        raise ValueError(f"entropy must be a Tensor[B], but got {shape}")
    h = entropy.detach().float().clamp(0.0, 1.0)
    return (float(base_rate) * float(warmup_factor)) * (1.0 - h)


def ranked_mask_probability(
    entropy: Tensor, eligible: Tensor, min_rate: float, max_rate: float, warmup_factor: float = 1.0
) -> Tensor:
    """Per-sample masking probability from the RANK of each sample's gate entropy in its batch.

    ``p_b = warmup * (min_rate + (max_rate - min_rate) * f_b)`` with ``f_b`` in [0, 1] the
    fraction of eligible samples in the batch whose entropy is higher than sample b's (ties share
    their mean rank): the sample whose gate leans hardest on one sensor gets ``max_rate``, the
    most uncertain one ``min_rate``, whatever the absolute entropy level. An absolute rule such
    as ``base_rate * (1 - H)`` is switched off by the entropy regulariser it trains with (which
    holds H near 1); the rank cannot be: the mean rate is ``(min_rate + max_rate) / 2`` in every
    batch. The entropy is detached (the curriculum is data augmentation, not a training signal).

    Args:
        entropy (Tensor[B]): normalised gate entropy.
        eligible (BoolTensor[B]): rows that can be masked at all (>= 2 present); the others get 0
            and do not take part in the ranking.
        min_rate, max_rate (float): 0 <= min_rate <= max_rate <= 1.
        warmup_factor (float): ramp in [0, 1].

    Returns:
        Tensor[B] float32 in [0, max_rate * warmup_factor]; 0 where not eligible.
    """
    for name, value in (("min_rate", min_rate), ("max_rate", max_rate), ("warmup_factor", warmup_factor)):
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise ValueError(f"{name} has to be between 0 and 1, but got {value!r}")
    if min_rate > max_rate:
        raise ValueError(f"min_rate has to be <= max_rate, but got {min_rate} > {max_rate}")
    if not isinstance(entropy, Tensor) or entropy.dim() != 1:
        shape = tuple(entropy.shape) if isinstance(entropy, Tensor) else type(entropy).__name__
        raise ValueError(f"entropy must be a Tensor[B], but got {shape}")
    if not isinstance(eligible, Tensor) or eligible.dtype != torch.bool or eligible.shape != entropy.shape:
        raise ValueError(f"eligible must be a BoolTensor[{entropy.shape[0]}]")
    with torch.no_grad():
        h = entropy.detach().float()
        elig = eligible.to(h.device)
        n = elig.sum().float()
        # f_b = (#eligible with H > H_b + 0.5 * #eligible ties other than b) / (n - 1)
        higher = (h.unsqueeze(0) > h.unsqueeze(1)) & elig.unsqueeze(0)
        ties = (h.unsqueeze(0) == h.unsqueeze(1)) & elig.unsqueeze(0)
        score = higher.sum(1).float() + 0.5 * (ties.sum(1).float() - 1.0)
        frac = torch.where(n > 1, score / (n - 1).clamp(min=1.0), torch.full_like(score, 0.5))
        prob = float(warmup_factor) * (float(min_rate) + (float(max_rate) - float(min_rate)) * frac.clamp(0.0, 1.0))
        return torch.where(elig, prob, torch.zeros_like(prob))


def sample_curriculum_mask(
    present: Tensor,
    weights: Tensor,
    mask_prob: Tensor,
    min_present: int = 1,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Drop present modalities at random, preferring the dominant one (AECF curriculum).

    Per sample: ``k ~ Binomial(n_present - min_present, mask_prob)`` modalities are dropped,
    chosen without replacement with probability proportional to the gate weight (Gumbel top-k
    on ``log w``), so the sensor the gate leans on most is removed most often and the model must
    learn to use the others. Never drops below ``min_present`` present modalities (rows that
    already have fewer are left as they are) and never turns an absent modality present.

    Sampling runs under ``no_grad`` on detached inputs: no gradient flows through the mask.
    Random numbers come from ``generator`` (drawn on its device, then moved) or the global RNG.

    Args:
        present (BoolTensor[B, M]): modalities available for each sample.
        weights (Tensor[B, M]): gate weights (only their ratios among present entries matter;
            zero-weight present modalities can still be dropped, just last).
        mask_prob (Tensor[B]): per-sample drop probability in [0, 1].
        min_present (int): minimum number of modalities left present, >= 0.
        generator (torch.Generator, optional): RNG for reproducible masks.

    Returns:
        BoolTensor[B, M]: the new presence mask, a subset of ``present``.
    """
    _check_present(present)
    _check_same_shape(weights, present, "weights", "present")
    if isinstance(min_present, bool) or not isinstance(min_present, int) or min_present < 0:
        raise ValueError(f"min_present has to be a non-negative int, but got {min_present!r}")
    if not isinstance(mask_prob, Tensor) or mask_prob.shape != present.shape[:1]:
        shape = tuple(mask_prob.shape) if isinstance(mask_prob, Tensor) else type(mask_prob).__name__
        raise ValueError(f"mask_prob must have shape [{present.shape[0]}], but got {shape}")
    batch, n_mod = present.shape
    with torch.no_grad():
        rng_device = generator.device if generator is not None else present.device
        u_count = torch.rand(batch, n_mod, generator=generator, device=rng_device).to(present.device)
        u_gumbel = torch.rand(batch, n_mod, generator=generator, device=rng_device).to(present.device)

        prob = mask_prob.detach().float().clamp(0.0, 1.0)
        n_present = present.sum(dim=-1)
        droppable = (n_present - min_present).clamp(min=0)
        # Binomial(droppable, prob) as the number of successes among `droppable` Bernoulli trials.
        trial_index = torch.arange(n_mod, device=present.device).unsqueeze(0)
        trials = (trial_index < droppable.unsqueeze(1)) & (u_count < prob.unsqueeze(1))
        n_drop = trials.sum(dim=-1)

        w = weights.detach().float().clamp(min=0.0)
        log_w = torch.log(w.clamp(min=1e-30))
        tiny = torch.finfo(torch.float32).tiny
        gumbel = -torch.log(-torch.log(u_gumbel.clamp(min=tiny, max=1.0 - 1e-7)))
        keys = torch.where(present, log_w + gumbel, torch.full_like(log_w, float("-inf")))
        order = torch.argsort(keys, dim=-1, descending=True)
        ranks = torch.empty_like(order).scatter_(
            -1, order, torch.arange(n_mod, device=present.device).expand(batch, n_mod).contiguous()
        )
        # Present entries hold the top n_present ranks and n_drop <= n_present - min_present.
        dropped = present & (ranks < n_drop.unsqueeze(1))
        return present & ~dropped


def entropy_regulariser(
    weights: Tensor, present: Tensor, coefficient: float, adaptive: bool = False
) -> Tensor:
    """Loss whose minimisation RAISES gate entropy, so the gate cannot collapse onto one sensor.

    ``loss = -mean_b(c_b * H_b)`` over samples with at least two present modalities (the others
    have no choice to regularise), ``H`` from :func:`gate_entropy`. With ``adaptive=False``
    ``c_b = coefficient``; with ``adaptive=True`` ``c_b = coefficient * (2 - H_b)`` (detached), so
    collapsed rows (H near 0) are pushed twice as hard as already-uniform ones. The gradient is
    real: it flows through ``weights`` into the gate parameters.

    Args:
        weights (Tensor[B, M]): gate weights (with grad).
        present (BoolTensor[B, M]): presence mask used by the gate.
        coefficient (float): non-negative strength.
        adaptive (bool): per-instance coefficient larger for low-entropy rows.

    Returns:
        Tensor[] scalar (float32); exactly 0 (still attached to ``weights``' graph) when no row
        has two present modalities.
    """
    if not (isinstance(coefficient, (int, float)) and math.isfinite(coefficient) and coefficient >= 0):
        raise ValueError(f"coefficient has to be a finite non-negative number, but got {coefficient}")
    entropy = gate_entropy(weights, present).float()
    eligible = (present.sum(dim=-1) > 1).float()
    coef = torch.full_like(entropy, float(coefficient))
    if adaptive:
        coef = coef * (2.0 - entropy.detach())
    n_eligible = eligible.sum()
    loss = -(coef * entropy * eligible).sum() / n_eligible.clamp(min=1.0)
    return loss


def entropy_coefficient_schedule(step: int, total_steps: int, start: float, end: float) -> float:
    """Linear schedule for the entropy coefficient, from ``start`` at step 0 to ``end`` at
    ``total_steps`` (held at ``end`` afterwards).

    Typical use: a strong anti-collapse push early, relaxed as the gate learns real reliability.

    Returns:
        float coefficient.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
        raise ValueError(f"total_steps has to be a positive int, but got {total_steps!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step has to be a non-negative int, but got {step!r}")
    for name, value in (("start", start), ("end", end)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} has to be a finite non-negative number, but got {value}")
    frac = min(step / total_steps, 1.0)
    return float(start + (end - start) * frac)


def info_nce(projections: Mapping[str, Tensor], present: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric cross-modal InfoNCE over all modality pairs.

    For each pair (i, j) the samples where BOTH are present form the batch; L2-normalised
    projections give logits ``z_i z_j^T / temperature`` and the loss is the mean of the i->j and
    j->i cross-entropies with the matching sample as the positive. Pairs with fewer than two such
    samples are skipped (one sample has no negatives). The result is the mean over used pairs.

    Args:
        projections (Mapping[str, Tensor[B, E]]): per-modality projections, in the column order
            of ``present``.
        present (BoolTensor[B, M]): presence mask, ``M == len(projections)``.
        temperature (float): softmax temperature, > 0.

    Returns:
        Tensor[] scalar float32; 0 attached to the projections' graph when no pair is valid.
    """
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature has to be a finite positive number, but got {temperature}")
    _check_present(present)
    names = list(projections.keys())
    if len(names) != present.shape[1]:
        raise ValueError(
            f"projections has {len(names)} modalities {names} but present has {present.shape[1]} columns"
        )
    tensors = [projections[n] for n in names]
    for name, z in zip(names, tensors):
        if z.dim() != 2 or z.shape[0] != present.shape[0]:
            raise ValueError(
                f"projection '{name}' must have shape [{present.shape[0]}, E], but got {tuple(z.shape)}"
            )
    # Zero that still carries the graph, so callers can always .backward() the total loss.
    total = sum(z.float().sum() * 0.0 for z in tensors)
    n_pairs = 0
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            both = present[:, i] & present[:, j]
            if int(both.sum()) < 2:
                continue
            zi = F.normalize(tensors[i][both].float(), dim=-1)
            zj = F.normalize(tensors[j][both].float(), dim=-1)
            logits = zi @ zj.t() / float(temperature)
            target = torch.arange(logits.shape[0], device=logits.device)
            pair_loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
            total = total + pair_loss
            n_pairs += 1
    return total / max(n_pairs, 1)


def _check_subset_pair(logits_subset: Tensor, logits_full: Tensor, row_mask: Optional[Tensor]) -> None:
    _check_same_shape(logits_subset, logits_full, "logits_subset", "logits_full")
    if logits_subset.dim() != 2:
        raise ValueError(f"logits must have shape [B, C], but got {tuple(logits_subset.shape)}")
    if row_mask is not None and (row_mask.dtype != torch.bool or row_mask.shape != logits_subset.shape[:1]):
        raise ValueError(
            f"row_mask must be a bool Tensor[{logits_subset.shape[0]}], but got "
            f"{row_mask.dtype} {tuple(row_mask.shape)}"
        )


def _row_mean(values: Tensor, row_mask: Optional[Tensor]) -> Tensor:
    """Mean of ``values[B, C]`` over the rows ``row_mask`` selects (all when None); 0 if none."""
    if row_mask is None:
        return values.mean()
    rows = row_mask.float().unsqueeze(1).expand_as(values)
    return (values * rows).sum() / rows.sum().clamp(min=1.0)


def binary_confidence(probs: Tensor) -> Tensor:
    """Per-class confidence of a multi-label prediction: ``max(p, 1 - p)`` (shape preserved)."""
    if not isinstance(probs, Tensor):
        raise ValueError(f"probs must be a Tensor, but got {type(probs).__name__}")
    return torch.maximum(probs, 1.0 - probs)


def subset_calibration_penalty(
    logits_subset: Tensor, logits_full: Tensor, row_mask: Optional[Tensor] = None
) -> Tensor:
    """Penalise a modality subset being MORE confident than the full set (multi-label).

    Removing sensors removes evidence, so a calibrated model should not become more sure of
    itself. Per (sample, class): ``relu(conf(sigmoid(l_sub)) - conf(sigmoid(l_full)).detach())``
    with ``conf(p) = max(p, 1 - p)``; only the subset prediction gets the gradient.

    Args:
        logits_subset (Tensor[B, C]): logits from the masked modality subset.
        logits_full (Tensor[B, C]): logits from all available modalities (detached inside).
        row_mask (BoolTensor[B], optional): rows to average over (e.g. rows where the subset
            really differs from the full set); all rows when None.

    Returns:
        Tensor[] scalar float32 >= 0; 0 (attached to the graph) if ``row_mask`` selects nothing.
    """
    _check_subset_pair(logits_subset, logits_full, row_mask)
    conf_sub = binary_confidence(torch.sigmoid(logits_subset.float()))
    conf_full = binary_confidence(torch.sigmoid(logits_full.detach().float()))
    return _row_mean(F.relu(conf_sub - conf_full), row_mask)


def subset_distillation(
    logits_subset: Tensor, logits_full: Tensor, row_mask: Optional[Tensor] = None
) -> Tensor:
    """Self-distillation of a modality subset toward the full-set prediction (multi-label).

    Soft-target BCE ``BCE(sigmoid(l_sub), stopgrad(sigmoid(l_full)))`` per (sample, class), minus
    the teacher's own entropy so the loss is 0 when the subset agrees with the full set (a KL
    divergence per Bernoulli; same gradient as the plain soft-target BCE). The teacher is
    detached: the subset learns to predict what the model would say with every sensor, the full
    set is not pulled toward the weaker subset.

    Args:
        logits_subset (Tensor[B, C]): logits from the masked modality subset.
        logits_full (Tensor[B, C]): logits from all available modalities (detached inside).
        row_mask (BoolTensor[B], optional): rows to average over (where the subset really lost a
            modality); all rows when None.

    Returns:
        Tensor[] scalar float32 >= 0; 0 (attached to the graph) if ``row_mask`` selects nothing.
    """
    _check_subset_pair(logits_subset, logits_full, row_mask)
    teacher_logits = logits_full.detach().float()
    teacher = torch.sigmoid(teacher_logits)
    student = logits_subset.float()
    bce = F.binary_cross_entropy_with_logits(student, teacher, reduction="none")
    teacher_entropy = F.binary_cross_entropy_with_logits(teacher_logits, teacher, reduction="none")
    return _row_mean((bce - teacher_entropy).clamp(min=0.0), row_mask)
