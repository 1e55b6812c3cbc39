"""The encoders' input table (aecf_ros/runtime/inputs.py): one definition for the live encoder
nodes and evaluate-bag; and the per-reason drop-log throttle."""
import numpy as np
import pytest
from std_msgs.msg import String

from aecf_ros import graph
from aecf_ros.runtime.conversions import ConversionError
from aecf_ros.runtime.drop_log import PerReasonThrottle
from aecf_ros.runtime.inputs import MODALITY_INPUTS, check_embedding, prepare_input


def test_table_matches_the_graph_definition():
    """Every input the table names is remapped by graph.py and has its qos.<input>.* parameters."""
    assert set(MODALITY_INPUTS) == set(graph.MODALITIES)
    for m, spec in MODALITY_INPUTS.items():
        node = graph.node_spec(f"{m}_encoder")
        params = {p.name for p in node.parameters}
        assert {k.topic for k in spec.kinds} == {r.internal for r in node.remaps}
        for k in spec.kinds:
            assert {f"qos.{k.qos_input}.reliability", f"qos.{k.qos_input}.depth"} <= params
        assert "input_quiet_s" in params


@pytest.mark.ros
def test_encoder_node_and_evaluate_bag_both_apply_the_tables_input_check(tmp_path, monkeypatch, rclpy_context):
    """Change the table's text check: the live text encoder and evaluate-bag both drop every text
    by the new reason. A path that kept an input table or check of its own would not."""
    import dataclasses

    from aecf_ros.apps.evaluate_bag import evaluate_bag, load_model_for_eval
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.nodes.text_encoder import TextEncoderNode
    from aecf_ros.runtime import inputs
    from aecf_ros.runtime.drop_plan import build_plan
    from rclpy.parameter import Parameter
    from test_nodes_support import make_model_file

    monkeypatch.setitem(inputs.MODALITY_INPUTS, "text",
                        dataclasses.replace(inputs.MODALITY_INPUTS["text"], check_raw=lambda text: "probe_reason"))

    bag = tmp_path / "bag"
    write_scene_bag(bag, BagSpec(duration_s=2.0, scene_hold_s=1.0, camera_hz=2.0, lidar_hz=2.0, text_hz=2.0,
                                 ground_truth_hz=1.0))
    model, name = load_model_for_eval("untrained", log=lambda *_: None)
    ev = evaluate_bag(bag, build_plan(), model, name, log=lambda *_: None)
    assert ev.input_drops["text"].get("probe_reason", 0) >= 3, ev.input_drops

    model_path, _ = make_model_file(tmp_path)
    node = TextEncoderNode(context=rclpy_context, parameter_overrides=[
        Parameter("model_path", value=str(model_path)), Parameter("device", value="cpu")])
    try:
        assert bring_up(node)
        (kind,) = inputs.MODALITY_INPUTS["text"].kinds
        for _ in range(3):
            node._on_message(kind, String(data="a car ahead"))
        assert node.monitor.drops["probe_reason"] == 3 and node.encoded == 0
    finally:
        node.destroy_node()


def test_header_stamp_or_receive_time():
    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.sim.scene_msgs import image_msg, pointcloud2_msg

    scene = generate_scene(0, seed=3)
    cam = prepare_input("camera", "sensor_msgs/msg/Image", image_msg(scene.image, 12.25), receive_time=99.0)
    assert cam.stamp == pytest.approx(12.25) and cam.raw.shape == scene.image.shape
    lidar = prepare_input("lidar", "sensor_msgs/msg/PointCloud2", pointcloud2_msg(scene.points, 5.5), 99.0)
    assert lidar.stamp == pytest.approx(5.5) and lidar.raw.shape[1] == 4
    text = prepare_input("text", "std_msgs/msg/String", String(data="a car"), receive_time=99.0)
    assert text.stamp == 99.0 and text.raw == "a car"


@pytest.mark.parametrize("modality, msgtype, make, reason", [
    ("text", "std_msgs/msg/String", lambda: String(data="  "), "empty_text"),
    ("lidar", "sensor_msgs/msg/PointCloud2", "nan_cloud", "no_points"),
    ("camera", "sensor_msgs/msg/Image", "yuv", "unsupported_encoding"),
])
def test_unusable_inputs_raise_with_the_drop_reason(modality, msgtype, make, reason):
    from aecf_ros.sim.scene_msgs import image_msg, pointcloud2_msg

    if make == "nan_cloud":
        msg = pointcloud2_msg(np.full((10, 4), np.nan, np.float32), 1.0)
    elif make == "yuv":
        msg = image_msg(np.zeros((4, 4, 3), np.uint8), 1.0)
        msg.encoding = "nv12"
    else:
        msg = make()
    with pytest.raises(ConversionError) as info:
        prepare_input(modality, msgtype, msg, 0.0)
    assert info.value.reason_code == reason


def test_wrong_message_type_names_what_the_encoder_takes():
    with pytest.raises(KeyError, match="sensor_msgs/msg/PointCloud2"):
        prepare_input("lidar", "sensor_msgs/msg/Image", None, 0.0)


def test_non_finite_embedding_is_a_drop_reason():
    assert check_embedding(np.zeros(4, np.float32)) is None
    assert check_embedding(np.array([0.0, np.nan], np.float32)) == "non_finite_embedding"


