"""Issue 17: a robot's own labelled bags -> aecf-ros dataset -> aecf-ros train --dataset ->
evaluate-bag on a bag it never saw -> the bundle in real nodes over DDS.

The robot here is not the package's default: a front camera and a lidar, no text, its own
topics, and its own three classes (person / vehicle / goods, derived from the generated scenes),
labelled in label files of both time forms. Everything runs for real: make-bag writes rosbag2
files, the dataset runs the encoders and the fusion node's presence rule over them, training is
the AECF stage 2 (tiny), the nodes talk over DDS on loopback."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from test_nodes_support import REPO_ROOT, spin_for, spin_until

WAIT_S = 15.0  # upper bound on waiting for DDS events; never asserted as a duration

ROBOT = """/**:
  ros__parameters:
    sensors: [front_camera, lidar]
    front_camera: {{kind: image, topic: /robot17/front/image_raw}}
    lidar: {{kind: pointcloud, topic: /robot17/points}}
    model_path: {model}
    device: cpu
/**/fusion_node:
  ros__parameters:
    publish_rate_hz: 10.0
    timeout_s.front_camera: 0.5
    timeout_s.lidar: 0.5
"""
# the same robot with a rear camera its bags do not have
ROBOT_WITH_REAR = ROBOT.replace("sensors: [front_camera, lidar]", "sensors: [front_camera, lidar, rear_camera]") \
    .replace("    device: cpu\n", "    device: cpu\n    rear_camera: {{kind: image, topic: /robot17/rear/image_raw}}\n")
CLASSES = ["person", "vehicle", "goods"]
VEHICLES = {"car", "bicycle", "forklift", "shopping_cart"}
GOODS = {"pallet", "cardboard_box", "trash_bin"}
TINY = str(REPO_ROOT / "config" / "train_tiny.yaml")


def _coarse(classes: str) -> str:
    names = {c for c in classes.split(";") if c}
    out = [c for c, hit in (("person", "person" in names), ("vehicle", bool(names & VEHICLES)),
                            ("goods", bool(names & GOODS))) if hit]
    return ";".join(out)


def _relabel(bag, out, offsets: bool) -> None:
    """The robot team's label file of ``bag``: make-bag's scenes in the robot's classes."""
    from aecf_ros.data.labels import ns_to_seconds, seconds_to_ns

    rows = list(csv.reader((bag / "labels.csv").read_text().splitlines()))[1:]
    start = seconds_to_ns(rows[0][0])
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["offset_start", "offset_end", "classes"] if offsets else ["start", "end", "classes"])
        for a, b, classes in rows:
            if offsets:
                a, b = (ns_to_seconds(seconds_to_ns(x) - start) for x in (a, b))
            w.writerow([a, b, _coarse(classes)])


def _cli(*argv) -> int:
    from aecf_ros.cli import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag
    from aecf_ros.runtime.sensor_graph import declared_sensor_set

    root = tmp_path_factory.mktemp("robot17")
    r = type("Robot", (), {})()
    r.root = root
    r.model = root / "robot.pt"
    r.params = root / "robot.yaml"
    r.params.write_text(ROBOT.format(model=r.model))
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    sensors = declared_sensor_set([r.params])
    r.bags = []
    for i in range(3):
        bag = root / f"run{i}"
        write_scene_bag(bag, BagSpec(duration_s=30.0, scene_hold_s=0.3, camera_hz=10.0, lidar_hz=10.0, seed=20 + i,
                                     first_scene_index=100 * i), sensors=sensors)
        _relabel(bag, root / f"run{i}.csv", offsets=(i == 1))
        r.bags.append(bag)
    return r


