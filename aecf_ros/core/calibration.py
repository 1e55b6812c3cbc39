"""Calibration of multi-label predictions: ECE, reliability curves, temperature scaling, a
presence-aware temperature scaler (one temperature per modality presence pattern) and a
presence-aware Platt scaler (per presence pattern: a temperature AND a bias, optionally per class).

Why the Platt scaler: when a sensor drops out, a fusion model's miscalibration is often a SHIFT
of its mean probability (e.g. lidar alone cannot see stop signs, so its logits sit too high or
too low for them), not a too-sharp/too-flat scale. A temperature only rescales logits around 0,
so it cannot move the mean probability to the base rate; ``z / T + b`` can, and the log-loss
optimum of the bias makes the mean predicted probability equal the positive rate exactly.

Multi-label convention (used throughout): every (sample, class) pair is one binary prediction.
Its predicted probability is the probability of the POSITIVE label (``sigmoid(logit)``), and it
is compared with how often the label is actually positive. Inputs may be numpy arrays or torch
tensors; computations run in float64 on CPU.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "expected_calibration_error",
    "reliability_curve",
    "fit_temperature",
    "TemperatureScaler",
    "PresenceTemperatureScaler",
    "presence_pattern_index",
    "fit_platt",
    "platt_scale",
    "PresencePlattScaler",
]

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0


def _as_float64(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64)
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric array-like, but got {type(x).__name__}") from exc


def _check_binary(labels: Tensor, name: str = "labels") -> None:
    if labels.numel() and not bool(((labels == 0) | (labels == 1)).all()):
        bad = labels[(labels != 0) & (labels != 1)][0].item()
        raise ValueError(f"{name} must be 0/1, but found {bad}")


def _values_labels(values, labels, name: str, empty: str, dims: Optional[Tuple[int, ...]] = None
                   ) -> Tuple[Tensor, Tensor]:
    """``values`` (probabilities or logits, called ``name``) and ``labels`` as float64 tensors of
    one shape ([N] or [N, C] where ``dims`` is given), not empty (else ``ValueError(empty)``);
    the caller checks the labels are 0/1."""
    x = _as_float64(values, name)
    y = _as_float64(labels, "labels")
    if x.shape != y.shape:
        raise ValueError(f"{name} and labels must have the same shape, but got {tuple(x.shape)} and {tuple(y.shape)}")
    if dims is not None and x.dim() not in dims:
        raise ValueError(f"{name} must be [N] or [N, C], but got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(empty)
    return x, y


def _fit_inputs(logits, labels, fitting: str, min_temperature: float, max_temperature: float, iterations: int,
                ridge: Optional[float] = None, dims: Optional[Tuple[int, ...]] = None) -> Tuple[Tensor, Tensor]:
    """The argument checks of :func:`fit_temperature` and :func:`fit_platt` (``ridge`` and
    ``dims`` only for the latter), in this order; returns float64 (logits, labels)."""
    if not (0 < min_temperature < max_temperature and math.isfinite(max_temperature)):
        raise ValueError(f"temperature bounds must satisfy 0 < min < max < inf, but got ({min_temperature}, {max_temperature})")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations has to be a positive int, but got {iterations!r}")
    if ridge is not None and not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge has to be a finite number >= 0, but got {ridge!r}")
    z, y = _values_labels(logits, labels, "logits", f"logits is empty: cannot fit {fitting}", dims)
    if not bool(torch.isfinite(z).all()):
        raise ValueError("logits contain non-finite values")
    _check_binary(y)
    return z, y


def _probs_labels(probs, labels, n_bins: int) -> Tuple[Tensor, Tensor]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins <= 0:
        raise ValueError(f"n_bins has to be a positive int, but got {n_bins!r}")
    p, y = _values_labels(probs, labels, "probs", "probs is empty")
    if not bool(torch.isfinite(p).all()) or float(p.min()) < 0.0 or float(p.max()) > 1.0:
        raise ValueError(f"probs must lie in [0, 1], but got range [{float(p.min())}, {float(p.max())}]")
    _check_binary(y)
    return p.reshape(-1), y.reshape(-1)


def _bin_index(p: Tensor, n_bins: int) -> Tensor:
    # Bins are [k/n, (k+1)/n); the last bin also takes p == 1.0.
    return torch.clamp((p * n_bins).floor().long(), max=n_bins - 1)


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Expected calibration error over every (sample, class) probability.

    ``ECE = sum_b (n_b / N) |mean_prob_b - positive_frequency_b|`` with ``n_bins`` equal-width
    bins over [0, 1] (``[k/n, (k+1)/n)``, the last bin closed so it includes 1.0) and ``N`` the
    number of (sample, class) entries. Multi-label convention: each entry's probability is the
    predicted probability of the POSITIVE label, compared with the frequency of positives in its
    bin (not the top-label "confidence vs accuracy" form of multi-class ECE).

    Args:
        probs (array[N] or array[N, C]): predicted probabilities in [0, 1].
        labels (same shape): 0/1 labels.
        n_bins (int): number of bins (15).

    Returns:
        float ECE in [0, 1].
    """
    p, y = _probs_labels(probs, labels, n_bins)
    idx = _bin_index(p, n_bins)
    prob_sum = torch.bincount(idx, weights=p, minlength=n_bins)
    pos_sum = torch.bincount(idx, weights=y, minlength=n_bins)
    return float((prob_sum - pos_sum).abs().sum() / p.numel())


