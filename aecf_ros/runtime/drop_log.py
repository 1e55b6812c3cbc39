"""Which dropped-input messages to log: throttled per drop *reason*, not per call site (no ROS).

rclpy's ``throttle_duration_sec`` throttles per logging call site, so a burst of one kind of bad
input (truncated images at 30 Hz) would hide the first message of another (a NaN embedding)
logged from the same line. :class:`PerReasonThrottle` lets the first drop of every reason
through, then at most one per reason every ``period_s``, and says how many of that reason were
not logged in between. Every drop is still counted in diagnostics by the caller.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

__all__ = ["PerReasonThrottle"]


class PerReasonThrottle:
    """Args:
        period_s: at most one logged message per reason per this many seconds.
        clock: seconds, monotonic (wall time on purpose: this limits log volume, whatever the
            node clock does under ``use_sim_time``).
    """

    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        if not period_s >= 0:
            raise ValueError(f"period_s must be >= 0, got {period_s!r}")
        self.period_s = float(period_s)
        self._clock = clock
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def should_log(self, reason: str) -> Optional[int]:
        """None: do not log this one. Else log it; the value is how many drops of ``reason``
        were not logged since the last logged one (0 for the first)."""
        now = self._clock()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self.period_s:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return None
        self._last_logged[reason] = now
        return self._suppressed.pop(reason, 0)

    def suffix(self, reason: str) -> Optional[str]:
        """:meth:`should_log` as a log-line suffix (``""`` or ``" (+N more since last logged)"``)."""
        skipped = self.should_log(reason)
        if skipped is None:
            return None
        return f" (+{skipped} more since last logged)" if skipped else ""
