"""The bad-input catalogue (issue 11) through the real nodes over DDS on loopback.

The three encoder nodes and the fusion node run in this process (one executor: a callback that
raised would fail the test), fed by a driver node over DDS exactly as a hostile or broken
publisher on the robot's domain would feed them. For every input of the catalogue:

* the node stays alive and keeps working (a good input right after it is still encoded/fused);
* every prediction published meanwhile is finite, in [0, 1], with weights summing to 1;
* the input is counted under its reason in ``/diagnostics`` (received over DDS).

A second fusion node (``timing_fusion``, namespace ``/timing``, fed embeddings directly) proves
the stream-level items: one mis-stamped frame does not knock a modality out (item 3), the
future-stamp tolerance follows the timeout (item 7), a slow sensor is reported (item 8), lost
embeddings are counted from sequence numbers (item 6). No test asserts a duration.
"""
from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest

from test_nodes_support import diag_values, make_model_file, play_in_thread, spin_for, spin_until

pytestmark = [pytest.mark.ros]

WAIT_S = 10.0  # upper bound on waiting for an event; never asserted as a duration


class Graph:
    pass


@pytest.fixture(scope="module")
def g(tmp_path_factory):
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

    model_path, model = make_model_file(tmp_path_factory.mktemp("catalogue"))
    context = rclpy.context.Context()
    rclpy.init(context=context)
    common = [Parameter("model_path", value=str(model_path)), Parameter("device", value="cpu"),
              Parameter("diagnostics_period_s", value=0.2)]
    remaps = ["--ros-args", "-r", "image:=/rel/image_raw", "-r", "image_compressed:=/rel/image_raw/compressed",
              "-r", "points:=/rel/points", "-r", "text:=/rel/text"]
    # long timeouts: presence here must not depend on scheduling; timing_fusion tests timeouts
    long_timeouts = [Parameter(f"timeout_s.{m}", value=30.0) for m in ("camera", "lidar", "text")]
    nodes = {
        "camera": CameraEncoderNode(context=context, parameter_overrides=common, cli_args=remaps),
        # one transport per camera encoder (issue 20): the compressed images go to a second one
        "compressed": CameraEncoderNode("camera_encoder_compressed", context=context, cli_args=remaps,
                                        parameter_overrides=common + [Parameter("transport", value="compressed")]),
        "lidar": LidarEncoderNode(context=context, parameter_overrides=common, cli_args=remaps),
        "text": TextEncoderNode(context=context, parameter_overrides=common, cli_args=remaps),
        "fusion": FusionNode(context=context, parameter_overrides=common + long_timeouts
                             + [Parameter("publish_rate_hz", value=20.0)]),
        "timing": FusionNode(node_name="timing_fusion", namespace="/timing", context=context,
                             parameter_overrides=common + [
                                 Parameter("publish_rate_hz", value=20.0),
                                 Parameter("timeout_s.camera", value=5.0),
                                 Parameter("timeout_s.lidar", value=0.4),
                                 Parameter("timeout_s.text", value=5.0),
                                 Parameter("expected_rate_hz.text", value=30.0)]),
    }
    for n in nodes.values():
        assert bring_up(n)
    driver = Node("catalogue_driver", context=context)
    ex = SingleThreadedExecutor(context=context)
    for n in [*nodes.values(), driver]:
        ex.add_node(n)
    d = Graph()
    d.model, d.nodes, d.driver, d.ex, d.context = model, nodes, driver, ex, context
    d.embeddings = {m: [] for m in ("camera", "lidar", "text")}
    d.predictions, d.timing_predictions, d.diag = [], [], {}

    def on_diag(arr):
        for s in arr.status:
            d.diag[s.name] = s

    for m in d.embeddings:
        driver.create_subscription(ModalityEmbedding, f"/aecf/embedding/{m}",
                                   lambda msg, m=m: d.embeddings[m].append(msg), 50)
    driver.create_subscription(FusedPrediction, "/aecf/prediction", d.predictions.append, 50)
    driver.create_subscription(FusedPrediction, "/timing/aecf/prediction", d.timing_predictions.append, 50)
    driver.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    d.pub = {"image": driver.create_publisher(Image, "/rel/image_raw", 10),
             "compressed": driver.create_publisher(CompressedImage, "/rel/image_raw/compressed", 10),
             "points": driver.create_publisher(PointCloud2, "/rel/points", 10),
             "text": driver.create_publisher(String, "/rel/text", 10)}
    d.emb_pub = {m: driver.create_publisher(ModalityEmbedding, f"/aecf/embedding/{m}", 10) for m in d.embeddings}
    d.timing_pub = {m: driver.create_publisher(ModalityEmbedding, f"/timing/aecf/embedding/{m}", 10)
                    for m in d.embeddings}
    pubs = [*d.pub.values(), *d.emb_pub.values(), *d.timing_pub.values()]
    assert spin_until(ex, lambda: all(p.get_subscription_count() >= 1 for p in pubs), WAIT_S)
    # every modality present in the main fusion before the catalogue starts
    for pub, modality in (("image", "camera"), ("points", "lidar"), ("text", "text")):
        _send_good(d, pub)
    assert spin_until(ex, lambda: any(all(p.modality_present) for p in d.predictions), WAIT_S)
    yield d
    ex.shutdown()
    for n in [*nodes.values(), driver]:
        n.destroy_node()
    rclpy.shutdown(context=context)


