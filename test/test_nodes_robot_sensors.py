"""Issue 16 item 6: a robot with front_camera + rear_camera + lidar and no text, end to end over
DDS on loopback: the graph is built from the robot's params file (aecf-ros run's create_nodes),
fed by a driver node, and predictions fuse the three sensors by name; stopping rear_camera alone
makes only it absent while predictions continue from the other two. A bundle for other sensors
is refused at configure (the node stays alive, unconfigured)."""
from __future__ import annotations

import numpy as np
import pytest

from test_nodes_support import REPO_ROOT, spin_for, spin_until

pytestmark = [pytest.mark.ros]

WAIT_S = 15.0  # upper bound on waiting for an event; never asserted as a duration

ROBOT = """/**:
  ros__parameters:
    sensors: [front_camera, rear_camera, lidar]
    front_camera: {{kind: image, topic: /robot16/front/image_raw}}
    rear_camera: {{kind: image, topic: /robot16/rear/image_raw/compressed, transport: compressed}}
    lidar: {{kind: pointcloud, topic: /robot16/velodyne_points}}
    model_path: {model}
    device: cpu
/**/fusion_node:
  ros__parameters:
    publish_rate_hz: 10.0
    timeout_s.front_camera: 0.5
    timeout_s.rear_camera: 0.5
    timeout_s.lidar: 0.5
"""
NAMES = ["front_camera", "rear_camera", "lidar"]


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import CompressedImage, Image, PointCloud2

    from aecf_ros.msg import FusedPrediction
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.nodes.runner import create_nodes

    from aecf_ros.cli import main as cli_main

    root = tmp_path_factory.mktemp("robot16")
    model_path = root / "two_cameras.pt"
    params = root / "robot.yaml"
    params.write_text(ROBOT.format(model=model_path))
    # a tiny model trained for the robot's declared sensors (aecf-ros train --params)
    assert cli_main(["train", "--config", str(REPO_ROOT / "config" / "train_tiny.yaml"), "--set",
                     f"workdir={root / 'work'}", "--set", f"cache_dir={root / 'cache'}", "--params", str(params),
                     "--out", str(model_path)]) == 0
    context = rclpy.context.Context()
    rclpy.init(context=context)
    nodes = create_nodes(context, [params], without=["debug_view"])
    ex = SingleThreadedExecutor(context=context)
    driver = Node("robot16_driver", context=context)
    for n in [*nodes, driver]:
        ex.add_node(n)
    r = type("Robot", (), {})()
    r.nodes, r.ex, r.driver, r.context, r.params, r.root = {n.get_name(): n for n in nodes}, ex, driver, context, params, root
    r.predictions = []
    driver.create_subscription(FusedPrediction, "/aecf/prediction", r.predictions.append, 50)
    r.pubs = {"front_camera": driver.create_publisher(Image, "/robot16/front/image_raw", 5),
              "rear_camera": driver.create_publisher(CompressedImage, "/robot16/rear/image_raw/compressed", 5),
              "lidar": driver.create_publisher(PointCloud2, "/robot16/velodyne_points", 5)}
    try:
        assert [n.get_name() for n in nodes] == ["front_camera_encoder", "rear_camera_encoder", "lidar_encoder",
                                                 "fusion_node"]
        for n in nodes:
            assert bring_up(n), n.get_name()
        assert spin_until(ex, lambda: all(p.get_subscription_count() >= 1 for p in r.pubs.values()), WAIT_S)
        yield r
    finally:
        ex.shutdown()
        for n in [*nodes, driver]:
            n.destroy_node()
        rclpy.shutdown(context=context)


def _publish(r, sensors, seconds):
    """Publish ``sensors`` at ~10 Hz for ``seconds`` while spinning the graph."""
    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.sim.scene_msgs import compressed_image_msg, image_msg, pointcloud2_msg

    scene = generate_scene(2, seed=16)
    for _ in range(int(seconds * 10)):
        now = r.driver.get_clock().now().nanoseconds * 1e-9
        make = {"front_camera": lambda: image_msg(scene.image, now),
                "rear_camera": lambda: compressed_image_msg(scene.image, now, format="jpeg"),
                "lidar": lambda: pointcloud2_msg(scene.points, now)}
        for s in sensors:
            r.pubs[s].publish(make[s]())
        spin_for(r.ex, 0.1)


def _present(p) -> dict:
    return dict(zip(p.modalities, p.modality_present))


def test_predictions_fuse_the_declared_sensors_by_name(robot):
    n0 = len(robot.predictions)
    for _ in range(int(WAIT_S)):
        _publish(robot, NAMES, 1.0)
        if any(all(p.modality_present) for p in robot.predictions[n0:]):
            break
    full = [p for p in robot.predictions[n0:] if all(p.modality_present)]
    assert full, [_present(p) for p in robot.predictions[n0:]][-5:]
    assert list(full[-1].modalities) == NAMES
    w = np.asarray(full[-1].modality_weights)
    assert np.all(w > 0) and w.sum() == pytest.approx(1.0, abs=1e-4)
    # the rear camera's encoder published on its own topic, with its own name
    fusion = robot.nodes["fusion_node"]
    assert fusion.engine.monitors["rear_camera"].received > 0
    assert list(full[-1].class_names) == list(fusion.model.class_names)


