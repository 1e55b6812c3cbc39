"""Generated messages through the real nodes' real subscription callbacks: no single message can
stop a node (issue 18, item 2).

The three encoder nodes (camera raw and compressed, lidar, text), the fusion node and the debug
view (watched, so it subscribes) are created in this process with rclpy and brought up; each
test takes the callback a node registered with rclpy for one input (``Subscription.callback``,
the guarded wrapper, and below it the node's own function) and calls the node's own function
directly with messages hypothesis builds field by field: header stamps of any int32 second and uint32 nanosecond (negative seconds,
``nanosec >= 1e9``), any sizes, steps and encodings, any point fields, any bytes, any text, any
embedding length and float32 value, any modality name, encoder id and sequence number, any
FusedPrediction array lengths and values (debug view). For every message:

* nothing escapes the node's callback (so the internal-error guard around it is never needed);
* the message is accounted for exactly once: encoded / accepted, or a drop under a known reason;
* whatever the node published meanwhile is well-formed: an embedding of the model's dimension,
  finite, with the input's stamp; a prediction with finite scores in [0, 1] and weights summing
  to 1 over the present sensors; a debug image of the configured width.
"""
from __future__ import annotations

import inspect
import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from test_nodes_support import make_model_file

pytestmark = [pytest.mark.ros]

# the nodes are a module fixture on purpose (bring-up costs seconds); messages and embeddings of
# a model's full dimension are large examples
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

#: every reason an encoder may drop an input for (conversions.py, inputs.py, stamps.py)
ENCODER_REASONS = {"unsupported_encoding", "bad_dimensions", "truncated", "too_large", "unsupported_format",
                   "decode_failed", "missing_field", "duplicate_field", "bad_field", "no_points", "empty_text",
                   "bad_stamp", "encode_error", "non_finite_embedding"}
#: every reason the fusion node may drop an embedding for
FUSION_REASONS = {"wrong_dim", "non_finite", "out_of_range", "encoder_id_mismatch", "modality_mismatch",
                  "bad_stamp", "stamp_in_future", "stamp_behind", "unknown_modality"}
NO_OUTPUT = {"no_modality_present", "too_few_modalities", "invalid_output"}


class Recorder:
    """Stands in for a node's output publisher: keeps what the node published, then publishes it."""

    def __init__(self, real):
        self.real, self.sent = real, []

    def publish(self, msg):
        self.sent.append(msg)
        self.real.publish(msg)

    def __getattr__(self, name):  # get_subscription_count, topic_name, ...
        return getattr(self.real, name)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    import rclpy
    from rclpy.parameter import Parameter

    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from aecf_ros.nodes.camera_encoder import CameraEncoderNode
    from aecf_ros.nodes.debug_view import DebugViewNode
    from aecf_ros.nodes.fusion_node import FusionNode
    from aecf_ros.nodes.lidar_encoder import LidarEncoderNode
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.nodes.text_encoder import TextEncoderNode

    model_path, model = make_model_file(tmp_path_factory.mktemp("callback_fuzz"))
    context = rclpy.context.Context()
    rclpy.init(context=context)
    common = [Parameter("model_path", value=str(model_path)), Parameter("device", value="cpu")]
    remaps = ["--ros-args", "-r", "image:=/fuzz/image_raw", "-r", "image_compressed:=/fuzz/image_raw/compressed",
              "-r", "points:=/fuzz/points", "-r", "text:=/fuzz/text", "-r", "__ns:=/fuzz"]
    made = {
        "image": CameraEncoderNode(context=context, parameter_overrides=common, cli_args=remaps),
        "compressed": CameraEncoderNode("camera_encoder_compressed", context=context, cli_args=remaps,
                                        parameter_overrides=common + [Parameter("transport", value="compressed")]),
        "points": LidarEncoderNode(context=context, parameter_overrides=common, cli_args=remaps),
        "text": TextEncoderNode(context=context, parameter_overrides=common, cli_args=remaps),
        # camera-triggered output: an accepted camera embedding runs the fusion step inside the
        # embedding callback too; long timeouts: accepted embeddings stay present
        "fusion": FusionNode(context=context, cli_args=["--ros-args", "-r", "__ns:=/fuzz"],
                             parameter_overrides=common + [Parameter("output_trigger", value="camera"),
                                                           Parameter("max_output_rate_hz", value=1000.0)]
                             + [Parameter(f"timeout_s.{m}", value=60.0) for m in ("camera", "lidar", "text")]),
    }
    made["view"] = DebugViewNode(context=context, cli_args=remaps, parameter_overrides=[
        Parameter("width", value=320), Parameter("max_rate_hz", value=100.0)])
    for n in made.values():
        assert bring_up(n)
        n._pub = Recorder(n._pub)
    # the debug view subscribes to predictions and frames only while someone watches its image
    watcher = Node("fuzz_watcher", namespace="/fuzz", context=context)
    watcher.create_subscription(Image, "aecf/debug_image", lambda msg: None, 1)
    deadline = time.monotonic() + 10.0
    while not made["view"].watching and time.monotonic() < deadline:
        made["view"]._watch()
        time.sleep(0.05)
    assert made["view"].watching
    made["model"] = model
    yield made
    watcher.destroy_node()
    for key, n in made.items():
        if key != "model":
            n._pub = n._pub.real
            n.destroy_node()
    rclpy.shutdown(context=context)