def test_robot_bags_to_dataset_to_model_to_evaluate_bag_and_live_nodes(robot, capsys):
    r = robot
    ds = r.root / "dataset"
    assert _cli("dataset", r.bags[0], r.bags[1], "--labels", r.root / "run0.csv", "--labels", r.root / "run1.csv",
                "--classes", r.root / "classes.txt", "--params", r.params, "--out", ds, "--split", "blocks",
                "--block", "2", "--gap", "0.5", "--jobs", "2", "--no-progress") == 0
    manifest = json.loads((ds / "dataset.json").read_text())
    assert [s["name"] for s in manifest["sensors"]] == ["front_camera", "lidar"]
    assert [s["kind"] for s in manifest["sensors"]] == ["image", "pointcloud"]
    assert manifest["class_names"] == CLASSES
    from aecf_ros.data.features import load_features

    fs = load_features(ds / "features.npz")
    assert fs.modalities == ["front_camera", "lidar"] and fs.class_names == CLASSES
    # a sample per fusion output (10 Hz over the bag's ~30 s): every tick is labelled and has
    # both sensors (the bags have no drops), so every tick is a sample; the presence is what
    # the fusion node would have fused
    for rep in manifest["bags"]:
        assert rep["presence"] == {"front_camera": 1.0, "lidar": 1.0}
        assert rep["ticks"] == int(rep["duration_s"] * 10 + 1e-6) and rep["samples"] == rep["ticks"], rep
        assert rep["split"]["train"] > rep["split"]["test"] > 0
    assert set(np.unique(fs.split)) == {"train", "val", "test"}
    # the offsets file of run1 gives the labels of its scenes, like the absolute file of run0
    assert fs.labels.sum(0).min() > 0
    with np.load(ds / "features.npz") as z:
        assert np.all(np.diff(z["stamps_ns"][z["bag"] == 1]) > 0)
        # time blocks: a block's samples are all in one part
        stamps, bag, split = z["stamps_ns"], z["bag"], z["split"]
    start = manifest["bags"][0]["start_ns"]
    block = (stamps[bag == 0] - start) // 2_000_000_000
    for k in np.unique(block):
        assert len(set(split[bag == 0][block == k])) == 1
    # training: fusion + head + calibrator over the dataset's encoders
    assert _cli("train", "--dataset", ds, "--config", TINY, "--out", r.model, "--set", "stage2.epochs=25") == 0
    from aecf_ros.model import load_model

    model = load_model(r.model, "cpu")
    assert model.class_names == CLASSES and list(model.modalities) == ["front_camera", "lidar"]
    assert model.metadata["dataset"]["split"]["mode"] == "blocks"
    assert model.encoder_ids == manifest["encoder_ids"]
    # a bag it never saw, its lidar dropped for 8 s: above chance, and the dropped phase marked
    report = r.root / "eval.json"
    assert _cli("evaluate-bag", r.bags[2], "--model", r.model, "--params-file", r.params, "--labels",
                r.root / "run2.csv", "--drop", "lidar@8-16", "--json", report) == 0
    doc = json.loads(report.read_text())
    truth = np.array([t["truth"] for t in doc["timeline"] if t["truth"] is not None])
    chance = float(truth.mean(0)[truth.mean(0) > 0].mean())
    assert doc["overall"]["macro_map"] > chance + 0.1, (doc["overall"]["macro_map"], chance)
    dropped = next(p for p in doc["phases"] if p["name"] == "drop lidar@8-16")
    assert dropped["presence"]["lidar"] < 0.1 and dropped["presence"]["front_camera"] > 0.9
    assert dropped["output_rate"] > 0.9  # predictions go on from the camera alone
    # evaluate --dataset: the test part per recorded presence pattern and per drop scenario
    assert _cli("evaluate", "--dataset", ds, "--model", r.model, "--config", TINY, "--json", r.root / "e.json") == 0
    ev = json.loads((r.root / "e.json").read_text())
    assert list(ev["recorded_patterns"]) == ["front_camera+lidar"]
    assert ev["recorded_patterns"]["front_camera+lidar"]["n"] == int((fs.split == "test").sum())
    assert {"full", "no_lidar", "drop_p0.5"} <= set(ev["scenarios"])
    capsys.readouterr()
    _live_nodes_predict_the_robots_classes(r)