# ------------------------------------------------------------------------------------ helpers
def _scene():
    from aecf_ros.data.scenes import generate_scene

    return generate_scene(3, seed=5)


def _now(d) -> float:
    return d.driver.get_clock().now().nanoseconds * 1e-9


def _good_msg(d, pub):
    from std_msgs.msg import String

    from aecf_ros.sim.scene_msgs import compressed_image_msg, image_msg, pointcloud2_msg

    scene, now = _scene(), _now(d)
    return {"image": lambda: image_msg(scene.image, now),
            "compressed": lambda: compressed_image_msg(scene.image, now, format="png"),
            "points": lambda: pointcloud2_msg(scene.points, now),
            "text": lambda: String(data="a car next to a person")}[pub]()


def _send_good(d, pub):
    modality = {"image": "camera", "compressed": "camera", "points": "lidar", "text": "text"}[pub]
    n0 = len(d.embeddings[modality])
    d.pub[pub].publish(_good_msg(d, pub))
    assert spin_until(d.ex, lambda: len(d.embeddings[modality]) > n0, WAIT_S), f"no {modality} embedding"
    return d.embeddings[modality][n0]


def _embedding(d, modality, values=None, stamp=None, encoder_id=None, seq=0, label=None):
    from aecf_ros.msg import ModalityEmbedding
    from aecf_ros.nodes.stamps import sec_to_stamp

    msg = ModalityEmbedding()
    msg.header.stamp = sec_to_stamp(_now(d) if stamp is None else stamp)
    msg.modality = label or modality
    dim = d.model.embedding_dims[modality]
    msg.embedding = list(np.full(dim, 0.1) if values is None else values)
    msg.encoder_id = d.model.encoder_ids[modality] if encoder_id is None else encoder_id
    msg.seq = seq
    return msg


def _counter(d, status_name, key) -> int:
    s = d.diag.get(status_name)
    return int(diag_values(s).get(key, 0)) if s is not None else 0


def _wait_counter(d, status_name, key, above) -> bool:
    return spin_until(d.ex, lambda: _counter(d, status_name, key) > above, WAIT_S)


def _assert_sane(pred):
    scores, weights = np.asarray(pred.scores), np.asarray(pred.modality_weights)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all(), list(scores)
    assert np.isfinite(weights).all() and ((weights >= 0) & (weights <= 1)).all(), list(weights)
    assert sum(weights) == pytest.approx(1.0, abs=1e-4)


def _png(rgb):
    import cv2

    return cv2.imencode(".png", rgb[:, :, ::-1])[1].tobytes()


def _forge_size(data: bytes, width: int, height: int) -> bytes:
    """The file with the size its header declares forged (how a decompression bomb looks to a
    decoder that checks the header: the pixels never have to exist)."""
    data = bytearray(data)
    if data.startswith(b"\x89PNG"):
        struct.pack_into(">II", data, 16, width, height)
        return bytes(data)
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


