"""`aecf-ros make-bag OUT`: a rosbag2 of generated scenes, with ground truth, for replay tests.

Each scene (``aecf_ros.data.scenes.generate_scene``) stays in view for ``--scene-hold`` seconds,
during which the bag holds, with header stamps equal to the bag timestamps:

===============================  ========================  =====================================
topic                            type                      rate
===============================  ========================  =====================================
/camera/image_raw                sensor_msgs/Image rgb8    30 Hz (``--compressed``: jpeg on
                                                           /camera/image_raw/compressed)
/lidar/points                    sensor_msgs/PointCloud2   10 Hz (x, y, z, intensity float32)
/operator/text                   std_msgs/String           1 Hz (first one when the scene starts)
/scene/ground_truth              diagnostic_msgs/          1 Hz (first one when the scene starts)
                                 DiagnosticArray           see sim/scene_msgs.ground_truth_msg
===============================  ========================  =====================================

The bag directory also holds ``labels.csv`` (one row per scene: ``[start, end)`` in bag time and
the classes in view, the format of :mod:`aecf_ros.data.labels`) and ``classes.txt`` (the label
order): the same labels as the ground-truth topic, in the form a team labels its own bags.

A scene is rendered once; its frames get fresh sensor noise (image noise, point jitter), so a
60 s bag takes seconds to write. The bag is written with ``rosbags``: valid for ``ros2 bag
info/play`` (RIHS01 type hashes, reliable QoS offered), in rosbag2 metadata version 8 by default
(:data:`BAG_VERSIONS`): the newest that Humble's reader takes as well as Jazzy's and Kilted's.
"""
from __future__ import annotations

import bisect
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from aecf_ros import graph as T
from aecf_ros.bag.bag_io import BagError, sensor_qos, storage_plugin, typestore
from aecf_ros.data.labels import Interval, write_class_list, write_labels

#: the label file and class list make-bag writes into the bag directory (what ``aecf-ros
#: dataset`` looks for when no --labels is given)
LABELS_FILE = "labels.csv"
CLASSES_FILE = "classes.txt"

DEFAULT_START_S = 1_700_000_000  # a fixed epoch: the same seed gives the same bag content


#: rosbag2 metadata versions make-bag writes -> who reads them (rosbag2_storage's yaml decode,
#: read from its humble / jazzy / rolling sources): up to 8 the offered QoS profiles are one YAML
#: string (Humble decodes it: version >= 4); 9 writes them as a YAML list, which Humble's decoder
#: (``offered_qos_profiles.as<std::string>()``) rejects. Jazzy and Kilted write and read 9, and
#: read 8 (their ``version >= 4`` branch).
BAG_VERSIONS = {8: "Humble, Jazzy, Kilted", 9: "Jazzy, Kilted (not Humble)"}
DEFAULT_BAG_VERSION = 8