def _node_callback(node, topic_suffix: str):
    """The function the node registered with rclpy for its subscription to ``...topic_suffix``:
    rclpy calls the guarded wrapper; below it is the node's own callback, called here."""
    subs = [s for s in node._subs if s.topic_name.endswith(topic_suffix)]
    assert len(subs) == 1, [s.topic_name for s in node._subs]
    registered = subs[0].callback
    assert getattr(registered, "__aecf_guarded__", False), "the node's callback is not guarded"
    return inspect.unwrap(registered)


def _now_sec(node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


# ------------------------------------------------------------------------------ strategies
def stamps(node_now: bool = True):
    """(sec, nanosec) of any value the message fields can hold, and the node's 'now'."""
    return st.one_of(
        st.just("now"),
        st.tuples(st.integers(-2**31, 2**31 - 1), st.integers(0, 2**32 - 1)),
        st.tuples(st.integers(-2**31, -1), st.integers(0, 999_999_999)),  # negative seconds
        st.tuples(st.integers(0, 2**31 - 1), st.integers(1_000_000_000, 2**32 - 1)),  # nanosec >= 1e9
        st.tuples(st.integers(0, 2_000_000_000), st.integers(0, 999_999_999)),
    )


def _header(msg, stamp, node, frame_id: str = "fuzz"):
    if stamp == "now":
        t = node.get_clock().now().to_msg()
        msg.header.stamp.sec, msg.header.stamp.nanosec = t.sec, t.nanosec
    else:
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id
    return msg


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "yuv422", "uyvy", "yuyv",
             "yuv422_yuy2", "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "RGB8", "Mono8",
             "nv12", "32FC1", "8UC3", "", "rgb8 ", "jpeg"]
BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "16uc1": 2, "yuv422": 2,
                   "uyvy": 2, "yuyv": 2, "yuv422_yuy2": 2}
SIZE = st.one_of(st.integers(0, 20), st.sampled_from([1, 2, 3, 64, 4097, 100_000, 2**31, 2**32 - 1]))


@st.composite
def images(draw):
    encoding = draw(st.sampled_from(ENCODINGS))
    height, width = draw(SIZE), draw(SIZE)
    bpp = BYTES_PER_PIXEL.get(encoding.lower(), 1)
    consistent = height <= 64 and width <= 64 and draw(st.booleans())
    step = (width * bpp + draw(st.integers(0, 5))) if consistent else draw(st.one_of(st.integers(0, 200), SIZE))
    step = min(step, 2**32 - 1)
    size = step * height if consistent else draw(st.integers(0, 3000))
    data = draw(st.one_of(st.binary(min_size=size, max_size=size), st.just(bytes(size)))) if size <= 6000 \
        else bytes(size)  # (at most 64 x 64 x 4 + padding)
    return dict(encoding=encoding, height=height, width=width, step=step,
                is_bigendian=draw(st.integers(0, 255)), data=data, stamp=draw(stamps()))


