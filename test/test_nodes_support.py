"""Helpers for the node tests (imported by test_nodes_*.py; holds no tests itself)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def spin_for(executor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=min(0.01, max(0.0, deadline - time.monotonic())))


def diag_values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


class NodeProcess:
    """A node started with ``python -m <module> --ros-args ...`` (own process, loopback DDS)."""

    def __init__(self, module: str, ros_args: list[str], env: dict, log_path: Path):
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
