"""Big messages: which image and cloud sizes reach the REAL encoder nodes, per QoS and transport.

    make bench-big   (= .venv/bin/python tools/bench_big_messages.py, about 6 minutes)
    .venv/bin/python tools/bench_big_messages.py [--rate 2] [--frames 5]
        [--images 0.3,1,2,5,12,16.8,24 | 320x240,...] [--clouds 60k,250k,500k,1M,2M]
        [--reliability best_effort,reliable] [--transports default,profile] [--out docs/big_messages.json]

For every transport (``default`` = Fast DDS as installed, nothing set; ``profile`` =
``config/fastdds_large_frames.xml`` via FASTDDS_DEFAULT_PROFILES_FILE / FASTRTPS_DEFAULT_PROFILES_FILE,
RMW_FASTRTPS_USE_QOS_FROM_XML unset; ``large_data`` = Fast DDS's own FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA)
and every reliability (``best_effort``: publisher BEST_EFFORT, encoders ``qos.*.profile: sensor_data``;
``reliable``: both RELIABLE, the encoders' default), this starts the real ``camera_encoder`` and
``lidar_encoder`` (own processes, the shipped model, CPU) and a driver process with the same
environment. The driver publishes, per size, ``--frames`` rgb8 Images (or x,y,z,intensity float32
PointCloud2s, 16 B a point) at ``--rate`` Hz, KEEP_LAST depth 5, each with its own header stamp,
then waits up to ``--settle`` s. Counted per size:

* ``received``: the encoder's own ``/diagnostics`` ``received`` (messages its callback got),
* ``encoded``: embeddings on ``aecf/embedding/<sensor>`` whose header stamp is one of the frames sent
  (the encoder copies the source header),
* ``too_large``: the encoder's ``dropped.too_large`` (camera ``max_pixels``, default 4096x4096),
* ``latency_ms``: embedding received here - frame stamp, median (transport + conversion + encoding),
* ``publish_ms``: mean time of the ``publish()`` call (serialization + hand-over to the transport).

A warm-up frame (64x48 / 1000 points) is sent until it comes back encoded before each transport x
reliability run, so matching is complete before measuring. Prints a table and writes ``--out``
(a JSON list of runs: a row measured again - same rate, frames, transport, reliability, sensor and
size - replaces the older one).
Bounded: about (sizes x (frames / rate + settle)) per transport x reliability, plus ~10 s start-up.
Keep every process on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST is forced) and give it
its own ROS_DOMAIN_ID.
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
PROFILE = REPO / "config" / "fastdds_large_frames.xml"
IMAGE_TOPIC, CLOUD_TOPIC = "/bigbench/image", "/bigbench/points"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "RMW_FASTRTPS_USE_QOS_FROM_XML",
                "FASTDDS_BUILTIN_TRANSPORTS")
# megapixels -> (width, height): common sensor formats
IMAGE_SHAPES = {0.3: (640, 480), 1: (1280, 800), 2: (1920, 1080), 5: (2592, 1944), 8: (3840, 2160),
                12: (4000, 3000), 16.8: (4096, 4096), 24: (6000, 4000), 48: (8000, 6000)}


def transport_env(transport: str, base: dict | None = None) -> dict:
    """The environment of every process of one run: loopback, no inherited profile, then ``transport``."""
    env = {k: v for k, v in (base or os.environ).items() if k not in PROFILE_VARS}
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), env.get("PYTHONPATH", "")) if x)
    env["PYTHONUNBUFFERED"] = "1"
    if transport == "profile":
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    elif transport == "large_data":
        env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    elif transport != "default":
        raise ValueError(f"unknown transport {transport!r}")
    return env


def parse_image(text: str) -> float:
    """``12`` (MP) or ``WxH`` -> megapixels (``WxH`` shapes are remembered for image_shape)."""
    text = text.strip().lower()
    if "x" in text:
        w, h = (int(v) for v in text.split("x"))
        IMAGE_SHAPES[w * h / 1e6] = (w, h)
        return w * h / 1e6
    return float(text)


def image_shape(mp: float) -> tuple[int, int]:
    if mp in IMAGE_SHAPES:
        return IMAGE_SHAPES[mp]
    w = int(round((mp * 1e6 * 4 / 3) ** 0.5))
    return w, int(round(mp * 1e6 / w))


def parse_points(text: str) -> int:
    text = text.strip().lower()
    scale = 1_000_000 if text.endswith("m") else 1000 if text.endswith("k") else 1
    return int(float(text.rstrip("mk")) * scale)


def encoder_args(sensor: str, reliability: str, model_path: str) -> list[str]:
    qos_input = {"camera": "image", "lidar": "points"}[sensor]
    topic = {"camera": ("image", IMAGE_TOPIC), "lidar": ("points", CLOUD_TOPIC)}[sensor]
    profile = "sensor_data" if reliability == "best_effort" else "reliable"
    return ["--ros-args", "-r", f"{topic[0]}:={topic[1]}", "-p", f"model_path:={model_path}", "-p", "device:=cpu",
            "-p", f"qos.{qos_input}.profile:={profile}", "-p", f"qos.{qos_input}.depth:=5",
            "-p", "diagnostics_period_s:=0.25", "-p", "input_quiet_s:=30.0", "-p", "expected_rate_hz:=0.0"]


def start_encoders(reliability: str, env: dict, work: Path, model_path: str = "default",
                   sensors=("camera", "lidar")) -> dict[str, subprocess.Popen]:
    procs = {}
    for sensor in sensors:
        log = open(work / f"{sensor}_encoder.log", "wb")
        procs[sensor] = subprocess.Popen(
            [sys.executable, "-m", f"aecf_ros.nodes.{sensor}_encoder", *encoder_args(sensor, reliability, model_path)],
            env=env, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT)
    return procs


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


# ---------------------------------------------------------------------------------------------- driver
class Driver:
    """The publishing side (its own process, the run's environment): publishes frames, counts what
    comes back encoded and what the encoders' /diagnostics say they received."""

    def __init__(self, reliability: str):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, PointCloud2

        from aecf_ros.msg import ModalityEmbedding

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = Node("bigbench_driver", context=self.context)
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                         else ReliabilityPolicy.RELIABLE)
        self.pubs = {"camera": self.node.create_publisher(Image, IMAGE_TOPIC, qos),
                     "lidar": self.node.create_publisher(PointCloud2, CLOUD_TOPIC, qos)}
        self.embeddings: dict[str, dict[tuple[int, int], float]] = {"camera": {}, "lidar": {}}
        self.diag: dict[str, tuple[float, dict]] = {}
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for sensor in self.embeddings:
            self.node.create_subscription(ModalityEmbedding, f"/aecf/embedding/{sensor}",
                                          lambda m, s=sensor: self._on_embedding(s, m), out_qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_embedding(self, sensor, msg):
        self.embeddings[sensor][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.time()

    def _on_diag(self, msg):
        for st in msg.status:
            for sensor in ("camera", "lidar"):
                if st.name.endswith(f"{sensor} input"):
                    self.diag[sensor] = (time.monotonic(), {kv.key: kv.value for kv in st.values})

    def spin(self, seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return bool(until()) if until is not None else True

    def counters(self, sensor: str, after: float) -> dict:
        """The encoder's counters from a /diagnostics report made after ``after`` (monotonic)."""
        self.spin(5.0, lambda: sensor in self.diag and self.diag[sensor][0] > after)
        values = self.diag.get(sensor, (0.0, {}))[1]

        def num(key):
            try:
                return float(values.get(key, "0"))
            except ValueError:
                return 0.0
        return {"received": num("received"), "encoded": num("encoded"), "too_large": num("dropped.too_large"),
                "dropped": num("dropped"), "encode_ms_max": num("encode_ms_max")}

    def message(self, sensor: str, size: float):
        import numpy as np

        if sensor == "camera":
            from sensor_msgs.msg import Image

            w, h = image_shape(size)
            msg = Image()
            msg.width, msg.height, msg.encoding, msg.step = w, h, "rgb8", 3 * w
            rng = np.random.default_rng(0)
            row = rng.integers(0, 255, size=3 * w, dtype=np.uint8)
            msg.data = np.tile(row, h).tobytes()
            return msg
        from aecf_ros.sim.scene_msgs import pointcloud2_msg

        rng = np.random.default_rng(0)
        pts = rng.uniform(-20, 20, size=(int(size), 4)).astype(np.float32)
        pts[:, 3] = np.abs(pts[:, 3])
        return pointcloud2_msg(pts, 0.0)

    def send(self, sensor: str, msg) -> tuple[tuple[int, int], float]:
        now = self.node.get_clock().now()
        msg.header.stamp = now.to_msg()
        msg.header.frame_id = "bigbench"
        t0 = time.perf_counter()
        self.pubs[sensor].publish(msg)
        return (msg.header.stamp.sec, msg.header.stamp.nanosec), (time.perf_counter() - t0) * 1e3

    def warm_up(self, sensor: str, timeout_s: float) -> bool:
        msg = self.message(sensor, 64 * 48 / 1e6 if sensor == "camera" else 1000)
        if sensor == "camera":
            msg.width, msg.height, msg.step = 64, 48, 192
            msg.data = bytes(64 * 48 * 3)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            key, _ = self.send(sensor, msg)
            if self.spin(0.5, lambda: key in self.embeddings[sensor]):
                return True
        return False

    def case(self, sensor: str, size: float, frames: int, rate: float, settle_s: float) -> dict:
        msg = self.message(sensor, size)
        nbytes = len(msg.data)
        before = self.counters(sensor, time.monotonic())
        keys, pub_ms, sent_at = [], [], []
        period = 1.0 / rate
        t_next = time.monotonic()
        for _ in range(frames):
            self.spin(max(0.0, t_next - time.monotonic()))
            key, ms = self.send(sensor, msg)
            keys.append(key), pub_ms.append(ms), sent_at.append(key[0] + key[1] * 1e-9)
            t_next += period
        got = self.embeddings[sensor]
        self.spin(settle_s, lambda: all(k in got for k in keys))
        after = self.counters(sensor, time.monotonic())
        lat = sorted((got[k] - s) * 1e3 for k, s in zip(keys, sent_at) if k in got)
        del msg
        row = {"sensor": sensor, "size": size, "bytes": nbytes, "sent": frames,
               "received": int(after["received"] - before["received"]),
               "encoded": sum(k in got for k in keys),
               "too_large": int(after["too_large"] - before["too_large"]),
               "dropped": int(after["dropped"] - before["dropped"]),
               "latency_ms_p50": lat[len(lat) // 2] if lat else None,
               "publish_ms_mean": sum(pub_ms) / len(pub_ms),
               "encode_ms_max": after["encode_ms_max"] or None}
        if sensor == "camera":
            row["shape"] = list(image_shape(size))
        else:
            row["points"] = int(size)
        return row

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def driver_main(cfg: dict) -> int:
    IMAGE_SHAPES.update({float(k): tuple(v) for k, v in cfg.get("shapes", {}).items()})
    d = Driver(cfg["reliability"])
    rows = []
    try:
        for sensor, sizes in (("camera", cfg["images"]), ("lidar", cfg["clouds"])):
            if not sizes:
                continue
            if not d.warm_up(sensor, cfg["warm_up_s"]):
                print(json.dumps({"error": f"{sensor} warm-up frame never came back encoded"}), flush=True)
                return 3
            for size in sizes:
                row = d.case(sensor, size, cfg["frames"], cfg["rate"], cfg["settle_s"])
                print(json.dumps({"row": row}), flush=True)
                rows.append(row)
    finally:
        d.close()
    return 0


# ---------------------------------------------------------------------------------------------- runs
def run_one(transport: str, reliability: str, args, work: Path) -> list[dict]:
    env = transport_env(transport)
    sensors = [s for s, sizes in (("camera", args.images), ("lidar", args.clouds)) if sizes]
    procs = start_encoders(reliability, env, work, args.model_path, sensors)
    cfg = {"reliability": reliability, "images": args.images, "clouds": args.clouds, "frames": args.frames,
           "shapes": {str(mp): image_shape(mp) for mp in args.images},
           "rate": args.rate, "settle_s": args.settle, "warm_up_s": 90.0}
    rows = []
    try:
        driver = subprocess.run([sys.executable, __file__, "--driver", json.dumps(cfg)], env=env, cwd=str(REPO),
                                capture_output=True, text=True, timeout=args.case_timeout)
        for line in driver.stdout.splitlines():
            if line.startswith("{"):
                item = json.loads(line)
                if "row" in item:
                    rows.append(dict(item["row"], transport=transport, reliability=reliability))
                    print(format_row(rows[-1]), flush=True)
                elif "error" in item:
                    print(f"  {transport}/{reliability}: {item['error']}", flush=True)
        if driver.returncode:
            print(f"  driver exit {driver.returncode}: {driver.stderr[-800:]}", flush=True)
    except subprocess.TimeoutExpired:
        print(f"  {transport}/{reliability}: driver ran past {args.case_timeout} s", flush=True)
    finally:
        codes = {s: stop(p) for s, p in procs.items()}
    if any(codes.values()):
        print(f"  encoder exit codes {codes}; logs in {work}", flush=True)
    return rows


HEADER = (f"{'transport':<10} {'reliability':<11} {'sensor':<6} {'size':>12} {'MB':>6} {'sent':>4} {'recv':>4} "
          f"{'enc':>4} {'too_large':>9} {'lat p50 ms':>10} {'pub ms':>7}")


def format_row(r: dict) -> str:
    size = f"{r['shape'][0]}x{r['shape'][1]}" if r["sensor"] == "camera" else f"{r['points']:,} pts"
    lat = f"{r['latency_ms_p50']:.0f}" if r["latency_ms_p50"] is not None else "-"
    return (f"{r['transport']:<10} {r['reliability']:<11} {r['sensor']:<6} {size:>12} {r['bytes'] / 1e6:>6.1f} "
            f"{r['sent']:>4} {r['received']:>4} {r['encoded']:>4} {r['too_large']:>9} {lat:>10} "
            f"{r['publish_ms_mean']:>7.1f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--driver", help=argparse.SUPPRESS)
    p.add_argument("--rate", type=float, default=2.0, help="frames a second (default 2)")
    p.add_argument("--frames", type=int, default=5, help="frames per size (default 5)")
    p.add_argument("--images", default="0.3,1,2,5,12,16.8,24",
                   help="image sizes (rgb8) in MP or as WxH; '' = none")
    p.add_argument("--clouds", default="60k,250k,500k,1M,2M", help="cloud sizes in points; '' = none")
    p.add_argument("--reliability", default="best_effort,reliable", help="best_effort | reliable, comma-separated")
    p.add_argument("--transports", default="default,profile", help="default | profile | large_data, comma-separated")
    p.add_argument("--settle", type=float, default=6.0, help="seconds to wait after the last frame of a size")
    p.add_argument("--model-path", default="default")
    p.add_argument("--case-timeout", type=float, default=900.0, help="limit for one transport x reliability run")
    p.add_argument("--out", default=str(REPO / "docs" / "big_messages.json"), help="JSON file ('' = none)")
    args = p.parse_args(argv)
    if args.driver:
        return driver_main(json.loads(args.driver))
    args.images = [parse_image(x) for x in args.images.split(",") if x.strip()]
    args.clouds = [parse_points(x) for x in args.clouds.split(",") if x.strip()]
    run = {"rate_hz": args.rate, "frames": args.frames, "settle_s": args.settle, "model_path": args.model_path,
           "cpus": os.cpu_count(), "loadavg_1min_start": os.getloadavg()[0],
           "shm_free_gib": _shm_free_gib(), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
           "rows": []}
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="bigbench_") as tmp:
        for transport in [t for t in args.transports.split(",") if t]:
            for reliability in [r for r in args.reliability.split(",") if r]:
                run["rows"] += run_one(transport, reliability, args, Path(tmp))
    run["loadavg_1min_end"] = os.getloadavg()[0]
    if args.out:
        save(run, Path(args.out))
        print(f"wrote {args.out}")
    return 0


def _shm_free_gib() -> float | None:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return st.f_bavail * st.f_frsize / 2**30


def save(run: dict, path: Path) -> None:
    """Add ``run`` to the JSON list in ``path``; rows of an older run with the same rate and frames
    for the same transport, reliability, sensor and size are replaced (measured again)."""
    runs = json.loads(path.read_text()) if path.exists() else []

    def key(r):
        return r["transport"], r["reliability"], r["sensor"], r["bytes"]
    keys = {key(r) for r in run["rows"]}
    for old in runs:
        if old["rate_hz"] == run["rate_hz"] and old["frames"] == run["frames"]:
            old["rows"] = [r for r in old["rows"] if key(r) not in keys]
    runs = [r for r in runs if r["rows"]] + [run]
    path.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