def _encoded(fmt: str, rgb: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png" if fmt == "png" else ".jpg", rgb)[1].tobytes()


@st.composite
def compressed_images(draw):
    fmt = draw(st.sampled_from(["png", "jpeg", "jpg", "PNG", "", "tiff", "bmp", "rgb8; jpeg compressed bgr8",
                                "bgr8; png compressed", "16UC1; compressedDepth png", "webp"]))
    kind = draw(st.sampled_from(["png", "jpeg", "random"]))
    if kind == "random":
        data = draw(st.binary(max_size=600))
    else:
        h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
        rgb = np.frombuffer(draw(st.binary(min_size=h * w * 3, max_size=h * w * 3)), np.uint8).reshape(h, w, 3)
        data = bytearray(_encoded(kind, rgb))
        cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
        if cut is not None:
            data = data[:cut]
        for i, b in draw(st.lists(st.tuples(st.integers(0, max(len(data) - 1, 0)), st.integers(0, 255)),
                                  max_size=3)):
            if data:
                data[i] = b  # flipped bytes: header sizes, markers, chunk lengths
        data = bytes(data)
    return dict(format=fmt, data=data, stamp=draw(stamps()))


FIELD = st.tuples(st.sampled_from(["x", "y", "z", "intensity", "ring", "t", "", "X", "rgb"]),
                  st.one_of(st.integers(0, 40), st.sampled_from([2**31, 2**32 - 1])),
                  st.integers(0, 255), st.one_of(st.integers(0, 3), st.just(2**32 - 1)))
XYZI = [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 12, 7, 1)]


