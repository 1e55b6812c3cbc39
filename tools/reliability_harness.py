"""The full aecf_ros graph as separate processes plus a sensor driver, for fault runs and the soak.

Not a test and not part of the package: ``tools/fault_runs.py`` and ``tools/soak.py`` use it.
Every process stays on loopback (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) in the domain
given by ``ROS_DOMAIN_ID`` (default 77 here). Nodes run exactly as deployed: one process each,
``python -m aecf_ros.nodes.<node> --ros-args ...`` with the graph's remaps.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "77")



def repo_env(**extra: str) -> dict:
    """Environment of a process started from here: this checkout first on PYTHONPATH, the caller's
    PYTHONPATH kept after it (a colcon install space with the generated aecf_ros.msg; replacing
    PYTHONPATH with the checkout alone hides those messages)."""
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(REPO)]
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *rest]), **extra)


NODES = ("camera_encoder", "lidar_encoder", "text_encoder", "fusion_node")
RATES_HZ = {"camera": 30.0, "lidar": 10.0, "text": 1.0}


def small_model(directory: Path) -> Path:
    """An untrained small model bundle (fast to load; the reliability figures do not depend on
    what the weights have learnt)."""
    from aecf_ros.model import build_model, save_model

    path = Path(directory) / "small_model.pt"
    if not path.exists():
        save_model(build_model(), path)
    return path


class NodeProc:
    def __init__(self, name: str, model_path: Path, log_dir: Path, extra: Optional[list[str]] = None):
        from aecf_ros import graph

        self.name, self.model_path, self.log_dir, self.extra = name, model_path, log_dir, extra or []
        self.spec = graph.node_spec(name)
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def start(self) -> None:
        from aecf_ros import graph

        # the shipped params file (expected sensor rates, bounds), then this run's overrides
        args = ["--params-file", str(REPO / "config" / "aecf.yaml"),
                "-p", f"model_path:={self.model_path}", "-p", "device:=cpu", "-p", "diagnostics_period_s:=0.5"]
        for internal, topic in graph.resolve_remaps(self.spec):
            args += ["-r", f"{internal}:={topic}"]
        self.starts += 1
        log = open(self.log_dir / f"{self.name}.{self.starts}.log", "wb")
        env = repo_env()
        self.proc = subprocess.Popen([sys.executable, "-m", self.spec.module, "--ros-args", *args, *self.extra],
                                     env=env, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> Optional[int]:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Driver:
    """Publishes scene sensor messages at the given rates (restamped each time) and records
    predictions (wall time, presence) and the newest /diagnostics status of each name."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, PointCloud2
        from std_msgs.msg import String

        from aecf_ros.data.scenes import generate_scene
        from aecf_ros.msg import FusedPrediction
        from aecf_ros import graph
        from aecf_ros.sim.scene_msgs import scene_messages

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = Node("reliability_driver", context=self.context)
        self.ex = SingleThreadedExecutor(context=self.context)
        self.ex.add_node(self.node)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        topics = graph.TOPIC_ARGUMENTS
        self.pubs = {"camera": self.node.create_publisher(Image, topics["camera_topic"], qos),
                     "lidar": self.node.create_publisher(PointCloud2, topics["lidar_topic"], qos),
                     "text": self.node.create_publisher(String, topics["text_topic"], qos)}
        self.msgs = scene_messages(generate_scene(3, seed=1), 0.0)
        self.alive = {m: True for m in RATES_HZ}
        self.sent = {m: 0 for m in RATES_HZ}
        self.predictions: list[tuple[float, list[bool]]] = []
        self.diag: dict[str, object] = {}
        self.timers = {}
        for m, hz in RATES_HZ.items():
            self.set_rate(m, hz)
        self.node.create_subscription(FusedPrediction, "/aecf/prediction",
                                      lambda p: self.predictions.append((time.monotonic(),
                                                                         list(p.modality_present))), 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_diag(self, arr) -> None:
        for s in arr.status:
            self.diag[s.name] = s

    def set_rate(self, modality: str, hz: float) -> None:
        if modality in self.timers:
            self.node.destroy_timer(self.timers[modality])
        self.timers[modality] = self.node.create_timer(1.0 / hz, lambda: self._publish(modality))

    def _publish(self, modality: str) -> None:
        if not self.alive[modality]:
            return
        msg = self.msgs[modality]
        if hasattr(msg, "header"):
            msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pubs[modality].publish(msg)
        self.sent[modality] += 1

    def spin(self, seconds: float, until: Optional[Callable[[], bool]] = None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                return True
            self.ex.spin_once(timeout_sec=0.005)
        return until() if until is not None else True

    def values(self, status_name: str) -> dict[str, str]:
        s = self.diag.get(status_name)
        return {kv.key: kv.value for kv in s.values} if s is not None else {}

    def close(self) -> None:
        import rclpy

        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def present_index(modality: str) -> int:
    return list(RATES_HZ).index(modality)
