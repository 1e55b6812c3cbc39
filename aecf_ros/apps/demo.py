"""``aecf-ros demo`` (``make demo``): watch the fusion survive losing the lidar, then the camera.

What runs:

* a **sensor process** (this module with ``--role sensors``) publishes generated scenes as real
  ``sensor_msgs/Image`` (30 Hz), ``sensor_msgs/PointCloud2`` (10 Hz) and ``std_msgs/String``
  (1 Hz) plus ground truth on ``/scene/ground_truth``, built with
  :mod:`aecf_ros.sim.scene_msgs`. The scenario clock starts only once every sensor topic
  has a matched subscriber (DDS discovery; the same wait as ``aecf-ros replay --wait-for``), so
  a slow start-up loses no part of the schedule. It follows a fixed schedule: all sensors, **lidar lost**,
  all sensors, **camera lost**, all sensors (the scene changes every ``--scene-seconds``);
* this process runs the real node graph (the same nodes ``aecf-ros run`` starts, lifecycle
  nodes brought to active) in one ``SingleThreadedExecutor``, talking to the sensor process over
  DDS on loopback (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``), and a small monitor that
  subscribes ``/aecf/prediction``.

It prints one line a second (prediction vs ground truth, sensors fused with their gate weights),
each sensor going stale / coming back (with the measured delay after the sensor stopped), and
per-phase accuracy at the end. With no trained checkpoint yet it falls back to an untrained
model (accuracy is then meaningless, the mechanics are the same) and says so.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aecf_ros import graph

ALL = "all sensors"


@dataclass(frozen=True)
class Phase:
    name: str
    dropped: frozenset
    seconds: float


def schedule(phase_seconds: float) -> list[Phase]:
    p = float(phase_seconds)
    return [Phase(ALL, frozenset(), p), Phase("lidar lost", frozenset({"lidar"}), p),
            Phase(ALL, frozenset(), p / 2), Phase("camera lost", frozenset({"camera"}), p),
            Phase(ALL, frozenset(), p / 2)]


def phase_at(phases: list[Phase], t: float) -> tuple[int, Phase]:
    """Phase index and phase at ``t`` seconds after the start (the last one after the end)."""
    end = 0.0
    for i, ph in enumerate(phases):
        end += ph.seconds
        if t < end:
            return i, ph
    return len(phases) - 1, phases[-1]


def phase_start(phases: list[Phase], index: int) -> float:
    return float(sum(ph.seconds for ph in phases[:index]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-path", default=None, help="model bundle (default: the shipped checkpoint)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda (default cpu)")
    parser.add_argument("--phase-seconds", type=float, default=20.0, help="length of each sensor-loss phase")
    parser.add_argument("--scene-seconds", type=float, default=2.5, help="a new scene every this many seconds")
    parser.add_argument("--seed", type=int, default=1000, help="scene stream seed (held out from training)")
    parser.add_argument("--quiet", action="store_true", help="only the events and the summary")
    # internal: the sensor process
    parser.add_argument("--role", choices=("main", "sensors"), default="main", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--discovery-timeout", type=float, default=60.0,
                        help="seconds to wait for the graph to discover the sensors (default 60)")


# ------------------------------------------------------------------------------ sensor process
def run_sensors(args: argparse.Namespace) -> int:
    """Publish the scene stream with the drop schedule (wall clock).

    Waits until every sensor topic has a matched subscriber, then starts the scenario clock
    and writes its start (epoch seconds) to ``--ready-file`` for the main process.
    """
    import rclpy

    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.nodes.session import RosSession

    phases = schedule(args.phase_seconds)
    total = sum(p.seconds for p in phases)
    scenes = [generate_scene(i, seed=args.seed) for i in range(int(total / args.scene_seconds) + 2)]
    with RosSession() as ros:
        node = ros.add_node(rclpy.create_node("demo_sensors", context=ros.context))
        ros.exit_code = _publish_sensors(args, ros, node, scenes, phases, total)
    return ros.exit_code


def _publish_sensors(args, ros, node, scenes, phases, total) -> int:
    from diagnostic_msgs.msg import DiagnosticArray, KeyValue
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import String

    from aecf_ros.data.classes import CLASS_NAMES
    from aecf_ros.nodes.discovery import wait_for_discovery
    from aecf_ros.graph import GROUND_TRUTH_TOPIC
    from aecf_ros.sim.scene_msgs import ground_truth_msg, scene_messages

    pubs = {"camera": node.create_publisher(Image, graph.TOPIC_ARGUMENTS["camera_topic"], 5),
            "lidar": node.create_publisher(PointCloud2, graph.TOPIC_ARGUMENTS["lidar_topic"], 5),
            "text": node.create_publisher(String, graph.TOPIC_ARGUMENTS["text_topic"], 5)}
    truth_pub = node.create_publisher(DiagnosticArray, GROUND_TRUTH_TOPIC, 5)
    announced = [-1]
    finished = [False]
    t0 = time.monotonic()
    missing = wait_for_discovery({pub.topic_name: pub for pub in pubs.values()}, args.discovery_timeout)
    if missing:
        print(f"[sensors] no subscriber on {', '.join(missing)} after {args.discovery_timeout:g} s", file=sys.stderr)
        return 1
    args.start = time.time() + 0.2  # the main process picks the start up within a spin
    print(f"[sensors] graph discovered the sensors in {time.monotonic() - t0:.1f} s; scenario starts", flush=True)
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_text(repr(args.start))
        tmp.replace(args.ready_file)

    def publish(modality: str) -> None:
        now = time.time()
        t = now - args.start
        if t < 0:
            return
        if t > total + 1.0:
            finished[0] = True
            return
        index, phase = phase_at(phases, t)
        if index != announced[0]:
            announced[0] = index
            lost = ", ".join(sorted(phase.dropped)) or "none"
            print(f"[sensors] t={t:5.1f}s phase '{phase.name}': sensors off: {lost}", flush=True)
        if modality in phase.dropped:
            return
        scene_index = min(int(t / args.scene_seconds), len(scenes) - 1)
        stamp = node.get_clock().now().nanoseconds * 1e-9
        if modality == "truth":
            msg = ground_truth_msg(scenes[scene_index].labels, CLASS_NAMES, stamp, scene_index=scene_index)
            msg.status[0].values.append(KeyValue(key="phase", value=phase.name))
            truth_pub.publish(msg)
            return
        msgs = scene_messages(scenes[scene_index], stamp, class_names=CLASS_NAMES, scene_index=scene_index)
        pubs[modality].publish(msgs[modality])

    for modality, hz in (("camera", 30.0), ("lidar", 10.0), ("text", 1.0), ("truth", 2.0)):
        node.create_timer(1.0 / hz, lambda m=modality: publish(m))
    ros.spin(until=lambda: finished[0])
    return 0


# ------------------------------------------------------------------------------ main process
def _resolve_model(args, tmpdir: Path) -> tuple[str, bool]:
    """(model path, trained?) — falls back to an untrained model when none is shipped yet."""
    from aecf_ros.model import DEFAULT_MODEL_PATH, build_model, save_model

    if args.model_path:
        return str(args.model_path), True
    if DEFAULT_MODEL_PATH.is_file():
        return str(DEFAULT_MODEL_PATH), True
    path = tmpdir / "untrained.pt"
    save_model(build_model(), path)
    return str(path), False


def jaccard(pred: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def _names(mask, class_names) -> str:
    names = [c for c, m in zip(class_names, mask) if m]
    return ",".join(names) if names else "-"


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if args.role == "sensors":
        return run_sensors(args)

    import rclpy

    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.msg import FusedPrediction
    from aecf_ros.nodes.discovery import wait_for_discovery
    from aecf_ros.nodes.session import RosSession
    from aecf_ros.nodes.runner import create_nodes, default_params_file

    phases = schedule(args.phase_seconds)
    total = sum(p.seconds for p in phases)
    n_scenes = int(total / args.scene_seconds) + 2
    truth = [generate_scene(i, seed=args.seed).labels.astype(bool) for i in range(n_scenes)]
    tmpdir = Path(tempfile.mkdtemp(prefix="aecf_demo_"))
    model_path, trained = _resolve_model(args, tmpdir)
    print(f"aecf-ros demo: model {model_path}" + ("" if trained else
          "  ** no trained checkpoint yet: UNTRAINED model, accuracy is meaningless (run `aecf-ros train`) **"))
    plan = " | ".join(f"{p.name} {p.seconds:.0f}s" for p in phases)
    print(f"schedule: {plan}; new scene every {args.scene_seconds:.0f}s; "
          f"camera 30 Hz, lidar 10 Hz, text 1 Hz over DDS (loopback, domain {os.environ.get('ROS_DOMAIN_ID', '0')})")

    records = []  # (phase index, t, jaccard, exact, weights)
    threshold = None
    with RosSession() as ros:
        params = [p for p in [default_params_file()] if p]
        nodes = [ros.add_node(n) for n in create_nodes(ros.context, params, device=args.device,
                                                        model_path=model_path)]
        for node in nodes:
            if not ros.bring_up(node):
                print(f"demo: {node.get_name()} failed to start", file=sys.stderr)
                ros.exit_code = 1
                return ros.exit_code
        fusion = next(n for n in nodes if n.get_name() == "fusion_node")
        threshold = float(fusion.get_parameter("score_threshold").value)
        monitor = ros.add_node(rclpy.create_node("demo_monitor", context=ros.context))
        predictions: list[tuple[float, FusedPrediction]] = []
        prediction_sub = monitor.create_subscription(FusedPrediction, graph.PREDICTION_TOPIC,
                                                     lambda msg: predictions.append((time.time(), msg)), 10)
        executor = ros.get_executor()
        wait_for_discovery({graph.PREDICTION_TOPIC: prediction_sub}, args.discovery_timeout,
                           while_waiting=lambda: executor.spin_once(timeout_sec=0.0), node=monitor)

        # The scenario clock starts when the sensor process has been discovered (it writes the
        # start time to ready_file); meanwhile this process spins so the graph is live.
        ready_file = tmpdir / "sensors_ready"
        cmd = [sys.executable, "-m", "aecf_ros.cli", "demo", "--role", "sensors", "--ready-file", str(ready_file),
               "--phase-seconds", str(args.phase_seconds), "--scene-seconds", str(args.scene_seconds),
               "--seed", str(args.seed), "--discovery-timeout", str(args.discovery_timeout)]
        sensors = subprocess.Popen(cmd, env=dict(os.environ))
        try:
            start = _wait_for_sensors(executor, sensors, ready_file, args.discovery_timeout + 60.0)
            if start is None:
                print("demo: the sensor process did not start (see its output above)", file=sys.stderr)
                ros.exit_code = 1
                return ros.exit_code
            _follow(args, executor, predictions, records, phases, truth, n_scenes, start, total, threshold)
        finally:
            _stop_process(sensors)
    if threshold is not None:  # also after Ctrl-C: the phases seen so far
        _summary(records, phases, trained, threshold)
    return ros.exit_code


def _stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM (the sensor process ends cleanly on it), kill if it has not ended in time.

    10 s, not less: on a loaded 2-core machine a clean ROS shutdown was measured at ~1.5 s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _follow(args, executor, predictions, records, phases, truth, n_scenes, start, total, threshold) -> None:
    """Spin through the scenario, print the events and the per-second report, fill ``records``."""
    from aecf_ros.nodes.stamps import stamp_to_sec

    present_before: dict[str, bool] = {}
    stopped_at: dict[str, float] = {}
    next_report = start + 1.0
    seen = 0
    while time.time() < start + total + 0.5:
        executor.spin_once(timeout_sec=0.02)
        for recv, msg in predictions[seen:]:
            t = stamp_to_sec(msg.header.stamp) - start
            if t < 0:
                continue
            index, phase = phase_at(phases, t)
            scene = min(int(t / args.scene_seconds), n_scenes - 1)
            pred = np.asarray(msg.scores) >= threshold
            records.append((index, t, jaccard(pred, truth[scene]), bool((pred == truth[scene]).all()),
                            dict(zip(msg.modalities, msg.modality_weights)),
                            np.asarray(msg.scores, dtype=np.float64), truth[scene]))
            for m, present in zip(msg.modalities, msg.modality_present):
                was = present_before.get(m)
                now_t = recv - start
                if was and not present:
                    # when did the sensor stop? the start of the phase that dropped it
                    drop_t = phase_start(phases, phase_at(phases, now_t)[0])
                    stopped_at[m] = drop_t
                    print(f"  >> {m} STALE at t={now_t:5.2f}s: no longer fused "
                          f"({now_t - drop_t:.2f} s after it stopped)", flush=True)
                elif was is False and present and m in stopped_at:  # not a late first message
                    resumed = phase_start(phases, phase_at(phases, now_t)[0])
                    print(f"  >> {m} BACK at t={now_t:5.2f}s ({now_t - resumed:.2f} s after it resumed)", flush=True)
                present_before[m] = bool(present)
        seen = len(predictions)
        if time.time() >= next_report and not args.quiet:
            next_report += 1.0
            _report_line(predictions, start, phases, truth, args.scene_seconds, threshold)


def _wait_for_sensors(executor, sensors: subprocess.Popen, ready_file: Path, timeout_s: float):
    """Spin until the sensor process writes the scenario start time; None if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and sensors.poll() is None:
        if ready_file.exists():
            return float(ready_file.read_text())
        executor.spin_once(timeout_sec=0.05)
    return None


