"""The fusion node's logic without ROS, shared with the offline bag evaluator.

:class:`FusionEngine` keeps the newest embedding of each modality with a
:class:`~aecf_ros.runtime.stream_monitor.StreamMonitor`, validates what it is given, and at a
time ``now`` (caller's clock, seconds) decides which modalities are present and runs the model
over exactly those. It never waits for a missing sensor: :meth:`FusionEngine.step` returns a
:class:`FusionPrediction` from whatever is present, or a :class:`NoOutput` saying why there is
nothing to publish (nothing present, fewer than ``min_present``).

The model is anything with the :class:`aecf_ros.model.PerceptionModel` surface the engine uses:
``modalities``, ``embedding_dims``, ``encoder_ids``, ``class_names``,
``predict(embeddings, present) -> (probs[B, C], FusionOutput)`` and
``fusion.set_gate_prior(temperature=..., bias=...)`` (AECF only; other fusion methods simply
ignore gating settings).
"""
from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from aecf_ros.core import INPUT_ABS_LIMIT
from aecf_ros.runtime.rate_monitor import RateMonitor
from aecf_ros.runtime.sequence import SequenceTracker
from aecf_ros.runtime.stream_monitor import StreamMonitor, StreamState, Transition

__all__ = [
    "FusionSettings",
    "FusionPrediction",
    "NoOutput",
    "StepResult",
    "FusionEngine",
    "DROP_REASONS",
    "check_prediction",
]

# reasons an embedding is rejected (counted per modality; unknown_modality engine-wide)
DROP_REASONS = ("unknown_modality", "wrong_dim", "non_finite", "out_of_range", "encoder_id_mismatch",
                "non_finite_stamp", "bad_stamp", "stamp_in_future", "out_of_order", "stamp_behind")

# Embeddings with any |value| above ``max_abs_embedding`` (default ``aecf_ros.core.INPUT_ABS_LIMIT``)
# are dropped (``out_of_range``): the bound below which the fusion is exact in its compute dtype,
# float16 on GPU included (1e30 overflowed the projection's LayerNorm in float32 and made every
# score NaN; 1e20 gave an all-zero projection). Real encoders stay orders of magnitude below it
# (unit-norm text, LayerNorm'd camera/lidar heads).


def check_prediction(scores: np.ndarray, weights: np.ndarray) -> Optional[str]:
    """None if a fused output may be published, else what is wrong with it.

    Scores are calibrated probabilities and gate weights a distribution: every value must be
    finite and in [0, 1]. Whatever the inputs did to the maths, nothing else leaves the node.
    """
    for name, values in (("scores", scores), ("weights", weights)):
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            return f"{name} not finite: {values.tolist()}"
        if values.size and (values.min() < 0.0 or values.max() > 1.0):
            return f"{name} outside [0, 1]: {values.tolist()}"
    return None


@dataclass
class FusionSettings:
    """Run-time knobs of the fusion (all changeable live, no retraining).

    ``timeout_s[m]``: modality ``m`` is present while ``now - stamp <= timeout_s[m]``.
    ``enabled[m]``: a disabled modality is never fused. ``min_present``: fewer present
    modalities -> no output. ``gate_temperature`` / ``gate_bias[m]``: AECF gate prior
    (``fusion.set_gate_prior``): temperature > 1 flattens the gate, a negative bias trusts a
    modality less. ``score_threshold``: a class counts as detected at or above it.
    ``max_abs_embedding``: an embedding with any |value| above it is dropped (``out_of_range``).
    ``expected_rate_hz[m]`` (0 = not monitored) / ``min_rate_fraction``: the per-sensor status
    warns when ``m`` arrives slower than ``min_rate_fraction * expected_rate_hz[m]``.
    """

    timeout_s: dict[str, float] = field(default_factory=dict)
    enabled: dict[str, bool] = field(default_factory=dict)
    gate_temperature: float = 1.0
    gate_bias: dict[str, float] = field(default_factory=dict)
    min_present: int = 1
    score_threshold: float = 0.5
    check_encoder_id: bool = True
    max_abs_embedding: float = INPUT_ABS_LIMIT
    expected_rate_hz: dict[str, float] = field(default_factory=dict)
    min_rate_fraction: float = 0.5

    @classmethod
    def from_parameters(cls, value: Callable[[str], Any], modalities: Sequence[str],
                        check_encoder_id: bool = True) -> "FusionSettings":
        """Settings from the fusion node's parameters (``aecf_ros/graph.py`` names:
        ``timeout_s.<m>``, ``enabled.<m>``, ``gate_bias.<m>``, ...); ``value(name)`` reads one
        (the live node's parameter, or a flat dict's entry in evaluate-bag)."""
        return cls(
            timeout_s={m: float(value(f"timeout_s.{m}")) for m in modalities},
            enabled={m: bool(value(f"enabled.{m}")) for m in modalities},
            gate_temperature=float(value("gate_temperature")),
            gate_bias={m: float(value(f"gate_bias.{m}")) for m in modalities},
            min_present=int(value("min_present")),
            score_threshold=float(value("score_threshold")),
            check_encoder_id=check_encoder_id,
            max_abs_embedding=float(value("max_abs_embedding")),
            expected_rate_hz={m: float(value(f"expected_rate_hz.{m}")) for m in modalities},
            min_rate_fraction=float(value("min_rate_fraction")),
        )