def test_drop_log_throttles_each_reason_on_its_own():
    now = [0.0]
    throttle = PerReasonThrottle(5.0, clock=lambda: now[0])
    assert throttle.should_log("truncated") == 0
    for _ in range(10):
        assert throttle.should_log("truncated") is None  # the burst is swallowed ...
    assert throttle.should_log("non_finite_embedding") == 0  # ... but not another reason
    now[0] = 5.0
    assert throttle.should_log("truncated") == 10  # says how many it did not log
    assert throttle.suffix("truncated") is None
    now[0] = 10.0
    assert throttle.suffix("truncated") == " (+1 more since last logged)"
    with pytest.raises(ValueError):
        PerReasonThrottle(-1.0)


def test_failed_encoding_offline_behaves_like_live_previous_embedding_kept_until_timeout(tmp_path):
    """Issue 8 item 11: live, a lidar message whose encoding fails publishes nothing, so the
    fusion keeps the previous lidar embedding until its timeout. evaluate-bag runs the same data
    path (runtime.inputs.encode_input): failing to encode the lidar messages of a window must give,
    at every output, the presence AND scores of the same bag with those messages never sent."""
    from aecf_ros.apps.evaluate_bag import evaluate_bag, fusion_parameters, load_model_for_eval
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag
    from aecf_ros.bag.bag_io import BagReader, deserialize
    from aecf_ros.runtime.drop_plan import build_plan
    from aecf_ros.runtime.inputs import prepare_input

    a, b = 1.0, 1.25  # shorter than the lidar timeout: live, lidar never goes absent here
    bag = tmp_path / "bag"
    write_scene_bag(bag, BagSpec(duration_s=2.5, scene_hold_s=1.0, camera_hz=5.0, lidar_hz=10.0, text_hz=2.0,
                                 ground_truth_hz=1.0))
    model, name = load_model_for_eval("untrained", log=lambda *_: None)
    bad = set()
    with BagReader(bag) as reader:
        start = reader.info().start_ns
        for topic, msgtype, time_ns, data in reader.messages([graph.LIDAR_TOPIC]):
            if a <= (time_ns - start) / 1e9 < b:
                bad.add(prepare_input("lidar", msgtype, deserialize(data, msgtype), 0.0).raw.tobytes())
    assert bad

    class FailingLidar:
        """The model, except that encoding the window's lidar clouds raises."""

        def __getattr__(self, item):
            return getattr(model, item)

        def encode(self, modality, raw):
            if modality == "lidar" and np.asarray(raw).tobytes() in bad:
                raise RuntimeError("simulated encoder failure")
            return model.encode(modality, raw)

    params = fusion_parameters()
    failed = evaluate_bag(bag, build_plan(), FailingLidar(), name, parameters=params, log=lambda *_: None)
    never_sent = evaluate_bag(bag, build_plan(drops=[f"lidar@{a}-{b}"]), model, name, parameters=params,
                              log=lambda *_: None)
    assert failed.input_drops["lidar"].get("encode_error") == len(bad), failed.input_drops
    assert never_sent.plan_counters["dropped"]["lidar"] == len(bad), never_sent.plan_counters
    lidar = failed.modalities.index("lidar")
    in_window = [t for t in failed.ticks if a + 0.1 < t.t < b]
    assert in_window and all(t.present[lidar] for t in in_window)  # the previous embedding stays
    assert len(failed.ticks) == len(never_sent.ticks)
    for f, n in zip(failed.ticks, never_sent.ticks):
        assert (f.t, f.published, f.present) == (n.t, n.published, n.present)
        assert (f.scores is None) == (n.scores is None)
        if f.scores is not None:
            np.testing.assert_allclose(f.scores, n.scores, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(f.weights, n.weights, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("sec, nanosec, bad", [
    (0, 0, False), (1_700_000_000, 999_999_999, False), (-1, 0, True), (-2_147_483_648, 0, True),
    (5, 1_000_000_000, True), (5, 4_294_967_295, True), (5, -1, True), (1.5, 0, True), (None, 0, True)])
def test_one_stamp_check_never_raises(sec, nanosec, bad):
    """Issue 18 item 1: THE stamp check of every input; the seconds conversion never raises."""
    from types import SimpleNamespace

    from aecf_ros.nodes.stamps import stamp_to_sec as ros_stamp_to_sec
    from aecf_ros.runtime.stamps import BAD_STAMP, stamp_problem

    stamp = SimpleNamespace(sec=sec, nanosec=nanosec)
    assert stamp_problem(stamp) == (BAD_STAMP if bad else None)
    if isinstance(sec, int):
        assert ros_stamp_to_sec(stamp) == pytest.approx(sec + nanosec * 1e-9)


def test_bad_stamp_is_dropped_before_conversion():
    from aecf_ros.sim.scene_msgs import image_msg

    msg = image_msg(np.zeros((4, 4, 3), np.uint8), 1.0)
    msg.header.stamp.sec = -7
    with pytest.raises(ConversionError) as info:
        prepare_input("camera", "sensor_msgs/msg/Image", msg, 0.0)
    assert info.value.reason_code == "bad_stamp" and "-7" in info.value.message
