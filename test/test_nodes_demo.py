"""`aecf-ros demo` and `aecf-ros bench-runtime` run end to end (short settings)."""
import re
import subprocess
import sys

import pytest

from test_nodes_support import REPO_ROOT

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_reports_sensor_loss_and_per_phase_accuracy():
    from conftest import ros_env

    out = subprocess.run([sys.executable, "-m", "aecf_ros.cli", "demo", "--phase-seconds", "3",
                          "--scene-seconds", "1", "--quiet"],
                         env=ros_env(), cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Traceback" not in text, text
    for m in ("lidar", "camera"):
        assert re.search(rf">> {m} STALE at t=.*after it stopped", text), text
        assert re.search(rf">> {m} BACK at t=", text), text
    for phase in ("all sensors", "lidar lost", "camera lost"):
        row = re.search(rf"^\s+{phase}\s+(\d+)\s", text, re.M)
        assert row and int(row.group(1)) > 0, text
    # the scenario clock starts after discovery: the first seconds are not lost
    assert "graph discovered the sensors" in text, text
    all_sensors = int(re.search(r"^\s+all sensors\s+(\d+)\s", text, re.M).group(1))
    assert all_sensors >= 0.5 * 10 * (3 + 1.5 + 1.5), text  # 10 Hz over the three all-sensor phases


def test_bench_runtime_prints_ratios():
    from conftest import ros_env

    out = subprocess.run([sys.executable, "-m", "aecf_ros.cli", "bench-runtime", "--model-config", "small",
                          "--iterations", "20", "--rounds", "1", "--latency-seconds", "3"],
                         env=ros_env(), cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert re.search(r"AECF / attention: step x\d", text) and re.search(r"AECF / mean\s+: step x\d", text), text
    assert "sensor -> camera embedding" in text, text
