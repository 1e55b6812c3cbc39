"""The declared sensor set (aecf_ros/sensors.py) and models built for it (issue 16)."""
import numpy as np
import pytest

from aecf_ros.sensors import (DEFAULT_SENSOR_SET, KINDS, SensorConfigError, SensorKind, parse_sensor_set,
                              register_kind)

TWO_CAMERAS = {
    "sensors": ["front_camera", "rear_camera", "lidar"],
    "front_camera.kind": "image", "front_camera.topic": "/front/image_raw",
    "rear_camera.kind": "image", "rear_camera.topic": "/rear/image_raw/compressed", "rear_camera.transport": "compressed",
    "lidar.kind": "pointcloud", "lidar.topic": "/velodyne_points",
}


def test_a_two_camera_robot_is_parameters_only():
    s = parse_sensor_set(TWO_CAMERAS)
    assert s.names == ("front_camera", "rear_camera", "lidar")
    assert s["front_camera"].msgtype == "sensor_msgs/msg/Image"
    assert s["rear_camera"].msgtype == "sensor_msgs/msg/CompressedImage"
    assert [x.encoder_node for x in s.with_encoder_nodes()] == ["front_camera_encoder", "rear_camera_encoder",
                                                               "lidar_encoder"]
    assert s.families() == {"front_camera": "camera", "rear_camera": "camera", "lidar": "lidar"}
    assert parse_sensor_set(s.to_parameters()) == s  # a set round-trips through its parameters


def test_default_set_is_todays_camera_lidar_text_and_config_file_declares_it():
    from aecf_ros.runtime.params_file import read_params_file
    from aecf_ros.resources import package_file

    assert DEFAULT_SENSOR_SET.names == ("camera", "lidar", "text")
    assert DEFAULT_SENSOR_SET.topic_of() == {"/camera/image_raw": "camera", "/lidar/points": "lidar",
                                             "/operator/text": "text"}
    values = read_params_file(package_file("config", "aecf.yaml"), "/fusion_node")
    assert parse_sensor_set(values) == DEFAULT_SENSOR_SET
    # no `sensors` parameter at all: the default set, with a topic override applied
    assert parse_sensor_set({"camera.topic": "/cam"})["camera"].topic == "/cam"


def test_embedding_sensor_starts_no_encoder_node():
    s = parse_sensor_set({"sensors": ["radar", "camera"], "radar.kind": "embedding", "radar.topic": "/radar/embedding",
                          "camera.kind": "image", "camera.topic": "/camera/image_raw"})
    assert [x.name for x in s.with_encoder_nodes()] == ["camera"]
    assert s["radar"].msgtype == "aecf_ros/msg/ModalityEmbedding" and s["radar"].family is None


@pytest.mark.parametrize("change, parameter, words", [
    ({"sensors": []}, "'sensors'", "empty"),
    ({"sensors": ["lidar", "lidar"]}, "'sensors'", "twice"),
    ({"sensors": ["front camera"]}, "'sensors'", "name token"),
    ({"sensors": ["2cam"]}, "'sensors'", "name token"),
    ({"sensors": ["cam__x"]}, "'sensors'", "name token"),
    ({"lidar.kind": "radar"}, "'lidar.kind'", "unknown kind"),
    ({"lidar.kind": ""}, "'lidar.kind'", "missing"),
    ({"lidar.topic": ""}, "'lidar.topic'", "missing"),
    ({"lidar.topic": "/bad topic"}, "'lidar.topic'", "not a valid ROS topic"),
    ({"front_camera.transport": "theora"}, "'front_camera.transport'", "raw | compressed"),
    ({"lidar.topic": "/front/image_raw"}, "'front_camera.topic' and 'lidar.topic'", "one topic"),
    ({"radar.kind": "image", "radar.topic": "/r"}, "'radar.kind'", "not in 'sensors'"),
])
def test_bad_declarations_name_the_parameter(change, parameter, words):
    with pytest.raises(SensorConfigError) as info:
        parse_sensor_set({**TWO_CAMERAS, **change})
    assert parameter in str(info.value) and words in str(info.value)


def test_a_kind_registered_from_outside_the_package_is_declarable():
    register_kind(SensorKind("test_radar", {"raw": "aecf_ros/msg/ModalityEmbedding"}, family=None,
                             defaults={"timeout_s": 0.2}))
    try:
        s = parse_sensor_set({"sensors": ["radar"], "radar.kind": "test_radar", "radar.topic": "/radar"})
        assert s["radar"].default("timeout_s") == 0.2 and s["radar"].default("enabled") is True
        with pytest.raises(ValueError, match="registered already"):
            register_kind(SensorKind("test_radar", {"raw": "x/msg/Y"}, family=None))
    finally:
        KINDS.pop("test_radar")


def test_model_for_two_cameras_shares_one_cnn_and_its_bundle_says_so(tmp_path):
    import torch

    from aecf_ros.model import build_model, load_model, save_model

    s = parse_sensor_set(TWO_CAMERAS)
    model = build_model(None, modalities=list(s.names), sensor_families=s.families())
    assert model.modalities == s.names
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert torch.equal(model.encode("front_camera", rgb), model.encode("rear_camera", rgb))  # one CNN
    path = save_model(model, tmp_path / "two.pt")
    record = {r["name"]: r for r in torch.load(path, weights_only=False)["sensors"]}
    assert record["front_camera"]["shares_encoder_with"] == ["rear_camera"]
    assert record["lidar"]["family"] == "lidar" and record["lidar"]["shares_encoder_with"] == []
    # the rear camera's encoder node loads the CNN only
    part = load_model(path, "cpu", parts=["rear_camera"])
    assert part.camera_encoder is not None and part.lidar_encoder is None
    assert part.encoder_ids == model.encoder_ids