def test_stopping_rear_camera_leaves_only_it_absent(robot):
    _publish(robot, NAMES, 1.0)
    n0 = len(robot.predictions)
    for _ in range(int(WAIT_S)):
        _publish(robot, ["front_camera", "lidar"], 1.0)
        if any(not _present(p)["rear_camera"] for p in robot.predictions[n0:]):
            break
    after = robot.predictions[n0:]
    first_gone = next(i for i, p in enumerate(after) if not _present(p)["rear_camera"])
    # from the moment rear_camera went absent, predictions continue from the other two
    tail = after[first_gone:]
    assert len(tail) >= 3
    for p in tail:
        assert _present(p) == {"front_camera": True, "rear_camera": False, "lidar": True}
        assert p.modality_weights[1] == 0.0
    assert all(_present(p)["rear_camera"] for p in after[:first_gone])  # it was there until it stopped


def test_a_bundle_for_other_sensors_is_refused_at_configure(robot):
    from rclpy.parameter import Parameter

    from aecf_ros.nodes.fusion_node import FusionNode
    from aecf_ros.nodes.lifecycle import bring_up
    from test_nodes_support import make_model_file

    other, _ = make_model_file(robot.root)  # camera/lidar/text
    node = FusionNode(node_name="refusing_fusion", namespace="/refuse16", context=robot.context,
                      cli_args=["--ros-args", "--params-file", str(robot.params)],
                      parameter_overrides=[Parameter("model_path", value=str(other))])
    try:
        assert not bring_up(node)
        assert node.model is None and node.engine is None
        assert node._state_machine.current_state[1] == "unconfigured"
    finally:
        node.destroy_node()


def test_trained_bundle_records_the_robots_sensors_and_cameras_see_their_own_views(robot):
    import torch

    from aecf_ros.model import load_model

    path = robot.root / "two_cameras.pt"
    record = {r["name"]: r for r in torch.load(path, weights_only=False)["sensors"]}
    assert list(record) == NAMES and record["rear_camera"]["shares_encoder_with"] == ["front_camera"]
    # one CNN, two views: a scene's front and rear embeddings differ (each camera its own window)
    from aecf_ros.train.arrays import build_arrays
    from aecf_ros.train.sensor_set import sensor_embeddings

    model = load_model(path, "cpu")
    emb = sensor_embeddings(model, build_arrays(4, seed=3))
    assert not torch.allclose(emb["front_camera"], emb["rear_camera"])


def test_train_refuses_sensors_the_simulator_cannot_render(tmp_path, capsys):
    from aecf_ros.cli import main as cli_main

    robot = tmp_path / "radar.yaml"
    robot.write_text("/**:\n  ros__parameters:\n    sensors: [camera, radar]\n"
                     "    camera: {kind: image, topic: /c}\n    radar: {kind: embedding, topic: /radar/embedding}\n")
    assert cli_main(["train", "--config", str(REPO_ROOT / "config" / "train_tiny.yaml"), "--params", str(robot),
                     "--out", str(tmp_path / "m.pt")]) == 2
    assert "radar" in capsys.readouterr().err


def test_bag_of_the_robot_with_a_drop_plan_on_rear_camera(robot):
    """Item 6 (bags): make-bag writes the declared sensors, evaluate-bag reads them with the robot's
    params file, and a drop plan names the robot's own sensor."""
    import json

    from aecf_ros.bag.bag_io import BagReader
    from aecf_ros.cli import main as cli_main

    bag = robot.root / "robot_bag"
    assert cli_main(["make-bag", str(bag), "--duration", "4", "--scene-hold", "2", "--camera-hz", "5",
                     "--lidar-hz", "5", "--params", str(robot.params)]) == 0
    with BagReader(bag) as reader:
        topics = {t.name: t.msgtype for t in reader.info().topics}
    assert topics["/robot16/rear/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert topics["/robot16/front/image_raw"] == "sensor_msgs/msg/Image" and "/camera/image_raw" not in topics
    out = robot.root / "eval.json"
    assert cli_main(["evaluate-bag", str(bag), "--model", str(robot.root / "two_cameras.pt"), "--params-file",
                     str(robot.params), "--drop", "rear_camera@1.5-3", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["modalities"] == NAMES
    nominal, dropped = doc["phases"][0], doc["phases"][1]
    assert dropped["name"] == "drop rear_camera@1.5-3"
    assert nominal["presence"]["rear_camera"] > 0.9
    # gone within its 0.5 s timeout, the other two untouched
    assert dropped["presence"]["rear_camera"] <= 0.5
    assert dropped["presence"]["front_camera"] > 0.9 and dropped["presence"]["lidar"] > 0.9
