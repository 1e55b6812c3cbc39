"""The model's calibrator: scalers fitted on validation, default mode chosen by cross-fitting."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn


class Calibrator(nn.Module):
    """Raw / global temperature / per-presence-pattern temperature / per-presence-pattern Platt
    scaling of head logits, plus the mode the model uses by default.

    Wraps :class:`aecf_ros.core.calibration.TemperatureScaler` (``global_scaler``),
    :class:`~aecf_ros.core.calibration.PresenceTemperatureScaler` (``presence_scaler``) and
    :class:`~aecf_ros.core.calibration.PresencePlattScaler` (``platt_scaler``: temperature + bias
    per pattern, per-class biases where the pattern has enough rows), all fitted on validation
    data with simulated sensor drops (:func:`fit`). ``forward(logits, present, mode)`` with
    ``mode`` in :attr:`MODES`: ``"none"`` identity, ``"global"``, ``"presence"``,
    ``"presence_platt"``; ``mode=None`` uses :attr:`default_mode`.

    The default mode is chosen on VALIDATION data only (:func:`fit` with ``select=True``): every
    mode is scored by 2-fold cross-fitting over validation samples (fit on one half, ECE on the
    other, both ways; the simulated-drop rows of one sample stay in one fold), as the mean over
    presence patterns of the held-out ECE; the lowest wins (ties go to the simpler mode). The
    held-out ECEs are kept in ``validation_ece`` (NaN = not measured). An unfitted calibrator,
    and one loaded from a format-1 bundle (which had no Platt scaler), defaults to
    ``"presence"``, the behaviour of those bundles. Everything lives in buffers (state dict).
    """

    MODES = ("none", "global", "presence", "presence_platt")

    def __init__(self, num_modalities: int = 3, min_samples: int = 30, num_classes: int = 14,
                 ece_bins: int = 15):
        super().__init__()
        from aecf_ros.core.calibration import (PresencePlattScaler, PresenceTemperatureScaler,
                                               TemperatureScaler)

        self.num_modalities = int(num_modalities)
        self.num_classes = int(num_classes)
        self.ece_bins = int(ece_bins)
        self.global_scaler = TemperatureScaler()
        self.presence_scaler = PresenceTemperatureScaler(self.num_modalities, min_samples=min_samples)
        self.platt_scaler = PresencePlattScaler(self.num_modalities, self.num_classes, min_samples=min_samples)
        self.register_buffer("default_mode_index", torch.tensor(self.MODES.index("presence")))
        self.register_buffer("validation_ece", torch.full((len(self.MODES),), float("nan")))

    # -- fitting ---------------------------------------------------------------------------
    def _fit_all(self, logits: Tensor, labels: Tensor, present: Tensor) -> None:
        self.global_scaler.fit(logits, labels)
        self.presence_scaler.fit(logits, labels, present)
        self.platt_scaler.fit(logits, labels, present)

    @torch.no_grad()
    def fit(self, logits: Tensor, labels: Tensor, present: Tensor, groups: Tensor | None = None,
            select: bool = True) -> "Calibrator":
        """Fit every scaler on validation logits[N, C], labels[N, C], present[N, M]; with
        ``select`` also choose :attr:`default_mode` by 2-fold cross-fitting (see the class
        docstring). ``groups`` (LongTensor[N], e.g. the validation sample index of each
        simulated-drop row) keeps rows of one sample in one fold; default: row index."""
        from aecf_ros.core.calibration import expected_calibration_error, presence_pattern_index

        logits = torch.as_tensor(logits).detach().cpu().double()
        labels = torch.as_tensor(labels).detach().cpu().double()
        present = torch.as_tensor(present).detach().cpu().bool()
        if groups is None:
            groups = torch.arange(logits.shape[0])
        groups = torch.as_tensor(groups).cpu().long()
        if groups.shape != (logits.shape[0],):
            raise ValueError(f"groups must be LongTensor[{logits.shape[0]}], got {tuple(groups.shape)}")
        if select:
            fold = groups % 2 == 1
            held_out = {mode: torch.empty_like(logits) for mode in self.MODES}
            probe = Calibrator(self.num_modalities, self.presence_scaler.min_samples, self.num_classes)
            ok = bool(fold.any()) and bool((~fold).any())
            for k in (False, True) if ok else ():
                fit_rows, test_rows = fold == k, fold != k
                probe._fit_all(logits[fit_rows], labels[fit_rows], present[fit_rows])
                for mode in self.MODES:
                    held_out[mode][test_rows] = probe(logits[test_rows], present[test_rows], mode)
            if ok:
                pattern = presence_pattern_index(present)
                scores = []
                for mode in self.MODES:
                    p = torch.sigmoid(held_out[mode])
                    eces = [expected_calibration_error(p[pattern == pid], labels[pattern == pid], self.ece_bins)
                            for pid in torch.unique(pattern).tolist()]
                    scores.append(float(np.mean(eces)))
                self.validation_ece.copy_(torch.tensor(scores))
                self.default_mode_index.fill_(int(np.argmin(scores)))  # first minimum: simplest
        self._fit_all(logits, labels, present)
        return self

    # -- setting / reading -----------------------------------------------------------------
    def set_global(self, temperature: float) -> None:
        self.global_scaler.temperature.fill_(float(temperature))

    def set_presence(self, temperatures: Mapping[str, float], default: float | None = None) -> None:
        """``{"101": T, ...}`` (keys in modality order); others get ``default`` (global T)."""
        fill = float(self.global_scaler.temperature) if default is None else float(default)
        self.presence_scaler.temperatures.fill_(fill)
        self.presence_scaler.global_temperature.fill_(fill)
        for key, t in temperatures.items():
            self.presence_scaler.temperatures[_pattern_index(key)] = float(t)

    def set_platt(self, params: Mapping[str, tuple[float, Any]]) -> None:
        """``{"101": (T, bias), ...}``; ``bias`` a number or C numbers. Other patterns keep theirs."""
        for key, (t, b) in params.items():
            idx = _pattern_index(key)
            self.platt_scaler.temperatures[idx] = float(t)
            self.platt_scaler.biases[idx] = torch.as_tensor(b, dtype=torch.float32).expand(self.num_classes)
        self.platt_scaler.fitted.fill_(True)

    @property
    def default_mode(self) -> str:
        return self.MODES[int(self.default_mode_index)]

    def set_default_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(f"calibration mode must be one of {self.MODES}, not {mode!r}")
        if mode == "presence_platt" and not bool(self.platt_scaler.fitted):
            raise ValueError("presence_platt needs a fitted Platt scaler (fit() or set_platt())")
        self.default_mode_index.fill_(self.MODES.index(mode))

    @property
    def global_temperature(self) -> float:
        return float(self.global_scaler.temperature)

    def _pattern_keys(self):
        for idx in range(1, 2 ** self.num_modalities):
            yield idx, "".join("1" if idx >> i & 1 else "0" for i in range(self.num_modalities))

    def presence_dict(self) -> dict[str, float]:
        """Temperature of every non-empty pattern, e.g. ``{"111": 1.1, "100": 1.8, ...}``."""
        return {key: float(self.presence_scaler.temperatures[idx]) for idx, key in self._pattern_keys()}

    def platt_dict(self) -> dict[str, dict]:
        """``{"111": {"temperature": T, "bias": [C floats]}, ...}`` for every non-empty pattern."""
        return {key: {"temperature": float(self.platt_scaler.temperatures[idx]),
                      "bias": [float(v) for v in self.platt_scaler.biases[idx]]}
                for idx, key in self._pattern_keys()}

    def validation_ece_dict(self) -> dict[str, float | None]:
        return {m: (None if math.isnan(float(v)) else float(v)) for m, v in zip(self.MODES, self.validation_ece)}

    def summary(self) -> dict:
        return {"default_mode": self.default_mode, "validation_ece": self.validation_ece_dict(),
                "global_temperature": self.global_temperature,
                "presence_temperatures": self.presence_dict(), "presence_platt": self.platt_dict()}

    # -- applying ----------------------------------------------------------------------------
    def forward(self, logits: Tensor, present: Tensor, mode: str | None = None) -> Tensor:
        mode = self.default_mode if mode is None else mode
        if mode == "none":
            return logits
        if mode == "global":
            return self.global_scaler(logits)
        if mode == "presence":
            return self.presence_scaler(logits, present.bool())
        if mode == "presence_platt":
            return self.platt_scaler(logits, present.bool())
        raise ValueError(f"calibration mode must be one of {self.MODES}, not {mode!r}")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also reads format-1 calibrators (no Platt scaler, no default mode): those keep the
        behaviour they were saved with (presence temperatures, ``platt_scaler.fitted`` False)."""
        new_keys = {k for k in self.state_dict() if k.startswith("platt_scaler.")} | {
            "default_mode_index", "validation_ece"}
        missing = set(self.state_dict()) - set(state_dict)
        if missing and missing <= new_keys and not (set(state_dict) - set(self.state_dict())):
            result = super().load_state_dict(state_dict, strict=False, assign=assign)
            self.platt_scaler.fitted.fill_(False)
            self.default_mode_index.fill_(self.MODES.index("presence"))
            self.validation_ece.fill_(float("nan"))
            return result
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _pattern_index(key: str) -> int:
    return sum(1 << i for i, ch in enumerate(key) if ch == "1")