def reliability_curve(probs, labels, n_bins: int = 15) -> Dict[str, np.ndarray]:
    """Per-bin statistics for a reliability diagram (same binning as :func:`expected_calibration_error`).

    Returns:
        dict of numpy arrays, each ``[n_bins]``: ``bin_lower``, ``bin_upper``, ``mean_prob``
        (NaN for empty bins), ``frequency`` (fraction positive; NaN for empty bins), ``count``.
    """
    p, y = _probs_labels(probs, labels, n_bins)
    idx = _bin_index(p, n_bins)
    counts = torch.bincount(idx, minlength=n_bins).double()
    prob_sum = torch.bincount(idx, weights=p, minlength=n_bins)
    pos_sum = torch.bincount(idx, weights=y, minlength=n_bins)
    safe = counts.clamp(min=1)
    empty = counts == 0
    nan = torch.full_like(counts, float("nan"))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {
        "bin_lower": edges[:-1],
        "bin_upper": edges[1:],
        "mean_prob": torch.where(empty, nan, prob_sum / safe).numpy(),
        "frequency": torch.where(empty, nan, pos_sum / safe).numpy(),
        "count": counts.long().numpy(),
    }


def fit_temperature(logits, labels, *, min_temperature: float = MIN_TEMPERATURE,
                    max_temperature: float = MAX_TEMPERATURE, iterations: int = 60) -> float:
    """Fit one temperature ``T`` minimising BCE(``logits / T``, ``labels``) (multi-label).

    The BCE is convex in the inverse temperature ``s = 1 / T`` (a logistic loss of ``s * z``),
    so its minimiser is the root of the monotone derivative
    ``g(s) = mean((sigmoid(s z) - y) z)``, found by bisection on
    ``[1 / max_temperature, 1 / min_temperature]`` in float64. Unlike L-BFGS on ``log T`` (which
    stalls where the gradient vanishes, e.g. on near-separable data), this is exact to float
    precision, deterministic, and lands on the bound when the optimum lies beyond it.

    Args:
        logits (array[N] or array[N, C]): uncalibrated logits (finite).
        labels (same shape): 0/1 labels.
        min_temperature, max_temperature (float): bounds, 0 < min < max.
        iterations (int): bisection steps (60 reaches float64 resolution).

    Returns:
        float temperature (> 1 softens over-confident logits).
    """
    z, y = _fit_inputs(logits, labels, "a temperature", min_temperature, max_temperature, iterations)
    z, y = z.reshape(-1), y.reshape(-1)

    def slope(inv_t: float) -> float:
        return float(((torch.sigmoid(inv_t * z) - y) * z).mean())

    lo, hi = 1.0 / max_temperature, 1.0 / min_temperature
    if slope(lo) >= 0:
        return float(max_temperature)
    if slope(hi) <= 0:
        return float(min_temperature)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if slope(mid) > 0:
            hi = mid
        else:
            lo = mid
    return float(1.0 / (0.5 * (lo + hi)))