@dataclass
class BagSpec:
    """What :func:`write_scene_bag` writes (rates in Hz, times in seconds)."""

    duration_s: float = 60.0
    storage: str = "mcap"
    compressed: bool = False
    seed: int = 0
    scene_hold_s: float = 4.0
    camera_hz: float = 30.0
    lidar_hz: float = 10.0
    text_hz: float = 1.0
    ground_truth_hz: float = 1.0
    start_s: int = DEFAULT_START_S
    image_noise: int = 4  # +- grey levels of per-frame image noise
    point_jitter_m: float = 0.01
    first_scene_index: int = 0
    version: int = DEFAULT_BAG_VERSION  # rosbag2 metadata version (BAG_VERSIONS)

    def validate(self) -> None:
        if self.version not in BAG_VERSIONS:
            raise ValueError(f"rosbag2 version must be one of {sorted(BAG_VERSIONS)}, got {self.version}")
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise ValueError(f"duration must be > 0 seconds, got {self.duration_s}")
        if not self.scene_hold_s > 0:
            raise ValueError(f"scene hold must be > 0 seconds, got {self.scene_hold_s}")
        for name in ("camera_hz", "lidar_hz", "text_hz", "ground_truth_hz"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        storage_plugin(self.storage)


@dataclass
class BagSummary:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    scenes: int = 0
    seconds: float = 0.0
    size_bytes: int = 0


def _ticks(rate_hz: float, duration_ns: int) -> list[int]:
    """Offsets ``round(k / rate)`` in integer ns within [0, duration) (no float drift in long bags)."""
    out = []
    k = 0
    while (t := int(round(k * 1e9 / rate_hz))) < duration_ns:
        out.append(t)
        k += 1
    return out


def write_scene_bag(out: str | Path, spec: BagSpec, generate: Callable | None = None,
                    class_names=None, progress: Callable[[str], None] | None = None,
                    sensors=None) -> BagSummary:
    """Write the bag; ``generate(index, seed) -> Scene`` defaults to the package's scene generator.

    ``sensors``: a declared :class:`~aecf_ros.sensors.SensorSet` (None: the package's camera /
    lidar / text on the default topics). Each sensor is written on its own topic in its
    transport; with several image sensors each gets its own window of the scene
    (:mod:`aecf_ros.data.views`, as ``aecf-ros train --params`` trains on)."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import Writer

    from aecf_ros.sim import scene_msgs as sm

    spec.validate()
    if generate is None:
        from aecf_ros.data.scenes import generate_scene as generate
    if class_names is None:
        from aecf_ros.data.classes import CLASS_NAMES as class_names  # noqa: N811
    out = Path(out)
    if out.exists():
        raise BagError(f"{out} exists already; choose a new directory (bags are never overwritten)")

    t_start = time.perf_counter()
    store = typestore()
    from aecf_ros.data.views import camera_windows, camera_view

    rates = {"image": spec.camera_hz, "pointcloud": spec.lidar_hz, "text": spec.text_hz}
    if sensors is None:
        camera_topic = T.COMPRESSED_CAMERA_TOPIC if spec.compressed else T.CAMERA_TOPIC
        camera_type = "sensor_msgs/msg/CompressedImage" if spec.compressed else "sensor_msgs/msg/Image"
        streams = [  # (key, topic, type, rate)
            ("camera", camera_topic, camera_type, spec.camera_hz),
            ("lidar", T.LIDAR_TOPIC, "sensor_msgs/msg/PointCloud2", spec.lidar_hz),
            ("text", T.TEXT_TOPIC, "std_msgs/msg/String", spec.text_hz),
        ]
        kind_of = {"camera": "image", "lidar": "pointcloud", "text": "text"}
        compressed_of = {"camera": spec.compressed}
    else:
        unsupported = [x.name for x in sensors if x.kind not in rates]
        if unsupported:
            raise ValueError(f"make-bag cannot simulate sensors {unsupported} (kind embedding)")
        streams = [(x.name, x.topic, x.msgtype, rates[x.kind]) for x in sensors]
        kind_of = {x.name: x.kind for x in sensors}
        compressed_of = {x.name: x.transport == "compressed" for x in sensors}
    cameras = [key for key, *_ in streams if kind_of[key] == "image"]
    windows = dict(zip(cameras, camera_windows(len(cameras)))) if cameras else {}
    streams.append(("ground_truth", T.GROUND_TRUTH_TOPIC, "diagnostic_msgs/msg/DiagnosticArray", spec.ground_truth_hz))
    kind_of["ground_truth"] = "ground_truth"
    rng = np.random.default_rng(spec.seed)
    summary = BagSummary(out)
    writer = Writer(out, version=spec.version, storage_plugin=storage_plugin(spec.storage))
    writer.set_custom_data("aecf_ros.make_bag", json.dumps({
        "seed": spec.seed, "scene_hold_s": spec.scene_hold_s, "duration_s": spec.duration_s,
        "compressed": spec.compressed, "class_names": list(class_names)}))
    try:
        writer.open()
        conns = {key: writer.add_connection(topic, msgtype, typestore=store, offered_qos_profiles=[sensor_qos()])
                 for key, topic, msgtype, _ in streams}
        start_ns = int(spec.start_s) * 1_000_000_000
        end_ns = start_ns + int(round(spec.duration_s * 1e9))
        hold_ns = int(round(spec.scene_hold_s * 1e9))
        n_scenes = math.ceil((end_ns - start_ns) / hold_ns)
        ticks_of = {key: _ticks(rate, end_ns - start_ns) for key, _t, _m, rate in streams}
        noise_bank = None
        topic_of = {key: topic for key, topic, _, _ in streams}
        frame_index = 0
        intervals = []  # the label file: one row per scene, [scene start, next scene start)
        for s in range(n_scenes):
            index = spec.first_scene_index + s
            scene = generate(index, spec.seed)
            image = np.asarray(scene.image, np.uint8)
            points = np.asarray(scene.points, np.float32)
            if noise_bank is None or noise_bank.shape[1:] != image.shape:
                noise_bank = rng.integers(-spec.image_noise, spec.image_noise + 1,
                                          size=(8,) + image.shape).astype(np.int16)
            base = image.astype(np.int16)
            a = s * hold_ns
            b = min(end_ns - start_ns, a + hold_ns)
            intervals.append(Interval(start_ns + a, start_ns + b,
                                      tuple(c for c, v in zip(class_names, np.asarray(scene.labels).reshape(-1)) if v)))
            events: list[tuple[int, int, str]] = []  # (t_ns, stream order, key): deterministic order
            for order, (key, _topic, _type, _rate) in enumerate(streams):
                all_ticks = ticks_of[key]
                ticks = all_ticks[bisect.bisect_left(all_ticks, a):bisect.bisect_left(all_ticks, b)]
                if kind_of[key] in ("text", "ground_truth") and (not ticks or ticks[0] != a):
                    ticks = [a] + ticks  # say what is in view the moment the scene appears
                events += [(start_ns + t, order, key) for t in ticks]
            for t, _order, key in sorted(events):
                stamp = sm.time_from_ns(t)
                kind = kind_of[key]
                if kind == "image":
                    frame = np.clip(base + noise_bank[frame_index % len(noise_bank)], 0, 255).astype(np.uint8)
                    frame_index += 1
                    if len(cameras) > 1:
                        frame = camera_view(frame, windows[key])
                    msg = (sm.compressed_image_msg(frame, stamp, format="jpeg") if compressed_of[key]
                           else sm.image_msg(frame, stamp))
                elif kind == "pointcloud":
                    jittered = points.copy()
                    jittered[:, :3] += rng.normal(0.0, spec.point_jitter_m, size=(len(points), 3)).astype(np.float32)
                    msg = sm.pointcloud2_msg(jittered, stamp)
                elif kind == "text":
                    msg = sm.text_msg(scene.text)
                else:
                    msg = sm.ground_truth_msg(scene.labels, class_names, stamp, scene_index=index)
                writer.write(conns[key], t, serialize_message(msg))
                summary.counts[topic_of[key]] = summary.counts.get(topic_of[key], 0) + 1
            summary.scenes += 1
            if progress and (s + 1) % 5 == 0:
                progress(f"  {s + 1}/{n_scenes} scenes")
        writer.close()
        write_labels(out / LABELS_FILE, intervals)
        write_class_list(out / CLASSES_FILE, class_names)
    except BaseException:
        try:
            writer.abort()
        finally:
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise
    summary.seconds = time.perf_counter() - t_start
    summary.size_bytes = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return summary


def add_arguments(parser) -> None:
    parser.add_argument("out", help="bag directory to create (must not exist)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of data (default 60)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (default mcap)")
    parser.add_argument("--compressed", action="store_true",
                        help="camera as jpeg CompressedImage on /camera/image_raw/compressed")
    parser.add_argument("--seed", type=int, default=0, help="scene generator seed (default 0)")
    parser.add_argument("--scene-hold", type=float, default=4.0, help="seconds each scene stays in view (default 4)")
    parser.add_argument("--camera-hz", type=float, default=30.0)
    parser.add_argument("--lidar-hz", type=float, default=10.0)
    parser.add_argument("--text-hz", type=float, default=1.0)
    parser.add_argument("--params", action="append", default=None, metavar="PARAMS_FILE",
                        help="the robot's params file(s): write its declared sensors, each on its topic and "
                             "transport (image sensors at --camera-hz, each its own window of the scene)")
    parser.add_argument("--bag-version", type=int, choices=sorted(BAG_VERSIONS), default=DEFAULT_BAG_VERSION,
                        help="rosbag2 metadata version: " + "; ".join(f"{v}: read by {who}"
                                                                     for v, who in BAG_VERSIONS.items())
                             + f" (default {DEFAULT_BAG_VERSION})")


def run(args) -> int:
    spec = BagSpec(duration_s=args.duration, storage=args.storage, compressed=args.compressed, seed=args.seed,
                   scene_hold_s=args.scene_hold, camera_hz=args.camera_hz, lidar_hz=args.lidar_hz,
                   text_hz=args.text_hz, version=args.bag_version)
    try:
        sensors = None
        if args.params:
            from aecf_ros.runtime.sensor_graph import declared_sensor_set

            sensors = declared_sensor_set(args.params)
        summary = write_scene_bag(args.out, spec, progress=lambda line: print(line, file=sys.stderr),
                                  sensors=sensors)
    except (BagError, ValueError, OSError) as exc:
        print(f"aecf-ros make-bag: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {summary.path} ({spec.storage}, {summary.size_bytes / 1e6:.1f} MB, {summary.scenes} scenes, "
          f"{spec.duration_s:g} s of data) in {summary.seconds:.1f} s")
    for topic, count in summary.counts.items():
        print(f"  {topic:32s} {count:6d} msgs")
    return 0
