"""The sensor-count rows of ``make bench`` (section 7): does the cost stay linear in the sensors?

    .venv/bin/python tools/bench_sensor_count.py [--quick] [--out DIR]

1. The real fusion node (its own process, as deployed) with 2, 3, 4, 6 and 8 declared sensors
   (kind ``embedding``, 64-d each, an untrained AECF bundle for exactly those sensors): every
   sensor's embeddings arrive at ``--rate`` Hz over DDS, the output is triggered by the first
   sensor; the node's own ``/diagnostics`` give, per count, embedding received -> prediction
   published (``trigger_to_publish_ms`` p50 / p99) and the mean per-output step (presence check
   + fusion + head + calibration, ``inference_ms_mean``). Ratios are to the 2-sensor run of the
   same invocation.
2. One more encoder node of an existing kind: a robot's ``front_camera`` and ``rear_camera``
   encoder nodes (the camera encoder executable, one process each, the shipped CNN), the RSS of
   each once active. The second camera costs one more process of the same size (the weights
   are shared in the bundle, not in memory across processes).

Figures are printed and written to ``--out`` (``sensor_count_bench.json``,
``PERFORMANCE_SENSORS.md``); ``make bench`` runs this as its section 7.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout, not an installed copy
COUNTS = (2, 3, 4, 6, 8)
DIM = 64


def _env() -> dict:
    path = os.pathsep.join(x for x in (str(REPO), os.environ.get("PYTHONPATH", "")) if x)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONPATH=path, PYTHONUNBUFFERED="1")
    env.setdefault("ROS_DOMAIN_ID", "77")
    return env


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _bundle(names: list[str], path: Path) -> None:
    import torch

    from aecf_ros.data.classes import CLASS_NAMES
    from aecf_ros.model import save_model
    from aecf_ros.train.config import load_config
    from aecf_ros.train.pipeline import embedding_only_model

    torch.manual_seed(0)
    model = embedding_only_model(load_config(), names, {n: DIM for n in names}, CLASS_NAMES, "aecf")
    save_model(model.eval(), path)


def _params(names: list[str], model: Path, path: Path) -> None:
    lines = ["/**:", "  ros__parameters:", f"    sensors: [{', '.join(names)}]"]
    lines += [f"    {n}: {{kind: embedding, topic: /sensorbench/{n}}}" for n in names]
    lines += [f"    model_path: {model}", "    device: cpu", "    diagnostics_period_s: 0.5",
              "/**/fusion_node:", "  ros__parameters:", f"    output_trigger: {names[0]}",
              "    max_output_rate_hz: 1000.0"]
    path.write_text("\n".join(lines) + "\n")


class _Driver:
    """The bench's own rclpy node: publishes embeddings, reads the fusion node's diagnostics."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("sensor_count_bench", context=self.context)
        self.ex = SingleThreadedExecutor(context=self.context)
        self.ex.add_node(self.node)
        self.diag: dict = {}
        self.predictions = 0
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, msg) -> None:
        for s in msg.status:
            self.diag[s.name] = {kv.key: kv.value for kv in s.values}

    def spin(self, seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.005)
            if until is not None and until():
                return True
        return until() if until is not None else True

    def close(self) -> None:
        self.ex.shutdown()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def _output(d: _Driver) -> dict:
    return next((v for k, v in d.diag.items() if k.endswith("fusion_node: output")), {})


def _float(values: dict, key: str):
    try:
        return float(values[key])
    except (KeyError, TypeError, ValueError):
        return None


def run_counts(quick: bool, rate_hz: float, seconds: float, work: Path) -> dict:
    import numpy as np

    from aecf_ros.model import load_model
    from aecf_ros.msg import FusedPrediction, ModalityEmbedding

    env = _env()
    out = {}
    d = _Driver()
    try:
        for k in ((2, 4, 8) if quick else COUNTS):
            names = [f"s{i}" for i in range(k)]
            model_path, params = work / f"m{k}.pt", work / f"p{k}.yaml"
            _bundle(names, model_path)
            _params(names, model_path, params)
            ids = load_model(model_path, "cpu").encoder_ids
            log = open(work / f"fusion_{k}.log", "wb")
            proc = subprocess.Popen([sys.executable, "-m", "aecf_ros.nodes.fusion_node", "--ros-args",
                                     "--params-file", str(params)], env=env, cwd=str(REPO), stdout=log,
                                    stderr=subprocess.STDOUT)
            pubs = {n: d.node.create_publisher(ModalityEmbedding, f"/sensorbench/{n}", 10) for n in names}
            got = []
            sub = d.node.create_subscription(FusedPrediction, "/aecf/prediction",
                                             lambda m, k=k: got.append(len(m.modalities) == k and all(m.modality_present)), 50)
            msgs = {}
            for n in names:
                m = ModalityEmbedding(modality=n, encoder_id=ids.get(n, ""))
                m.embedding = np.linspace(-1, 1, DIM).astype(np.float32).tolist()
                msgs[n] = m
            d.diag.clear()

            def publish():
                now = time.time()
                for n in names:
                    msgs[n].header.stamp.sec = int(now)
                    msgs[n].header.stamp.nanosec = int((now - int(now)) * 1e9)
                    pubs[n].publish(msgs[n])

            timer = d.node.create_timer(1.0 / rate_hz, publish)
            try:
                up = d.spin(120, lambda: any(got))
                if not up:
                    raise RuntimeError(f"fusion node with {k} sensors never fused them all; log {work}/fusion_{k}.log")
                d.spin(1.0)  # steady state, then a fresh diagnostics window
                got.clear()
                d.spin(seconds)
                values = _output(d)
                rss = _rss_mib(proc.pid)
            finally:
                d.node.destroy_timer(timer)
                d.node.destroy_subscription(sub)
                for p in pubs.values():
                    d.node.destroy_publisher(p)
                code = _stop(proc)
            out[str(k)] = {"trigger_to_publish_ms_p50": _float(values, "trigger_to_publish_ms_p50"),
                           "trigger_to_publish_ms_p99": _float(values, "trigger_to_publish_ms_p99"),
                           "trigger_to_publish_n": _float(values, "trigger_to_publish_n"),
                           "inference_ms_mean": _float(values, "inference_ms_mean"),
                           "predictions_all_present": sum(got), "predictions": len(got),
                           "fusion_rss_mib": rss, "exit_code": code}
    finally:
        d.close()
    return out