@st.composite
def clouds(draw):
    layout = draw(st.sampled_from(["xyzi", "xyzi", "xyzi_big", "random"]))
    fields = XYZI if layout != "random" else draw(st.lists(FIELD, max_size=6))
    consistent = layout != "random" and draw(st.integers(0, 3)) > 0  # sizes that agree with the data
    if consistent:
        height, width, point_step = draw(st.integers(1, 3)), draw(st.integers(1, 40)), 16
        row_step = width * point_step + draw(st.integers(0, 4))
        size = row_step * height
    else:
        height = draw(st.one_of(st.integers(0, 3), st.sampled_from([2**31, 2**32 - 1])))
        width = draw(st.one_of(st.integers(0, 40), st.sampled_from([2**31, 2**32 - 1])))
        point_step = draw(st.one_of(st.integers(0, 40), st.just(2**32 - 1)))
        row_step = draw(st.one_of(st.integers(0, 800), st.just(2**32 - 1)))
        size = draw(st.integers(0, 1200))
    if consistent and draw(st.booleans()):  # real float coordinates, NaN / inf / huge included
        coordinate = st.one_of(st.floats(-50.0, 50.0, width=32), st.floats(-50.0, 50.0, width=32), st.floats(width=32))
        values = draw(st.lists(coordinate, min_size=size // 4, max_size=size // 4))
        data = np.asarray(values, dtype=">f4" if layout == "xyzi_big" else "<f4").tobytes()
        data += bytes(size - len(data))
    else:
        data = draw(st.binary(min_size=size, max_size=size))
    return dict(fields=fields, height=height, width=width, point_step=point_step, row_step=row_step,
                is_bigendian=layout == "xyzi_big" or (layout == "random" and draw(st.booleans())),
                is_dense=draw(st.booleans()), data=data, stamp=draw(stamps()))


# ------------------------------------------------------------------------------ the encoders
def _feed_encoder(nodes, key: str, topic_suffix: str, msg, stamped: bool = True):
    node = nodes[key]
    callback = _node_callback(node, topic_suffix)
    before = (node.monitor.received, node.encoded, sum(node.monitor.drops.values()), len(node._pub.sent),
              dict(node.monitor.drops))
    callback(msg)  # anything escaping fails the test with the node's traceback
    received, encoded, dropped, sent = (node.monitor.received, node.encoded, sum(node.monitor.drops.values()),
                                        len(node._pub.sent))
    assert received - before[0] == 1
    assert (encoded - before[1]) + (dropped - before[2]) == 1, "the message is neither encoded nor a counted drop"
    new_reasons = {r for r, n in node.monitor.drops.items() if n > before[4].get(r, 0)}
    assert new_reasons <= ENCODER_REASONS, new_reasons
    assert sent - before[3] == encoded - before[1]
    assert node.callback_guard.total == 0
    dim = nodes["model"].embedding_dims[node.sensor]
    for out in node._pub.sent[before[3]:]:
        vec = np.asarray(out.embedding, dtype=np.float64)
        assert vec.shape == (dim,) and np.isfinite(vec).all()
        assert out.modality == node.sensor and out.encoder_id == node.encoder_id and out.seq == node._seq
        if stamped:
            assert (out.header.stamp.sec, out.header.stamp.nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
            assert out.header.stamp.sec >= 0 and out.header.stamp.nanosec < 1_000_000_000
    if dropped > before[2]:  # a dropped input is never an embedding
        assert sent == before[3]
    node._pub.sent.clear()


# explicit examples: each branch (encoded, dropped) is taken whatever hypothesis generates
@FUZZ
@example(fields=dict(encoding="rgb8", height=4, width=6, step=20, is_bigendian=0, data=bytes(80), stamp="now"))
@example(fields=dict(encoding="rgb8", height=4, width=6, step=20, is_bigendian=0, data=bytes(80), stamp=(-1, 0)))
@given(fields=images())
def test_any_image_is_encoded_or_dropped_by_reason_through_the_camera_callback(nodes, fields):
    from sensor_msgs.msg import Image

    fields = dict(fields)
    msg = _header(Image(), fields.pop("stamp"), nodes["image"])
    for k, v in fields.items():
        setattr(msg, k, v)
    _feed_encoder(nodes, "image", "/fuzz/image_raw", msg)


@FUZZ
@example(fields=dict(format="png", data=_encoded("png", np.full((5, 7, 3), 90, np.uint8)), stamp="now"))
@example(fields=dict(format="png", data=_encoded("png", np.full((5, 7, 3), 90, np.uint8))[:30], stamp="now"))
@given(fields=compressed_images())
def test_any_compressed_image_is_encoded_or_dropped_by_reason_through_the_camera_callback(nodes, fields):
    from sensor_msgs.msg import CompressedImage

    fields = dict(fields)
    msg = _header(CompressedImage(), fields.pop("stamp"), nodes["compressed"])
    msg.format, msg.data = fields["format"], fields["data"]
    _feed_encoder(nodes, "compressed", "/fuzz/image_raw/compressed", msg)


@FUZZ
@example(fields=dict(fields=XYZI, height=1, width=3, point_step=16, row_step=48, is_bigendian=False, is_dense=True,
                     data=np.arange(12, dtype="<f4").tobytes(), stamp="now"))
@example(fields=dict(fields=XYZI[:2], height=1, width=3, point_step=16, row_step=48, is_bigendian=False,
                     is_dense=True, data=np.arange(12, dtype="<f4").tobytes(), stamp="now"))
@given(fields=clouds())
def test_any_point_cloud_is_encoded_or_dropped_by_reason_through_the_lidar_callback(nodes, fields):
    from sensor_msgs.msg import PointCloud2, PointField

    fields = dict(fields)
    msg = _header(PointCloud2(), fields.pop("stamp"), nodes["points"])
    msg.fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields.pop("fields")]
    for k, v in fields.items():
        setattr(msg, k, v)
    _feed_encoder(nodes, "points", "/fuzz/points", msg)


@FUZZ
@example(text="a forklift near the dock")
@example(text=" \t ")
@given(text=st.one_of(st.text(max_size=400), st.text(alphabet=" \t\n\r\x00\x0b", max_size=20),
                      st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=8), st.integers(500, 3000))))
def test_any_string_is_encoded_or_dropped_by_reason_through_the_text_callback(nodes, text):
    from std_msgs.msg import String

    _feed_encoder(nodes, "text", "/fuzz/text", String(data=text), stamped=False)


