"""Per-modality presence state machine on a caller-given clock (no ROS).

The split follows ``ros2/demos`` ``topic_monitor``: a plain class holds the state, the node only
feeds it samples and timer ticks. Unlike ``topic_monitor`` it never reads wall time: every call
takes the caller's clock in seconds (the node clock, so ``use_sim_time`` bag replay works, or a
bag's time in the offline evaluator), and presence is judged on the *message stamp*, like nav2
``collision_monitor``'s per-source ``source_timeout``:

    present(now)  <=>  enabled  and  seen  and  now - newest_stamp <= timeout_s

States: ``NEVER_SEEN`` (enabled, nothing received since start / reset), ``OK`` (present),
``STALE`` (seen, but the newest sample is older than the timeout), ``DISABLED`` (switched off).
:meth:`StreamMonitor.tick` returns the state *transitions* only, so a node logs each one once.

Time jumps: a clock that goes backwards by more than ``time_jump_tolerance_s`` (a looping bag,
a restarted simulator: ``/clock`` reset) resets the monitor to ``NEVER_SEEN`` and is counted in
``time_jumps``. A sample stamped far behind the newest one while the clock runs on is either a
single bad stamp (a driver that stamps some frames 0) or a source that restarted or looped on
its own time base. One sample cannot tell them apart, so such a sample is dropped and counted
(``stamp_behind``) until ``time_base_samples`` consecutive samples agree on the new time base
(each within ``time_jump_tolerance_s`` after the previous one, none accepted in between); only
then does the stream restart from the newest of them (``time_jumps`` + 1). An interleaved bad
stamp therefore never knocks a healthy stream out. Nothing raises.

Future stamps: a sample stamped more than ``max_future_s`` ahead of its receive time is dropped
(``stamp_in_future``). By default the tolerance *is* the timeout (and follows it when the timeout
changes): a source whose clock runs ahead stays present at most ``2 * timeout_s`` after it
stops, instead of a fixed tolerance that can dwarf a short camera timeout.
"""
from __future__ import annotations

import collections
import enum
import math
from dataclasses import dataclass
from typing import Deque, Optional

__all__ = ["StreamState", "Transition", "StreamMonitor"]


class StreamState(str, enum.Enum):
    NEVER_SEEN = "NEVER SEEN"
    OK = "OK"
    STALE = "STALE"
    DISABLED = "DISABLED"


@dataclass(frozen=True)
class Transition:
    """One state change, reported once by :meth:`StreamMonitor.tick`."""

    name: str
    old: StreamState
    new: StreamState
    now: float
    age_s: Optional[float]  # age of the newest sample at `now`; None if none

    def describe(self) -> str:
        age = f" (newest sample {self.age_s:.3f} s old)" if self.age_s is not None else ""
        return f"{self.name}: {self.old.value} -> {self.new.value}{age}"


