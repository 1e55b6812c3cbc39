"""Ctrl-C ends every aecf_ros process cleanly, whatever it is doing when the signal lands.

Proves: SIGINT during model load, right after activation and while active spinning gives exit
code 0, no traceback, and an exit within SHUTDOWN_BOUND_S, for `aecf-ros run` (all nodes in one
process) and for a node executable; and :class:`RosSession` treats an rcl error as a normal end
only when the context is really gone.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from test_nodes_support import REPO_ROOT, make_model_file

#: the behaviour under test: a clean shutdown took ~0.3-2 s on a 2-core machine with both cores
#: busy; 10 s leaves room for CI noise while still catching a hang (the old failure ran into the
#: 15 s SIGINT timeout and was killed)
SHUTDOWN_BOUND_S = 10.0
#: not under test: how long start-up may take to reach the moment we interrupt (a loaded 2-core
#: machine needed > 10 s to import torch + rclpy and discover DDS peers)
START_TIMEOUT_S = 120.0


class _Process:
    """A subprocess whose combined output is collected line by line while it runs."""

    def __init__(self, cmd: list[str]):
        from conftest import ros_env

        self.lines: list[str] = []
        self.proc = subprocess.Popen(cmd, env=ros_env(), cwd=str(REPO_ROOT), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, marker: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while marker not in self.text():
            assert self.proc.poll() is None, f"exited before {marker!r}:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {marker!r} after {timeout_s:g} s:\n{self.text()}"
            time.sleep(0.005)

    def interrupt(self) -> tuple[int, float]:
        """SIGINT, then (exit code, seconds to exit); kills it past twice the bound."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=2 * SHUTDOWN_BOUND_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        elapsed = time.monotonic() - t0
        self._reader.join(timeout=5)
        return code, elapsed


#: (moment, marker printed just before it, extra seconds to wait after the marker)
MOMENTS = [("model_load", "loading model", 0.0),
           ("just_active", "active", 0.0),
           ("active_spinning", "active", 1.5)]


def _assert_clean(proc: _Process, moment: str) -> None:
    code, elapsed = proc.interrupt()
    text = proc.text()
    print(f"\n{moment}: exit {code} {elapsed:.2f} s after SIGINT")
    assert code == 0, f"{moment}: exit code {code}\n{text}"
    assert "Traceback" not in text, f"{moment}:\n{text}"
    assert elapsed < SHUTDOWN_BOUND_S, f"{moment}: {elapsed:.1f} s to exit\n{text}"


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("moment, marker, after_s", MOMENTS, ids=[m[0] for m in MOMENTS])
def test_ctrl_c_ends_aecf_ros_run_cleanly(tmp_path, moment, marker, after_s):
    model_path, _ = make_model_file(tmp_path)
    proc = _Process([sys.executable, "-m", "aecf_ros.cli", "run", "--params", str(REPO_ROOT / "config" / "aecf.yaml"),
                     "--model-path", str(model_path), "--device", "cpu"])
    proc.wait_for(marker if marker != "active" else "active; Ctrl-C to stop")
    time.sleep(after_s)
    _assert_clean(proc, moment)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.parametrize("moment, marker, after_s", MOMENTS, ids=[m[0] for m in MOMENTS])
def test_ctrl_c_ends_fusion_node_executable_cleanly(tmp_path, moment, marker, after_s):
    model_path, _ = make_model_file(tmp_path)
    proc = _Process([sys.executable, "-m", "aecf_ros.nodes.fusion_node", "--ros-args",
                     "-p", f"model_path:={model_path}", "-p", "device:=cpu", "-p", "publish_rate_hz:=50.0",
                     "-p", "diagnostics_period_s:=0.1"])
    # the fusion node logs "... publishing at N Hz" at the end of configure, then activates
    proc.wait_for(marker if marker != "active" else "publishing at")
    time.sleep(after_s)
    _assert_clean(proc, moment)


@pytest.mark.ros
def test_rcl_error_is_a_normal_end_only_once_the_context_is_gone():
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    from aecf_ros.nodes.session import RosSession

    # what a signal landing while the executor builds a wait set looks like
    with RosSession(handle_signals=False) as ros:
        ros.context.shutdown()
        raise _rclpy.RCLError("the given context is not valid")
    assert ros.interrupted and ros.exit_code == 0

    # the same error with a live context is a real error
    with pytest.raises(_rclpy.RCLError):
        with RosSession(handle_signals=False) as ros:
            raise _rclpy.RCLError("failed to create publisher")
    assert not ros.context.ok()  # cleaned up all the same
