"""Encoder nodes (in-process, over DDS on loopback) fed real sensor messages.

Proves: Image (every encoding, padded rows), CompressedImage, PointCloud2 (driver layouts) and
String become embeddings equal to the model's own encoding of the reference data, with the
source stamp copied (text: receive time); bad inputs are counted by reason in /diagnostics and
the node keeps encoding; the whole graph (encoders + fusion) turns sensor messages into
predictions.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from test_nodes_support import RecordingLogger, diag_values, make_model_file, spin_for, spin_until

pytestmark = [pytest.mark.ros]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage, Image, PointCloud2
    from std_msgs.msg import String

    from aecf_ros.msg import FusedPrediction, ModalityEmbedding
    from aecf_ros.nodes.camera_encoder import CameraEncoderNode
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.nodes.fusion_node import FusionNode
    from aecf_ros.nodes.lidar_encoder import LidarEncoderNode
    from aecf_ros.nodes.text_encoder import TextEncoderNode

    model_path, model = make_model_file(tmp_path_factory.mktemp("encoders"))
    context = rclpy.context.Context()
    rclpy.init(context=context)
    overrides = [Parameter("model_path", value=str(model_path)), Parameter("device", value="cpu"),
                 Parameter("diagnostics_period_s", value=0.2)]
    remaps = ["--ros-args", "-r", "image:=/cam/image_raw", "-r", "image_compressed:=/cam/image_raw/compressed",
              "-r", "points:=/lidar/points", "-r", "text:=/operator/text"]
    nodes = [
        CameraEncoderNode(context=context, parameter_overrides=overrides, cli_args=remaps),
        # transport raw (the default) takes Image only: a second camera encoder takes the compressed images
        CameraEncoderNode("camera_encoder_compressed", context=context, cli_args=remaps,
                          parameter_overrides=overrides + [Parameter("transport", value="compressed")]),
        LidarEncoderNode(context=context, parameter_overrides=overrides, cli_args=remaps),
        TextEncoderNode(context=context, parameter_overrides=overrides, cli_args=remaps),
        FusionNode(context=context, parameter_overrides=overrides + [Parameter("timeout_s.text", value=30.0),
                                                                     Parameter("timeout_s.camera", value=30.0),
                                                                     Parameter("timeout_s.lidar", value=30.0)]),
    ]
    for n in nodes:
        assert bring_up(n)
    driver = Node("encoder_test_driver", context=context)
    ex = SingleThreadedExecutor(context=context)
    for n in nodes + [driver]:
        ex.add_node(n)

    class G:
        pass

    g = G()
    g.model, g.nodes, g.driver, g.ex = (model, dict(zip(("camera", "camera_compressed", "lidar", "text", "fusion"), nodes)),
                                        driver, ex)
    g.context, g.model_path, g.overrides = context, model_path, overrides
    g.embeddings = {m: [] for m in ("camera", "lidar", "text")}
    g.predictions, g.diagnostics = [], []
    for m in g.embeddings:
        driver.create_subscription(ModalityEmbedding, f"aecf/embedding/{m}",
                                   lambda msg, m=m: g.embeddings[m].append((time.time(), msg)), 10)
    driver.create_subscription(FusedPrediction, "aecf/prediction", g.predictions.append, 10)
    driver.create_subscription(DiagnosticArray, "/diagnostics", g.diagnostics.append, 50)
    g.pub = {"image": driver.create_publisher(Image, "/cam/image_raw", 10),
             "compressed": driver.create_publisher(CompressedImage, "/cam/image_raw/compressed", 10),
             "points": driver.create_publisher(PointCloud2, "/lidar/points", 10),
             "text": driver.create_publisher(String, "/operator/text", 10)}
    # wait for discovery of every input
    assert spin_until(ex, lambda: all(p.get_subscription_count() >= 1 for p in g.pub.values()), 10)
    yield g
    ex.shutdown()
    for n in nodes + [driver]:
        n.destroy_node()
    rclpy.shutdown(context=context)


def _send_and_wait(g, pub, msg, modality, timeout_s=5.0):
    n0 = len(g.embeddings[modality])
    g.pub[pub].publish(msg)
    assert spin_until(g.ex, lambda: len(g.embeddings[modality]) > n0, timeout_s), f"no {modality} embedding"
    return g.embeddings[modality][n0]


def _scene():
    from aecf_ros.data.scenes import generate_scene

    return generate_scene(3, seed=11)


@pytest.mark.parametrize("encoding, padding", [("rgb8", 0), ("bgr8", 4), ("rgba8", 0), ("bgra8", 12),
                                               ("mono8", 3), ("mono16", 0)])
def test_image_encodings_give_model_embedding_with_stamp_copied(graph, encoding, padding):
    from aecf_ros.sim.scene_msgs import image_msg

    scene = _scene()
    msg = image_msg(scene.image, 123.456, encoding=encoding, step_padding=padding)
    _, out = _send_and_wait(graph, "image", msg, "camera")
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (123, 456000000)
    assert out.header.frame_id == msg.header.frame_id
    assert out.modality == "camera" and out.encoder_id == graph.model.encoder_ids["camera"]
    if encoding.startswith("mono"):  # pixel values: test_runtime_conversions.py
        assert len(out.embedding) == graph.model.embedding_dims["camera"]
        return
    expected = graph.model.encode_camera(scene.image).numpy()
    np.testing.assert_allclose(np.asarray(out.embedding), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_image_encoded(graph, fmt):
    from aecf_ros.sim.scene_msgs import compressed_image_msg

    scene = _scene()
    msg = compressed_image_msg(scene.image, 7.5, format=fmt)
    _, out = _send_and_wait(graph, "compressed", msg, "camera")
    assert out.header.stamp.sec == 7 and out.header.stamp.nanosec == 500000000
    if fmt == "png":  # lossless: exactly the source image
        expected = graph.model.encode_camera(scene.image).numpy()
        np.testing.assert_allclose(np.asarray(out.embedding), expected, rtol=1e-5, atol=1e-6)
    else:  # lossy: compare with the image as an independent decoder (Pillow) sees it
        import io

        from PIL import Image as PILImage

        reference = np.asarray(PILImage.open(io.BytesIO(bytes(msg.data))).convert("RGB"))
        expected = graph.model.encode_camera(reference).numpy()
        np.testing.assert_allclose(np.asarray(out.embedding), expected, atol=0.05)


def test_camera_transport_subscribes_one_input_and_encodes_each_frame_once(graph):
    """Issue 20: a driver publishing raw and <topic>/compressed must not have every frame encoded
    twice. Each camera encoder subscribes only its ``transport``'s topic (the other has no
    subscriber at all) and publishes one embedding per frame, made from that transport's message."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage, Image

    from aecf_ros.msg import ModalityEmbedding
    from aecf_ros.nodes.camera_encoder import CameraEncoderNode
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.sim.scene_msgs import compressed_image_msg, image_msg

    scene = _scene()
    nodes, pubs, got = {}, {}, {}
    for transport in ("raw", "compressed"):
        topic = f"/t20_{transport}/image_raw"
        node = CameraEncoderNode(
            f"t20_camera_{transport}", context=graph.context,
            parameter_overrides=graph.overrides + [Parameter("transport", value=transport)],
            cli_args=["--ros-args", "-r", f"image:={topic}", "-r", f"image_compressed:={topic}/compressed",
                      "-r", f"aecf/embedding/camera:=/t20_{transport}/embedding"])
        assert bring_up(node)
        graph.ex.add_node(node)
        nodes[transport] = node
        pubs[transport] = (graph.driver.create_publisher(Image, topic, 10),
                           graph.driver.create_publisher(CompressedImage, topic + "/compressed", 10))
        got[transport] = []
        graph.driver.create_subscription(ModalityEmbedding, f"/t20_{transport}/embedding", got[transport].append, 50)
    try:
        raw_pub, comp_pub = pubs["raw"][0], pubs["compressed"][1]
        assert spin_until(graph.ex, lambda: raw_pub.get_subscription_count() == 1
                          and comp_pub.get_subscription_count() == 1, 10)
        spin_for(graph.ex, 0.5)  # time for a second subscription to be discovered, were there one
        assert pubs["raw"][1].get_subscription_count() == 0  # raw: <topic>/compressed not subscribed
        assert pubs["compressed"][0].get_subscription_count() == 0  # compressed: the raw topic not subscribed
        frames = 4
        for i in range(frames):  # the driver publishes each frame both ways; the stamps tell them apart
            for transport in ("raw", "compressed"):
                raw_msg, comp_msg = pubs[transport]
                raw_msg.publish(image_msg(scene.image, 100.0 + i))
                comp_msg.publish(compressed_image_msg(scene.image, 200.0 + i, format="png"))
            spin_for(graph.ex, 0.05)
        assert spin_until(graph.ex, lambda: all(len(v) >= frames for v in got.values()), 10)
        spin_for(graph.ex, 0.5)  # a second embedding per frame would arrive by now
        assert sorted(m.header.stamp.sec for m in got["raw"]) == [100 + i for i in range(frames)]
        assert sorted(m.header.stamp.sec for m in got["compressed"]) == [200 + i for i in range(frames)]
        expected = graph.model.encode_camera(scene.image).numpy()  # png is lossless: the same image
        for m in got["raw"] + got["compressed"]:
            np.testing.assert_allclose(np.asarray(m.embedding), expected, rtol=1e-5, atol=1e-6)
        assert nodes["raw"].encoded == frames and nodes["compressed"].encoded == frames
    finally:
        for node in nodes.values():
            graph.ex.remove_node(node)
            node.destroy_node()