class StreamMonitor:
    """Presence, age, receive rate and drop counters of one input stream.

    Args:
        name: the modality / stream name (used in transitions and diagnostics).
        timeout_s: a sample counts as present while ``now - stamp <= timeout_s``.
        enabled: a disabled stream is never present (state ``DISABLED``).
        rate_window_s: receive rate is measured over this sliding window of receive times.
        time_jump_tolerance_s: backwards clock steps or stamp regressions larger than this reset
            the monitor (smaller stamp regressions are out-of-order samples: counted, ignored).
        max_future_s: samples stamped further than this ahead of their receive time are dropped
            (``stamp_in_future``): they would otherwise count as present until the clock catches up.
            None (default): the timeout itself, following :meth:`set_timeout`.
        time_base_samples: consecutive samples far behind the newest that must agree before the
            stream restarts on their time base (fewer: each one is a ``stamp_behind`` drop).
    """

    def __init__(self, name: str, timeout_s: float, enabled: bool = True, rate_window_s: float = 2.0,
                 time_jump_tolerance_s: float = 1.0, max_future_s: Optional[float] = None,
                 time_base_samples: int = 3):
        if not timeout_s > 0 or not math.isfinite(timeout_s):
            raise ValueError(f"timeout_s must be a positive finite number, got {timeout_s!r}")
        if not rate_window_s > 0:
            raise ValueError(f"rate_window_s must be > 0, got {rate_window_s!r}")
        self.name = name
        self.timeout_s = float(timeout_s)
        self.enabled = bool(enabled)
        self.rate_window_s = float(rate_window_s)
        self.time_jump_tolerance_s = float(time_jump_tolerance_s)
        self._max_future_s = None if max_future_s is None else float(max_future_s)
        if int(time_base_samples) < 1:
            raise ValueError(f"time_base_samples must be >= 1, got {time_base_samples!r}")
        self.time_base_samples = int(time_base_samples)
        self._time_base_candidates: list[float] = []  # stamps far behind the newest, in a row
        self.drops: collections.Counter[str] = collections.Counter()
        self.time_jumps = 0
        self.received = 0  # accepted samples, lifetime
        self.last_drop_reason: Optional[str] = None
        self._receive_times: Deque[float] = collections.deque()
        self.newest_stamp: Optional[float] = None
        self.newest_receive_time: Optional[float] = None
        self._last_now: Optional[float] = None
        self.state = StreamState.NEVER_SEEN if self.enabled else StreamState.DISABLED

    # ------------------------------------------------------------------ configuration
    def set_timeout(self, timeout_s: float) -> None:
        if not timeout_s > 0 or not math.isfinite(timeout_s):
            raise ValueError(f"timeout_s must be a positive finite number, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)

    @property
    def max_future_s(self) -> float:
        """How far ahead of its receive time a sample may be stamped (default: the timeout)."""
        return self.timeout_s if self._max_future_s is None else self._max_future_s

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = bool(enabled)

    def reset(self) -> None:
        """Forget every sample (state NEVER_SEEN / DISABLED); counters are kept."""
        self.newest_stamp = None
        self.newest_receive_time = None
        self._receive_times.clear()
        self._last_now = None
        self._time_base_candidates.clear()

    # ------------------------------------------------------------------ input
    def count_drop(self, reason: str) -> None:
        """Count one rejected input (bad encoding, NaN, wrong dims, ...) by reason."""
        self.drops[reason] += 1
        self.last_drop_reason = reason

    def feed(self, stamp: float, receive_time: float) -> bool:
        """Record one sample stamped ``stamp`` that arrived at ``receive_time`` (caller clock).

        Returns True if it became the newest sample, False if it was dropped (and counted):
        ``non_finite_stamp``, ``stamp_in_future``, ``out_of_order`` or ``stamp_behind`` (far
        behind the newest; see the module doc for when that starts a new time base).
        """
        if not (math.isfinite(stamp) and math.isfinite(receive_time)):
            self.count_drop("non_finite_stamp")
            return False
        self._check_clock(receive_time)
        if stamp - receive_time > self.max_future_s:
            self.count_drop("stamp_in_future")
            return False
        if self.newest_stamp is not None and stamp < self.newest_stamp:
            if self.newest_stamp - stamp > self.time_jump_tolerance_s:
                if not self._confirms_new_time_base(stamp):
                    self.count_drop("stamp_behind")
                    return False
                # enough samples agree: the source restarted or looped on its own time base
                self.time_jumps += 1
                self.reset()
            else:
                self.count_drop("out_of_order")
                return False
        self._time_base_candidates.clear()
        self.newest_stamp = float(stamp)
        self.newest_receive_time = float(receive_time)
        self.received += 1
        self._receive_times.append(float(receive_time))
        self._trim(receive_time)
        return True

    def _confirms_new_time_base(self, stamp: float) -> bool:
        """Record ``stamp`` (far behind the newest) as evidence of a new time base; True once
        ``time_base_samples`` of them in a row are consistent (each at or a little after the
        previous one)."""
        run = self._time_base_candidates
        if run and not 0.0 <= stamp - run[-1] <= self.time_jump_tolerance_s:
            run.clear()  # not consistent with the run so far: this one starts a new run
        run.append(float(stamp))
        return len(run) >= self.time_base_samples

    # ------------------------------------------------------------------ queries
    def _check_clock(self, now: float) -> None:
        if self._last_now is not None and now < self._last_now - self.time_jump_tolerance_s:
            self.time_jumps += 1
            self.reset()
        if self._last_now is None or now > self._last_now:
            self._last_now = now

    def _trim(self, now: float) -> None:
        horizon = now - self.rate_window_s
        times = self._receive_times
        while times and times[0] < horizon:
            times.popleft()

    def age(self, now: float) -> Optional[float]:
        """Seconds since the newest sample's stamp (None if nothing seen)."""
        if self.newest_stamp is None:
            return None
        return now - self.newest_stamp

    def is_present(self, now: float) -> bool:
        if not self.enabled or self.newest_stamp is None:
            return False
        return now - self.newest_stamp <= self.timeout_s

    def receive_rate(self, now: float) -> float:
        """Samples per second over the last ``rate_window_s`` of receive time (0 if < 2)."""
        self._trim(now)
        times = self._receive_times
        if len(times) < 2:
            return 0.0
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else 0.0

    def compute_state(self, now: float) -> StreamState:
        if not self.enabled:
            return StreamState.DISABLED
        if self.newest_stamp is None:
            return StreamState.NEVER_SEEN
        return StreamState.OK if self.is_present(now) else StreamState.STALE

    def tick(self, now: float) -> list[Transition]:
        """Advance to ``now``; returns ``[Transition]`` if the state changed, else ``[]``."""
        if not math.isfinite(now):
            return []
        self._check_clock(now)
        new = self.compute_state(now)
        if new == self.state:
            return []
        old, self.state = self.state, new
        return [Transition(self.name, old, new, now, self.age(now))]

    def snapshot(self, now: float) -> dict:
        """Everything diagnostics report, as plain values."""
        age = self.age(now)
        return {
            "state": self.compute_state(now).value,
            "age_s": age,
            "receive_rate_hz": self.receive_rate(now),
            "timeout_s": self.timeout_s,
            "enabled": self.enabled,
            "received": self.received,
            "drops": dict(self.drops),
            "time_jumps": self.time_jumps,
        }
