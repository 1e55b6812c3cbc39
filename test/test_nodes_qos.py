"""Input QoS: named profiles per input, and a publisher the subscription cannot match (a
BEST_EFFORT driver against the RELIABLE default) reported in /diagnostics and the log."""
from __future__ import annotations

import numpy as np
import pytest

from test_nodes_support import RecordingLogger, diag_values, make_model_file, spin_until

pytestmark = [pytest.mark.ros]


def test_named_profiles():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from aecf_ros.nodes.qos import named_qos

    assert named_qos("reliable", 5).reliability == ReliabilityPolicy.RELIABLE
    sensor = named_qos("sensor_data", 7)
    assert sensor.reliability == ReliabilityPolicy.BEST_EFFORT and sensor.depth == 7
    assert sensor.durability == DurabilityPolicy.VOLATILE
    assert named_qos("system_default", 3).reliability == ReliabilityPolicy.SYSTEM_DEFAULT
    assert named_qos("sensor_data", 5, "reliable").reliability == ReliabilityPolicy.RELIABLE


def test_best_effort_driver_is_reported_then_matched_with_sensor_data_profile(rclpy_context, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    from aecf_ros.msg import ModalityEmbedding
    from aecf_ros.nodes.lidar_encoder import LidarEncoderNode
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.sim.scene_msgs import pointcloud2_msg

    path, _ = make_model_file(tmp_path)
    enc = LidarEncoderNode("lidar_encoder", context=rclpy_context, parameter_overrides=[
        Parameter("model_path", value=str(path)), Parameter("device", value="cpu")],
        cli_args=["--ros-args", "-r", "points:=/qos_test/points"])
    rec = RecordingLogger(enc.get_logger())
    enc.get_logger = lambda: rec
    driver = Node("best_effort_driver", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    try:
        ex.add_node(enc)
        ex.add_node(driver)
        assert bring_up(enc)
        pub = driver.create_publisher(PointCloud2, "/qos_test/points", qos_profile_sensor_data)
        assert spin_until(ex, lambda: enc.qos_incompatible.counts, 30.0), "no incompatible-QoS event"
        status = enc.diagnostics().status[0]
        values = diag_values(status)
        assert status.level in (b"\x01", 1) and "incompatible QoS" in status.message, status.message
        assert int(values["qos_incompatible./qos_test/points"]) >= 1
        assert values["qos_incompatible_policy./qos_test/points"] == "RELIABILITY"
        assert rec.matching("warning", "profile: sensor_data")

        # the fix the log names: the sensor_data profile, applied on the next configure
        got = []
        driver.create_subscription(ModalityEmbedding, "aecf/embedding/lidar", got.append, 10)
        assert enc.set_parameters([Parameter("qos.points.profile", value="sensor_data")])[0].successful
        enc.trigger_deactivate()
        enc.trigger_cleanup()
        enc.qos_incompatible.counts.clear()
        assert bring_up(enc)
        points = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
        timer = driver.create_timer(0.1, lambda: pub.publish(pointcloud2_msg(points, driver.get_clock().now().to_msg())))
        assert spin_until(ex, lambda: got, 30.0)
        driver.destroy_timer(timer)
        assert not enc.qos_incompatible.counts
    finally:
        ex.shutdown()
        driver.destroy_node()
        enc.destroy_node()
