"""The internal-error policy of every aecf_ros node: a callback that raises is contained, counted,
reported, and the node keeps serving.

In rclpy an exception raised by a subscription or timer callback leaves ``executor.spin_once()``
and, in every entry point of this package, ends the process: one unforeseen input (or a bug hit by
one sensor's data) would stop the predictions of all sensors until someone restarts the node.
:class:`CallbackGuard` wraps each callback so that an unexpected exception instead

* is logged with its traceback **once** per (callback, exception type), later ones only as a
  count, at most once per ``log_period_s`` per callback;
* is counted per callback (``internal_error`` and ``internal_error.<callback>`` in /diagnostics);
* makes :meth:`CallbackGuard.recent` report the callback for ``hold_s`` after its last error (the
  node's /diagnostics status is ERROR meanwhile, then returns to normal if none recurs);
* is swallowed: the callback returns None and the executor goes on with the next callback.

Expected bad inputs are not internal errors: the nodes check them (``ConversionError``, bad
stamps, ...) and count them as drops with their reasons before anything can raise. What passes
through untouched: ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt`` = Ctrl-C /
SIGTERM in :class:`~aecf_ros.nodes.session.RosSession`, ``SystemExit``) and whatever ``passthrough``
says (the node passes errors raised because its context was shut down: a normal end).

ROS-free: the node gives it a ``log(message)`` function and, for tests, a clock.
"""
from __future__ import annotations

import functools
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

#: how long (s) a node reports ERROR after an internal error in one of its callbacks
HOLD_S = 10.0
#: at most one log line per callback per this many seconds after the first traceback
LOG_PERIOD_S = 5.0


@dataclass
class CallbackErrors:
    """What one callback has raised so far."""

    count: int = 0
    last_type: str = ""
    last_message: str = ""
    last_time: float = 0.0
    types_logged: set[str] = field(default_factory=set)  # types whose traceback was logged
    last_log_time: Optional[float] = None
    unlogged: int = 0  # errors since the last log line


class CallbackGuard:
    """Wrap callbacks (:meth:`wrap`) so an unexpected exception is logged, counted and contained.

    Args:
        log: called with each log line (the traceback's first time, then throttled counts).
        clock: seconds, monotonic (default :func:`time.monotonic`): for the log throttle and
            the ERROR hold, which are about the process, not about sensor time.
        hold_s: :meth:`recent` reports a callback this long after its last error.
        log_period_s: at most one log line per callback per this long once its traceback is out.
        passthrough: ``passthrough(exc) -> True`` re-raises ``exc`` instead of containing it.
    """

    def __init__(self, log: Callable[[str], Any], clock: Callable[[], float] = time.monotonic,
                 hold_s: float = HOLD_S, log_period_s: float = LOG_PERIOD_S,
                 passthrough: Optional[Callable[[BaseException], bool]] = None):
        self.log, self.clock = log, clock
        self.hold_s, self.log_period_s = float(hold_s), float(log_period_s)
        self.passthrough = passthrough
        self.errors: dict[str, CallbackErrors] = {}

    # ------------------------------------------------------------------ wrapping
    def wrap(self, name: str, callback: Callable) -> Callable:
        """``callback`` guarded under ``name`` (its signature kept: rclpy inspects it to decide
        whether to pass a ``MessageInfo`` / ``TimerInfo``). Wrapping twice is a no-op."""
        if callback is None or getattr(callback, "__aecf_guarded__", False):
            return callback

        @functools.wraps(callback)
        def guarded(*args, **kwargs):
            try:
                return callback(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the point of the guard (BaseException passes)
                if self.passthrough is not None and self.passthrough(exc):
                    raise
                self.record(name, exc)
                return None

        guarded.__aecf_guarded__ = True
        guarded.__aecf_callback_name__ = name
        return guarded

    def record(self, name: str, exc: BaseException) -> None:
        """Count ``exc`` raised by callback ``name`` and log it (traceback once per type)."""
        now = self.clock()
        e = self.errors.setdefault(name, CallbackErrors())
        kind = type(exc).__name__
        e.count += 1
        e.last_type, e.last_message, e.last_time = kind, str(exc), now
        e.unlogged += 1
        if kind not in e.types_logged:
            e.types_logged.add(kind)
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
            self._log(e, now, f"internal error in {name} (#{e.count}; the node keeps serving, this "
                              f"call's work is lost): {kind}: {exc}\n{trace}")
        elif e.last_log_time is None or now - e.last_log_time >= self.log_period_s or now < e.last_log_time:
            self._log(e, now, f"internal error in {name} again: {e.unlogged} more since the last report "
                              f"({e.count} in all; last {kind}: {exc})")

    def _log(self, e: CallbackErrors, now: float, line: str) -> None:
        e.last_log_time, e.unlogged = now, 0
        self.log(line)

    # ------------------------------------------------------------------ reporting
    @property
    def total(self) -> int:
        return sum(e.count for e in self.errors.values())

    def recent(self, now: Optional[float] = None) -> dict[str, CallbackErrors]:
        """The callbacks that raised within the last ``hold_s`` (a clock that stepped back
        counts as recent), by name."""
        now = self.clock() if now is None else now
        return {n: e for n, e in self.errors.items() if e.count and (now - e.last_time < self.hold_s
                                                                      or now < e.last_time)}

    def values(self) -> dict[str, int]:
        """/diagnostics values: ``internal_error`` (always) and ``internal_error.<callback>``."""
        out = {"internal_error": self.total}
        out.update({f"internal_error.{n}": e.count for n, e in sorted(self.errors.items())})
        return out

    def message(self, now: Optional[float] = None) -> str:
        """'' if nothing recent, else the sentence /diagnostics shows (the level is then ERROR)."""
        now = self.clock() if now is None else now
        parts = []
        for n, e in sorted(self.recent(now).items()):
            detail = f"{e.last_type}: {e.last_message}"[:200]
            parts.append(f"internal error in {n}: {e.count}x, last {max(0.0, now - e.last_time):.1f} s ago ({detail})")
        return "; ".join(parts)