def test_camera_transport_rejects_an_unknown_value(graph):
    from rclpy.parameter import Parameter

    node = graph.nodes["camera"]
    result = node.set_parameters([Parameter("transport", value="theora")])[0]
    assert not result.successful and "raw, compressed" in result.reason
    assert node.get_parameter("transport").value == "raw"


@pytest.mark.parametrize("layout_name", ["xyzi", "xyz", "velodyne", "ouster", "livox_uint8_intensity"])
def test_pointcloud_layouts_give_model_embedding(graph, layout_name):
    from aecf_ros.sim.scene_msgs import CloudLayout, pointcloud2_msg

    scene = _scene()
    layout = getattr(CloudLayout, layout_name)()
    msg = pointcloud2_msg(scene.points, 42.0, layout=layout)
    _, out = _send_and_wait(graph, "points", msg, "lidar")
    assert out.header.stamp.sec == 42
    from aecf_ros.runtime.conversions import pointcloud_msg_to_xyzi

    expected = graph.model.encode_lidar(pointcloud_msg_to_xyzi(msg)).numpy()
    np.testing.assert_allclose(np.asarray(out.embedding), expected, rtol=1e-5, atol=1e-6)
    if layout_name == "xyzi":
        direct = graph.model.encode_lidar(scene.points).numpy()
        np.testing.assert_allclose(np.asarray(out.embedding), direct, rtol=1e-4, atol=1e-5)


