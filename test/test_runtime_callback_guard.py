"""The internal-error policy's ROS-free core (:mod:`aecf_ros.runtime.callback_guard`): a callback
that raises is contained, counted per callback, its traceback logged once per exception type,
later errors logged as counts at most once per period, and reported for the hold time only."""
from __future__ import annotations

import inspect

import pytest

from aecf_ros.runtime.callback_guard import CallbackGuard


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _guard(**kwargs):
    lines: list[str] = []
    clock = Clock()
    return CallbackGuard(lines.append, clock=clock, hold_s=10.0, log_period_s=5.0, **kwargs), lines, clock


def _fails_on_odd(seen: list):
    def on_message(msg):
        seen.append(msg)
        if msg % 2:
            raise ValueError(f"odd {msg}")
        return msg * 10
    return on_message


def test_a_raising_callback_returns_none_and_the_next_call_still_runs():
    guard, _, _ = _guard()
    seen: list = []
    cb = guard.wrap("subscription /camera/image_raw", _fails_on_odd(seen))
    assert [cb(0), cb(1), cb(2)] == [0, None, 20]
    assert seen == [0, 1, 2]
    assert guard.total == 1 and guard.errors["subscription /camera/image_raw"].last_type == "ValueError"


def test_traceback_logged_once_per_exception_type_then_counts_at_most_once_per_period():
    guard, lines, clock = _guard()
    kinds = iter([ValueError, ValueError, ValueError, KeyError, ValueError])

    def step():
        raise next(kinds)("boom")

    cb = guard.wrap("timer _on_timer", step)
    cb()  # first ValueError: traceback
    clock.t += 1.0
    cb()  # within the period: silent
    clock.t += 1.0
    cb()  # silent
    clock.t += 1.0
    cb()  # a new type: its own traceback, whatever the period
    assert len(lines) == 2
    assert all("Traceback (most recent call last)" in line for line in lines)
    assert "ValueError: boom" in lines[0] and "KeyError" in lines[1]
    assert "in step" in lines[0]  # the traceback names the raising function
    clock.t += 5.0
    cb()  # period over: one count line, no traceback
    assert len(lines) == 3 and "Traceback" not in lines[2]
    assert "1 more since the last report" in lines[2] and "5 in all" in lines[2]
    assert guard.values() == {"internal_error": 5, "internal_error.timer _on_timer": 5}


def test_counted_per_callback_and_reported_only_within_the_hold_time():
    guard, _, clock = _guard()
    a = guard.wrap("subscription /aecf/embedding/camera", lambda msg: 1 / 0)
    b = guard.wrap("timer _on_timer", lambda: None)
    a(object())
    a(object())
    b()
    assert guard.values() == {"internal_error": 2, "internal_error.subscription /aecf/embedding/camera": 2}
    assert list(guard.recent()) == ["subscription /aecf/embedding/camera"]
    message = guard.message()
    assert "subscription /aecf/embedding/camera: 2x" in message and "ZeroDivisionError" in message
    clock.t += 9.9
    assert guard.message()
    clock.t += 0.2  # 10.1 s after the last error: back to normal, the count stays
    assert guard.recent() == {} and guard.message() == ""
    assert guard.values()["internal_error"] == 2
    clock.t -= 60.0  # a clock that stepped back: reported (not silently "old")
    assert guard.recent()


def test_ctrl_c_and_passthrough_errors_are_not_contained():
    guard, lines, _ = _guard(passthrough=lambda exc: isinstance(exc, RuntimeError))

    def interrupted():
        raise KeyboardInterrupt

    def shutting_down():
        raise RuntimeError("context is not valid")

    with pytest.raises(KeyboardInterrupt):
        guard.wrap("timer interrupted", interrupted)()
    with pytest.raises(RuntimeError):
        guard.wrap("timer shutting_down", shutting_down)()
    assert guard.total == 0 and lines == []


def test_the_wrapper_keeps_the_signature_rclpy_inspects():
    """rclpy passes a MessageInfo to a two-argument subscription callback and a TimerInfo to a
    timer callback that asks for one: it decides from ``inspect.signature``."""
    guard, _, _ = _guard()

    def with_info(msg, info):
        return info

    one = guard.wrap("subscription a", lambda msg, kind="camera": kind)
    two = guard.wrap("subscription b", with_info)
    inspect.signature(one).bind(object())
    with pytest.raises(TypeError):
        inspect.signature(two).bind(object())
    inspect.signature(two).bind(object(), object())
    assert two(1, 2) == 2 and guard.wrap("again", two) is two  # wrapping twice is a no-op
