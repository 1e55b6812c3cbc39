"""Helpers for the node tests (imported by test_nodes_*.py; holds no tests itself)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Callable, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_model_file(directory: Path) -> tuple[Path, object]:
    """An untrained small model saved to ``directory`` (the trained checkpoint may not exist)."""
    from aecf_ros.model import build_model, load_model, save_model

    path = Path(directory) / "small_model.pt"
    save_model(build_model(), path)
    return path, load_model(path, "cpu")


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> bool:
    """Spin ``executor`` until ``predicate()`` or the timeout; returns the predicate's last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step_s)
    return predicate()


def play_in_thread(replayer):
    """Start ``replayer.run()`` (an ``aecf_ros.apps.replay.BagReplayer``) on its own thread, so the
    test keeps spinning its executor. Returns ``(thread, errors)``: whatever the replay raised is
    appended to ``errors`` for the test to report."""
    import threading

    errors: list = []

    def play():
        try:
            replayer.run()
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    thread = threading.Thread(target=play, name="bag-replay")
    thread.start()
    return thread, errors


def spin_for(executor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=min(0.01, max(0.0, deadline - time.monotonic())))


def diag_values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


# What conftest.py's failure hook prints under a failed test: the timelines and node logs still
# alive (a module fixture's graph outlives one test, so its log and timeline are shown too).
LIVE_TIMELINES: "weakref.WeakSet[Timeline]" = weakref.WeakSet()
LIVE_NODES: "weakref.WeakSet[NodeProcess]" = weakref.WeakSet()


class Timeline:
    """What a DDS test saw, in order: (receive time, topic, key fields) per message or event.

    ``add(topic, **fields)`` from a subscription callback (or ``record(topic, fields_fn)`` to make
    one); ``str(timeline)`` lists the events as seconds since the first one, for an assertion
    message: ``assert ok, timeline``. A test that fails with a timeline alive also gets it printed
    by the failure hook in conftest.py, so an assertion without a message still shows it.
    """

    def __init__(self, name: str = "timeline", show: int = 60):
        self.name, self.show = name, show
        self.events: list[tuple[float, str, dict]] = []
        LIVE_TIMELINES.add(self)

    def add(self, topic: str, **fields) -> None:
        self.events.append((time.monotonic(), topic, fields))

    def record(self, topic: str, fields: Callable[[object], dict], sink: Optional[list] = None):
        """A subscription callback: adds ``fields(msg)`` under ``topic`` (and appends msg to sink)."""
        def callback(msg):
            self.add(topic, **fields(msg))
            if sink is not None:
                sink.append(msg)
        return callback

    def since_first(self, t: float) -> float:
        return t - self.events[0][0] if self.events else 0.0

    def __str__(self) -> str:
        if not self.events:
            return f"{self.name}: nothing received"
        t0 = self.events[0][0]
        shown = self.events if len(self.events) <= self.show else self.events[:self.show // 2] + self.events[-self.show // 2:]
        lines = [f"{self.name}: {len(self.events)} events (s since the first, topic, fields)"]
        for k, (t, topic, fields) in enumerate(shown):
            if len(shown) < len(self.events) and k == self.show // 2:
                lines.append(f"  ... {len(self.events) - len(shown)} more ...")
            lines.append(f"  {t - t0:8.3f}  {topic}  " + " ".join(f"{k}={v}" for k, v in fields.items()))
        return "\n".join(lines)


class NodeProcess:
    """A node started with ``python -m <module> --ros-args ...`` (own process, loopback DDS)."""

    def __init__(self, module: str, ros_args: list[str], env: dict, log_path: Path):
        self.module = module
        LIVE_NODES.add(self)
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *ros_args],
            env=env, cwd=str(REPO_ROOT), stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> Optional[int]:
        """Ctrl-C (SIGINT) and wait; returns the exit code (kills after the timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


class RecordingLogger:
    """Stands in for ``node.get_logger()`` (``node.get_logger = lambda: rec``): forwards to the
    real logger and keeps ``(level, message)`` of what it actually emitted (rclpy's log calls
    return False for a message its throttling or severity filter swallowed)."""

    def __init__(self, real):
        self.real = real
        self.records: list[tuple[str, str]] = []

    # one call line per level: rcutils keys its per-call-site state by the caller's line
    def info(self, message, **kwargs):
        emitted = self.real.info(message, **kwargs)
        if emitted:
            self.records.append(("info", message))
        return emitted

    def warning(self, message, **kwargs):
        emitted = self.real.warning(message, **kwargs)
        if emitted:
            self.records.append(("warning", message))
        return emitted

    warn = warning

    def error(self, message, **kwargs):
        emitted = self.real.error(message, **kwargs)
        if emitted:
            self.records.append(("error", message))
        return emitted

    def debug(self, message, **kwargs):
        emitted = self.real.debug(message, **kwargs)
        if emitted:
            self.records.append(("debug", message))
        return emitted

    def matching(self, level: str, text: str) -> list[str]:
        return [m for lv, m in self.records if lv == level and text in m]


# -- FusedPrediction on the fusion node's own clock ----------------------------------------------
# A prediction carries the node's view of each modality: present or not, and the age of its newest
# sample at the output instant (now - newest stamp). Presence and output timing checked on these
# numbers do not depend on when this test process got round to receiving the message.
AGE_EPS_S = 1e-3  # modality_age_s is float32


def prediction_time(msg) -> float:
    """The node's clock at the output instant: header.stamp is the newest present stamp, whose
    age is the smallest present age."""
    ages = [a for a, p in zip(msg.modality_age_s, msg.modality_present) if p]
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 + (min(ages) if ages else 0.0)


def presence_transition(msgs, modality: str, present_before: bool):
    """The first consecutive pair (before, after) of predictions in ``msgs`` (their publish order)
    where ``modality`` turns from ``present_before`` to the opposite; (None, None) if none."""
    for before, after in zip(msgs, msgs[1:]):
        k = list(before.modalities).index(modality)
        if bool(before.modality_present[k]) == present_before and bool(after.modality_present[k]) != present_before:
            return before, after
    return None, None


def describe_predictions(msgs, modality: str) -> str:
    """One line per prediction: node time, the modality's presence and age (for assertion messages)."""
    lines = []
    for m in msgs:
        k = list(m.modalities).index(modality)
        lines.append(f"  t={prediction_time(m):.3f} {modality} present={bool(m.modality_present[k])} "
                     f"age={m.modality_age_s[k]:.3f}")
    return "\n".join(lines[-40:])
