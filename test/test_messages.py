"""The package's messages travel between two real processes over DDS (loopback)."""
import subprocess
import sys
import time

import pytest

from conftest import ros_env

pytestmark = pytest.mark.ros

PUBLISHER = r"""
import sys, time, rclpy
from aecf_ros.msg import FusedPrediction, ModalityEmbedding
rclpy.init()
node = rclpy.create_node("msg_test_publisher")
pub_e = node.create_publisher(ModalityEmbedding, "/msg_test/embedding", 10)
pub_p = node.create_publisher(FusedPrediction, "/msg_test/prediction", 10)
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    e = ModalityEmbedding(modality="lidar", embedding=[0.25, -1.5, 3.0], encoder_id="pointnet-abc")
    e.header.stamp.sec = 42; e.header.stamp.nanosec = 7; e.header.frame_id = "lidar_link"
    p = FusedPrediction(class_names=["person", "car"], scores=[0.9, 0.125],
                        modalities=["camera", "lidar", "text"], modality_present=[True, False, True],
                        modality_weights=[0.75, 0.0, 0.25], modality_age_s=[0.01, -1.0, 0.5],
                        gate_entropy=0.8)
    p.header.stamp.sec = 43
    pub_e.publish(e); pub_p.publish(p)
    rclpy.spin_once(node, timeout_sec=0.05)
node.destroy_node(); rclpy.shutdown()
"""


def test_messages_cross_process_roundtrip(rclpy_context):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from aecf_ros.msg import FusedPrediction, ModalityEmbedding

    node = rclpy.create_node("msg_test_subscriber", context=rclpy_context)
    got = {}
    subs = [node.create_subscription(ModalityEmbedding, "/msg_test/embedding", lambda m: got.setdefault("e", m), 10),
            node.create_subscription(FusedPrediction, "/msg_test/prediction", lambda m: got.setdefault("p", m), 10)]
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, "20"], env=ros_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(got) < 2:
            executor.spin_once(timeout_sec=0.1)
    finally:
        proc.kill()
        proc.wait()
        # Tear down in the one safe order (docs/COLCON_TEST_SEGFAULT.md): nothing spins any more,
        # the executor lets go of the node (and drops its suspended wait generator, which still
        # names the ready subscriptions), then the subscriptions and the node go, and only then
        # the fixture shuts the context down.
        executor.remove_node(node)
        executor.shutdown()
        for sub in subs:
            node.destroy_subscription(sub)
        node.destroy_node()
    assert "e" in got and "p" in got, f"received only {sorted(got)}; publisher stderr: {proc.stderr.read()[-2000:]}"
    e, p = got["e"], got["p"]
    assert e.modality == "lidar" and e.encoder_id == "pointnet-abc" and e.header.frame_id == "lidar_link"
    assert (e.header.stamp.sec, e.header.stamp.nanosec) == (42, 7)
    assert list(e.embedding) == [0.25, -1.5, 3.0]
    assert list(p.class_names) == ["person", "car"]
    assert list(p.scores) == pytest.approx([0.9, 0.125])
    assert list(p.modality_present) == [True, False, True]
    assert list(p.modality_weights) == [0.75, 0.0, 0.25]
    assert list(p.modality_age_s) == [pytest.approx(0.01), -1.0, 0.5]
    assert p.gate_entropy == pytest.approx(0.8)
    assert p.header.stamp.sec == 43
