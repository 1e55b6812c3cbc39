"""Fault runs on the full graph (issue 11): recovery time and lost outputs per fault.

    .venv/bin/python tools/fault_runs.py [--out docs/results/fault_runs.json]

Graph: the four nodes as separate processes (loopback, ROS_DOMAIN_ID 77 unless set), sensors
published at 30/10/1 Hz by a driver, fusion at 10 Hz. Faults, one after the other, each after
the graph is back to all-present:

* ``kill9_camera_encoder``: SIGKILL the camera encoder, restart it at once. Recovery = restart
  -> first prediction with the camera present again. Outputs keep flowing meanwhile (from lidar +
  text); "lost outputs" = fusion periods with no prediction at all.
* ``restart_fusion``: SIGINT the fusion node while sensors run, start it again. Recovery = stop
  -> first prediction of the new process; lost outputs = periods without a prediction.
* ``flapping_lidar``: lidar on 0.3 s / off 0.7 s for 6 s; every prediction must say the truth
  (absent after the timeout), none lost; presence transitions counted.
* ``camera_10x``: camera at 300 Hz for 5 s. Lost inputs / embeddings as counted by the nodes
  (``lost_estimate`` at the encoder, ``lost`` at the fusion), prediction rate kept.
* ``cpu_starved_fusion``: SIGSTOP the fusion node for 2 s (total CPU starvation), SIGCONT.
  Recovery = SIGCONT -> next prediction with every modality present.

Figures are wall-clock on whatever machine runs it (a shared 2-core box here): read them as
orders of magnitude.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_harness import NODES, RATES_HZ, Driver, NodeProc, present_index, small_model  # noqa: E402

PUBLISH_HZ = 10.0


def all_present(d: Driver, since: float) -> bool:
    return any(t >= since and all(p) for t, p in d.predictions)


def wait_all_present(d: Driver, timeout_s: float = 60.0) -> bool:
    start = time.monotonic()
    return d.spin(timeout_s, lambda: all_present(d, start))


def missing_periods(d: Driver, t0: float, t1: float) -> int:
    """Fusion periods in [t0, t1] that saw no prediction at all."""
    stamps = sorted(t for t, _ in d.predictions if t0 <= t <= t1)
    edges = [t0, *stamps, t1]
    return int(sum(max(0, round((b - a) * PUBLISH_HZ) - 1) for a, b in zip(edges, edges[1:])))


def first_after(d: Driver, t0: float, predicate) -> float | None:
    for t, p in d.predictions:
        if t >= t0 and predicate(p):
            return t
    return None


def run(out: Path | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="aecf_faults_"))
    model = small_model(tmp)
    procs = {n: NodeProc(n, model, tmp) for n in NODES}
    for p in procs.values():
        p.start()
    d = Driver()
    results: dict = {"log_dir": str(tmp)}
    try:
        assert wait_all_present(d, 120), "graph never came up"
        cam = present_index("camera")

        # kill -9 an encoder and restart it
        t_kill = time.monotonic()
        procs["camera_encoder"].kill9()
        d.spin(1.0)
        t_restart = time.monotonic()
        procs["camera_encoder"].start()
        d.spin(90, lambda: first_after(d, t_restart, lambda p: p[cam]) is not None)
        t_back = first_after(d, t_restart, lambda p: p[cam])
        results["kill9_camera_encoder"] = {
            "recovery_s": round(t_back - t_restart, 2) if t_back else None,
            "camera_absent_s": round(t_back - t_kill, 2) if t_back else None,
            "lost_outputs": missing_periods(d, t_kill, t_back or time.monotonic()),
            "outputs_during_fault": sum(1 for t, _ in d.predictions if t_kill <= t <= (t_back or t_kill)),
        }
        wait_all_present(d)
        d.spin(1.2)  # a diagnostics report after the restarted encoder's first embeddings
        results["kill9_camera_encoder"]["fusion_counted_encoder_restarts"] = int(
            d.values("fusion_node: camera").get("encoder_restarts", 0) or 0)
        print("kill9_camera_encoder", results["kill9_camera_encoder"], flush=True)

        # restart the fusion node while sensors run
        t_stop = time.monotonic()
        code = procs["fusion_node"].stop()
        procs["fusion_node"].start()
        d.spin(90, lambda: first_after(d, t_stop + 0.5, lambda p: True) is not None)
        t_first = first_after(d, t_stop + 0.5, lambda p: True)
        wait_all_present(d)
        t_all = first_after(d, t_stop + 0.5, all)
        results["restart_fusion"] = {
            "exit_code_on_sigint": code,
            "recovery_s": round(t_first - t_stop, 2) if t_first else None,
            "all_present_after_s": round(t_all - t_stop, 2) if t_all else None,
            "lost_outputs": missing_periods(d, t_stop, t_first or time.monotonic()),
        }
        print("restart_fusion", results["restart_fusion"], flush=True)

        # a flapping sensor
        lid = present_index("lidar")
        t0 = time.monotonic()
        for _ in range(6):
            d.alive["lidar"] = True
            d.spin(0.3)
            d.alive["lidar"] = False
            d.spin(0.7)
        d.alive["lidar"] = True
        t1 = time.monotonic()
        flaps = [p[lid] for t, p in d.predictions if t0 <= t <= t1]
        results["flapping_lidar"] = {
            "outputs": len(flaps), "lost_outputs": missing_periods(d, t0, t1),
            "presence_transitions": sum(1 for a, b in zip(flaps, flaps[1:]) if a != b),
            "cycles": 6, "fusion_alive": procs["fusion_node"].proc.poll() is None,
        }
        print("flapping_lidar", results["flapping_lidar"], flush=True)
        wait_all_present(d)

        # a sensor at 10x its rate
        before_enc = int(d.values("camera_encoder: camera input").get("lost_estimate", 0) or 0)
        before_fus = int(d.values("fusion_node: camera").get("lost", 0) or 0)
        sent0 = d.sent["camera"]
        enc0 = int(d.values("camera_encoder: camera input").get("published", 0) or 0)
        d.set_rate("camera", 300.0)
        t0 = time.monotonic()
        d.spin(5.0)
        t1 = time.monotonic()
        d.set_rate("camera", RATES_HZ["camera"])
        d.spin(1.5)  # one more diagnostics report
        enc = d.values("camera_encoder: camera input")
        results["camera_10x"] = {
            "sent": d.sent["camera"] - sent0,
            "send_rate_hz": round((d.sent["camera"] - sent0) / (t1 - t0), 1),
            "encoded": int(enc.get("published", 0) or 0) - enc0,
            "encoder_lost_estimate": int(enc.get("lost_estimate", 0) or 0) - before_enc,
            "fusion_lost_embeddings": int(d.values("fusion_node: camera").get("lost", 0) or 0) - before_fus,
            "outputs": sum(1 for t, _ in d.predictions if t0 <= t <= t1),
            "lost_outputs": missing_periods(d, t0, t1),
        }
        print("camera_10x", results["camera_10x"], flush=True)
        wait_all_present(d)

        # CPU starvation of the fusion node
        fusion = procs["fusion_node"].proc
        t_stop = time.monotonic()
        fusion.send_signal(signal.SIGSTOP)
        d.spin(2.0)
        t_cont = time.monotonic()
        fusion.send_signal(signal.SIGCONT)
        d.spin(30, lambda: first_after(d, t_cont, all) is not None)
        t_ok = first_after(d, t_cont, all)
        results["cpu_starved_fusion"] = {
            "stopped_s": round(t_cont - t_stop, 2),
            "recovery_s": round(t_ok - t_cont, 2) if t_ok else None,
            "outputs_while_stopped": sum(1 for t, _ in d.predictions if t_stop + 0.2 < t < t_cont),
            "fusion_alive": fusion.poll() is None,
        }
        print("cpu_starved_fusion", results["cpu_starved_fusion"], flush=True)
    finally:
        d.close()
        codes = {n: p.stop() for n, p in procs.items()}
        results["exit_codes"] = codes
        tracebacks = [f.name for f in tmp.glob("*.log") if "Traceback" in f.read_text(errors="replace")]
        results["logs_with_traceback"] = tracebacks
    print(json.dumps(results, indent=2))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    run(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
