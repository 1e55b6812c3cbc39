"""debug_view over DDS: nothing subscribed (and nothing drawn) while nobody watches; once someone
subscribes to aecf/debug_image, every image shows the state the prediction message carries."""
from __future__ import annotations

import numpy as np
import pytest

from test_nodes_support import spin_for, spin_until

pytestmark = [pytest.mark.ros]

CAMERA = "/dbg_test/image_raw"
COLOUR = (30, 200, 90)


def _prediction(present, ages, weights, stamp_ns):
    from aecf_ros.msg import FusedPrediction

    msg = FusedPrediction(class_names=["person", "car", "dog"], scores=[0.8, 0.3, 0.6],
                          modalities=["camera", "lidar", "text"], modality_present=list(present),
                          modality_weights=list(weights), modality_age_s=list(ages), gate_entropy=0.4)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = "base_link"
    return msg


def _image():
    from sensor_msgs.msg import Image

    img = Image(height=120, width=160, encoding="rgb8", step=160 * 3)
    img.data = np.full((120, 160, 3), COLOUR, np.uint8).tobytes()
    img.header.frame_id = "camera_optical"
    return img


def test_draws_only_while_subscribed_and_shows_the_message_state(rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from aecf_ros import graph
    from aecf_ros.msg import FusedPrediction
    from aecf_ros.nodes.debug_view import DebugViewNode
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.runtime.debug_view import STATE_COLOURS, frame_height_for, panel_layout, sensor_state

    view = DebugViewNode(context=rclpy_context, cli_args=["--ros-args", "-r", f"image:={CAMERA}"],
                         parameter_overrides=[Parameter("subscriber_check_period_s", value=0.1),
                                              Parameter("silence_s", value=0.5),
                                              Parameter("width", value=480), Parameter("top_k", value=2)])
    driver = Node("dbg_driver", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    got = []
    try:
        ex.add_node(view)
        ex.add_node(driver)
        assert bring_up(view)
        cam_pub = driver.create_publisher(Image, CAMERA, 5)
        pred_pub = driver.create_publisher(FusedPrediction, "/" + graph.PREDICTION_TOPIC, 5)
        state = {"present": [True, True, False], "ages": [0.02, 0.05, -1.0], "weights": [0.6, 0.4, 0.0]}
        n = [0]

        def publish():
            n[0] += 1
            cam_pub.publish(_image())
            if state.get("predict", True):
                pred_pub.publish(_prediction(state["present"], state["ages"], state["weights"], n[0] * 10**8))

        timer = driver.create_timer(0.1, publish)
        # nobody watches: no subscription on the camera or the predictions, nothing drawn
        spin_for(ex, 1.5)
        assert n[0] >= 5
        assert not view.watching and view.counters["rendered"] == 0
        assert cam_pub.get_subscription_count() == 0 and pred_pub.get_subscription_count() == 0

        watcher = driver.create_subscription(Image, "/" + graph.DEBUG_IMAGE_TOPIC, got.append, 5)
        assert spin_until(ex, lambda: len(got) >= 3, 20.0), "no debug image while subscribed"
        assert view.watching and cam_pub.get_subscription_count() >= 1

        def check(msg, present, ages, weights):
            img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
            assert msg.encoding == "rgb8" and msg.width == 480
            layout = panel_layout(480, frame_height_for(480, (120, 160)), ["camera", "lidar", "text"], 2)
            assert msg.height == layout.height
            for m, p, a in zip(["camera", "lidar", "text"], present, ages):
                b = layout.badges[m]
                assert img[(b.y0 + b.y1) // 2, (b.x0 + b.x1) // 2].tolist() == list(STATE_COLOURS[sensor_state(p, a)]), m
            return img

        img = check(got[-1], state["present"], state["ages"], state["weights"])
        assert img[10, 10].tolist() == list(COLOUR)  # the camera frame, undimmed: camera fused
        assert got[-1].header.frame_id == "camera_optical"
        stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got}
        assert all(ns % 10**8 == 0 for s, ns in stamps)  # each image carries a prediction's stamp

        # the camera goes stale: the next images say so
        state.update(present=[False, True, True], ages=[1.2, 0.05, 0.3], weights=[0.0, 0.5, 0.5])
        start = len(got)
        assert spin_until(ex, lambda: len(got) >= start + 4, 20.0)
        img = check(got[-1], state["present"], state["ages"], state["weights"])
        assert img[10, 10].tolist() != list(COLOUR)  # dimmed: not fused

        # the fusion node goes silent (too few sensors): within silence_s the view says so
        state["predict"] = False
        assert spin_until(ex, lambda: view.counters["rendered_no_prediction"] >= 1, 10.0)
        start = len(got)
        assert spin_until(ex, lambda: len(got) > start, 5.0)
        msg = got[-1]
        img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        layout = panel_layout(480, frame_height_for(480, (120, 160)), ["camera", "lidar", "text"], 0)
        assert msg.height == layout.height
        for m in ("camera", "lidar", "text"):
            b = layout.badges[m]
            assert img[(b.y0 + b.y1) // 2, (b.x0 + b.x1) // 2].tolist() == list(STATE_COLOURS["no prediction"])

        # the watcher leaves: the view lets go of its inputs again
        driver.destroy_subscription(watcher)
        assert spin_until(ex, lambda: not view.watching, 10.0)
        assert spin_until(ex, lambda: cam_pub.get_subscription_count() == 0, 10.0)
        rendered = view.counters["rendered"]
        spin_for(ex, 0.8)
        assert view.counters["rendered"] == rendered
        timer.cancel()
    finally:
        ex.shutdown()
        view.destroy_node()
        driver.destroy_node()


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_camera_transport_subscribes_one_camera_topic_and_draws_its_frame(rclpy_context, transport):
    """Issue 20: debug_view subscribes only its ``transport``'s camera topic (like the camera
    encoder): a driver publishing both forms has its frames taken from that one alone."""
    import cv2
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage, Image

    from aecf_ros import graph
    from aecf_ros.msg import FusedPrediction
    from aecf_ros.nodes.debug_view import DebugViewNode
    from aecf_ros.nodes.lifecycle import bring_up

    topic = f"/dbg_{transport}/image_raw"
    raw_colour, compressed_colour = (30, 200, 90), (220, 40, 160)
    view = DebugViewNode(context=rclpy_context,
                         cli_args=["--ros-args", "-r", f"image:={topic}", "-r", f"image_compressed:={topic}/compressed"],
                         parameter_overrides=[Parameter("subscriber_check_period_s", value=0.1),
                                              Parameter("transport", value=transport)])
    driver = Node(f"dbg_{transport}_driver", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    got = []
    try:
        ex.add_node(view)
        ex.add_node(driver)
        assert bring_up(view)
        raw_pub = driver.create_publisher(Image, topic, 5)
        comp_pub = driver.create_publisher(CompressedImage, topic + "/compressed", 5)
        pred_pub = driver.create_publisher(FusedPrediction, "/" + graph.PREDICTION_TOPIC, 5)
        compressed = CompressedImage(format="png")
        compressed.data = cv2.imencode(".png", np.full((120, 160, 3), compressed_colour[::-1], np.uint8))[1].tobytes()
        raw = _image()
        raw.data = np.full((120, 160, 3), raw_colour, np.uint8).tobytes()
        n = [0]

        def publish():
            n[0] += 1
            raw_pub.publish(raw)
            comp_pub.publish(compressed)
            pred_pub.publish(_prediction([True, True, True], [0.02, 0.05, 0.3], [0.4, 0.3, 0.3], n[0] * 10**8))

        driver.create_timer(0.1, publish)
        driver.create_subscription(Image, "/" + graph.DEBUG_IMAGE_TOPIC, got.append, 5)
        chosen, other = (raw_pub, comp_pub) if transport == "raw" else (comp_pub, raw_pub)
        assert spin_until(ex, lambda: len(got) >= 3 and chosen.get_subscription_count() == 1, 20.0)
        spin_for(ex, 0.5)
        assert other.get_subscription_count() == 0
        img = np.frombuffer(bytes(got[-1].data), np.uint8).reshape(got[-1].height, got[-1].width, 3)
        assert img[10, 10].tolist() == list(raw_colour if transport == "raw" else compressed_colour)
    finally:
        ex.shutdown()
        view.destroy_node()
        driver.destroy_node()
