"""``aecf-ros bench-runtime``: what AECF costs at run time, measured in one run.

1. Fusion overhead: the fusion node's per-output work (:meth:`FusionEngine.step` = presence
   check + fusion + head + calibration, batch 1) for AECF vs plain attention vs mean fusion,
   same sizes, interleaved rounds so machine load hits all methods alike; also the fusion
   module alone. Ratios are AECF / baseline from the same run.
2. End-to-end latency over DDS: the real graph (encoders + fusion_node, one process, loopback)
   fed real Image / PointCloud2 / String messages; latency = receive time - sensor stamp for
   (a) each embedding and (b) the first prediction that includes that sample (includes the
   wait for the fusion timer, <= 1 / publish_rate_hz).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-config", choices=("default", "small"), default="default",
                        help="sizes of the models compared (default: the shipped model family)")
    parser.add_argument("--iterations", type=int, default=300, help="fusion steps per method and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--latency-seconds", type=float, default=8.0, help="length of the DDS latency run")
    parser.add_argument("--publish-rate-hz", type=float, default=10.0, help="fusion_node publish_rate_hz")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-latency", action="store_true")


def _engines(config: str, device: str):
    import torch

    from aecf_ros.model import build_model
    from aecf_ros.runtime.fusion_engine import FusionEngine, FusionSettings

    engines = {}
    for method in ("aecf", "attention", "mean"):
        torch.manual_seed(0)
        model = build_model(None if config == "small" else {}, fusion={"method": method}).eval().to(device)
        engine = FusionEngine(model, FusionSettings(timeout_s={m: 1e6 for m in model.modalities}))
        if device == "cpu":
            engine.enable_cpu_step()  # what the fusion node runs on CPU
        rng = np.random.default_rng(0)
        for m in model.modalities:
            engine.submit(m, rng.normal(size=model.embedding_dims[m]), 1.0, 1.0, model.encoder_ids[m])
        engine.warm_up(10)
        engines[method] = engine
    return engines


def bench_fusion(config: str, iterations: int, rounds: int, device: str) -> dict:
    import torch

    from aecf_ros.nodes.model_loading import configure_torch_threads

    configure_torch_threads()
    engines = _engines(config, device)
    step_us = {m: [] for m in engines}
    fusion_us = {m: [] for m in engines}
    for _ in range(rounds):
        for method, engine in engines.items():
            t0 = time.perf_counter()
            for i in range(iterations):
                engine.step(1.0 + i * 1e-6)
            step_us[method].append((time.perf_counter() - t0) / iterations * 1e6)
            model = engine.model
            emb = {m: torch.randn(1, model.embedding_dims[m], device=model.device) for m in model.modalities}
            present = torch.ones(1, len(model.modalities), dtype=torch.bool, device=model.device)
            with torch.inference_mode():
                t0 = time.perf_counter()
                for _ in range(iterations):
                    model.fusion(emb, present)
                fusion_us[method].append((time.perf_counter() - t0) / iterations * 1e6)
    return {"step_us": {m: statistics.median(v) for m, v in step_us.items()},
            "fusion_us": {m: statistics.median(v) for m, v in fusion_us.items()}}


def bench_latency(seconds: float, publish_rate_hz: float, device: str) -> dict | None:
    """DDS latency run inside a :class:`~aecf_ros.nodes.session.RosSession` (Ctrl-C ends it
    early with the samples so far). None if a node failed to start (its log says why)."""
    import rclpy
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import String

    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.model import DEFAULT_MODEL_PATH, build_model, save_model
    from aecf_ros.msg import FusedPrediction, ModalityEmbedding
    from aecf_ros import graph
    from aecf_ros.nodes.session import RosSession
    from aecf_ros.nodes.stamps import stamp_to_sec
    from aecf_ros.nodes.runner import create_nodes
    from aecf_ros.sim.scene_msgs import scene_messages

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    model_path = DEFAULT_MODEL_PATH
    if not model_path.is_file():
        model_path = Path(tempfile.mkdtemp(prefix="aecf_bench_")) / "untrained.pt"
        save_model(build_model({}), model_path)
    embedding_ms: dict[str, list] = {m: [] for m in ("camera", "lidar", "text")}
    prediction_ms: list = []
    pending: dict[str, float] = {}
    scene = generate_scene(0, seed=7)
    with RosSession() as ros:
        nodes = [ros.add_node(n) for n in create_nodes(
            ros.context, device=device, model_path=str(model_path),
            without=[s.switch for s in graph.NODES if s.switch],  # the measured pipeline, no debug view
            extra_parameters={"fusion_node": {"publish_rate_hz": float(publish_rate_hz)}})]
        for n in nodes:
            if not ros.bring_up(n):
                print(f"aecf-ros bench-runtime: {n.get_name()} failed to start (see its log above)",
                      file=sys.stderr)
                return None
        driver = ros.add_node(rclpy.create_node("bench_driver", context=ros.context))
        pubs = {"camera": driver.create_publisher(Image, graph.TOPIC_ARGUMENTS["camera_topic"], 5),
                "lidar": driver.create_publisher(PointCloud2, graph.TOPIC_ARGUMENTS["lidar_topic"], 5),
                "text": driver.create_publisher(String, graph.TOPIC_ARGUMENTS["text_topic"], 5)}

        def on_embedding(m, msg):
            embedding_ms[m].append((time.time() - stamp_to_sec(msg.header.stamp)) * 1e3)

        def on_prediction(msg):
            stamp = stamp_to_sec(msg.header.stamp)
            if pending.pop("camera", None) == stamp:
                prediction_ms.append((time.time() - stamp) * 1e3)

        for m in pubs:
            driver.create_subscription(ModalityEmbedding, graph.embedding_topic(m),
                                       lambda msg, m=m: on_embedding(m, msg), 10)
        driver.create_subscription(FusedPrediction, graph.PREDICTION_TOPIC, on_prediction, 10)

        def send(modality):
            stamp = driver.get_clock().now().nanoseconds * 1e-9
            msgs = scene_messages(scene, stamp)
            if modality == "camera":
                pending["camera"] = stamp_to_sec(msgs["camera"].header.stamp)
            pubs[modality].publish(msgs[modality])

        for m, hz in (("camera", 30.0), ("lidar", 10.0), ("text", 1.0)):
            driver.create_timer(1.0 / hz, lambda m=m: send(m))
        ros.spin(duration_s=seconds)

    def stats(v):
        return {"n": len(v), "median_ms": float(np.median(v)) if v else None,
                "p95_ms": float(np.percentile(v, 95)) if v else None}

    return {"embedding": {m: stats(v[5:]) for m, v in embedding_ms.items()},
            "camera_to_prediction": stats(prediction_ms[3:]), "publish_rate_hz": publish_rate_hz}


def run(args: argparse.Namespace) -> int:
    import torch

    print(f"aecf-ros bench-runtime: torch {torch.__version__}, {torch.get_num_threads()} -> 1 intra-op thread, "
          f"device {args.device}, model sizes '{args.model_config}'")
    res = bench_fusion(args.model_config, args.iterations, args.rounds, args.device)
    print("\n1) fusion node work per output (batch 1, median of interleaved rounds):")
    print(f"   {'method':10s} {'engine.step':>12s} {'fusion only':>12s}")
    for m in res["step_us"]:
        print(f"   {m:10s} {res['step_us'][m]:10.1f}us {res['fusion_us'][m]:10.1f}us")
    for base in ("attention", "mean"):
        print(f"   AECF / {base:9s}: step x{res['step_us']['aecf'] / res['step_us'][base]:.2f}, "
              f"fusion x{res['fusion_us']['aecf'] / res['fusion_us'][base]:.2f}")
    if not args.skip_latency:
        lat = bench_latency(args.latency_seconds, args.publish_rate_hz, args.device)
        if lat is None:
            return 1
        print("\n2) end-to-end latency over DDS (one process, loopback; receive time - sensor stamp):")
        for m, s in lat["embedding"].items():
            if s["n"]:
                print(f"   sensor -> {m:6s} embedding   median {s['median_ms']:6.1f} ms  p95 {s['p95_ms']:6.1f} ms  (n={s['n']})")
        s = lat["camera_to_prediction"]
        if s["n"]:
            print(f"   newest camera frame -> prediction median {s['median_ms']:6.1f} ms  p95 {s['p95_ms']:6.1f} ms  (n={s['n']}; "
                  f"predictions whose newest input is that frame; includes the wait for the {lat['publish_rate_hz']:.0f} Hz timer)")
    return 0