def test_text_stamped_with_receive_time(graph):
    from std_msgs.msg import String

    before = graph.driver.get_clock().now().nanoseconds * 1e-9
    _, out = _send_and_wait(graph, "text", String(data="a red car next to a person"), "text")
    after = graph.driver.get_clock().now().nanoseconds * 1e-9
    stamp = out.header.stamp.sec + out.header.stamp.nanosec * 1e-9
    assert before <= stamp <= after
    expected = graph.model.encode_text("a red car next to a person").numpy()
    np.testing.assert_allclose(np.asarray(out.embedding), expected, rtol=1e-5, atol=1e-6)


def _bad_inputs():
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import String

    from aecf_ros.sim.scene_msgs import CloudLayout, image_msg, pointcloud2_msg

    scene = _scene()
    out = []
    m = image_msg(scene.image, 1.0)
    m.encoding = "nv12"
    out.append(("image", m, "camera", "unsupported_encoding"))
    m = image_msg(scene.image, 1.0)
    m.data = bytes(m.data)[: len(m.data) // 2]
    out.append(("image", m, "camera", "truncated"))
    out.append(("image", Image(height=4, width=4, encoding="rgb8", step=5, data=bytes(20)), "camera", "bad_dimensions"))
    out.append(("compressed", CompressedImage(format="jpeg", data=b"\xff\xd8 not a jpeg"), "camera", "decode_failed"))
    m = pointcloud2_msg(scene.points, 1.0)
    m.fields = [f for f in m.fields if f.name != "z"]
    out.append(("points", m, "lidar", "missing_field"))
    m = pointcloud2_msg(scene.points, 1.0)
    m.fields = list(m.fields) + [m.fields[0]]  # two fields named x: ambiguous
    out.append(("points", m, "lidar", "duplicate_field"))
    m = pointcloud2_msg(scene.points, 1.0)
    m.data = bytes(m.data)[:-7]
    out.append(("points", m, "lidar", "truncated"))
    nan_points = np.full((50, 4), np.nan, np.float32)
    out.append(("points", pointcloud2_msg(nan_points, 1.0), "lidar", "no_points"))
    out.append(("text", String(data="   "), "text", "empty_text"))
    return out


def test_bad_inputs_counted_in_diagnostics_and_node_keeps_running(graph):
    from aecf_ros.nodes.diagnostics import level_value
    from aecf_ros.sim.scene_msgs import image_msg, pointcloud2_msg
    from std_msgs.msg import String

    bad = _bad_inputs()
    for pub, msg, _, _ in bad:
        graph.pub[pub].publish(msg)
    expected = {}  # node key -> reason -> count (compressed images go to the compressed-transport encoder)
    for pub, _, modality, reason in bad:
        key = "camera_compressed" if pub == "compressed" else modality
        expected.setdefault(key, {}).setdefault(reason, 0)
        expected[key][reason] += 1
    names = {f"{graph.nodes[k].get_name()}: {graph.nodes[k].MODALITY} input": k for k in expected}

    def reported():
        latest = {}
        for arr in graph.diagnostics:
            for s in arr.status:
                if s.name in names:
                    latest[names[s.name]] = s
        if set(latest) != set(expected):
            return False
        return all(int(diag_values(latest[m]).get(f"dropped.{r}", 0)) >= n
                   for m, reasons in expected.items() for r, n in reasons.items())

    assert spin_until(graph.ex, reported, 5.0), "drops not reported: " + str(
        {m: n.monitor.drops for m, n in graph.nodes.items() if m != "fusion"})
    for m, reasons in expected.items():
        assert dict(graph.nodes[m].monitor.drops) == reasons
    status = graph.nodes["lidar"].diagnostics().status[0]
    assert level_value(status.level) == 0 and "dropped" in status.message
    # still encoding good data afterwards
    scene = _scene()
    _send_and_wait(graph, "image", image_msg(scene.image, 2.0), "camera")
    _send_and_wait(graph, "points", pointcloud2_msg(scene.points, 2.0), "lidar")
    _send_and_wait(graph, "text", String(data="a dog"), "text")


def test_every_sensor_status_has_the_sensor_as_hardware_id(graph):
    """Issue 20 item 5: per-sensor statuses name the sensor (modality) in hardware_id, not the node."""
    fusion = {s.name: s.hardware_id for s in graph.nodes["fusion"].diagnostics().status}
    assert fusion == {"fusion_node: camera": "camera", "fusion_node: lidar": "lidar", "fusion_node: text": "text",
                      "fusion_node: output": "none"}
    for key, modality in (("camera", "camera"), ("camera_compressed", "camera"), ("lidar", "lidar"), ("text", "text")):
        (status,) = graph.nodes[key].diagnostics().status
        assert (status.name, status.hardware_id) == (f"{graph.nodes[key].get_name()}: {modality} input", modality)


def test_sensor_messages_become_predictions(graph):
    from aecf_ros.sim.scene_msgs import scene_messages

    now = graph.driver.get_clock().now().nanoseconds * 1e-9
    msgs = scene_messages(_scene(), now)
    graph.pub["image"].publish(msgs["camera"])
    graph.pub["points"].publish(msgs["lidar"])
    graph.pub["text"].publish(msgs["text"])
    n0 = len(graph.predictions)

    def fused_all():
        return any(all(p.modality_present) and abs(p.header.stamp.sec + p.header.stamp.nanosec * 1e-9 - now) < 1.0
                   for p in graph.predictions[n0:])

    assert spin_until(graph.ex, fused_all, 5.0)


def test_encoder_reports_quiet_input_as_warn_with_age_and_ok_when_it_resumes(graph):
    """input_quiet_s: WARN (with the age) once the sensor has been silent that long, logged once;
    OK again, logged once, when data resumes; the threshold changes live."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2

    from aecf_ros.nodes.diagnostics import OK, WARN, level_value
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.nodes.lidar_encoder import LidarEncoderNode
    from aecf_ros.sim.scene_msgs import pointcloud2_msg

    node = LidarEncoderNode(node_name="quiet_lidar_encoder", context=graph.context,
                            parameter_overrides=graph.overrides + [Parameter("input_quiet_s", value=0.3),
                                                                   Parameter("diagnostics_period_s", value=0.1)],
                            cli_args=["--ros-args", "-r", "points:=/quiet_test/points"])
    log = RecordingLogger(node.get_logger())
    node.get_logger = lambda: log
    pub = graph.driver.create_publisher(PointCloud2, "/quiet_test/points", 10)
    cloud = pointcloud2_msg(_scene().points, 1.0)
    try:
        assert bring_up(node)
        graph.ex.add_node(node)
        assert spin_until(graph.ex, lambda: pub.get_subscription_count() >= 1, 10)

        def status():
            return node.diagnostics().status[0]

        def stream(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pub.publish(cloud)
                spin_for(graph.ex, 0.05)

        stream(0.5)
        assert level_value(status().level) == OK, status().message
        assert spin_until(graph.ex, lambda: level_value(status().level) == WARN, 3.0), status().message
        quiet = status()
        assert "quiet for" in quiet.message and float(diag_values(quiet)["age_s"]) > 0.3, quiet.message
        spin_for(graph.ex, 0.5)  # several diagnostics periods while quiet: still one log line
        assert len(log.matching("warning", "input quiet")) == 1, log.records
        assert float(diag_values(status())["age_s"]) > 0.8

        stream(0.3)
        assert level_value(status().level) == OK, status().message
        resumed = log.matching("info", "input resumed")
        assert len(resumed) == 1 and "quiet" in resumed[0], log.records

        # live: a longer threshold keeps the same silence OK
        assert node.set_parameters([Parameter("input_quiet_s", value=5.0)])[0].successful
        spin_for(graph.ex, 0.6)
        assert level_value(status().level) == OK, status().message
        assert len(log.matching("warning", "input quiet")) == 1, log.records
    finally:
        graph.ex.remove_node(node)
        graph.driver.destroy_publisher(pub)
        node.destroy_node()


def test_drop_logs_are_throttled_per_reason_so_a_burst_does_not_hide_another_reason(graph):
    """A burst of truncated images logs once; the first NaN embedding after it is still logged,
    and every drop is counted in diagnostics."""
    import torch

    from aecf_ros.runtime.drop_log import PerReasonThrottle
    from aecf_ros.sim.scene_msgs import image_msg

    camera = graph.nodes["camera"]
    log = RecordingLogger(camera.get_logger())
    camera.get_logger = lambda: log
    camera.drop_log = PerReasonThrottle(60.0)  # fresh: earlier tests dropped inputs too
    real_model = camera.model

    class NaNModel:  # the encoder's output goes non-finite (a broken checkpoint, bad weights)
        def __getattr__(self, name):
            return getattr(real_model, name)

        def encode(self, modality, raw):
            return torch.full((real_model.embedding_dims[modality],), float("nan"))

    before = dict(camera.monitor.drops)
    scene = _scene()
    try:
        truncated = image_msg(scene.image, 3.0)
        truncated.data = bytes(truncated.data)[:100]
        for _ in range(5):
            graph.pub["image"].publish(truncated)
        assert spin_until(graph.ex, lambda: camera.monitor.drops["truncated"] >= before.get("truncated", 0) + 5, 5.0)
        camera.model = NaNModel()
        graph.pub["image"].publish(image_msg(scene.image, 3.1))
        assert spin_until(graph.ex, lambda: camera.monitor.drops["non_finite_embedding"]
                          > before.get("non_finite_embedding", 0), 5.0)
    finally:
        camera.model = real_model
        del camera.get_logger
    assert len(log.matching("warning", "truncated")) == 1, log.records
    assert len(log.matching("warning", "non_finite_embedding")) == 1, log.records
    values = diag_values(camera.diagnostics().status[0])
    assert int(values["dropped.truncated"]) == before.get("truncated", 0) + 5
    assert int(values["dropped.non_finite_embedding"]) == before.get("non_finite_embedding", 0) + 1


def test_node_clock_stepping_back_a_little_is_not_an_out_of_order_drop(graph):
    """Sim time under load can put the node clock slightly behind the previous arrival: the
    message is still encoded and published, so it must not also be counted as dropped."""
    from std_msgs.msg import String

    from aecf_ros.nodes.stamps import now_sec

    node = graph.nodes["text"]
    _send_and_wait(graph, "text", String(data="a person"), "text")
    ahead = now_sec(node) + 0.3  # the previous arrival, as a clock 0.3 s ahead recorded it
    node.monitor.newest_stamp = node.monitor.newest_receive_time = ahead
    drops_before = dict(node.monitor.drops)
    _send_and_wait(graph, "text", String(data="a dog"), "text")
    assert dict(node.monitor.drops) == drops_before