# ------------------------------------------------------------------------------ the fusion node
FLOAT32 = st.one_of(st.floats(width=32), st.floats(-3.0, 3.0, width=32),
                    st.sampled_from([1e4, -1e4, 1.0001e4, 3.4e38, -3.4e38, 1e-45]))


@st.composite
def embeddings(draw, dims):
    topic = draw(st.sampled_from(sorted(dims)))
    modality = draw(st.sampled_from([topic, topic, topic, "", "camera", "lidar", "text", "radar", "CAMERA"]))
    dim = dims[topic]
    n = draw(st.one_of(st.just(dim), st.integers(0, dim + 3)))
    if draw(st.booleans()):
        values = draw(st.lists(FLOAT32, min_size=n, max_size=n))
    else:  # mostly plausible values: accepted embeddings exercise the fusion step
        values = draw(st.lists(st.floats(-2.0, 2.0, width=32), min_size=n, max_size=n))
    return dict(topic=topic, modality=modality, embedding=values,
                encoder_id=draw(st.sampled_from(["right", "right", "", "other-model"])),
                seq=draw(st.one_of(st.integers(0, 5), st.integers(0, 2**64 - 1))),
                stamp=draw(st.one_of(st.just("now"), st.just("now"), stamps())))


def _fusion_totals(engine):
    """(accepted, dropped, drops by (sensor, reason), drops of no sensor by reason)"""
    monitors = engine.monitors
    return (sum(mon.received for mon in monitors.values()),
            sum(sum(mon.drops.values()) for mon in monitors.values()) + sum(engine.engine_drops.values()),
            {(m, r): n for m, mon in monitors.items() for r, n in mon.drops.items()},
            dict(engine.engine_drops))


def _check_prediction(out, modalities):
    scores = np.asarray(out.scores, dtype=np.float64)
    weights = np.asarray(out.modality_weights, dtype=np.float64)
    assert scores.size and np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    assert list(out.modalities) == list(modalities) and len(out.modality_present) == len(modalities)
    assert np.isfinite(weights).all() and (weights >= 0).all() and (weights <= 1 + 1e-6).all()
    assert any(out.modality_present) and math.isclose(float(weights.sum()), 1.0, abs_tol=1e-4)
    assert all(w == 0.0 for w, p in zip(weights, out.modality_present) if not p)
    assert all(math.isfinite(a) for a in out.modality_age_s) and math.isfinite(out.gate_entropy)
    assert out.header.stamp.sec >= 0 and out.header.stamp.nanosec < 1_000_000_000


@FUZZ
@given(data=st.data())
def test_any_embedding_is_fused_or_dropped_by_reason_through_the_fusion_callbacks(nodes, data):
    from aecf_ros.msg import ModalityEmbedding

    node, model = nodes["fusion"], nodes["model"]
    dims = dict(model.embedding_dims)
    fields = data.draw(embeddings(dims))
    msg = _header(ModalityEmbedding(), fields["stamp"], node)
    msg.modality = fields["modality"]
    msg.embedding = fields["embedding"]
    msg.encoder_id = model.encoder_ids[fields["topic"]] if fields["encoder_id"] == "right" else fields["encoder_id"]
    msg.seq = fields["seq"]
    callback = _node_callback(node, f"/aecf/embedding/{fields['topic']}")
    timer = inspect.unwrap(node._timer.callback)
    assert getattr(node._timer.callback, "__aecf_guarded__", False)
    received, dropped, drops, engine_drops = _fusion_totals(node.engine)
    sent = len(node._pub.sent)
    callback(msg)
    timer()  # the fusion step on the node clock, whatever was accepted
    received2, dropped2, drops2, engine_drops2 = _fusion_totals(node.engine)
    assert (received2 - received) + (dropped2 - dropped) == 1, "neither accepted nor a counted drop"
    reasons = {r for (m, r), n in drops2.items() if n > drops.get((m, r), 0)}
    reasons |= {r for r, n in engine_drops2.items() if n > engine_drops.get(r, 0)}
    assert reasons <= FUSION_REASONS, reasons
    assert set(node.engine.no_output_counts) <= NO_OUTPUT
    assert node.callback_guard.total == 0
    for out in node._pub.sent[sent:]:
        _check_prediction(out, model.modalities)
    node._pub.sent.clear()