def _live_nodes_predict_the_robots_classes(r) -> None:
    """The bundle in the real graph (aecf-ros run's create_nodes from the robot's params file)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image, PointCloud2

    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.msg import FusedPrediction
    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.nodes.runner import create_nodes
    from aecf_ros.sim.scene_msgs import image_msg, pointcloud2_msg

    context = rclpy.context.Context()
    rclpy.init(context=context)
    nodes = create_nodes(context, [r.params], without=["debug_view"])
    ex = SingleThreadedExecutor(context=context)
    driver = Node("robot17_driver", context=context)
    predictions = []
    driver.create_subscription(FusedPrediction, "/aecf/prediction", predictions.append, 50)
    pubs = {"front_camera": driver.create_publisher(Image, "/robot17/front/image_raw", 5),
            "lidar": driver.create_publisher(PointCloud2, "/robot17/points", 5)}
    try:
        for n in [*nodes, driver]:
            ex.add_node(n)
        assert [n.get_name() for n in nodes] == ["front_camera_encoder", "lidar_encoder", "fusion_node"]
        for n in nodes:
            assert bring_up(n), n.get_name()
        assert spin_until(ex, lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), WAIT_S)
        scene = generate_scene(3, seed=17)
        for _ in range(int(WAIT_S * 10)):
            now = driver.get_clock().now().nanoseconds * 1e-9
            pubs["front_camera"].publish(image_msg(scene.image, now))
            pubs["lidar"].publish(pointcloud2_msg(scene.points, now))
            spin_for(ex, 0.1)
            if any(all(p.modality_present) for p in predictions):
                break
        full = [p for p in predictions if all(p.modality_present)]
        assert full, [list(p.modality_present) for p in predictions[-5:]]
        assert list(full[-1].class_names) == CLASSES
        assert list(full[-1].modalities) == ["front_camera", "lidar"]
        assert all(0.0 <= s <= 1.0 for s in full[-1].scores) and len(full[-1].scores) == 3
    finally:
        ex.shutdown()
        for n in [*nodes, driver]:
            n.destroy_node()
        rclpy.shutdown(context=context)


def test_labels_from_the_file_and_from_the_topic_give_the_same_samples(robot, tmp_path):
    """make-bag's labels.csv (found in the bag directory) and its /scene/ground_truth topic."""
    topic_bag = tmp_path / "topic_only"
    shutil.copytree(robot.bags[0], topic_bag)
    (topic_bag / "labels.csv").unlink()
    (topic_bag / "classes.txt").unlink()
    out = {}
    for name, bag in (("file", robot.bags[0]), ("topic", topic_bag)):
        assert _cli("dataset", bag, "--params", robot.params, "--out", tmp_path / name, "--split", "blocks",
                    "--block", "4", "--gap", "0", "--no-progress") == 0
        with np.load(tmp_path / name / "features.npz") as z:
            out[name] = {k: z[k] for k in z.files}
        manifest = json.loads((tmp_path / name / "dataset.json").read_text())
        assert manifest["bags"][0]["labels"].endswith("labels.csv") == (name == "file")
    assert len(out["file"]["labels"]) > 100
    for key in ("labels", "stamps_ns", "emb_front_camera", "emb_lidar", "class_names", "split"):
        assert np.array_equal(out["file"][key], out["topic"][key]), key


def test_a_rerun_reuses_the_bags_shards_and_a_changed_setting_re_extracts(robot, tmp_path, capsys):
    args = ["dataset", robot.bags[0], "--params", robot.params, "--out", tmp_path / "d", "--split", "blocks",
            "--block", "4", "--no-progress"]
    assert _cli(*args) == 0
    shards = sorted((tmp_path / "d" / "shards").glob("*.npz"))
    assert len(shards) == 1
    mtime = shards[0].stat().st_mtime_ns
    capsys.readouterr()
    assert _cli(*args) == 0
    assert "cached" in capsys.readouterr().err
    assert shards[0].stat().st_mtime_ns == mtime
    # another publish rate samples other instants: a new shard, the old one untouched
    slower = tmp_path / "slower.yaml"
    slower.write_text(robot.params.read_text().replace("publish_rate_hz: 10.0", "publish_rate_hz: 5.0"))
    assert _cli(*(args[:2] + ["--params", slower] + args[4:])) == 0
    assert len(list((tmp_path / "d" / "shards").glob("*.npz"))) == 2
    manifest = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert manifest["bags"][0]["samples"] == 149  # 5 Hz over 29.9 s


def _error(capsys, *argv) -> str:
    capsys.readouterr()
    assert _cli(*argv) == 2
    return capsys.readouterr().err


