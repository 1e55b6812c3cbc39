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


def test_encoder_nodes_and_evaluate_bag_hold_no_input_logic_of_their_own():
    import aecf_ros.apps.evaluate_bag as evaluate_bag
    from aecf_ros.nodes.camera_encoder import CameraEncoderNode
    from aecf_ros.nodes.lidar_encoder import LidarEncoderNode
    from aecf_ros.nodes.text_encoder import TextEncoderNode

    for cls in (CameraEncoderNode, LidarEncoderNode, TextEncoderNode):
        assert not hasattr(cls, "inputs") and not hasattr(cls, "check_raw"), cls
    assert not hasattr(evaluate_bag, "encoder_inputs") and not hasattr(evaluate_bag, "EXPECTED_TYPES")


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
        msg.encoding = "yuv422"
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
