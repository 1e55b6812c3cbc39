"""``make bench``: aecf_ros performance in ONE run, every figure as median + p99 beside its goal.

    make bench                                   # ~5-8 min; writes docs/PERFORMANCE.md + docs/performance.json
    .venv/bin/python tools/bench.py --quick --out /tmp/b   # smoke run (~1 min, small sizes, small n)

Rows (ratios are always from this run; the machine's load hits all methods alike because the
fusion rows interleave the methods round by round):

1. fusion layer: AECF vs attention vs mean vs concat, batch 1 and 256, CPU (CUDA: tools/bench_gpu.py);
   training step (fusion + head + objective, forward + backward + AdamW) AECF vs attention vs ModDrop.
2. scaling: AECF fusion cost vs number of modalities (2..8) and embedding width (128..1024).
3. the real graph over DDS, one process per node (as deployed), sensors at real sizes (640x480 rgb8
   at 30 Hz, 60k-point clouds at 10 Hz, text at 1 Hz) for ``--sustain-s`` seconds split into output
   modes: timer, then output_trigger = camera / lidar / text (switched live). Per sensor: stamp ->
   embedding, stamp -> first prediction that used that sample, next to the transport floor (a bare
   subscriber in another process on the same sensor topics, same messages, same run) and the encoder
   time (the encoder's own conversion + encode time); inside the fusion node: embedding received ->
   prediction published. Sustained: achieved rates, drops by reason, CPU % and RSS per node.
4. stale detection: a separate fusion node fed embeddings directly, lidar stopped >= 100 times with a
   50 ms timeout: sensor's last stamp + timeout -> first prediction marking it absent (timer mode and
   trigger mode).
6. bag dataset (tools/bench_dataset.py): ``aecf-ros dataset`` on a 10-minute bag (msgs/s per core,
   peak RSS, cached re-run) and ``aecf-ros train --dataset`` (seconds per epoch per 10k samples).
7. declared sensor count (tools/bench_sensor_count.py): the real fusion node with 2, 3, 4, 6, 8
   declared sensors (embedding -> prediction p50/p99, per-output step), RSS of a second camera's
   encoder node.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_harness import REPO, NodeProc, repo_env, small_model  # noqa: E402
from soak import cpu_s, rss_mib, slope_per_10min  # noqa: E402

MODES = ("timer", "camera", "lidar", "text")
SENSORS = ("camera", "lidar", "text")


def stats(values) -> dict:
    v = [float(x) for x in values if x is not None and np.isfinite(x)]
    if not v:
        return {"n": 0, "p50": None, "p99": None}
    return {"n": len(v), "p50": float(np.median(v)), "p99": float(np.percentile(v, 99))}


# ----------------------------------------------------------------------------------- 1. fusion layer
def _timed_calls(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def _interleaved(fns: dict, n: int, out: Optional[dict] = None) -> dict:
    """``n`` rounds, each calling every function once (a rotating order): the methods compared
    see the same moments of a noisy machine, so their ratio is fair to the percent. us."""
    out = out if out is not None else {k: [] for k in fns}
    keys = list(fns)
    for i in range(n):
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            t0 = time.perf_counter()
            fns[k]()
            out[k].append((time.perf_counter() - t0) * 1e6)
    return out


def bench_fusion_layer(quick: bool, device: str = "cpu") -> dict:
    import torch

    from aecf_ros.core.baselines import build_fusion
    from aecf_ros.model import build_model

    dims = dict(build_model({}).embedding_dims)
    # aecf_no_presence (informational): AECF without its learned missing-sensor tokens, the only
    # inference-time work AECF adds to the attention gate
    methods = ("aecf", "attention", "mean", "concat", "aecf_no_presence")
    iters = {1: 30 if quick else 400, 256: 5 if quick else 60}
    rounds = 2 if quick else 5
    mods = {}
    for m in methods:
        torch.manual_seed(0)
        mods[m] = build_fusion(m, dims, 64).eval().to(device)
    samples = {f"{m}@{b}": [] for m in methods for b in iters}
    with torch.inference_mode():
        for _ in range(rounds):
            for b, n in iters.items():
                emb = {k: torch.randn(b, d, device=device) for k, d in dims.items()}
                present = torch.rand(b, len(dims), device=device) > 0.2
                present[:, 0] = True
                fns = {f"{m}@{b}": (lambda m=m: mods[m](emb, present)) for m in methods}
                for f in fns.values():
                    f()
                _interleaved(fns, n, {k: samples[k] for k in fns})
    rows = {k: stats(v) for k, v in samples.items()}
    # the fusion node's whole per-output work (presence + fusion + head + calibration), batch 1
    from aecf_ros.apps.bench_runtime import _engines

    engines = _engines("default", device)
    step = {m: [] for m in engines}
    for _ in range(rounds):
        _interleaved({m: (lambda e=e: e.step(1.0)) for m, e in engines.items()}, iters[1], step)
    rows.update({f"engine_step_{m}@1": stats(v) for m, v in step.items()})
    return {"unit": "us", "rows": rows, "training": bench_training_step(quick, device)}


def bench_training_step(quick: bool, device: str = "cpu") -> dict:
    import torch

    from aecf_ros.model import build_model
    from aecf_ros.train.stage2 import FusionHead, build_objective

    # aecf_no_infonce: the full AECF method minus its contrastive term (informational: it shows
    # where the training-step gap to ModDrop comes from)
    methods = ("aecf", "attention", "moddrop", "aecf_no_infonce")
    batch, n, rounds = (64, 3, 2) if quick else (256, 15, 4)
    nets = {}
    for m in methods:
        torch.manual_seed(0)
        method = "aecf" if m == "aecf_no_infonce" else m
        model = build_model({}, fusion={"method": method}).to(device)
        net = FusionHead(model).train()
        params = [p for p in net.parameters() if p.requires_grad]
        objective = build_objective(method, {"infonce_coef": 0.0} if m == "aecf_no_infonce" else None)
        nets[m] = (model, net, objective, torch.optim.AdamW(params, lr=1e-3), params)
    dims = nets["aecf"][0].embedding_dims
    ncls = len(nets["aecf"][0].class_names)
    gen = torch.Generator().manual_seed(0)
    emb = {k: torch.randn(batch, d, generator=gen).to(device) for k, d in dims.items()}
    y = (torch.rand(batch, ncls, generator=gen) > 0.7).float().to(device)
    present = (torch.rand(batch, len(dims), generator=gen) > 0.2).to(device)
    present[:, 0] = True

    def one(m):
        model, net, objective, opt, params = nets[m]
        ls, os_, lf, of = net(emb, present)
        step = int(getattr(model.fusion, "step_count", 0) or 0)
        losses = objective(os_, of, ls, lf, y, step=step)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for m in methods:
        one(m)
    samples = _interleaved({m: (lambda m=m: one(m)) for m in methods}, n * rounds)
    return {"unit": "ms", "batch": batch, "rows": {m: stats([x / 1e3 for x in v]) for m, v in samples.items()}}


# ----------------------------------------------------------------------------------- 2. scaling
def bench_scaling(quick: bool, device: str = "cpu") -> dict:
    import torch

    from aecf_ros.core.fusion import AECFusion

    n = 20 if quick else 300
    out = {"modalities": {}, "width": {}}
    cases = [("modalities", k, {f"m{i}": 256 for i in range(k)}) for k in (2, 3, 4, 6, 8)]
    cases += [("width", w, {f"m{i}": w for i in range(3)}) for w in (128, 256, 512, 1024)]
    for kind, key, dims in cases:
        torch.manual_seed(0)
        f = AECFusion(dims, 64).eval().to(device)
        emb = {k: torch.randn(1, d, device=device) for k, d in dims.items()}
        present = torch.ones(1, len(dims), dtype=torch.bool, device=device)
        with torch.inference_mode():
            f(emb, present)
            out[kind][str(key)] = stats(_timed_calls(lambda: f(emb, present), n))
    return {"unit": "us", "batch": 1, "width_for_modalities": 256, "modalities_for_width": 3, **out}


# ----------------------------------------------------------------------------------- floor listener
def floor_listener(out_path: Path) -> int:
    """Separate process: bare subscriber on the sensor topics (same QoS as the encoders); on SIGINT
    writes receive wall time - header stamp per message (text: receive wall times)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import String

    from aecf_ros import graph

    rclpy.init()
    node = Node("bench_floor_listener")
    rec = {"camera": [], "lidar": [], "text_recv": []}
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)

    def lat(m):
        def cb(msg):
            t = time.time()
            rec[m].append([msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, t])
        return cb

    t = graph.TOPIC_ARGUMENTS
    node.create_subscription(Image, t["camera_topic"], lat("camera"), qos)
    node.create_subscription(PointCloud2, t["lidar_topic"], lat("lidar"), qos)
    node.create_subscription(String, t["text_topic"], lambda m: rec["text_recv"].append(time.time()),
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        while not stop:
            ex.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    Path(out_path).write_text(json.dumps(rec))
    return 0


# ----------------------------------------------------------------------------------- 3 + 4. DDS runs
def sensor_messages(quick: bool):
    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.sim.scene_msgs import image_msg, pointcloud2_msg, text_msg

    scene = generate_scene(3, seed=1)
    h, w, n_pts = (120, 160, 5000) if quick else (480, 640, 60000)
    img = scene.image
    img = np.repeat(np.repeat(img, int(np.ceil(h / img.shape[0])), 0), int(np.ceil(w / img.shape[1])), 1)[:h, :w]
    rng = np.random.default_rng(0)
    pts = scene.points[rng.integers(0, len(scene.points), n_pts)].copy()
    pts[:, :3] += rng.normal(scale=0.01, size=(n_pts, 3)).astype(pts.dtype)
    return {"camera": image_msg(np.ascontiguousarray(img), 0.0), "lidar": pointcloud2_msg(pts, 0.0),
            "text": text_msg(scene.text)}, {"image": f"{w}x{h} rgb8", "points": n_pts}


class Bench:
    """The driver: publishes sensors (and, for the stale run, embeddings), records everything."""

    def __init__(self, msgs: dict, stale_ns: str = "/stalebench"):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, PointCloud2
        from std_msgs.msg import String

        from aecf_ros import graph
        from aecf_ros.msg import FusedPrediction, ModalityEmbedding

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = Node("bench_driver", context=self.context)
        self.ex = SingleThreadedExecutor(context=self.context)
        self.ex.add_node(self.node)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        t = graph.TOPIC_ARGUMENTS
        self.pubs = {"camera": self.node.create_publisher(Image, t["camera_topic"], qos),
                     "lidar": self.node.create_publisher(PointCloud2, t["lidar_topic"], qos),
                     "text": self.node.create_publisher(String, t["text_topic"], qos)}
        self.msgs = msgs
        self.sending = False
        self.sent = {m: [] for m in SENSORS}  # stamps (camera, lidar) / send wall times (text)
        self.embeddings = {m: [] for m in SENSORS}  # (stamp, seq, recv)
        self.predictions: list = []  # (recv, stamp, modalities, present, ages)
        self.stale_predictions: list = []
        self.diag: dict = {}
        self.mode = "timer"
        for m in SENSORS:
            self.node.create_subscription(ModalityEmbedding, "/" + graph.embedding_topic(m),
                                          lambda e, m=m: self._on_embedding(m, e), 50)
        self.node.create_subscription(FusedPrediction, "/" + graph.PREDICTION_TOPIC,
                                      lambda p: self.predictions.append(self._pred(p)), 100)
        self.node.create_subscription(FusedPrediction, f"{stale_ns}/{graph.PREDICTION_TOPIC}",
                                      lambda p: self.stale_predictions.append(self._pred(p)), 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.emb_pubs = {m: self.node.create_publisher(ModalityEmbedding, f"{stale_ns}/{graph.embedding_topic(m)}", qos)
                         for m in ("camera", "lidar")}
        for m, hz in (("camera", 30.0), ("lidar", 10.0), ("text", 1.0)):
            self.node.create_timer(1.0 / hz, lambda m=m: self._send(m))

    @staticmethod
    def _pred(p):
        return (time.time(), p.header.stamp.sec + p.header.stamp.nanosec * 1e-9, list(p.modalities),
                list(p.modality_present), list(p.modality_age_s))

    def _on_embedding(self, m, e):
        self.embeddings[m].append((e.header.stamp.sec + e.header.stamp.nanosec * 1e-9, int(e.seq), time.time()))

    def _on_diag(self, arr):
        for s in arr.status:
            self.diag[s.name] = {kv.key: kv.value for kv in s.values}

    def _send(self, m):
        if not self.sending:
            return
        msg = self.msgs[m]
        now = time.time()
        if hasattr(msg, "header"):
            sec = int(now)
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, int((now - sec) * 1e9)
            self.sent[m].append(sec + msg.header.stamp.nanosec * 1e-9)
        else:
            self.sent[m].append(now)
        self.pubs[m].publish(msg)

    def spin(self, seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                return True
            self.ex.spin_once(timeout_sec=0.002)
        return until() if until is not None else True

    def set_params(self, node_name: str, params: dict, timeout_s: float = 10.0) -> bool:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"{node_name}/set_parameters")
        try:
            if not client.wait_for_service(timeout_sec=timeout_s):
                return False
            req = SetParameters.Request()
            req.parameters = [Parameter(n, value=v).to_parameter_msg() for n, v in params.items()]
            fut = client.call_async(req)
            self.spin(timeout_s, fut.done)
            return fut.done() and all(r.successful for r in fut.result().results)
        finally:
            self.node.destroy_client(client)

    def close(self):
        import rclpy

        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _diag_float(values: dict, key: str) -> Optional[float]:
    v = values.get(key)
    try:
        return float(v) if v not in (None, "", "None") else None
    except ValueError:
        return None


def _used_stamps(pred) -> dict:
    """Stamp of the sample of each present modality a prediction used (header stamp = the newest:
    used_m = stamp + min(age) - age_m)."""
    _, stamp, mods, present, ages = pred
    pa = [a for a, p in zip(ages, present) if p]
    if not pa:
        return {}
    base = stamp + min(pa)
    return {m: base - a for m, p, a in zip(mods, present, ages) if p}


def _last_before(times: list, t: float) -> Optional[float]:
    import bisect

    i = bisect.bisect_right(times, t)
    return times[i - 1] if i else None


def latency_figures(b: Bench, t0: float, t1: float, floor: dict) -> dict:
    """Per sensor, over samples sent in [t0, t1) (wall): stamp -> embedding, stamp -> first prediction
    using it, stamp -> prediction whose newest input it is; floor over the same window."""
    out = {}
    text_send = b.sent["text"]
    for m in SENSORS:
        if m == "text":  # String has no stamp: the encoder stamps its arrival. At 1 Hz the string
            # behind an embedding (or a floor arrival) is the last one sent before it was received.
            emb = [(_last_before(text_send, recv), recv, stamp) for stamp, seq, recv in b.embeddings[m]]
            emb = [e for e in emb if e[0] is not None]
        else:
            emb = [(stamp, recv, stamp) for stamp, seq, recv in b.embeddings[m]]
        emb = [e for e in emb if t0 <= e[0] < t1]
        origin = {round(e[2], 6): e[0] for e in emb}  # embedding stamp -> sensor time
        first: dict = {}
        newest = []
        for pred in b.predictions:
            recv = pred[0]
            used = _used_stamps(pred).get(m)
            if used is None:
                continue
            key = min(origin, key=lambda s: abs(s - used)) if origin else None
            if key is None or abs(key - used) > 5e-4:
                continue
            src = origin[key]
            if src not in first:
                first[src] = recv
                if abs(pred[1] - key) < 5e-4:  # this sample is the prediction's newest input
                    newest.append((recv - src) * 1e3)
        if m == "text":
            pairs = [(_last_before(text_send, r), r) for r in floor.get("text_recv", [])]
            fl = [(r - s) * 1e3 for s, r in pairs if s is not None and t0 <= s < t1]
        else:
            fl = [(r - s) * 1e3 for s, r in floor.get(m, []) if t0 <= s < t1]
        out[m] = {"embedding_ms": stats([(r - s) * 1e3 for s, r, _ in emb]),
                  "prediction_ms": stats([(r - s) * 1e3 for s, r in first.items()]),
                  "prediction_newest_ms": stats(newest),
                  "floor_ms": stats(fl)}
    return out


def run_graph(quick: bool, sustain_s: float, stale_events: int, work: Path) -> dict:
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    model = small_model(work) if quick else "default"
    procs = {n: NodeProc(n, model, work) for n in ("camera_encoder", "lidar_encoder", "text_encoder", "fusion_node")}
    stale = NodeProc("fusion_node", small_model(work), work, extra=[
        "-r", "__ns:=/stalebench", "-r", "__node:=stale_fusion", "-p", "publish_rate_hz:=20.0",
        "-p", "timeout_s.lidar:=0.05", "-p", "timeout_s.camera:=1.0", "-p", "max_output_rate_hz:=1000.0",
        "-p", "diagnostics_period_s:=1.0"])
    stale.name = "stale_fusion"  # (its log file name)
    floor_out = work / "floor.json"
    env = repo_env()
    floor_proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--floor-listener", str(floor_out)],
                                  env=env, cwd=str(REPO), stdout=open(work / "floor.log", "wb"), stderr=subprocess.STDOUT)
    for p in (*procs.values(), stale):
        p.start()
    msgs, sizes = sensor_messages(quick)
    b = Bench(msgs)
    res: dict = {"sizes": sizes, "model": str(model) if quick else "default (shipped: CNN + PointNet + MiniLM)"}
    try:
        start = time.monotonic()
        b.sending = True
        up = b.spin(180, lambda: any(all(p[3]) for p in b.predictions))
        if not up:
            raise RuntimeError("graph never came up; logs in " + str(work))
        res["startup_s"] = time.monotonic() - start
        pids = {n: p.pid for n, p in procs.items()}
        cpu0 = {n: cpu_s(pid) for n, pid in pids.items()}
        rss_t, rss = [], {n: [] for n in pids}
        sent0 = {m: len(b.sent[m]) for m in SENSORS}
        diag0 = json.loads(json.dumps(b.diag))
        n_pred0 = len(b.predictions)
        w0 = time.monotonic()
        segments = {}
        seg_s = sustain_s / len(MODES)
        for mode in MODES:
            ok = b.set_params("/fusion_node", {"output_trigger": mode})
            b.spin(0.5)  # switch settles
            t0 = time.time()
            end = time.monotonic() + seg_s
            while time.monotonic() < end:
                b.spin(min(1.0, end - time.monotonic()))
                rss_t.append(time.monotonic() - w0)
                for n, pid in pids.items():
                    rss[n].append(rss_mib(pid))
            t1 = time.time()
            b.spin(0.6)  # late predictions of this segment's samples; diagnostics of this mode
            fd = b.diag.get("fusion_node: output", {})
            segments[mode] = {"switched": ok, "window": [t0, t1],
                              "in_node_ms": {"p50": _diag_float(fd, "trigger_to_publish_ms_p50"),
                                             "p99": _diag_float(fd, "trigger_to_publish_ms_p99"),
                                             "n": _diag_float(fd, "trigger_to_publish_n")},
                              "encoder_ms": {m: {"p50": _diag_float(b.diag.get(f"{m}_encoder: {m} input", {}), "encode_ms_p50"),
                                                 "p99": _diag_float(b.diag.get(f"{m}_encoder: {m} input", {}), "encode_ms_p99")}
                                             for m in SENSORS}}
        wall = time.monotonic() - w0
        cpu = {n: 100.0 * (cpu_s(pid) - cpu0[n]) / wall for n, pid in pids.items()}
        diag1 = json.loads(json.dumps(b.diag))
        n_pred = len(b.predictions) - n_pred0
        b.sending = False
        # ---------------------------------------------------------------- stale detection
        res["stale"] = run_stale(b, stale_events, small_model(work))
    finally:
        b.sending = False
        floor_proc.send_signal(signal.SIGINT)
        try:
            floor_proc.wait(15)
        except subprocess.TimeoutExpired:
            floor_proc.kill()
        codes = {n: p.stop() for n, p in procs.items()}
        codes["stale_fusion"] = stale.stop()
        b.close()
    floor = json.loads(floor_out.read_text()) if floor_out.exists() else {}
    for mode, seg in segments.items():
        seg["latency"] = latency_figures(b, seg["window"][0], seg["window"][1], floor)
    res["segments"] = segments
    # ---------------------------------------------------------------- sustained figures
    def dv(d, name, key):
        return _diag_float(d.get(name, {}), key) or 0.0

    rates, drops = {}, {}
    for m in SENSORS:
        enc = f"{m}_encoder: {m} input"
        rates[m] = {"sent_hz": (len(b.sent[m]) - sent0[m]) / wall,
                    "encoded_hz": (dv(diag1, enc, "published") - dv(diag0, enc, "published")) / wall,
                    "at_fusion_hz": dv(diag1, f"fusion_node: {m}", "rate_hz")}
        d = {}
        for name, prefix in ((enc, f"encoder."), (f"fusion_node: {m}", "fusion.")):
            for k, v in diag1.get(name, {}).items():
                if k.startswith("dropped."):
                    d[prefix + k[len("dropped."):]] = int(float(v)) - int(float(diag0.get(name, {}).get(k, 0) or 0))
        d["encoder.lost_inputs_est"] = int(dv(diag1, enc, "lost_estimate") - dv(diag0, enc, "lost_estimate"))
        d["fusion.lost_embeddings_seq"] = int(dv(diag1, f"fusion_node: {m}", "lost") - dv(diag0, f"fusion_node: {m}", "lost"))
        drops[m] = d
    # queue growth: embedding latency in the first vs last quarter of the run
    tt0, tt1 = segments[MODES[0]]["window"][0], segments[MODES[-1]]["window"][1]
    q = (tt1 - tt0) / 4
    growth = {}
    for m in ("camera", "lidar"):
        e = [(s, (r - s) * 1e3) for s, _, r in b.embeddings[m] if tt0 <= s < tt1]
        first = stats([x for s, x in e if s < tt0 + q])
        last = stats([x for s, x in e if s >= tt1 - q])
        growth[m] = {"first_quarter_p50_ms": first["p50"], "last_quarter_p50_ms": last["p50"]}
    res["sustained"] = {
        "seconds": wall, "rates": rates, "prediction_hz": n_pred / wall, "drops": drops,
        "cpu_pct": cpu, "rss_mib_start": {n: v[0] for n, v in rss.items()},
        "rss_mib_end": {n: v[-1] for n, v in rss.items()},
        "rss_slope_mib_per_10min_second_half": {n: slope_per_10min(rss_t, v) for n, v in rss.items()},
        "embedding_latency_trend": growth, "exit_codes": codes,
        "logs_with_traceback": [f.name for f in work.glob("*.log") if "Traceback" in f.read_text(errors="replace")]}
    return res


def run_stale(b: Bench, events: int, model_path: Path) -> dict:
    """Lidar embeddings stop; delay = first prediction marking lidar absent - (last stamp + 50 ms)."""
    from aecf_ros.msg import ModalityEmbedding

    timeout = 0.05
    emb = {m: ModalityEmbedding(modality=m) for m in ("camera", "lidar")}
    from aecf_ros.model import load_model

    model = load_model(model_path, "cpu")  # the stale node's model: its sizes and encoder ids
    for m, e in emb.items():
        e.embedding = np.linspace(-1, 1, model.embedding_dims[m]).astype(np.float32).tolist()
        e.encoder_id = model.encoder_ids[m]
    alive = {"camera": True, "lidar": True}
    last = {}

    def send(m):
        if not alive[m]:
            return
        now = time.time()
        sec = int(now)
        emb[m].header.stamp.sec, emb[m].header.stamp.nanosec = sec, int((now - sec) * 1e9)
        b.emb_pubs[m].publish(emb[m])
        last[m] = sec + emb[m].header.stamp.nanosec * 1e-9

    timers = [b.node.create_timer(1 / 50.0, lambda: send("camera")),
              b.node.create_timer(1 / 50.0, lambda: send("lidar"))]
    out = {}
    try:
        # (the stale node is fed camera + lidar only: text is never present there)
        if not b.spin(30, lambda: any(p[3][0] and p[3][1] for p in b.stale_predictions)):
            return {"error": "stale fusion node never published"}
        for mode, period_ms in (("timer", 50.0), ("camera", 20.0)):
            b.set_params("/stalebench/stale_fusion", {"output_trigger": mode})
            delays = []
            for _ in range(events):
                n0 = len(b.stale_predictions)
                b.spin(2.0, lambda: any(p[3][1] for p in b.stale_predictions[n0:]))  # lidar present
                b.spin(0.03)
                alive["lidar"] = False
                b.spin(0.0005)
                stopped = last["lidar"]
                n0 = len(b.stale_predictions)
                hit = []

                def absent():
                    for p in b.stale_predictions[n0:]:
                        if p[3][0] and not p[3][1]:
                            hit.append(p[0])
                            return True
                    return False

                b.spin(2.0, absent)
                alive["lidar"] = True
                if hit:
                    delays.append((hit[0] - (stopped + timeout)) * 1e3)
            out[mode] = {**stats(delays), "output_period_ms": period_ms, "timeout_ms": timeout * 1e3}
    finally:
        for t in timers:
            b.node.destroy_timer(t)
    return out


# ----------------------------------------------------------------------------------- report
def _f(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def _verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def report(r: dict) -> str:
    L = [f"# aecf_ros performance (`make bench`)", "",
         f"Measured {r['date']} on {r['machine']} ({r['cpus']} CPUs{', loaded: shared with other jobs' if r.get('loaded') else ''}), "
         f"torch {r['torch']}, one run of `tools/bench.py{' --quick' if r['quick'] else ''}` ({r['wall_s']:.0f} s). "
         "Figures are median (p50) and p99 of this run; ratios are from this run. "
         "This machine is shared with other engineers' jobs (training, tests): absolute times are noisy, "
         "the ratios within the run are what to compare. GPU rows: `make bench-gpu` (docs/PERFORMANCE_GPU.md).", ""]
    fl = r["fusion_layer"]["rows"]
    L += ["## 1. Fusion layer (CPU, one intra-op thread)", "",
          "| method | batch | p50 (us) | p99 (us) | vs attention (p50) | goal | |", "|---|---|---|---|---|---|---|"]
    for b in (1, 256):
        att = fl[f"attention@{b}"]["p50"]
        for m in ("aecf", "attention", "mean", "concat", "aecf_no_presence"):
            s = fl.get(f"{m}@{b}")
            if s is None:
                continue
            ratio = s["p50"] / att if att else None
            goal, ok = ("AECF within 1% of attention", ratio <= 1.01) if m == "aecf" else ("-", None)
            label = "aecf without presence tokens (informational)" if m == "aecf_no_presence" else m
            L.append(f"| {label} | {b} | {_f(s['p50'])} | {_f(s['p99'])} | {_f(ratio, 3)}x | {goal} | {_verdict(ok)} |")
    att = fl["engine_step_attention@1"]["p50"]
    for m in ("aecf", "attention", "mean"):
        s = fl[f"engine_step_{m}@1"]
        ratio = s["p50"] / att
        goal, ok = ("within 1%", ratio <= 1.01) if m == "aecf" else ("-", None)
        L.append(f"| engine.step {m} (fusion+head+calibration) | 1 | {_f(s['p50'])} | {_f(s['p99'])} | {_f(ratio, 3)}x | {goal} | {_verdict(ok)} |")
    if "aecf_no_presence@1" in fl:
        tok = fl["aecf@1"]["p50"] - fl["aecf_no_presence@1"]["p50"]
        L += ["", "At inference AECF adds one thing to the attention gate: the learned missing-sensor tokens "
              f"(a few small tensor ops): {tok:+.0f} us at batch 1 here (AECF {fl['aecf@1']['p50']:.0f} us, "
              f"without the tokens {fl['aecf_no_presence@1']['p50']:.0f} us, attention "
              f"{fl['attention@1']['p50']:.0f} us). The curriculum, entropy and calibration terms cost nothing "
              "at run time (training only)."]
    tr = r["fusion_layer"]["training"]
    L += ["", f"Training step (fusion + head + objective, forward + backward + AdamW, batch {tr['batch']}):", "",
          "| method | p50 (ms) | p99 (ms) | AECF / this (p50) | goal | |", "|---|---|---|---|---|---|"]
    for m in ("aecf", "attention", "moddrop", "aecf_no_infonce"):
        s = tr["rows"].get(m)
        if s is None:
            continue
        ratio = tr["rows"]["aecf"]["p50"] / s["p50"]
        goal, ok = ("AECF within 10%", ratio <= 1.10) if m in ("attention", "moddrop") else ("-", None)
        label = "aecf without its InfoNCE term (informational)" if m == "aecf_no_infonce" else m
        L.append(f"| {label} | {_f(s['p50'], 2)} | {_f(s['p99'], 2)} | {_f(ratio, 3)}x | {goal} | {_verdict(ok)} |")
    if "aecf_no_infonce" in tr["rows"]:
        share = 1.0 - tr["rows"]["aecf_no_infonce"]["p50"] / tr["rows"]["aecf"]["p50"]
        extra = tr["rows"]["aecf"]["p50"] - tr["rows"]["moddrop"]["p50"]
        L += ["", f"AECF's step is {extra:.1f} ms longer than ModDrop's: it trains with four extra terms "
              "(cross-modal InfoNCE, entropy regulariser, subset calibration, subset distillation) and the "
              f"curriculum mask. The InfoNCE term (a B x B similarity per sensor pair) is {share:.0%} of it; "
              "without InfoNCE the step is "
              f"{tr['rows']['aecf_no_infonce']['p50'] / tr['rows']['moddrop']['p50']:.2f}x ModDrop's."]
    sc = r["scaling"]
    L += ["", "## 2. Scaling (AECF fusion, batch 1; informational, no goal)", "",
          f"| modalities (width {sc['width_for_modalities']}) | p50 (us) | p99 (us) |", "|---|---|---|"]
    L += [f"| {k} | {_f(v['p50'])} | {_f(v['p99'])} |" for k, v in sc["modalities"].items()]
    L += ["", f"| width ({sc['modalities_for_width']} modalities) | p50 (us) | p99 (us) |", "|---|---|---|"]
    L += [f"| {k} | {_f(v['p50'])} | {_f(v['p99'])} |" for k, v in sc["width"].items()]
    g = r["graph"]
    L += ["", "## 3. The real graph over DDS (one process per node, loopback, RELIABLE)", "",
          f"Sensors: camera {g['sizes']['image']} at 30 Hz, lidar {g['sizes']['points']} points at 10 Hz, text at 1 Hz; "
          f"model {g['model']}. The run is split into output modes (switched live), "
          f"{g['sustained']['seconds'] / len(MODES):.0f} s each. *floor* = a bare subscriber in another process "
          "on the same sensor topics (same messages, same run); *encoder* = the encoder's conversion + encode time; "
          "*prediction* = stamp -> first prediction that used that sample; *newest* = predictions whose newest input "
          "is that sample. Goal (trigger mode, the trigger's sensor): prediction p50 <= floor p50 + encoder p50 + 2 ms; "
          "inside the fusion node, embedding received -> published <= 2 ms p50.", "",
          "| mode | sensor | floor p50 / p99 | encoder p50 / p99 | embedding p50 / p99 | prediction p50 / p99 (n) | newest p50 / p99 | goal | |",
          "|---|---|---|---|---|---|---|---|---|"]
    for mode, seg in g["segments"].items():
        for m in SENSORS:
            lat = seg["latency"][m]
            enc = seg["encoder_ms"][m]
            fl_, em, pr, nw = lat["floor_ms"], lat["embedding_ms"], lat["prediction_ms"], lat["prediction_newest_ms"]
            goal, ok = "-", None
            if mode == m and fl_["p50"] is not None and enc["p50"] is not None and pr["p50"] is not None:
                bound = fl_["p50"] + enc["p50"] + 2.0
                goal, ok = f"<= {bound:.1f} ms", pr["p50"] <= bound
            L.append(f"| {mode} | {m} | {_f(fl_['p50'])} / {_f(fl_['p99'])} | {_f(enc['p50'])} / {_f(enc['p99'])} | "
                     f"{_f(em['p50'])} / {_f(em['p99'])} | {_f(pr['p50'])} / {_f(pr['p99'])} ({pr['n']}) | "
                     f"{_f(nw['p50'])} / {_f(nw['p99'])} | {goal} | {_verdict(ok)} |")
    L += ["", "| mode | in fusion node: embedding received -> published p50 / p99 (n) | goal | |", "|---|---|---|---|"]
    for mode, seg in g["segments"].items():
        s = seg["in_node_ms"]
        ok = None if mode == "timer" or s["p50"] is None else s["p50"] <= 2.0
        L.append(f"| {mode} | {_f(s['p50'], 2)} / {_f(s['p99'], 2)} ({_f(s['n'], 0)}) | {'-' if mode == 'timer' else '<= 2 ms p50'} | {_verdict(ok)} |")
    st = g["stale"]
    L += ["", "## 4. Stale detection", "",
          "A separate fusion node fed embeddings directly (camera and lidar at 50 Hz), lidar timeout 50 ms; lidar "
          "stopped n times: delay = first prediction marking lidar absent - (lidar's last stamp + timeout). "
          "Goal: p99 <= one output period + 5 ms (timer mode: the 20 Hz timer; trigger mode: the 50 Hz trigger).", "",
          "| mode | n | p50 (ms) | p99 (ms) | goal | |", "|---|---|---|---|---|---|"]
    for mode, s in st.items():
        if not isinstance(s, dict) or "p50" not in s:
            L.append(f"| {mode} | - | - | - | - | {s} |")
            continue
        bound = s["output_period_ms"] + 5.0
        ok = s["p99"] <= bound if s["p99"] is not None else False
        L.append(f"| {mode} | {s['n']} | {_f(s['p50'])} | {_f(s['p99'])} | <= {bound:.0f} ms | {_verdict(ok)} |")
    su = g["sustained"]
    L += ["", f"## 5. Sustained load ({su['seconds']:.0f} s, all four output modes in turn)", "",
          "| sensor | sent (Hz) | encoded (Hz) | at fusion (Hz) | drops by reason | goal | |", "|---|---|---|---|---|---|---|"]
    for m in SENSORS:
        ra = su["rates"][m]
        d = {k: v for k, v in su["drops"][m].items() if v}
        ok = ra["encoded_hz"] >= 0.95 * ra["sent_hz"]
        L.append(f"| {m} | {_f(ra['sent_hz'])} | {_f(ra['encoded_hz'])} | {_f(ra['at_fusion_hz'])} | "
                 f"{', '.join(f'{k}={v}' for k, v in d.items()) or 'none'} | rate held (encoded >= 95% of sent) | {_verdict(ok)} |")
    L += ["", f"Predictions: {su['prediction_hz']:.1f} Hz over the run (10 Hz timer, then one per trigger embedding).", "",
          "| node | CPU % (of one core) | RSS start (MiB) | RSS end (MiB) | RSS slope, 2nd half (MiB/10 min) |", "|---|---|---|---|---|"]
    for n in su["cpu_pct"]:
        L.append(f"| {n} | {_f(su['cpu_pct'][n])} | {_f(su['rss_mib_start'][n])} | {_f(su['rss_mib_end'][n])} | "
                 f"{_f(su['rss_slope_mib_per_10min_second_half'][n])} |")
    tr_ = su["embedding_latency_trend"]
    L += ["", "Queue growth (stamp -> embedding p50, first vs last quarter of the run): " + "; ".join(
        f"{m} {_f(v['first_quarter_p50_ms'])} -> {_f(v['last_quarter_p50_ms'])} ms" for m, v in tr_.items()),
        f"Exit codes {su['exit_codes']}; logs with a traceback: {su['logs_with_traceback'] or 'none'}.", ""]
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, small n (~1 min)")
    ap.add_argument("--sustain-s", type=float, default=None, help="sustained-load seconds (default 60; quick 8)")
    ap.add_argument("--stale-events", type=int, default=None, help="stale events per mode (default 100; quick 3)")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--floor-listener", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--skip-graph", action="store_true", help="fusion layer + scaling only")
    ap.add_argument("--skip-dataset", action="store_true", help="no bag-dataset rows (section 6)")
    ap.add_argument("--skip-sensor-count", action="store_true", help="no sensor-count rows (section 7)")
    args = ap.parse_args(argv)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", "78")
    if args.floor_listener:
        return floor_listener(args.floor_listener)
    import torch

    from aecf_ros.nodes.model_loading import configure_torch_threads

    configure_torch_threads()
    t_start = time.monotonic()
    load = os.getloadavg()[0]
    r = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine() + " " + platform.node(),
         "cpus": os.cpu_count(), "torch": torch.__version__, "quick": args.quick, "loadavg_1min_start": load,
         "loaded": load > 0.5 * (os.cpu_count() or 1)}
    print("fusion layer ...", flush=True)
    r["fusion_layer"] = bench_fusion_layer(args.quick)
    print("scaling ...", flush=True)
    r["scaling"] = bench_scaling(args.quick)
    if not args.skip_graph:
        print("graph over DDS (sustained load, output modes, stale detection) ...", flush=True)
        work = Path(tempfile.mkdtemp(prefix="aecf_bench_"))
        r["graph"] = run_graph(args.quick, args.sustain_s or (8.0 if args.quick else 60.0),
                               args.stale_events or (3 if args.quick else 100), work)
    if not args.skip_dataset:
        import bench_dataset

        print("bag dataset (extraction, training) ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="aecf_dataset_bench_") as tmp:
            r["dataset"] = bench_dataset.run(0.5 if args.quick else 10.0, 2 if args.quick else 5, Path(tmp))
    if not args.skip_sensor_count:
        import bench_sensor_count

        print("declared sensor count (2..8 sensors through the fusion node) ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="aecf_sensor_bench_") as tmp:
            r["sensor_count"] = bench_sensor_count.run(args.quick, Path(tmp))
    r["wall_s"] = time.monotonic() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "performance.json").write_text(json.dumps(r, indent=1) + "\n")
    if not args.skip_graph:
        md = report(r)
        if "dataset" in r:
            import bench_dataset

            md += "\n" + bench_dataset.report(r["dataset"])
        if "sensor_count" in r:
            import bench_sensor_count

            md += "\n" + bench_sensor_count.report(r["sensor_count"])
        (args.out / "PERFORMANCE.md").write_text(md)
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
