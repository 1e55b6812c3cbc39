"""Smoke test of the benchmark harnesses: every figure is produced (small sizes, small n).
No timing thresholds: the figures' values are the benchmark's business, not the test's."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ros_env

ROOT = Path(__file__).resolve().parents[1]


def test_bench_gpu_script_cpu_reachable_parts(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert bench_gpu.main(["--cpu", "--quick", "--skip-tests", "--out", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "performance_gpu_cpucheck.json").read_text())
    assert set(r["fusion_layer_us"]) == {f"{m}@{b}/float32" for m in bench_gpu.METHODS for b in (1, 256)}
    assert all(s["p50"] is not None and s["p99"] is not None for s in r["fusion_layer_us"].values())
    assert r["step_us"]["eager float32"]["n"] > 0
    assert len(r["encoders_us"]) == 5 and all(s["n"] > 0 for s in r["encoders_us"].values())
    assert "GPU rows" in (tmp_path / "PERFORMANCE_GPU_cpucheck.md").read_text()
    # the bench-gpu script must not need ROS: its imports are core/encoders/runtime.gpu_step/torch/numpy
    src = (ROOT / "tools" / "bench_gpu.py").read_text()
    assert "rclpy" not in src and "aecf_ros.nodes" not in src and "aecf_ros.msg" not in src


@pytest.mark.ros
@pytest.mark.slow
def test_make_bench_harness_produces_every_figure(tmp_path):
    # the session's PYTHONPATH (conftest: the checkout, then the install with aecf_ros.msg); a bare
    # PYTHONPATH=<repo> hid the colcon install space's messages from bench.py and its nodes
    env = ros_env(ROS_DOMAIN_ID=str(200 + os.getpid() % 30))
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "bench.py"), "--quick", "--sustain-s", "12",
                        "--stale-events", "3", "--out", str(tmp_path)], env=env, cwd=str(ROOT),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((tmp_path / "performance.json").read_text())
    md = (tmp_path / "PERFORMANCE.md").read_text()
    fl = r["fusion_layer"]["rows"]
    for m in ("aecf", "attention", "mean", "concat"):
        for b in (1, 256):
            assert fl[f"{m}@{b}"]["p50"] is not None and fl[f"{m}@{b}"]["p99"] is not None
    assert all(r["fusion_layer"]["training"]["rows"][m]["p50"] for m in ("aecf", "attention", "moddrop"))
    assert set(r["scaling"]["modalities"]) == {"2", "3", "4", "6", "8"}
    assert set(r["scaling"]["width"]) == {"128", "256", "512", "1024"}
    g = r["graph"]
    assert set(g["segments"]) == {"timer", "camera", "lidar", "text"}
    for mode, seg in g["segments"].items():
        for m in ("camera", "lidar"):
            lat = seg["latency"][m]
            for k in ("floor_ms", "embedding_ms", "prediction_ms"):
                assert lat[k]["p50"] is not None, (mode, m, k)
            assert seg["encoder_ms"][m]["p50"] is not None, (mode, m)
        if mode != "timer":
            assert seg["in_node_ms"]["p50"] is not None, mode
    assert any(seg["latency"]["text"]["prediction_ms"]["n"] for seg in g["segments"].values())
    for mode in ("timer", "camera"):
        assert g["stale"][mode]["n"] >= 1 and g["stale"][mode]["p99"] is not None, g["stale"]
    ds = r["dataset"]  # section 6: the bag dataset's extraction and training figures
    assert ds["extraction"]["msgs_per_cpu_s"] > 0 and ds["extraction"]["peak_rss_mib"] > 0
    assert ds["extraction"]["samples"] > 0 and ds["training"]["seconds_per_epoch_per_10k_samples"] > 0
    assert "## 6. Bag dataset" in md
    sc = r["sensor_count"]  # section 7: 2..8 declared sensors through the real fusion node
    assert set(sc["counts"]) == {"2", "4", "8"}  # --quick
    for k, row in sc["counts"].items():
        assert row["trigger_to_publish_ms_p50"] is not None and row["inference_ms_mean"] is not None, (k, row)
        assert row["predictions_all_present"] > 0 and row["exit_code"] == 0, (k, row)  # it fused all k sensors
    assert set(sc["encoders"]["rss_mib"]) == {"front_camera_encoder", "rear_camera_encoder"}
    assert all(v > 0 for v in sc["encoders"]["rss_mib"].values())
    assert "## 7. Declared sensor count" in md
    su = g["sustained"]
    for n in ("camera_encoder", "lidar_encoder", "text_encoder", "fusion_node"):
        assert su["cpu_pct"][n] is not None and su["rss_mib_start"][n] > 0 and su["rss_mib_end"][n] > 0
    assert all(su["rates"][m]["sent_hz"] > 0 for m in ("camera", "lidar", "text"))
    assert not su["logs_with_traceback"]
    for heading in ("Fusion layer", "Scaling", "real graph over DDS", "Stale detection", "Sustained load"):
        assert heading in md
    assert "met" in md