@dataclass
class FusionPrediction:
    """One fused prediction at time ``now`` (arrays parallel to ``modalities``)."""

    now: float
    stamp: float  # newest stamp among the fused embeddings
    class_names: list[str]
    scores: np.ndarray  # float32[C], calibrated probabilities
    modalities: list[str]
    present: list[bool]
    weights: np.ndarray  # float32[M], 0 for absent
    ages_s: list[float]  # -1 where never seen
    gate_entropy: float
    inference_time_s: float

    @property
    def present_modalities(self) -> list[str]:
        return [m for m, p in zip(self.modalities, self.present) if p]

    def detected(self, threshold: float) -> list[str]:
        return [c for c, s in zip(self.class_names, self.scores) if s >= threshold]


@dataclass
class NoOutput:
    """Why nothing was published at ``now`` (``reason`` in: no_modality_present,
    too_few_modalities, invalid_output: the model produced a non-finite or out-of-[0, 1] score
    or weight, withheld)."""

    now: float
    reason: str
    present: list[str]
    message: str


@dataclass
class StepResult:
    output: FusionPrediction | NoOutput
    transitions: list[Transition]


class FusionEngine:
    """Newest-embedding store + presence monitors + gated model call. See the module doc."""

    def __init__(self, model: Any, settings: FusionSettings | None = None, *,
                 default_timeout_s: float = 0.5, rate_window_s: float = 2.0):
        self.model = model
        self.modalities: list[str] = list(model.modalities)
        self.embedding_dims: dict[str, int] = {m: int(model.embedding_dims[m]) for m in self.modalities}
        self.encoder_ids: dict[str, str] = dict(getattr(model, "encoder_ids", {}) or {})
        self.class_names: list[str] = list(model.class_names)
        self.settings = settings or FusionSettings()
        for m in self.modalities:
            self.settings.timeout_s.setdefault(m, default_timeout_s)
            self.settings.enabled.setdefault(m, True)
            self.settings.gate_bias.setdefault(m, 0.0)
        self.monitors: dict[str, StreamMonitor] = {
            m: StreamMonitor(m, self.settings.timeout_s[m], self.settings.enabled[m],
                             rate_window_s=rate_window_s)
            for m in self.modalities
        }
        self.rates: dict[str, RateMonitor] = {m: RateMonitor() for m in self.modalities}
        self.sequences: dict[str, SequenceTracker] = {m: SequenceTracker() for m in self.modalities}
        self.last_invalid_output: Optional[str] = None
        self._embeddings: dict[str, Optional[np.ndarray]] = {m: None for m in self.modalities}
        self._absent_rows: Optional[dict] = None  # zero Tensor[1, D_m] per modality, built once
        self.engine_drops: collections.Counter[str] = collections.Counter()
        self.last_inference_time_s: Optional[float] = None
        self.published = 0
        self.no_output_counts: collections.Counter[str] = collections.Counter()
        self._cuda_step = None  # CudaFusionStep once enable_cuda_step() ran (CUDA models only)
        self._cuda_step_options: Optional[tuple] = None
        self._cpu_step = None  # TracedFusionStep once enable_cpu_step() ran (CPU models)
        self.apply_settings(self.settings)

    def enable_cpu_step(self) -> str:
        """Batch-1 fusion + head from a TorchScript trace checked against the module on every
        presence pattern (:mod:`aecf_ros.runtime.cpu_step`; same outputs, about half the time).
        Returns the mode used: ``traced`` or, if the trace failed or differed, ``eager (reason)``."""
        from aecf_ros.runtime.cpu_step import TracedFusionStep, TraceMismatch

        device = getattr(self.model, "device", None)
        if device is not None and getattr(device, "type", str(device)) != "cpu":
            raise ValueError(f"enable_cpu_step needs a model on CPU, this one is on {device}")
        try:
            self._cpu_step = TracedFusionStep(self.model.fusion, self.model.head, self.modalities,
                                              self.embedding_dims)
        except TraceMismatch as exc:
            self._cpu_step = None
            return f"eager ({exc})"
        return "traced"

    def enable_cuda_step(self, dtype: str = "float16", cuda_graph: bool = True) -> str:
        """Batch-1 fusion + head in ``dtype`` from a captured CUDA graph (model on CUDA only;
        calibration stays float32). Returns the mode actually used (``cuda graph float16`` or,
        if the capture failed, ``eager float16``). CPU models are refused (ValueError)."""
        from aecf_ros.runtime.gpu_step import CudaFusionStep

        device = getattr(self.model, "device", None)
        if device is None or getattr(device, "type", str(device)) != "cuda":
            raise ValueError(f"enable_cuda_step needs a model on CUDA, this one is on {device}")
        self._cuda_step_options = (dtype, cuda_graph)
        self._cuda_step = CudaFusionStep(self.model.fusion, self.model.head, self.modalities,
                                         self.embedding_dims, device, dtype=dtype, cuda_graph=cuda_graph)
        return self._cuda_step.mode

    # ------------------------------------------------------------------ settings
    @staticmethod
    def validate_settings(settings: FusionSettings, modalities: Sequence[str]) -> Optional[str]:
        """None if valid, else a one-line reason (used by the node's parameter callback)."""
        if not (settings.gate_temperature > 0 and math.isfinite(settings.gate_temperature)):
            return f"gate_temperature must be > 0, got {settings.gate_temperature}"
        if not 1 <= int(settings.min_present) <= len(modalities):
            return f"min_present must be in 1..{len(modalities)}, got {settings.min_present}"
        if not 0.0 <= settings.score_threshold <= 1.0:
            return f"score_threshold must be in [0, 1], got {settings.score_threshold}"
        if not (settings.max_abs_embedding > 0 and math.isfinite(settings.max_abs_embedding)):
            return f"max_abs_embedding must be > 0 and finite, got {settings.max_abs_embedding}"
        if not 0.0 < settings.min_rate_fraction <= 1.0:
            return f"min_rate_fraction must be in (0, 1], got {settings.min_rate_fraction}"
        for m, hz in settings.expected_rate_hz.items():
            if m not in modalities:
                return f"expected_rate_hz.{m}: unknown modality (model has {', '.join(modalities)})"
            if not (hz >= 0 and math.isfinite(hz)):
                return f"expected_rate_hz.{m} must be >= 0 (0 = not monitored), got {hz}"
        for m, t in settings.timeout_s.items():
            if m not in modalities:
                return f"timeout_s.{m}: unknown modality (model has {', '.join(modalities)})"
            if not (t > 0 and math.isfinite(t)):
                return f"timeout_s.{m} must be > 0, got {t}"
        for m, b in settings.gate_bias.items():
            if m not in modalities:
                return f"gate_bias.{m}: unknown modality (model has {', '.join(modalities)})"
            if not math.isfinite(b):
                return f"gate_bias.{m} must be finite, got {b}"
        for m in settings.enabled:
            if m not in modalities:
                return f"enabled.{m}: unknown modality (model has {', '.join(modalities)})"
        return None

    def apply_settings(self, settings: FusionSettings) -> None:
        """Validate and apply new settings (ValueError with the reason if invalid)."""
        reason = self.validate_settings(settings, self.modalities)
        if reason:
            raise ValueError(reason)
        self.settings = settings
        for m, mon in self.monitors.items():
            mon.set_timeout(settings.timeout_s.get(m, mon.timeout_s))
            mon.set_enabled(settings.enabled.get(m, True))
            rate = self.rates[m]
            hz = float(settings.expected_rate_hz.get(m, 0.0))
            if (hz, settings.min_rate_fraction) != (rate.expected_hz, rate.min_fraction):
                rate.configure(hz, settings.min_rate_fraction)
        fusion = getattr(self.model, "fusion", None)
        if fusion is not None and hasattr(fusion, "set_gate_prior"):
            fusion.set_gate_prior(
                temperature=float(settings.gate_temperature),
                bias={m: float(settings.gate_bias.get(m, 0.0)) for m in self.modalities},
            )
        if getattr(self, "_cuda_step", None) is not None:  # the half copy must see the new gate prior
            self.enable_cuda_step(*self._cuda_step_options)

    # ------------------------------------------------------------------ input
    def count_drop(self, modality: str, reason: str) -> None:
        if modality in self.monitors:
            self.monitors[modality].count_drop(reason)
        else:
            self.engine_drops[reason] += 1

    def submit(self, modality: str, embedding: Any, stamp: float, receive_time: float,
               encoder_id: Optional[str] = None, seq: int = 0) -> Optional[str]:
        """Offer one embedding. Returns None if accepted, else the (counted) drop reason.

        ``seq``: the encoder's sequence number (0 = unnumbered); gaps are counted as lost.
        """
        if modality not in self.monitors:
            self.engine_drops["unknown_modality"] += 1
            return "unknown_modality"
        self.sequences[modality].observe(seq)
        # float64 first: a huge float64 must be judged, not silently overflowed to inf by float32
        vec64 = np.asarray(embedding, dtype=np.float64).reshape(-1)
        reason = None
        if vec64.shape[0] != self.embedding_dims[modality]:
            reason = "wrong_dim"
        elif not np.isfinite(vec64).all():
            reason = "non_finite"
        elif vec64.size and float(np.abs(vec64).max()) > self.settings.max_abs_embedding:
            reason = "out_of_range"
        elif (self.settings.check_encoder_id and encoder_id is not None
              and modality in self.encoder_ids and encoder_id != self.encoder_ids[modality]):
            reason = "encoder_id_mismatch"
        if reason:
            self.monitors[modality].count_drop(reason)
            return reason
        monitor = self.monitors[modality]
        if not monitor.feed(float(stamp), float(receive_time)):
            return monitor.last_drop_reason  # counted by the monitor
        # (a new time base confirmed inside feed() reset the monitor: a bag loop, a restart)
        self.rates[modality].record(float(receive_time))
        self._embeddings[modality] = vec64.astype(np.float32)  # within bounds: exact in float32
        return None

    def discard_embedding(self, modality: str) -> None:
        """Forget ``modality``'s newest embedding: it is absent until the next accepted one.

        For callers that submit a placeholder to let the monitor judge a sample before paying for
        its encoding (evaluate-bag) and then fail to encode it: a placeholder is never evidence.
        """
        self._embeddings[modality] = None

    # ------------------------------------------------------------------ output
    def tick(self, now: float) -> list[Transition]:
        """Advance every monitor to ``now``; returns the state transitions (log each once)."""
        transitions: list[Transition] = []
        for m in self.modalities:
            mon = self.monitors[m]
            jumps = mon.time_jumps
            transitions += mon.tick(now)
            if mon.time_jumps != jumps:
                self._embeddings[m] = None  # evidence from before the time jump is void
                self.rates[m].reset()
        return transitions

    def present_at(self, now: float) -> list[bool]:
        return [self.monitors[m].is_present(now) and self._embeddings[m] is not None
                for m in self.modalities]

    def gate(self, now: float) -> tuple[list[bool], Optional[NoOutput], list[Transition]]:
        """The presence decision :meth:`step` fuses on, without running the model: tick the
        monitors to ``now``; returns ``(present, no_output, transitions)`` where ``no_output`` is
        the :class:`NoOutput` the node would publish instead of a prediction (nothing present,
        fewer than ``min_present``), else None. The bag dataset samples exactly these instants."""
        transitions = self.tick(now)
        present = self.present_at(now)
        names = [m for m, p in zip(self.modalities, present) if p]
        if not names:
            return present, NoOutput(now, "no_modality_present", [],
                                     "no modality is present (all stale, disabled or never seen)"), transitions
        if len(names) < self.settings.min_present:
            return present, NoOutput(now, "too_few_modalities", names,
                                     f"only {', '.join(names)} present; min_present is {self.settings.min_present}"), \
                transitions
        return present, None, transitions

    def embeddings_of(self, present: Sequence[bool]) -> dict[str, Optional[np.ndarray]]:
        """The newest embedding of each present modality (None where absent), as fused."""
        return {m: (self._embeddings[m] if p else None) for m, p in zip(self.modalities, present)}

    def step(self, now: float) -> StepResult:
        """Tick the monitors and fuse what is present at ``now``."""
        present, out, transitions = self.gate(now)
        if out is None:
            out = self._predict(now, present)
            invalid = check_prediction(out.scores, out.weights)
            if invalid:
                # withheld: a NaN or out-of-range score must never reach a consumer as a prediction
                self.last_invalid_output = invalid
                out = NoOutput(now, "invalid_output", out.present_modalities,
                               f"model output withheld: {invalid}")
        if isinstance(out, NoOutput):
            self.no_output_counts[out.reason] += 1
        else:
            self.published += 1
        return StepResult(out, transitions)

    def _predict(self, now: float, present: list[bool]) -> FusionPrediction:
        import torch

        mask = torch.tensor([present], dtype=torch.bool)
        t0 = time.perf_counter()
        step = self._cuda_step if self._cuda_step is not None else self._cpu_step
        if step is not None:  # fusion + head from the CUDA graph or the CPU trace; calibration here
            # (present_at() only reports a modality present once it holds an embedding)
            logits, weights, entropy = step(
                {m: self._embeddings[m] if p else None for m, p in zip(self.modalities, present)}, present)
            with torch.inference_mode():
                probs = torch.sigmoid(self.model.calibrator(logits, mask.to(logits.device), None))
            scores = probs[0].float().cpu().numpy()
        else:
            if self._absent_rows is None:
                self._absent_rows = {m: torch.zeros(1, d) for m, d in self.embedding_dims.items()}
            embeddings = {m: torch.from_numpy(self._embeddings[m]).unsqueeze(0) if p else self._absent_rows[m]
                          for m, p in zip(self.modalities, present)}
            with torch.inference_mode():
                probs, fusion_out = self.model.predict(embeddings, mask)
            scores = probs[0].detach().float().cpu().numpy()
            weights = fusion_out.weights[0].detach().float().cpu().numpy()
            entropy = float(fusion_out.entropy[0]) if getattr(fusion_out, "entropy", None) is not None else 0.0
        elapsed = time.perf_counter() - t0
        self.last_inference_time_s = elapsed
        ages = []
        for m in self.modalities:
            a = self.monitors[m].age(now)
            ages.append(float(a) if a is not None else -1.0)
        stamps = [self.monitors[m].newest_stamp for m, p in zip(self.modalities, present) if p]
        return FusionPrediction(
            now=now, stamp=float(max(stamps)), class_names=self.class_names,
            scores=scores.astype(np.float32), modalities=list(self.modalities), present=list(present),
            weights=np.where(present, weights, 0.0).astype(np.float32), ages_s=ages,
            gate_entropy=entropy, inference_time_s=elapsed)

    def warm_up(self, repeats: int = 3) -> float:
        """Run the model on zero embeddings (first-call allocation, lazy init); returns seconds."""
        import torch

        emb = {m: torch.zeros(1, self.embedding_dims[m]) for m in self.modalities}
        mask = torch.ones(1, len(self.modalities), dtype=torch.bool)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for _ in range(max(1, repeats)):
                self.model.predict(emb, mask)
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ reporting
    def states(self, now: float) -> dict[str, StreamState]:
        return {m: self.monitors[m].compute_state(now) for m in self.modalities}

    def snapshot(self, now: float) -> dict:
        """Per modality: the stream monitor's snapshot plus rate (``rate_state``, ``rate_hz``,
        ``expected_rate_hz``, ``min_rate_fraction``, ``rate_message``) and ``lost`` /
        ``encoder_restarts`` from the sequence numbers."""
        out = {}
        for m in self.modalities:
            snap = self.monitors[m].snapshot(now)
            snap.update(self.rates[m].snapshot(now))
            snap["rate_message"] = self.rates[m].describe(now)
            snap["lost"] = self.sequences[m].lost
            snap["encoder_restarts"] = self.sequences[m].restarts
            out[m] = snap
        return out
