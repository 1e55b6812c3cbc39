"""Big frames over DDS (issue 18, item 5): 12 MP BEST_EFFORT images reach the REAL camera encoder
with config/fastdds_large_frames.xml, and none arrive with Fast DDS defaults.

Both ends run in their own processes with the run's environment (Fast DDS reads its profiles file
once per process, so this test process cannot be one of them): the camera encoder node
(``python -m aecf_ros.nodes.camera_encoder``, ``qos.image.profile: sensor_data``, a test-sized model)
and the publishing driver of ``tools/bench_big_messages.py``, which sends a small warm-up frame
until it comes back encoded (so both ends are matched), then 4000x3000 rgb8 frames (36 MB) at
1 Hz, BEST_EFFORT, and counts what the encoder received (its /diagnostics) and the embeddings
carrying those frames' stamps. Figures: docs/RELIABILITY.md "Big messages".
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
from pathlib import Path

import pytest

from test_nodes_support import make_model_file

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "config" / "fastdds_large_frames.xml"
FRAMES = 10  # at 1 Hz; measured 3-5 of 6 and 8 of 10 arriving with the profile: >= 2 of 10 leaves a wide margin


def _bench():
    spec = importlib.util.spec_from_file_location("bench_big_messages", REPO / "tools" / "bench_big_messages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shm_problem() -> str | None:
    """Why the shared-memory profile cannot work here, or None."""
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return f"RMW_IMPLEMENTATION={os.environ['RMW_IMPLEMENTATION']}: the profile is a Fast DDS file"
    segment = int(re.search(r"<segment_size>(\d+)</segment_size>", PROFILE.read_text()).group(1))
    try:
        st = os.statvfs("/dev/shm")
    except OSError as exc:
        return f"no /dev/shm ({exc}): Fast DDS shared memory is unavailable"
    free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    need = 2 * segment + (256 << 20)  # two participants' segments + frames in flight
    if free < need:
        return (f"/dev/shm has {free / 2**20:.0f} MiB free of {size / 2**20:.0f} MiB; the profile needs about "
                f"{need / 2**20:.0f} MiB (two {segment / 2**20:.0f} MiB segments): give it more (docker --shm-size)")
    return None


def _run(transport: str, tmp_path: Path) -> dict:
    bench = _bench()
    model_path, _ = make_model_file(tmp_path)
    args = argparse.Namespace(images=[12.0], clouds=[], frames=FRAMES, rate=1.0, settle=15.0,
                              model_path=str(model_path), case_timeout=300.0)
    rows = bench.run_one(transport, "best_effort", args, tmp_path)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in tmp_path.glob("*.log"))
    assert len(rows) == 1, f"the driver reported no row (its warm-up frame never came back encoded?)\n{logs}"
    row = rows[0]
    print(f"{transport} best_effort 12 MP: {row}")  # shown with -s / -rP
    assert row["shape"] == [4000, 3000] and row["bytes"] == 36_000_000 and row["sent"] == FRAMES
    return row


def test_12mp_best_effort_frames_reach_the_camera_encoder_with_the_profile(tmp_path):
    reason = _shm_problem()
    if reason:
        pytest.skip(reason)
    row = _run("profile", tmp_path)
    # Measured: most frames arrive (docs/RELIABILITY.md); on a loaded 2-core machine BEST_EFFORT
    # through shared memory still loses some, so the bound is "several", not "all".
    assert row["encoded"] >= 2, row
    assert row["received"] >= row["encoded"], row
    assert row["too_large"] == 0 and row["dropped"] == 0, row  # 12 MP < max_pixels (4096x4096)
    assert row["latency_ms_p50"] is not None and row["latency_ms_p50"] < 10_000, row


def test_12mp_best_effort_frames_never_arrive_with_fastdds_defaults(tmp_path):
    """The documented limit: with defaults, BEST_EFFORT frames of tens of MB are lost in UDP
    fragments: nothing received, nothing encoded (the warm-up frame, 9 KB, did arrive)."""
    row = _run("default", tmp_path)
    assert row["received"] == 0 and row["encoded"] == 0, row


def test_a_too_small_dev_shm_is_a_skip_reason_naming_its_size(monkeypatch):
    """The guard above (no DDS): a 64 MiB /dev/shm (Docker's default) is reported, not run into."""
    class Small:
        f_bavail = f_blocks = 16384
        f_frsize = 4096

    monkeypatch.delenv("RMW_IMPLEMENTATION", raising=False)
    monkeypatch.setattr(os, "statvfs", lambda path: Small())
    reason = _shm_problem()
    assert reason and "/dev/shm has 64 MiB free of 64 MiB" in reason and "--shm-size" in reason
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")
    assert "rmw_cyclonedds_cpp" in _shm_problem()