def run_encoder_rss(work: Path) -> dict:
    """RSS of a front and a rear camera encoder node (one process each), once both are active."""
    from aecf_ros import graph
    from aecf_ros.runtime.sensor_graph import declared_sensor_set, graph_nodes

    robot = work / "robot.yaml"
    robot.write_text("/**:\n  ros__parameters:\n    sensors: [front_camera, rear_camera]\n"
                     "    front_camera: {kind: image, topic: /sensorbench/front}\n"
                     "    rear_camera: {kind: image, topic: /sensorbench/rear}\n    device: cpu\n")
    env = _env()
    procs = {}
    for g in graph_nodes(declared_sensor_set([robot])):
        if not g.name.endswith("_encoder"):
            continue
        args = ["--ros-args", "--params-file", str(robot), "-r", f"__node:={g.name}",
                *(x for k, v in g.parameters.items() for x in ("-p", f"{k}:={v}")),
                *(x for a, b in g.remaps for x in ("-r", f"{a}:={b}"))]
        log = open(work / f"{g.name}.log", "wb")
        procs[g.name] = subprocess.Popen([sys.executable, "-m", g.spec.module, *args], env=env, cwd=str(REPO),
                                         stdout=log, stderr=subprocess.STDOUT)
    d = _Driver()
    try:
        ok = d.spin(180, lambda: len([k for k in d.diag if k.endswith(" input")]) >= len(procs))
        d.spin(2.0)
        rss = {n: _rss_mib(p.pid) for n, p in procs.items()}
    finally:
        d.close()
        codes = {n: _stop(p) for n, p in procs.items()}
    return {"rss_mib": rss, "came_up": ok, "exit_codes": codes,
            "executable": graph.node_spec("camera_encoder").executable}


def run(quick: bool, work: Path) -> dict:
    rate = 30.0
    load = os.getloadavg()[0]
    seconds = 3.0 if quick else 10.0
    counts = run_counts(quick, rate, seconds, work)
    return {"rate_hz": rate, "seconds": seconds, "dim": DIM, "loadavg_1min_start": load, "cpus": os.cpu_count(),
            "counts": counts, "encoders": run_encoder_rss(work)}


def report(r: dict) -> str:
    c = r["counts"]
    base = c[min(c, key=int)]
    lines = ["## 7. Declared sensor count (the real fusion node, one process)", "",
             f"Kind `embedding` sensors ({r['dim']}-d, untrained AECF bundle for exactly those sensors), each at "
             f"{r['rate_hz']:g} Hz over DDS, output triggered by the first sensor, {r['seconds']:g} s per count; "
             "figures from the node's own `/diagnostics`; ratios to the smallest count of this run "
             f"(load average {r.get('loadavg_1min_start', float('nan')):.1f} on {r.get('cpus')} CPUs at its start).", "",
             "| sensors | embedding -> prediction p50 (ms) | p99 (ms) | step mean (ms) | step ratio | fusion node RSS (MiB) |",
             "|---|---|---|---|---|---|"]

    def f(x, nd=2):
        return "-" if x is None else f"{x:.{nd}f}"

    for k in sorted(c, key=int):
        row = c[k]
        ratio = (row["inference_ms_mean"] / base["inference_ms_mean"]
                 if row["inference_ms_mean"] and base["inference_ms_mean"] else None)
        lines.append(f"| {k} | {f(row['trigger_to_publish_ms_p50'])} | {f(row['trigger_to_publish_ms_p99'])} | "
                     f"{f(row['inference_ms_mean'], 3)} | {f(ratio)} | {f(row['fusion_rss_mib'], 0)} |")
    e = r["encoders"]
    lines += ["", "One more encoder node of an existing kind (a second camera; "
              f"`{e['executable']}`, one process per sensor, once active): "
              + ", ".join(f"`{n}` {v:.0f} MiB" for n, v in e["rss_mib"].items())
              + ". Each sensor's encoder is its own process, so a second camera adds one process of this size.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2, 4 and 8 sensors, 3 s each (smoke run)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", "77")
    with tempfile.TemporaryDirectory(prefix="aecf_sensor_bench_") as tmp:
        r = run(args.quick, Path(tmp))
    md = report(r)
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sensor_count_bench.json").write_text(json.dumps(r, indent=1) + "\n")
        (args.out / "PERFORMANCE_SENSORS.md").write_text(
            f"# aecf_ros sensor-count performance (`tools/bench_sensor_count.py`, {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} CPUs)\n\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