class TemperatureScaler(nn.Module):
    """Global temperature scaling: ``forward(logits) = logits / T`` (T in a buffer, default 1)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature has to be a finite number > 0, but got {temperature!r}")
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def fit(self, logits, labels) -> "TemperatureScaler":
        """Fit T on validation logits/labels (see :func:`fit_temperature`)."""
        self.temperature.fill_(fit_temperature(logits, labels))
        return self

    def forward(self, logits: Tensor) -> Tensor:
        """Tensor[..., C] -> Tensor[..., C] calibrated logits (same dtype)."""
        return logits / self.temperature.to(logits.dtype)


def _check_present(present: Tensor, n_modalities: int) -> None:
    """ValueError unless ``present`` is a BoolTensor[B, n_modalities]."""
    if present.dim() != 2 or present.shape[1] != n_modalities or present.dtype != torch.bool:
        raise ValueError(
            f"present must be a BoolTensor[B, {n_modalities}], but got {present.dtype} {tuple(present.shape)}"
        )


def presence_pattern_index(present: Tensor) -> Tensor:
    """BoolTensor[B, M] -> LongTensor[B]: pattern id ``sum_m present[:, m] << m`` in [0, 2^M)."""
    if not isinstance(present, Tensor) or present.dim() != 2 or present.dtype != torch.bool:
        raise ValueError(f"present must be a BoolTensor[B, M], but got {getattr(present, 'dtype', type(present))}")
    powers = 2 ** torch.arange(present.shape[1], device=present.device)
    return (present.long() * powers).sum(dim=-1)


def _check_n_modalities(n_modalities) -> None:
    if isinstance(n_modalities, bool) or not isinstance(n_modalities, int) or not 1 <= n_modalities <= 16:
        raise ValueError(f"n_modalities has to be an int in [1, 16], but got {n_modalities!r}")


def _fit_per_pattern(scaler, logits, labels, present, fit: Callable[[Tensor, Tensor, int], Any]
                     ) -> Tuple[Any, Dict[int, Any], Tensor]:
    """The fit loop of the per-pattern scalers: validate the arguments, fit on all rows, then on
    the rows of every presence pattern with at least ``scaler.min_samples`` of them.

    ``fit(z, y, n_rows)`` gets float64 logits / labels [n_rows, C] and returns the parameters.
    Returns (global parameters, {pattern id: its parameters}, rows per pattern LongTensor[2^M]).
    """
    z = _as_float64(logits, "logits")
    y = _as_float64(labels, "labels")
    present = torch.as_tensor(present).cpu()
    scaler._check(z, present)
    if y.shape != z.shape:
        raise ValueError(f"labels must have shape {tuple(z.shape)}, but got {tuple(y.shape)}")
    pattern = presence_pattern_index(present)
    counts = torch.bincount(pattern, minlength=2 ** scaler.n_modalities)
    global_params, own = fit(z, y, z.shape[0]), {}
    for pid in torch.nonzero(counts >= scaler.min_samples).flatten().tolist():
        rows = pattern == pid
        own[pid] = fit(z[rows], y[rows], int(counts[pid]))
    return global_params, own, counts


class _PresenceScaler(nn.Module):
    """What the per-pattern scalers share: the argument check, ``apply`` and ``forward``.

    A subclass sets ``n_modalities`` (and ``num_classes`` when its logits have a fixed width)
    and implements ``_calibrate(logits, present)`` on checked arguments.
    """

    def _check(self, logits: Tensor, present: Tensor) -> None:
        _check_present(present, self.n_modalities)
        width = getattr(self, "num_classes", None)
        if logits.dim() != 2 or logits.shape[0] != present.shape[0] or width not in (None, logits.shape[1]):
            raise ValueError(f"logits must be [{present.shape[0]}, {'C' if width is None else width}], "
                             f"but got {tuple(logits.shape)}")

    def apply(self, logits, present: Optional[Tensor] = None):
        """Calibrate: Tensor[B, C] logits, BoolTensor[B, M] present -> Tensor[B, C] calibrated logits.

        ``apply(fn)`` with a single callable keeps ``nn.Module.apply`` semantics, so a parent
        model's ``model.apply(init_fn)`` still recurses through this module.
        """
        if present is None and callable(logits) and not isinstance(logits, Tensor):
            return super().apply(logits)
        if present is None:
            raise ValueError(f"{type(self).__name__}.apply needs present: BoolTensor[B, M]")
        self._check(logits, present)
        return self._calibrate(logits, present)

    def forward(self, logits: Tensor, present: Tensor) -> Tensor:
        return self.apply(logits, present)


class PresenceTemperatureScaler(_PresenceScaler):
    """One temperature per modality presence pattern (2^M patterns).

    A model that lost its camera is typically miscalibrated differently from one with every
    sensor, so each presence pattern gets its own temperature. Fit it on validation data with
    simulated sensor drops (the caller masks modalities and runs the model for each pattern it
    wants covered). Patterns with fewer than ``min_samples`` validation rows fall back to the
    global temperature fitted on all rows. Everything lives in buffers, so ``state_dict``
    round-trips it.

    Args:
        n_modalities (int): M, 1..16.
        min_samples (int): rows a pattern needs to get its own temperature.
    """

    def __init__(self, n_modalities: int, min_samples: int = 30) -> None:
        super().__init__()
        _check_n_modalities(n_modalities)
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples has to be a positive int, but got {min_samples!r}")
        self.n_modalities = n_modalities
        self.min_samples = min_samples
        n_patterns = 2 ** n_modalities
        self.register_buffer("temperatures", torch.ones(n_patterns))
        self.register_buffer("pattern_counts", torch.zeros(n_patterns, dtype=torch.long))
        self.register_buffer("global_temperature", torch.ones(()))

    def fit(self, logits, labels, present: Tensor) -> "PresenceTemperatureScaler":
        """Fit the global and per-pattern temperatures.

        Args:
            logits (Tensor[N, C]): validation logits (with simulated drops applied).
            labels (Tensor[N, C]): 0/1 labels.
            present (BoolTensor[N, M]): the presence mask each row was predicted with.
        """
        global_t, own, counts = _fit_per_pattern(self, logits, labels, present,
                                                 lambda z, y, n: fit_temperature(z, y))
        temps = torch.full((2 ** self.n_modalities,), global_t, dtype=torch.float64)
        for pid, t in own.items():
            temps[pid] = t
        self.global_temperature.fill_(global_t)
        self.temperatures.copy_(temps.to(self.temperatures.dtype))
        self.pattern_counts.copy_(counts.to(self.pattern_counts.device))
        return self

    def temperature_for(self, present: Tensor) -> Tensor:
        """BoolTensor[B, M] -> Tensor[B] temperature per row."""
        return self.temperatures.to(present.device)[presence_pattern_index(present)]

    def _calibrate(self, logits: Tensor, present: Tensor) -> Tensor:
        """``logits / T(pattern)`` (``apply`` / ``forward``)."""
        return logits / self.temperature_for(present).to(logits.dtype).unsqueeze(1)


# --------------------------------------------------------------------------------------------
# Platt scaling (temperature + bias), per presence pattern
# --------------------------------------------------------------------------------------------
def _platt_loss(z: Tensor, y: Tensor, s: float, b: Tensor, ridge: float) -> float:
    t = s * z + b
    return float((torch.nn.functional.softplus(t) - y * t).sum() + 0.5 * ridge * (b * b).sum())


def fit_platt(logits, labels, *, per_class_bias: bool = False, ridge: float = 1.0,
              min_temperature: float = MIN_TEMPERATURE, max_temperature: float = MAX_TEMPERATURE,
              iterations: int = 50) -> Tuple[float, Tensor]:
    """Fit ``calibrated = logits / T + b`` by minimising the summed BCE (multi-label Platt scaling).

    Platt (1999), "Probabilistic outputs for support vector machines"; here one shared slope
    ``1 / T`` for every class and either one bias (``per_class_bias=False``) or one bias per
    class. The loss is convex in ``(1 / T, b)`` (a logistic regression on the logit), so damped
    Newton steps in float64 reach the optimum in a few iterations, deterministically. ``ridge``
    adds ``ridge / 2 * ||b||^2`` (in units of pseudo-observations, independent of N) so a
    class with no positives gets a large-but-finite bias instead of diverging. If the optimal
    temperature lies outside ``[min_temperature, max_temperature]`` it is clamped there and the
    bias re-fitted for the clamped slope. At the optimum (ridge -> 0) the mean calibrated
    probability equals the positive rate (per class with ``per_class_bias``): a per-pattern
    shift of the mean, which no temperature can remove, is removed.

    Args:
        logits (array[N] or array[N, C]): uncalibrated logits (finite).
        labels (same shape): 0/1 labels.
        per_class_bias (bool): one bias per class (column) instead of one shared bias.
        ridge (float): L2 penalty on the bias(es), >= 0.
        min_temperature, max_temperature (float): bounds, 0 < min < max < inf.
        iterations (int): maximum Newton steps (>= 1).

    Returns:
        (temperature, bias): float and float64 Tensor[C] (C = 1 for 1-D input; every entry equal
        without ``per_class_bias``). Apply with :func:`platt_scale`.
    """
    z, y = _fit_inputs(logits, labels, "a Platt scaler", min_temperature, max_temperature, iterations,
                       ridge=ridge, dims=(1, 2))
    if z.dim() == 1:
        z, y = z[:, None], y[:, None]
    n_cls = z.shape[1]
    n_bias = n_cls if per_class_bias else 1
    s_lo, s_hi = 1.0 / max_temperature, 1.0 / min_temperature
    ridge_eff = max(float(ridge), 1e-9)  # keeps the Hessian positive definite

    def expand(b: Tensor) -> Tensor:
        return b if per_class_bias else b.expand(n_cls)

    def newton(s: float, b: Tensor, fit_slope: bool) -> Tuple[float, Tensor]:
        loss = _platt_loss(z, y, s, expand(b), ridge_eff)
        for _ in range(iterations):
            t = s * z + expand(b)
            p = torch.sigmoid(t)
            r, w = p - y, p * (1 - p)
            g_b = (r.sum(0) if per_class_bias else r.sum().reshape(1)) + ridge_eff * b
            h_bb = (w.sum(0) if per_class_bias else w.sum().reshape(1)) + ridge_eff
            if fit_slope:
                g = torch.cat([(r * z).sum().reshape(1), g_b])
                hess = torch.diag(torch.cat([(w * z * z).sum().reshape(1) + 1e-12, h_bb]))
                h_sb = (w * z).sum(0) if per_class_bias else (w * z).sum().reshape(1)
                hess[0, 1:] = h_sb
                hess[1:, 0] = h_sb
                step = torch.linalg.solve(hess, g)
                ds, db = float(step[0]), step[1:]
            else:
                ds, db = 0.0, g_b / h_bb
            alpha = 1.0
            while True:  # backtracking: Newton is exact near the optimum, damped far from it
                s_new, b_new = s - alpha * ds, b - alpha * db
                new_loss = _platt_loss(z, y, s_new, expand(b_new), ridge_eff)
                if new_loss <= loss or alpha < 1e-6:
                    break
                alpha *= 0.5
            if new_loss > loss:
                break
            s, b, converged = s_new, b_new, loss - new_loss <= 1e-12 * max(1.0, abs(loss))
            loss = new_loss
            if converged:
                break
        return s, b

    s, b = newton(1.0, torch.zeros(n_bias, dtype=torch.float64), fit_slope=True)
    if not s_lo <= s <= s_hi:
        s, b = newton(min(max(s, s_lo), s_hi), b, fit_slope=False)
    return float(1.0 / s), expand(b).clone()


def platt_scale(logits: Tensor, temperature, bias) -> Tensor:
    """``logits / T + bias``.

    Args:
        logits (Tensor[B, C]): uncalibrated logits.
        temperature (float or Tensor[B]): per-row temperature (> 0).
        bias (Tensor[C] or Tensor[B, C]): per-class (or per-row, per-class) bias.

    Returns:
        Tensor[B, C] calibrated logits, dtype of ``logits``.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a Tensor[B, C], but got {getattr(logits, 'shape', type(logits).__name__)}")
    t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    b = torch.as_tensor(bias, dtype=logits.dtype, device=logits.device)
    if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != logits.shape[0]):
        raise ValueError(f"temperature must be a number or Tensor[{logits.shape[0]}], but got {tuple(t.shape)}")
    if b.shape not in ((logits.shape[1],), tuple(logits.shape)):
        raise ValueError(f"bias must be Tensor[{logits.shape[1]}] or Tensor{list(logits.shape)}, but got {tuple(b.shape)}")
    bad = ~(torch.isfinite(t) & (t > 0))
    if bool(bad.any()):
        raise ValueError(f"temperature must be finite and > 0, but got {t.reshape(-1)[bad.reshape(-1)][:5].tolist()}")
    if t.dim() == 1:
        t = t.unsqueeze(1)
    return logits / t + b


