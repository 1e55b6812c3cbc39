"""When the fusion node publishes: on its timer, or on each new embedding of one modality.

``output_trigger = "timer"`` (the default): every timer tick publishes (today's behaviour: a
prediction waits up to ``1 / publish_rate_hz`` for the tick).

``output_trigger = <modality>``: an accepted embedding of that modality publishes at once (the
newest embedding of every other present modality is fused with it), at most
``max_output_rate_hz`` times a second (a trigger embedding arriving sooner after the previous
*trigger* output is skipped and counted ``rate_limited``; the next one, or the watchdog,
publishes). The timer stays as a watchdog: a tick publishes only if nothing was published for a
whole timer period, so a dead or slow trigger sensor degrades the output to the timer rate
instead of stopping it, and stale sensors are still reported within ``timeout + one timer
period``. A watchdog output does not hold back the next trigger embedding: a sensor that
resumes right after a watchdog tick is answered at once (the watchdog adds at most one output
per timer period to the ``max_output_rate_hz`` of the trigger).

ROS-free; times are the caller's clock in seconds (the node clock).
"""
from __future__ import annotations

import collections
from typing import Optional, Sequence

TIMER = "timer"

__all__ = ["TIMER", "OutputGate", "validate_trigger"]


def validate_trigger(trigger: str, modalities: Sequence[str]) -> Optional[str]:
    """None if ``trigger`` is ``timer`` or one of ``modalities``, else the reason."""
    if trigger == TIMER or trigger in modalities:
        return None
    return f"output_trigger must be 'timer' or one of {', '.join(modalities)}, got {trigger!r}"


class OutputGate:
    """Decides, per timer tick and per accepted embedding, whether to publish now.

    Counters (``counts``): ``trigger`` (published on a trigger embedding), ``watchdog``
    (published by the timer in trigger mode because nothing else was), ``timer`` (timer mode),
    ``rate_limited`` (trigger embedding skipped by ``max_output_rate_hz``).
    """

    def __init__(self, trigger: str = TIMER, max_output_rate_hz: float = 100.0, timer_period_s: float = 0.1):
        self.trigger = TIMER
        self.max_output_rate_hz = 100.0
        self.timer_period_s = 0.1
        self.last_output: Optional[float] = None  # any output (the watchdog's reference)
        self.last_trigger: Optional[float] = None  # the last trigger output (the rate limit's)
        self.counts: collections.Counter[str] = collections.Counter()
        self.configure(trigger, max_output_rate_hz, timer_period_s)

    def configure(self, trigger: str, max_output_rate_hz: float, timer_period_s: float) -> None:
        if not (max_output_rate_hz > 0):
            raise ValueError(f"max_output_rate_hz must be > 0, got {max_output_rate_hz}")
        if not (timer_period_s > 0):
            raise ValueError(f"timer period must be > 0, got {timer_period_s}")
        self.trigger = str(trigger)
        self.max_output_rate_hz = float(max_output_rate_hz)
        self.timer_period_s = float(timer_period_s)

    @property
    def triggered(self) -> bool:
        return self.trigger != TIMER

    def on_embedding(self, modality: str, now: float) -> bool:
        """An embedding of ``modality`` was accepted at ``now``: publish now?"""
        if modality != self.trigger:
            return False
        min_gap = 1.0 / self.max_output_rate_hz
        # (1e-6 s tolerance: an input exactly at the maximum rate is never skipped by rounding)
        if self.last_trigger is not None and 0.0 <= now - self.last_trigger < min_gap - 1e-6:
            self.counts["rate_limited"] += 1
            return False
        self.counts["trigger"] += 1
        self.last_trigger = now
        return True

    def on_timer(self, now: float) -> bool:
        """A timer tick at ``now``: publish now?"""
        if not self.triggered:
            self.counts["timer"] += 1
            return True
        # watchdog: only when nothing was published for a whole period (minus a little jitter, so
        # a trigger that just stopped is covered by the very next tick after one period)
        if self.last_output is None or not (0.0 <= now - self.last_output < 0.9 * self.timer_period_s):
            self.counts["watchdog"] += 1
            return True
        return False

    def published(self, now: float) -> None:
        """Record an output attempt at ``now`` (published or NoOutput: either way the step ran)."""
        self.last_output = now
