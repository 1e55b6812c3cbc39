"""Evaluation metrics (numpy, float64; torch tensors are accepted and converted).

* :func:`average_precision`  exactly ``sklearn.metrics.average_precision_score`` (binary).
* :func:`macro_map`          mean AP over classes that have at least one positive.
* :func:`confidence_rise_rate` how often removing modalities makes the model MORE confident.
"""
from __future__ import annotations

import numpy as np

__all__ = ["average_precision", "macro_map", "confidence_rise_rate"]


def _to_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric array-like, but got {type(x).__name__}") from exc


def _check_labels(labels: np.ndarray) -> None:
    bad = labels[(labels != 0) & (labels != 1)]
    if bad.size:
        raise ValueError(f"labels must be 0/1, but found {bad.flat[0]}")


def average_precision(scores, labels) -> float:
    """Average precision, identical to ``sklearn.metrics.average_precision_score``.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing order
    (tied scores form one threshold; no interpolation). With no positive label AP is 0.0, as
    sklearn returns (sklearn also warns).

    Args:
        scores (array[N]): real-valued scores (higher = more likely positive).
        labels (array[N]): 0/1 labels.

    Returns:
        float AP in [0, 1].
    """
    s = _to_numpy(scores, "scores")
    y = _to_numpy(labels, "labels")
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores and labels must be 1-D of equal length, but got {s.shape} and {y.shape}")
    if s.size == 0:
        raise ValueError("scores is empty")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain non-finite values")
    _check_labels(y)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    threshold_end = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[threshold_end]
    if tps[-1] == 0:
        return 0.0
    fps = threshold_end + 1 - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def macro_map(scores, labels) -> float:
    """Macro mean average precision over classes with at least one positive.

    Args:
        scores (array[N, C]), labels (array[N, C] of 0/1).

    Returns:
        float mAP; NaN if no class has a positive.
    """
    s = _to_numpy(scores, "scores")
    y = _to_numpy(labels, "labels")
    if s.ndim != 2 or s.shape != y.shape:
        raise ValueError(f"scores and labels must be [N, C] of equal shape, but got {s.shape} and {y.shape}")
    aps = [average_precision(s[:, c], y[:, c]) for c in range(s.shape[1]) if y[:, c].sum() > 0]
    return float(np.mean(aps)) if aps else float("nan")


def confidence_rise_rate(probs_full, probs_subset, threshold: float = 0.0) -> float:
    """Fraction of (sample, class) entries whose confidence ``max(p, 1 - p)`` rises by more than
    ``threshold`` when modalities are removed (subset vs full prediction). Lower is better: a
    model with less evidence should not be surer.

    Args:
        probs_full (array[N, C] or array[N]): probabilities with all available modalities.
        probs_subset (same shape): probabilities with some modalities removed.
        threshold (float): >= 0 margin ignoring negligible rises.

    Returns:
        float in [0, 1].
    """
    if not (isinstance(threshold, (int, float)) and np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold has to be a finite number >= 0, but got {threshold!r}")
    pf = _to_numpy(probs_full, "probs_full")
    ps = _to_numpy(probs_subset, "probs_subset")
    if pf.shape != ps.shape or pf.size == 0:
        raise ValueError(f"probs_full and probs_subset must have equal non-empty shapes, but got {pf.shape} and {ps.shape}")
    for name, p in (("probs_full", pf), ("probs_subset", ps)):
        if not np.all((p >= 0) & (p <= 1)):
            raise ValueError(f"{name} must lie in [0, 1]")
    conf_f = np.maximum(pf, 1 - pf)
    conf_s = np.maximum(ps, 1 - ps)
    return float(np.mean(conf_s - conf_f > threshold))