class PresencePlattScaler(_PresenceScaler):
    """Per modality presence pattern: a temperature and a bias (per class or shared).

    ``forward(logits, present) = logits / T[pattern] + b[pattern]`` (:func:`platt_scale`). Fit it
    like :class:`PresenceTemperatureScaler` on validation data with simulated sensor drops.
    Patterns with fewer than ``min_samples`` rows use the global Platt parameters fitted on all
    rows; patterns with at least ``min_samples`` but fewer than ``min_samples_per_class`` rows
    get their own temperature and ONE shared bias (per-class biases would over-fit there).
    Buffers only, so ``state_dict`` round-trips it; ``fitted`` says whether :meth:`fit` ran.

    Args:
        n_modalities (int): M, 1..16.
        num_classes (int): C >= 1.
        min_samples (int): rows a pattern needs to get its own parameters (30).
        per_class_bias (bool): allow one bias per class (True).
        min_samples_per_class (int): rows a pattern needs for per-class biases (200).
        ridge (float): L2 penalty on the biases (see :func:`fit_platt`).
    """

    def __init__(self, n_modalities: int, num_classes: int, min_samples: int = 30,
                 per_class_bias: bool = True, min_samples_per_class: int = 200,
                 ridge: float = 1.0) -> None:
        super().__init__()
        _check_n_modalities(n_modalities)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes has to be a positive int, but got {num_classes!r}")
        for name, value in (("min_samples", min_samples), ("min_samples_per_class", min_samples_per_class)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} has to be a positive int, but got {value!r}")
        if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge >= 0):
            raise ValueError(f"ridge has to be a finite number >= 0, but got {ridge!r}")
        self.n_modalities, self.num_classes = n_modalities, num_classes
        self.min_samples, self.min_samples_per_class = min_samples, min_samples_per_class
        self.per_class_bias, self.ridge = bool(per_class_bias), float(ridge)
        n_patterns = 2 ** n_modalities
        self.register_buffer("temperatures", torch.ones(n_patterns))
        self.register_buffer("biases", torch.zeros(n_patterns, num_classes))
        self.register_buffer("pattern_counts", torch.zeros(n_patterns, dtype=torch.long))
        self.register_buffer("global_temperature", torch.ones(()))
        self.register_buffer("global_bias", torch.zeros(num_classes))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def fit(self, logits, labels, present: Tensor) -> "PresencePlattScaler":
        """Fit global and per-pattern parameters (arguments: :meth:`PresenceTemperatureScaler.fit`)."""
        def fit(z: Tensor, y: Tensor, n_rows: int) -> Tuple[float, Tensor]:
            per_class = self.per_class_bias and n_rows >= self.min_samples_per_class
            return fit_platt(z, y, per_class_bias=per_class, ridge=self.ridge)

        (g_t, g_b), own, counts = _fit_per_pattern(self, logits, labels, present, fit)
        n_patterns = 2 ** self.n_modalities
        temps = torch.full((n_patterns,), g_t, dtype=torch.float64)
        biases = g_b.unsqueeze(0).repeat(n_patterns, 1)
        for pid, (t, b) in own.items():
            temps[pid], biases[pid] = t, b
        self.global_temperature.fill_(g_t)
        self.global_bias.copy_(g_b.to(self.global_bias.dtype))
        self.temperatures.copy_(temps.to(self.temperatures.dtype))
        self.biases.copy_(biases.to(self.biases.dtype))
        self.pattern_counts.copy_(counts.to(self.pattern_counts.device))
        self.fitted.fill_(True)
        return self

    def parameters_for(self, present: Tensor) -> Tuple[Tensor, Tensor]:
        """BoolTensor[B, M] -> (temperature Tensor[B], bias Tensor[B, C]) per row."""
        idx = presence_pattern_index(present).to(self.temperatures.device)
        return self.temperatures[idx], self.biases[idx]

    def _calibrate(self, logits: Tensor, present: Tensor) -> Tensor:
        """``logits / T(pattern) + b(pattern)`` (``apply`` / ``forward``)."""
        temps, biases = self.parameters_for(present)
        return platt_scale(logits, temps.to(logits.device), biases.to(logits.device))