# ------------------------------------------------------------------------------ the debug view
NAMES = st.lists(st.text(max_size=12), max_size=8)


@st.composite
def predictions(draw):
    names = draw(NAMES)
    n_scores = draw(st.one_of(st.just(len(names)), st.integers(0, 10)))
    modalities = draw(st.lists(st.sampled_from(["camera", "lidar", "text", "", "x" * 60]), max_size=6))
    sizes = [draw(st.one_of(st.just(len(modalities)), st.integers(0, 7))) for _ in range(3)]
    return dict(class_names=names, scores=draw(st.lists(FLOAT32, min_size=n_scores, max_size=n_scores)),
                modalities=modalities,
                modality_present=draw(st.lists(st.booleans(), min_size=sizes[0], max_size=sizes[0])),
                modality_weights=draw(st.lists(FLOAT32, min_size=sizes[1], max_size=sizes[1])),
                modality_age_s=draw(st.lists(FLOAT32, min_size=sizes[2], max_size=sizes[2])),
                gate_entropy=draw(FLOAT32), stamp=draw(stamps()), frame=draw(st.one_of(st.none(), images())))


@FUZZ
@example(fields=dict(class_names=["a"], scores=[0.5, 0.7], modalities=["camera"], modality_present=[True],
                     modality_weights=[1.0], modality_age_s=[0.1], gate_entropy=0.0, stamp="now", frame=None))
@example(fields=dict(class_names=["a", "b"], scores=[0.5, 0.7], modalities=["camera"], modality_present=[True],
                     modality_weights=[1.0], modality_age_s=[0.1], gate_entropy=0.0, stamp="now", frame=None))
@given(fields=predictions())
def test_any_prediction_and_camera_frame_is_drawn_or_counted_through_the_debug_view_callbacks(nodes, fields):
    from sensor_msgs.msg import Image

    from aecf_ros.msg import FusedPrediction

    view = nodes["view"]
    fields = dict(fields)
    frame = fields.pop("frame")
    if frame is not None:  # the newest camera frame: drawn under the prediction, decoded only then
        frame = dict(frame)
        image = _header(Image(), frame.pop("stamp"), view)
        for k, v in frame.items():
            setattr(image, k, v)
        _node_callback(view, "/fuzz/image_raw")(image)
    msg = _header(FusedPrediction(), fields.pop("stamp"), view)
    for k, v in fields.items():
        setattr(msg, k, v)
    keys = ("rendered", "rate_limited", "bad_prediction")
    before, sent = {k: view.counters[k] for k in keys}, len(view._pub.sent)
    _node_callback(view, "/aecf/prediction")(msg)
    assert sum(view.counters[k] - before[k] for k in keys) == 1
    assert (view.counters["bad_prediction"] > before["bad_prediction"]) == (
        len(msg.scores) != len(msg.class_names)
        or len({len(msg.modalities), len(msg.modality_present), len(msg.modality_weights),
                len(msg.modality_age_s)}) > 1)
    assert view.callback_guard.total == 0
    for out in view._pub.sent[sent:]:
        assert out.encoding == "rgb8" and out.width == 320 and out.step == 3 * out.width
        assert len(out.data) == out.step * out.height > 0
    view._pub.sent.clear()


def test_the_fuzzed_paths_reached_both_outcomes(nodes):
    """Runs after the property tests (file order): each input produced some accepted and some
    dropped messages, so the properties above were not proven on one branch only."""
    for key in ("image", "compressed", "points", "text"):
        n = nodes[key]
        assert n.encoded > 0 and sum(n.monitor.drops.values()) > 0, (key, n.encoded, dict(n.monitor.drops))
    engine = nodes["fusion"].engine
    received, dropped, _, _ = _fusion_totals(engine)
    assert received > 0 and dropped > 0 and engine.published > 0
    view = nodes["view"]
    assert view.counters["rendered"] > 0 and view.counters["bad_prediction"] > 0, dict(view.counters)