def _report_line(predictions, start, phases, truth, scene_seconds, threshold) -> None:
    from aecf_ros.data.classes import CLASS_NAMES
    from aecf_ros.nodes.stamps import stamp_to_sec

    now = time.time() - start
    _, phase = phase_at(phases, now)
    recent = [msg for recv, msg in predictions if now - 1.0 <= recv - start <= now]
    if not recent:
        print(f"t={now:5.1f}s [{phase.name:11s}] no prediction in the last second", flush=True)
        return
    msg = recent[-1]
    t = stamp_to_sec(msg.header.stamp) - start
    scene = min(max(int(t / scene_seconds), 0), len(truth) - 1)
    pred = np.asarray(msg.scores) >= threshold
    used = " ".join(f"{m}:{w:.2f}" for m, p, w in zip(msg.modalities, msg.modality_present, msg.modality_weights) if p)
    mark = "OK  " if (pred == truth[scene]).all() else f"J={jaccard(pred, truth[scene]):.2f}"
    print(f"t={now:5.1f}s [{phase.name:11s}] {len(recent):2d} out/s  fused {used:34s} {mark} "
          f"truth {_names(truth[scene], CLASS_NAMES)} | pred {_names(pred, CLASS_NAMES)}", flush=True)


def _summary(records, phases, trained: bool, threshold: float) -> None:
    """Per-phase accuracy of the published predictions against the scene in view.

    mAP: macro average precision of the scores over the phase's outputs (classes with a positive
    in the phase); F1: micro F1 of ``score >= score_threshold``; exact: share of outputs whose
    thresholded set equals the truth. A phase holds only a handful of scenes, so these are a
    live sanity check, not the benchmark (docs/results/results.md).
    """
    from aecf_ros.core.metrics import macro_map

    print("\nper phase (predictions stamped inside the phase):")
    print(f"  {'phase':12s} {'outputs':>7s} {'mAP':>6s} {'F1':>6s} {'exact':>7s}   mean gate weights")
    by_name: dict[str, list] = {}
    for index, t, j, exact, weights, scores, labels in records:
        by_name.setdefault(phases[index].name, []).append((exact, weights, scores, labels))
    for name in dict.fromkeys(p.name for p in phases):
        rows = by_name.get(name, [])
        if not rows:
            print(f"  {name:12s} {0:7d}       -      -       -")
            continue
        scores = np.stack([r[2] for r in rows])
        labels = np.stack([r[3] for r in rows]).astype(bool)
        pred = scores >= threshold
        tp, fp, fn = (pred & labels).sum(), (pred & ~labels).sum(), (~pred & labels).sum()
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        mods = rows[0][1].keys()
        weights = " ".join(f"{m}={np.mean([r[1][m] for r in rows]):.2f}" for m in mods)
        print(f"  {name:12s} {len(rows):7d} {macro_map(scores, labels):6.3f} {f1:6.3f} "
              f"{np.mean([r[0] for r in rows]):7.1%}   {weights}")
    if not trained:
        print("  (untrained model: accuracy figures are meaningless)")