def test_clear_errors(robot, tmp_path, capsys):
    bag = robot.bags[0]
    # a declared sensor the bags do not have
    rear = tmp_path / "rear.yaml"
    rear.write_text(ROBOT_WITH_REAR.format(model=robot.model))
    err = _error(capsys, "dataset", bag, "--params", rear, "--out", tmp_path / "a", "--split", "blocks",
                 "--no-progress")
    assert "no topic for declared sensor(s) rear_camera (/robot17/rear/image_raw)" in err
    assert "--allow-missing-sensors" in err
    # ... accepted when asked: it is absent in every sample
    assert _cli("dataset", bag, "--params", rear, "--out", tmp_path / "a", "--allow-missing-sensors",
                "--split", "blocks", "--block", "4", "--no-progress") == 0
    rep = json.loads((tmp_path / "a" / "dataset.json").read_text())["bags"][0]
    assert rep["presence"]["rear_camera"] == 0.0 and rep["presence"]["front_camera"] == 1.0
    # labels naming a class the class list does not have
    bad = tmp_path / "bad.csv"
    bad.write_text("offset_start,offset_end,classes\n0,2,person\n2,4,robot_dog\n")
    err = _error(capsys, "dataset", bag, "--labels", bad, "--classes", robot.root / "classes.txt", "--params",
                 robot.params, "--out", tmp_path / "b", "--split", "blocks", "--no-progress")
    assert f"{bad}:3: unknown class 'robot_dog'" in err
    # labels of another bag (outside this one's time)
    other = tmp_path / "other.csv"
    other.write_text("start,end,classes\n1600000000,1600000002,person\n")
    err = _error(capsys, "dataset", bag, "--labels", other, "--classes", robot.root / "classes.txt", "--params",
                 robot.params, "--out", tmp_path / "b", "--split", "blocks", "--no-progress")
    assert "lies outside the bag" in err
    # one bag, whole-bag splits: cannot make train / val / test
    err = _error(capsys, "dataset", bag, "--params", robot.params, "--out", tmp_path / "c", "--no-progress")
    assert "1 bag(s) cannot be split" in err and "--split blocks" in err
    assert not (tmp_path / "c").exists()  # refused before any extraction
    # bags whose camera differs (raw 300x300 vs jpeg)
    jpeg = tmp_path / "jpeg.yaml"
    jpeg.write_text(robot.params.read_text().replace("{kind: image, topic: /robot17/front/image_raw}",
                                                     "{kind: image, topic: /robot17/front/image_raw/compressed, "
                                                     "transport: compressed}"))
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag
    from aecf_ros.runtime.sensor_graph import declared_sensor_set

    jbag = tmp_path / "jpeg_bag"
    write_scene_bag(jbag, BagSpec(duration_s=4.0, scene_hold_s=1.0, camera_hz=5.0, lidar_hz=5.0, seed=5),
                    sensors=declared_sensor_set([jpeg]))
    err = _error(capsys, "dataset", bag, jbag, "--params", robot.params, "--topic-map",
                 "front_camera=/robot17/front/image_raw,/robot17/front/image_raw/compressed",
                 "--out", tmp_path / "d", "--split", "blocks", "--block", "2", "--no-progress")
    assert "sensor front_camera differs between or within bags" in err
    assert "Image rgb8 320x240" in err and "jpeg" in err
    # a damaged bag file: cut in the middle
    cut = tmp_path / "cut"
    shutil.copytree(bag, cut)
    data = next(cut.glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    err = _error(capsys, "dataset", cut, "--params", robot.params, "--out", tmp_path / "e", "--split", "blocks",
                 "--no-progress")
    assert f"{cut}: the bag file is damaged" in err and "cut short" in err and "--allow-truncated" in err
    assert not (tmp_path / "e").exists()


def test_a_model_with_other_encoders_is_refused_for_the_dataset(robot, tmp_path, capsys):
    """The dataset holds the embeddings of its encoders; a model with others would read them as noise."""
    bag = tmp_path / "default_sensors"
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag

    write_scene_bag(bag, BagSpec(duration_s=6.0, scene_hold_s=1.0, camera_hz=2.0, lidar_hz=2.0, text_hz=1.0))
    assert _cli("dataset", bag, "--out", tmp_path / "d", "--split", "blocks", "--block", "1", "--gap", "0",
                "--no-progress") == 0
    # the shipped model with its camera encoder fine-tuned a little (same widths, other weights)
    import torch

    from aecf_ros.model import load_model, save_model

    model = load_model(None, "cpu")
    with torch.no_grad():
        next(model.camera_encoder.parameters()).add_(0.01)
    model.refresh_encoder_ids()
    other = save_model(model, tmp_path / "retuned.pt")
    err = _error(capsys, "evaluate", "--dataset", tmp_path / "d", "--model", other, "--config", TINY,
                 "--json", tmp_path / "e.json")
    assert "are not the ones the dataset was embedded with" in err
    err = _error(capsys, "train", "--dataset", tmp_path / "d", "--init", other, "--config", TINY,
                 "--out", tmp_path / "m.pt")
    assert "are not the ones the dataset was embedded with" in err