# ------------------------------------------------------------------------ the sensor catalogue
def _sensor_catalogue():
    """(id, publisher, modality, build(scene) -> msg, reason)."""
    import cv2
    from sensor_msgs.msg import CompressedImage, Image, PointField
    from std_msgs.msg import String

    from aecf_ros.sim.scene_msgs import image_msg, pointcloud2_msg

    def img(**change):
        def build(scene):
            m = image_msg(scene.image, 1.0)
            for k, v in change.items():
                setattr(m, k, v(m) if callable(v) else v)
            return m
        return build

    def cloud(change):
        def build(scene):
            m = pointcloud2_msg(scene.points, 1.0)
            change(m)
            return m
        return build

    def compressed(fmt, data):
        return lambda scene: CompressedImage(format=fmt, data=data(scene))

    def jpeg(scene):
        return cv2.imencode(".jpg", scene.image[:, :, ::-1])[1].tobytes()

    def set_field(m, name, **attrs):
        fields = list(m.fields)
        i = [f.name for f in fields].index(name)
        f = fields[i]
        fields[i] = PointField(name=attrs.get("name", f.name), offset=attrs.get("offset", f.offset),
                               datatype=attrs.get("datatype", f.datatype), count=attrs.get("count", f.count))
        m.fields = fields

    def nan_cloud(m):
        m.data = np.full(len(m.data) // 4, np.nan, np.float32).tobytes()

    def stamped(build, sec, nanosec=0):
        """Issue 18 item 1: a driver with a broken clock (int32 sec < 0, nanosec not normalised)."""
        def restamp(scene):
            m = build(scene)
            m.header.stamp.sec, m.header.stamp.nanosec = sec, nanosec
            return m
        return restamp

    def png_msg(scene):
        return CompressedImage(format="png", data=_png(scene.image))

    return [
        ("image_nv12", "image", "camera", img(encoding="nv12"), "unsupported_encoding"),
        ("image_truncated", "image", "camera", img(data=lambda m: bytes(m.data)[:len(m.data) // 2]), "truncated"),
        ("image_step_too_small", "image", "camera",
         lambda s: Image(height=4, width=4, encoding="rgb8", step=5, data=bytes(20)), "bad_dimensions"),
        ("image_zero_size", "image", "camera", lambda s: Image(height=0, width=0, encoding="rgb8"), "bad_dimensions"),
        ("image_declares_16000x16000", "image", "camera",
         lambda s: Image(height=16000, width=16000, encoding="rgb8", step=48000, data=bytes(64)), "too_large"),
        ("compressed_tiff", "compressed", "camera", compressed("tiff", lambda s: b"II*\x00"), "unsupported_format"),
        ("compressed_empty", "compressed", "camera", compressed("jpeg", lambda s: b""), "truncated"),
        ("compressed_garbage", "compressed", "camera", compressed("jpeg", lambda s: b"\xff\xd8garbage"),
         "decode_failed"),
        ("compressed_bmp_as_png", "compressed", "camera",
         compressed("png", lambda s: cv2.imencode(".bmp", s.image)[1].tobytes()), "decode_failed"),
        ("compressed_png_truncated", "compressed", "camera",
         compressed("png", lambda s: _png(s.image)[:200]), "decode_failed"),
        ("compressed_png_bomb_16000x16000", "compressed", "camera",
         compressed("png", lambda s: _forge_size(_png(s.image), 16000, 16000)), "too_large"),
        ("compressed_jpeg_bomb_16000x16000", "compressed", "camera",
         compressed("jpeg", lambda s: _forge_size(jpeg(s), 16000, 16000)), "too_large"),
        ("cloud_no_z", "points", "lidar",
         cloud(lambda m: setattr(m, "fields", [f for f in m.fields if f.name != "z"])), "missing_field"),
        ("cloud_two_x_fields", "points", "lidar",
         cloud(lambda m: setattr(m, "fields", list(m.fields) + [m.fields[0]])), "duplicate_field"),
        ("cloud_x_count_0", "points", "lidar", cloud(lambda m: set_field(m, "x", count=0)), "bad_field"),
        ("cloud_unknown_datatype", "points", "lidar", cloud(lambda m: set_field(m, "y", datatype=42)), "bad_field"),
        ("cloud_x_uint16", "points", "lidar", cloud(lambda m: set_field(m, "x", datatype=4)), "bad_field"),
        ("cloud_offset_outside_point", "points", "lidar", cloud(lambda m: set_field(m, "z", offset=1000)),
         "bad_field"),
        ("cloud_row_step_too_small", "points", "lidar", cloud(lambda m: setattr(m, "row_step", 4)), "bad_dimensions"),
        ("cloud_truncated", "points", "lidar", cloud(lambda m: setattr(m, "data", bytes(m.data)[:-7])), "truncated"),
        ("cloud_all_nan", "points", "lidar", cloud(nan_cloud), "no_points"),
        ("image_stamp_sec_negative", "image", "camera", stamped(img(), -5), "bad_stamp"),
        ("image_stamp_nanosec_1e9", "image", "camera", stamped(img(), 10, 1_500_000_000), "bad_stamp"),
        ("compressed_stamp_sec_negative", "compressed", "camera", stamped(png_msg, -1, 5), "bad_stamp"),
        ("cloud_stamp_sec_negative", "points", "lidar", stamped(cloud(lambda m: None), -2_000_000_000), "bad_stamp"),
        ("text_empty", "text", "text", lambda s: String(data=""), "empty_text"),
        ("text_whitespace", "text", "text", lambda s: String(data=" \t\n "), "empty_text"),
    ]


SENSOR_IDS = ["image_nv12", "image_truncated", "image_step_too_small", "image_zero_size",
              "image_declares_16000x16000", "compressed_tiff", "compressed_empty", "compressed_garbage",
              "compressed_bmp_as_png", "compressed_png_truncated", "compressed_png_bomb_16000x16000",
              "compressed_jpeg_bomb_16000x16000", "cloud_no_z", "cloud_two_x_fields", "cloud_x_count_0",
              "cloud_unknown_datatype", "cloud_x_uint16", "cloud_offset_outside_point",
              "cloud_row_step_too_small", "cloud_truncated", "cloud_all_nan", "image_stamp_sec_negative",
              "image_stamp_nanosec_1e9", "compressed_stamp_sec_negative", "cloud_stamp_sec_negative",
              "text_empty", "text_whitespace"]


def test_sensor_catalogue_ids_match():
    pytest.importorskip("rclpy")
    assert [c[0] for c in _sensor_catalogue()] == SENSOR_IDS


@pytest.mark.parametrize("case_id", SENSOR_IDS)
def test_bad_sensor_input_counted_node_alive_output_sane(g, case_id):
    (case,) = [c for c in _sensor_catalogue() if c[0] == case_id]
    _, pub, modality, build, reason = case
    node = g.nodes["compressed" if pub == "compressed" else modality]
    status = f"{node.get_name()}: {modality} input"
    before = _counter(g, status, f"dropped.{reason}")
    published_before = node.published
    n_pred = len(g.predictions)
    g.pub[pub].publish(build(_scene()))
    assert _wait_counter(g, status, f"dropped.{reason}", before), (
        f"{case_id}: {reason} not counted; drops {dict(node.monitor.drops)}")
    assert node.published == published_before  # nothing was made of it
    good = _send_good(g, pub)  # the node still encodes
    assert len(good.embedding) == g.model.embedding_dims[modality]
    assert spin_until(g.ex, lambda: len(g.predictions) > n_pred + 2, WAIT_S)
    for p in g.predictions[n_pred:]:
        _assert_sane(p)


# --------------------------------------------------------------------- the embedding catalogue
def _embedding_catalogue(d):
    """(id, topic modality, msg, reason) of hostile embeddings a third-party encoder could send."""
    dim = d.model.embedding_dims["camera"]

    def with_value(v, modality="camera"):
        vec = np.full(d.model.embedding_dims[modality], 0.1)
        vec[min(3, len(vec) - 1)] = v
        return vec

    return [
        ("wrong_dim", "camera", _embedding(d, "camera", np.zeros(dim + 1)), "wrong_dim"),
        ("empty", "camera", _embedding(d, "camera", np.zeros(0)), "wrong_dim"),
        ("nan", "camera", _embedding(d, "camera", with_value(math.nan)), "non_finite"),
        ("inf", "lidar", _embedding(d, "lidar", with_value(math.inf, "lidar")), "non_finite"),
        ("one_element_1e30", "camera", _embedding(d, "camera", with_value(1e30)), "out_of_range"),
        ("one_element_1e20", "lidar", _embedding(d, "lidar", with_value(1e20, "lidar")), "out_of_range"),
        ("text_1e30", "text", _embedding(d, "text", with_value(1e30, "text")), "out_of_range"),
        ("all_minus_1e5", "camera", _embedding(d, "camera", np.full(dim, -1e5)), "out_of_range"),
        ("float32_max", "camera", _embedding(d, "camera", with_value(3.4e38)), "out_of_range"),
        ("other_encoder", "camera", _embedding(d, "camera", encoder_id="someone-elses-encoder"),
         "encoder_id_mismatch"),
        ("text_on_camera_topic", "camera", _embedding(d, "camera", label="text"), "modality_mismatch"),
        ("stamped_60s_ahead", "lidar", _embedding(d, "lidar", stamp=_now(d) + 60.0), "stamp_in_future"),
        ("stamped_0", "lidar", _embedding(d, "lidar", stamp=0.0), "stamp_behind"),
        # issue 18 item 1: these raised ValueError in rclpy's Time.from_msg and ended the node's spin
        ("stamp_sec_negative", "camera", _restamp(_embedding(d, "camera"), -5, 0), "bad_stamp"),
        ("stamp_nanosec_1e9", "lidar", _restamp(_embedding(d, "lidar"), 100, 1_000_000_000), "bad_stamp"),
    ]


def _restamp(msg, sec, nanosec):
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    return msg


EMBEDDING_IDS = ["wrong_dim", "empty", "nan", "inf", "one_element_1e30", "one_element_1e20", "text_1e30",
                 "all_minus_1e5", "float32_max", "other_encoder", "text_on_camera_topic", "stamped_60s_ahead",
                 "stamped_0", "stamp_sec_negative", "stamp_nanosec_1e9"]


@pytest.mark.parametrize("case_id", EMBEDDING_IDS)
def test_bad_embedding_dropped_counted_and_predictions_stay_finite(g, case_id):
    """Issue 11 item 1: a huge finite element (1e30) made every score NaN, published as OK."""
    cases = {c[0]: c for c in _embedding_catalogue(g)}
    assert list(cases) == EMBEDDING_IDS
    _, modality, msg, reason = cases[case_id]
    status = f"fusion_node: {modality}"
    received = g.nodes["fusion"].engine.monitors[modality].received
    g.emb_pub[modality].publish(_embedding(g, modality))  # fresh good evidence first
    assert spin_until(g.ex, lambda: g.nodes["fusion"].engine.monitors[modality].received > received, WAIT_S)
    before = _counter(g, status, f"dropped.{reason}")
    n_pred = len(g.predictions)
    g.emb_pub[modality].publish(msg)
    assert _wait_counter(g, status, f"dropped.{reason}", before), f"{case_id}: {reason} not counted"
    assert spin_until(g.ex, lambda: len(g.predictions) > n_pred + 3, WAIT_S)
    for p in g.predictions[n_pred:]:
        _assert_sane(p)
        assert p.modality_present[list(p.modalities).index(modality)]  # the good evidence is kept
    output = g.diag["fusion_node: output"]
    from aecf_ros.nodes.diagnostics import level_value

    assert level_value(output.level) != 2, output.message  # never ERROR: the output is fine


# ------------------------------------------------------------------ inputs that are accepted
def test_big_endian_cloud_decoded_like_little_endian(g):
    """Issue 11 item 4: big-endian clouds are decoded (like sensor_msgs_py), not rejected."""
    from aecf_ros.sim.scene_msgs import CloudLayout, pointcloud2_msg

    scene = _scene()
    now = _now(g)
    little = pointcloud2_msg(scene.points, now)
    big = pointcloud2_msg(scene.points, now, layout=CloudLayout(**{**CloudLayout.xyzi().__dict__,
                                                                   "big_endian": True}))
    assert big.is_bigendian and bytes(big.data) != bytes(little.data)
    n0 = len(g.embeddings["lidar"])
    g.pub["points"].publish(little)
    assert spin_until(g.ex, lambda: len(g.embeddings["lidar"]) > n0, WAIT_S)
    g.pub["points"].publish(big)
    assert spin_until(g.ex, lambda: len(g.embeddings["lidar"]) > n0 + 1, WAIT_S)
    a, b = g.embeddings["lidar"][n0:n0 + 2]
    np.testing.assert_array_equal(np.asarray(a.embedding), np.asarray(b.embedding))


def test_megabyte_string_cut_before_tokenizing_and_counted(g):
    """Issue 11 item 5: a 1 MB string is cut to max_text_chars before the tokenizer sees it."""
    from std_msgs.msg import String

    node = g.nodes["text"]
    limit = int(node.get_parameter("max_text_chars").value)
    text = ("a red car next to a person " * 40000)[:1_000_000]
    before = _counter(g, "text_encoder: text input", "text_clipped")
    n0 = len(g.embeddings["text"])
    g.pub["text"].publish(String(data=text))
    assert spin_until(g.ex, lambda: len(g.embeddings["text"]) > n0, WAIT_S)
    expected = g.model.encode_text(text[:limit]).numpy()
    np.testing.assert_allclose(np.asarray(g.embeddings["text"][n0].embedding), expected, rtol=1e-5, atol=1e-6)
    assert _wait_counter(g, "text_encoder: text input", "text_clipped", before)


def test_encoder_numbers_its_embeddings_consecutively(g):
    """Issue 11 item 6: seq lets the fusion node count embeddings lost on the way."""
    n0 = len(g.embeddings["lidar"])
    for _ in range(3):
        _send_good(g, "points")
    seqs = [e.seq for e in g.embeddings["lidar"][n0:]]
    assert seqs[0] >= 1 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert g.nodes["fusion"].engine.sequences["lidar"].lost == 0


def test_encoder_estimates_lost_sensor_inputs_from_stamp_gaps(g):
    """The sensor -> encoder hop has no sequence number: gaps in the header stamps at the
    expected rate are counted as lost_estimate."""
    from rclpy.parameter import Parameter

    from aecf_ros.sim.scene_msgs import pointcloud2_msg

    node = g.nodes["lidar"]
    assert node.set_parameters([Parameter("expected_rate_hz", value=10.0)])[0].successful
    try:
        before = node.rate.lost_estimate
        scene, t0 = _scene(), _now(g)
        n0 = len(g.embeddings["lidar"])
        for k in [0, 1, 2, 6, 7]:  # stamps 0.3, 0.4, 0.5 never sent: three clouds lost upstream
            g.pub["points"].publish(pointcloud2_msg(scene.points, t0 + 0.1 * k))
        assert spin_until(g.ex, lambda: len(g.embeddings["lidar"]) >= n0 + 5, WAIT_S)
        assert _wait_counter(g, "lidar_encoder: lidar input", "lost_estimate", before + 2)
        assert node.rate.lost_estimate == before + 3
    finally:
        node.set_parameters([Parameter("expected_rate_hz", value=0.0)])


def test_encoder_warns_when_its_sensor_arrives_too_slowly(g):
    """Issue 11 item 8: a 30 Hz camera arriving at 5 Hz is WARN in the encoder's input status."""
    from rclpy.parameter import Parameter

    from aecf_ros.nodes.diagnostics import level_value

    node = g.nodes["camera"]
    assert node.set_parameters([Parameter("expected_rate_hz", value=30.0)])[0].successful
    try:
        msg = _good_msg(g, "image")

        def low_reported():
            s = g.diag.get("camera_encoder: camera input")
            return s is not None and diag_values(s).get("rate_state") == "LOW"

        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not low_reported():
            g.pub["image"].publish(msg)
            spin_for(g.ex, 0.2)  # at most 5 Hz
        s = g.diag["camera_encoder: camera input"]
        assert diag_values(s).get("rate_state") == "LOW", s.message
        assert level_value(s.level) == 1 and "expected 30 Hz" in s.message
    finally:
        node.set_parameters([Parameter("expected_rate_hz", value=0.0)])


# ----------------------------------------------------------------- stream-level (timing_fusion)
def _timing_stream(d, seconds, make, hz=30.0):
    """Publish make(i) -> (modality, msg) at ~hz for `seconds` while spinning."""
    i = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        modality, msg = make(i)
        d.timing_pub[modality].publish(msg)
        spin_for(d.ex, 1.0 / hz)
        i += 1
    return i


def test_every_second_frame_stamped_zero_does_not_knock_the_camera_out(g):
    """Issue 11 item 3: with every second camera frame stamped 0 the camera was present in ~50%
    of outputs and only time_jumps moved."""
    status = "/timing/timing_fusion: camera"
    jumps = _counter(g, status, "time_jumps")
    behind = _counter(g, status, "dropped.stamp_behind")
    n0 = len(g.timing_predictions)
    sent = _timing_stream(g, 2.0, lambda i: ("camera", _embedding(g, "camera", stamp=0.0 if i % 2 else None)))
    assert _wait_counter(g, status, "dropped.stamp_behind", behind + sent // 2 - 2)
    assert _counter(g, status, "time_jumps") == jumps
    fused = [p for p in g.timing_predictions[n0:] if p.modality_present[0]]
    assert fused, "camera never fused"
    first = g.timing_predictions.index(fused[0])
    for p in g.timing_predictions[first:]:
        assert p.modality_present[0] and p.modality_age_s[0] < 5.0, list(p.modality_age_s)
        _assert_sane(p)


def test_future_stamp_tolerance_follows_the_modality_timeout(g):
    """Issue 11 item 7: lidar timeout 0.4 s: a stamp 0.9 s ahead is dropped (it was accepted with
    the fixed 1.0 s tolerance and kept lidar present long after it stopped)."""
    status = "/timing/timing_fusion: lidar"
    future = _counter(g, status, "dropped.stamp_in_future")
    received = g.nodes["timing"].engine.monitors["lidar"].received
    g.timing_pub["lidar"].publish(_embedding(g, "lidar", stamp=_now(g) + 0.9))
    assert _wait_counter(g, status, "dropped.stamp_in_future", future)
    assert g.nodes["timing"].engine.monitors["lidar"].received == received
    g.timing_pub["lidar"].publish(_embedding(g, "lidar", stamp=_now(g) + 0.1))  # within 0.4 s: fine
    assert spin_until(g.ex, lambda: g.nodes["timing"].engine.monitors["lidar"].received > received, WAIT_S)


def test_fusion_warns_when_a_sensor_arrives_below_its_expected_rate(g):
    """Issue 11 item 8: expected_rate_hz.text = 30; text embeddings at <= 5 Hz -> WARN."""
    from aecf_ros.nodes.diagnostics import level_value

    status = "/timing/timing_fusion: text"

    def low():
        s = g.diag.get(status)
        return s is not None and diag_values(s).get("rate_state") == "LOW"

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not low():
        g.timing_pub["text"].publish(_embedding(g, "text"))
        spin_for(g.ex, 0.2)
    s = g.diag[status]
    assert low(), s.message
    assert level_value(s.level) == 1 and s.message.startswith("OK; rate") and "expected 30 Hz" in s.message


def test_fusion_counts_embeddings_lost_between_encoder_and_fusion(g):
    """Issue 11 item 6: gaps in ModalityEmbedding.seq are counted as lost in /diagnostics."""
    status = "/timing/timing_fusion: text"
    base = g.nodes["timing"].engine.sequences["text"]
    lost = base.lost
    start = 1  # at or below the last number seen: a restart, never a loss
    for seq in (start, start + 1, start + 5, start + 6):  # 3 never arrive
        g.timing_pub["text"].publish(_embedding(g, "text", seq=seq))
        spin_for(g.ex, 0.02)
    assert _wait_counter(g, status, "lost", lost + 2)
    assert _counter(g, status, "lost") == lost + 3


def test_fusion_withholds_a_non_finite_prediction_and_reports_error(g):
    """Issue 11 item 1, last line of defence: whatever made the maths produce NaN (here the
    model's output is forced non-finite), nothing is published and /diagnostics says ERROR."""
    import torch

    from aecf_ros.nodes.diagnostics import level_value

    engine = g.nodes["timing"].engine
    calibrator = engine.model.calibrator  # every path (eager, traced, CUDA) calibrates through it
    real_forward = calibrator.forward

    def nan_forward(logits, *args, **kwargs):
        return torch.full_like(real_forward(logits, *args, **kwargs), float("nan"))

    status = "/timing/timing_fusion: output"
    before = _counter(g, status, "no_output.invalid_output")
    calibrator.forward = nan_forward
    try:
        g.timing_pub["text"].publish(_embedding(g, "text"))
        assert _wait_counter(g, status, "no_output.invalid_output", before + 2)
        n0 = len(g.timing_predictions)
        assert spin_until(g.ex, lambda: _counter(g, status, "no_output.invalid_output") > before + 4, WAIT_S)
        assert len(g.timing_predictions) == n0  # withheld, every time
        s = g.diag[status]
        assert level_value(s.level) == 2 and "invalid_output" in s.message, s.message
    finally:
        del calibrator.forward  # the class's forward again
    g.timing_pub["text"].publish(_embedding(g, "text"))
    n0 = len(g.timing_predictions)
    assert spin_until(g.ex, lambda: len(g.timing_predictions) > n0, WAIT_S)
    _assert_sane(g.timing_predictions[-1])


def test_damaged_bag_replayed_into_the_live_graph(g, tmp_path):
    """Issue 18 items 3 and 6: a recording with torn and zeroed messages (test/bag_damage.py, the
    damage a power loss leaves) replayed by the real replayer into the encoder and fusion nodes.
    The damaged messages are counted by reason and never published; every other message is
    encoded (none reaches an encoder as a conversion drop); the fusion node keeps predicting,
    every prediction finite and in [0, 1]."""
    
    import bag_damage as bd
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag
    from aecf_ros.apps.replay import BagReplayer
    from aecf_ros.bag.damage import UNDESERIALIZABLE, ZEROED

    # stamps just behind the wall clock once played (these nodes run on wall time, 30 s timeouts)
    start_s = math.ceil(time.time()) + 1
    intact = tmp_path / "intact"
    write_scene_bag(intact, BagSpec(duration_s=2.0, scene_hold_s=1.0, camera_hz=5.0, lidar_hz=5.0, text_hz=2.0,
                                    ground_truth_hz=1.0, start_s=start_s, storage="sqlite3"))
    topics = {"/camera/image_raw": "/rel/image_raw", "/lidar/points": "/rel/points", "/operator/text": "/rel/text"}
    bag = tmp_path / "damaged"
    expected = bd.damaged_copy(intact, bag, {"/camera/image_raw": {1: bd.TORN, 4: bd.ZEROED},
                                             "/lidar/points": {2: bd.TORN}, "/operator/text": {1: bd.ZEROED}},
                               rename=topics)
    assert expected == {"/rel/image_raw": {UNDESERIALIZABLE: 1, ZEROED: 1}, "/rel/points": {UNDESERIALIZABLE: 1},
                        "/rel/text": {ZEROED: 1}}
    good = {"camera": 10 - 2, "lidar": 10 - 1, "text": 4 - 1}
    encoders = {"camera": g.nodes["camera"], "lidar": g.nodes["lidar"], "text": g.nodes["text"]}
    drops_before = {m: dict(n.monitor.drops) for m, n in encoders.items()}
    embeddings_before = {m: len(g.embeddings[m]) for m in good}
    predictions_before = len(g.predictions)
    spin_for(g.ex, max(0.0, start_s - time.time()))  # the first message is not stamped in the future

    replayer = BagReplayer(bag, context=g.context, delay_s=0.2, clock=False, topics=list(topics.values()),
                           wait_for=list(topics.values()), log=lambda *_: None, node_name="damaged_bag_replay")
    thread, errors = play_in_thread(replayer)  # what it raises lands in errors
    try:
        while thread.is_alive():
            g.ex.spin_once(timeout_sec=0.02)  # a callback that raised would fail the test here
    finally:
        replayer.stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert replayer.stats.damage.messages == expected and replayer.stats.damage.truncated == ""
    assert replayer.stats.published == {topics["/camera/image_raw"]: good["camera"],
                                        topics["/lidar/points"]: good["lidar"], topics["/operator/text"]: good["text"]}
    assert spin_until(g.ex, lambda: all(len(g.embeddings[m]) - embeddings_before[m] >= n for m, n in good.items()),
                      WAIT_S)
    assert {m: len(g.embeddings[m]) - embeddings_before[m] for m in good} == good
    assert {m: dict(n.monitor.drops) for m, n in encoders.items()} == drops_before
    assert spin_until(g.ex, lambda: len(g.predictions) > predictions_before + 5, WAIT_S)
    for pred in g.predictions[predictions_before:]:
        _assert_sane(pred)
    assert all(g.predictions[-1].modality_present)
