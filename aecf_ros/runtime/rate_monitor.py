"""Is a stream arriving as fast as it should? Rate against an expected rate, on the caller's clock.

Like ``diagnostic_updater``'s ``FrequencyStatus`` (events counted over a window, WARN below a
minimum) but fed with the caller's clock (the node clock, so ``use_sim_time`` replay works; the
updater reads wall time) and shaped like :class:`~aecf_ros.runtime.stream_monitor.StreamMonitor`:
a plain class the node feeds arrivals and asks at report time. No ROS.

    rate(now)  = arrivals in (now - window_s, now]  /  window_s
    LOW        <=> expected_hz > 0, a full window observed, rate < min_fraction * expected_hz

The window is ``max(2 s, 10 / expected_hz)`` so it always spans about ten expected arrivals;
until one full window has passed since the first arrival (or a reset) the status is
``STARTING``, never a false LOW at start-up. A stream that stops entirely is the presence
monitor's business (STALE); here its rate simply falls to 0.

With header stamps the monitor also estimates inputs lost before they reached the node (a
sensor -> node hop that has no sequence number: DDS, the KEEP_LAST input queue, the driver):
a stamp gap ``d`` longer than 1.5 expected periods counts ``round(d * expected_hz) - 1`` lost.
It is an estimate (a jittery or slower-than-nominal source inflates it) and is reported as such.
"""
from __future__ import annotations

import collections
import enum
import math
from typing import Deque, Optional

__all__ = ["RateState", "RateMonitor"]


class RateState(str, enum.Enum):
    NOT_MONITORED = "NOT MONITORED"  # expected_hz == 0
    STARTING = "STARTING"  # less than one window observed
    OK = "OK"
    LOW = "LOW"


class RateMonitor:
    """Arrival rate of one stream against ``expected_hz`` (0 = no expectation).

    Args:
        expected_hz: nominal rate of the source; 0 switches the check (and the loss estimate) off.
        min_fraction: LOW below ``min_fraction * expected_hz`` (0 < min_fraction <= 1).
    """

    def __init__(self, expected_hz: float = 0.0, min_fraction: float = 0.5):
        self.expected_hz = 0.0
        self.min_fraction = 0.5
        self.window_s = 2.0
        self._arrivals: Deque[float] = collections.deque()
        self._started: Optional[float] = None
        self._last_stamp: Optional[float] = None
        self.lost_estimate = 0
        self.configure(expected_hz, min_fraction)

    def configure(self, expected_hz: float, min_fraction: Optional[float] = None) -> None:
        """Change the expectation (live); the measurement starts over."""
        expected_hz = float(expected_hz)
        if not (math.isfinite(expected_hz) and expected_hz >= 0):
            raise ValueError(f"expected_hz must be >= 0, got {expected_hz!r}")
        if min_fraction is not None:
            min_fraction = float(min_fraction)
            if not 0 < min_fraction <= 1:
                raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction!r}")
            self.min_fraction = min_fraction
        self.expected_hz = expected_hz
        self.window_s = max(2.0, 10.0 / expected_hz) if expected_hz > 0 else 2.0
        self.reset()

    def reset(self) -> None:
        """Forget the arrivals (a clock jump, re-activation); the loss estimate is kept."""
        self._arrivals.clear()
        self._started = None
        self._last_stamp = None

    def record(self, now: float, stamp: Optional[float] = None) -> None:
        """One arrival at ``now`` (caller's clock); ``stamp`` (its header stamp, if it has one)
        feeds the loss estimate. A clock that went back restarts the measurement."""
        if not math.isfinite(now):
            return
        if self._arrivals and now < self._arrivals[-1]:
            self.reset()
        if self._started is None:
            self._started = now
        self._arrivals.append(now)
        self._trim(now)
        if stamp is not None and math.isfinite(stamp) and self.expected_hz > 0:
            if self._last_stamp is not None and stamp > self._last_stamp:
                gap_periods = (stamp - self._last_stamp) * self.expected_hz
                if gap_periods > 1.5:
                    self.lost_estimate += int(round(gap_periods)) - 1
            if self._last_stamp is None or stamp > self._last_stamp:
                self._last_stamp = stamp

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        while self._arrivals and self._arrivals[0] <= horizon:
            self._arrivals.popleft()

    def rate(self, now: float) -> float:
        """Arrivals per second over the last window (0 with none)."""
        self._trim(now)
        return len(self._arrivals) / self.window_s

    def state(self, now: float) -> RateState:
        if self.expected_hz <= 0:
            return RateState.NOT_MONITORED
        if self._started is None or now - self._started < self.window_s:
            return RateState.STARTING
        return RateState.LOW if self.rate(now) < self.min_fraction * self.expected_hz else RateState.OK

    def describe(self, now: float) -> str:
        """One line for a diagnostics message (empty unless LOW)."""
        if self.state(now) is not RateState.LOW:
            return ""
        return (f"rate {self.rate(now):.1f} Hz < {self.min_fraction:g} x expected "
                f"{self.expected_hz:g} Hz")

    def snapshot(self, now: float) -> dict:
        return {"rate_state": self.state(now).value, "rate_hz": self.rate(now),
                "expected_rate_hz": self.expected_hz, "min_rate_fraction": self.min_fraction}
