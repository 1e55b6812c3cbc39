"""`aecf-ros wait-for --params robot.yaml`: waits for the pipeline of the sensors the file declares."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
ROBOT = """/**:
  ros__parameters:
    sensors: [front_camera, rear_camera, lidar]
    front_camera: {kind: image, topic: /wf16/front/image_raw}
    rear_camera: {kind: image, topic: /wf16/rear/image_raw/compressed, transport: compressed}
    lidar: {kind: pointcloud, topic: /wf16/points}
"""


def _wait_for(env, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "aecf_ros.cli", "wait-for", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_wait_for_params_waits_for_every_declared_sensor_and_names_the_missing_one(tmp_path, rclpy_context,
                                                                                    ros_subprocess_env):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import CompressedImage, Image, PointCloud2

    from aecf_ros.msg import ModalityEmbedding

    robot = tmp_path / "robot.yaml"
    robot.write_text(ROBOT)
    node = Node("wait_for_subscribers", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    # the pipeline, less the rear camera's encoder input: what a graph with a stuck encoder shows
    node.create_subscription(Image, "/wf16/front/image_raw", lambda m: None, 5)
    node.create_subscription(PointCloud2, "/wf16/points", lambda m: None, 5)
    for name in ("front_camera", "rear_camera", "lidar"):
        node.create_subscription(ModalityEmbedding, f"/aecf/embedding/{name}", lambda m: None, 5)
    import threading

    stop = threading.Event()
    def spin():
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        missing = _wait_for(ros_subprocess_env, "--params", str(robot), "--timeout", "3")
        assert missing.returncode == 1, missing.stderr
        assert "no subscriber on /wf16/rear/image_raw/compressed after" in missing.stderr, missing.stderr
        node.create_subscription(CompressedImage, "/wf16/rear/image_raw/compressed", lambda m: None, 5)
        ready = _wait_for(ros_subprocess_env, "--params", str(robot), "--timeout", "30")
        assert ready.returncode == 0, ready.stderr
        # behind the relay the graph reads /dropout/...: nobody subscribes there, so it waits and names them
        relay = _wait_for(ros_subprocess_env, "--params", str(robot), "--dropout", "--timeout", "2")
        assert relay.returncode == 1 and "/dropout/wf16/points" in relay.stderr, relay.stderr
    finally:
        stop.set()
        spinner.join()
        executor.shutdown()
        node.destroy_node()


def test_wait_for_refuses_a_bad_declaration_or_nothing_to_wait_for(tmp_path, ros_subprocess_env):
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROBOT.replace("kind: pointcloud", "kind: sonar"))
    out = _wait_for(ros_subprocess_env, "--params", str(bad), "--timeout", "1")
    assert out.returncode == 2 and "lidar.kind" in out.stderr, out.stderr
    out = _wait_for(ros_subprocess_env, "--timeout", "1")
    assert out.returncode == 2 and "give TOPIC" in out.stderr, out.stderr
