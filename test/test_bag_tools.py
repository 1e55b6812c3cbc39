"""make-bag, bag reading, evaluate-bag: content, storage formats, and clear errors on bad bags."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aecf_ros import graph as T
from aecf_ros.bag.bag_io import BagError, BagReader, deserialize
from aecf_ros.apps.make_bag import BagSpec, write_scene_bag

REPO = Path(__file__).resolve().parents[1]


def _spec(**kw):
    base = dict(duration_s=3.0, scene_hold_s=1.5, camera_hz=10.0, lidar_hz=5.0, text_hz=1.0, ground_truth_hz=1.0)
    base.update(kw)
    return BagSpec(**base)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    out = {}
    for storage in ("mcap", "sqlite3"):
        out[storage] = root / storage
        write_scene_bag(out[storage], _spec(storage=storage))
    return out


def _read_all(path):
    with BagReader(path) as bag:
        info = bag.info()
        return info, list(bag.messages())


def test_both_storage_formats_hold_identical_messages(bags):
    (info_m, msgs_m), (info_s, msgs_s) = _read_all(bags["mcap"]), _read_all(bags["sqlite3"])
    assert (info_m.storage, info_s.storage) == ("mcap", "sqlite3")
    # same topics, types and timestamps in the same order, and the same message content
    # (not the same bytes: rclpy's CDR serializer leaves alignment padding uninitialised)
    assert [m[:3] for m in msgs_m] == [m[:3] for m in msgs_s]
    for (_, msgtype, _, raw_m), (_, _, _, raw_s) in zip(msgs_m, msgs_s):
        assert deserialize(raw_m, msgtype) == deserialize(raw_s, msgtype)
    assert {t.name: t.count for t in info_m.topics} == {
        T.CAMERA_TOPIC: 30, T.LIDAR_TOPIC: 15, T.TEXT_TOPIC: 4, T.GROUND_TRUTH_TOPIC: 4}


def test_metadata_is_what_ros2_bag_info_reads(bags):
    import yaml

    meta = yaml.safe_load((bags["mcap"] / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == "mcap"  # the version every distro reads
    assert meta["relative_file_paths"] == ["mcap.mcap"] and (bags["mcap"] / "mcap.mcap").is_file()
    for entry in meta["topics_with_message_count"]:
        topic = entry["topic_metadata"]
        assert topic["serialization_format"] == "cdr"
        assert topic["type_description_hash"].startswith("RIHS01_")
        assert yaml.safe_load(topic["offered_qos_profiles"])[0]["reliability"] == 1  # RMW_QOS_..._RELIABLE
    # the hashes are those rclpy's type support reports (checked for Image)
    image = next(e for e in meta["topics_with_message_count"] if e["topic_metadata"]["name"] == T.CAMERA_TOPIC)
    assert image["topic_metadata"]["type_description_hash"] == \
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47"


def _rosbag2_decode(meta: dict, distro: str) -> None:
    """What each distro's rosbag2_storage decodes from metadata.yaml, field by field (Humble:
    rosbag2_storage/src/rosbag2_storage/metadata_io.cpp; Jazzy and Kilted/rolling:
    include/rosbag2_storage/yaml.hpp, identical there; Humble's QoS: rosbag2_transport/qos.cpp).
    Raises AssertionError where that decoder would throw (yaml-cpp's TypedBadConversion)."""
    import yaml

    def scalar(v, kind=str):
        assert v is not None and not isinstance(v, (list, dict)), f"not a scalar: {v!r}"
        return kind(v)

    version = scalar(meta["version"], int)
    scalar(meta["storage_identifier"])
    scalar(meta["duration"]["nanoseconds"], int)
    scalar(meta["starting_time"]["nanoseconds_since_epoch"], int)
    scalar(meta["message_count"], int)
    assert isinstance(meta["topics_with_message_count"], list)
    for entry in meta["topics_with_message_count"]:
        topic = entry["topic_metadata"]
        for key in ("name", "type", "serialization_format"):
            scalar(topic[key])
        scalar(entry["message_count"], int)
        qos = topic["offered_qos_profiles"]
        if distro == "humble" or version < 9:
            if version >= 4:
                text = scalar(qos)  # one YAML string of the profiles
                profiles = yaml.safe_load(text) if text else []
                for p in profiles if distro == "humble" else []:
                    for key in ("history", "reliability", "durability", "liveliness", "depth"):
                        scalar(p[key], int)
                    for key in ("deadline", "lifespan", "liveliness_lease_duration"):
                        scalar(p[key]["sec"], int), scalar(p[key]["nsec"], int)
                    assert isinstance(p["avoid_ros_namespace_conventions"], bool)
        else:
            assert isinstance(qos, list), f"version 9 QoS must be a list: {qos!r}"
        if distro != "humble" and version >= 7:
            scalar(topic["type_description_hash"])
    assert all(isinstance(p, str) for p in meta["relative_file_paths"])
    if version >= 3:
        scalar(meta["compression_format"]), scalar(meta["compression_mode"])
    if version >= 5:
        for f in meta["files"]:
            scalar(f["path"]), scalar(f["starting_time"]["nanoseconds_since_epoch"], int)
            scalar(f["duration"]["nanoseconds"], int), scalar(f["message_count"], int)
    if distro != "humble":
        if version >= 6:
            assert all(isinstance(v, str) for v in (meta["custom_data"] or {}).values())
        if version >= 8:
            scalar(meta["ros_distro"])


def test_make_bag_writes_a_rosbag2_version_humble_jazzy_and_kilted_all_read(tmp_path, bags):
    """Issue 20 item 4: make-bag's default (version 8) decodes under each distro's reader; version
    9 (the QoS profiles as a YAML list) decodes under Jazzy/Kilted but not Humble's, which is why
    it is not the default."""
    import pytest
    import yaml

    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag

    for storage in ("mcap", "sqlite3"):
        meta = yaml.safe_load((bags[storage] / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        for distro in ("humble", "jazzy", "kilted"):
            _rosbag2_decode(meta, distro)
    v9 = tmp_path / "v9"
    write_scene_bag(v9, BagSpec(duration_s=1.0, version=9))
    meta = yaml.safe_load((v9 / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9
    for distro in ("jazzy", "kilted"):
        _rosbag2_decode(meta, distro)
    with pytest.raises(AssertionError, match="not a scalar"):
        _rosbag2_decode(meta, "humble")
    with pytest.raises(ValueError, match="rosbag2 version"):
        write_scene_bag(tmp_path / "v7", BagSpec(duration_s=1.0, version=7))


def test_header_stamps_equal_bag_times_and_scenes_are_held(bags):
    from aecf_ros.data.classes import CLASS_NAMES
    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.runtime.conversions import image_msg_to_rgb, pointcloud_msg_to_xyzi
    from aecf_ros.runtime.stamps import stamp_to_ns
    from aecf_ros.sim.scene_msgs import labels_from_ground_truth

    info, msgs = _read_all(bags["mcap"])
    start = info.start_ns
    truths = []
    for topic, msgtype, t_ns, raw in msgs:
        msg = deserialize(raw, msgtype)
        if hasattr(msg, "header"):
            assert stamp_to_ns(msg.header.stamp) == t_ns
        if topic == T.GROUND_TRUTH_TOPIC:
            truths.append(((t_ns - start) / 1e9, *labels_from_ground_truth(msg, CLASS_NAMES)))
        if topic == T.CAMERA_TOPIC and t_ns == start:
            first_image = image_msg_to_rgb(msg)
        if topic == T.LIDAR_TOPIC and t_ns == start:
            first_cloud = pointcloud_msg_to_xyzi(msg)
    # scenes change every 1.5 s: truth at 0 and 1 s is scene 0, at 1.5 s scene 1, ...
    assert [(round(t, 3), i) for t, _, i in truths] == [(0.0, 0), (1.0, 0), (1.5, 1), (2.0, 1)]
    scene0 = generate_scene(0, 0)
    np.testing.assert_array_equal(truths[0][1], scene0.labels)
    assert np.abs(first_image.astype(int) - scene0.image.astype(int)).max() <= 4  # + sensor noise
    assert first_cloud.shape == scene0.points.shape
    assert np.abs(first_cloud[:, :3] - scene0.points[:, :3]).max() < 0.1  # + jitter


def test_compressed_bag_has_jpeg_camera(tmp_path):
    path = tmp_path / "c"
    write_scene_bag(path, _spec(duration_s=1.0, compressed=True))
    info, msgs = _read_all(path)
    assert info.topic(T.COMPRESSED_CAMERA_TOPIC).msgtype == "sensor_msgs/msg/CompressedImage"
    assert info.topic(T.CAMERA_TOPIC) is None


def test_make_bag_refuses_to_overwrite_and_bad_settings(tmp_path, bags):
    with pytest.raises(BagError, match="exists already"):
        write_scene_bag(bags["mcap"], _spec())
    with pytest.raises(ValueError, match="duration"):
        write_scene_bag(tmp_path / "x", _spec(duration_s=0))


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "aecf_ros.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _broken_bags(tmp_path, bags):
    import shutil

    out = {}
    for storage in ("mcap", "sqlite3"):
        src = bags[storage]
        data = next(p for p in src.iterdir() if p.suffix in (".mcap", ".db3"))  # not labels.csv, classes.txt
        truncated = tmp_path / f"truncated_{storage}"
        shutil.copytree(src, truncated)
        f = truncated / data.name
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
        out[f"truncated {storage}"] = truncated
        nothing = tmp_path / f"cut_to_nothing_{storage}"
        shutil.copytree(src, nothing)
        (nothing / data.name).write_bytes(data.read_bytes()[:64])
        out[f"cut to nothing {storage}"] = nothing
        garbage = tmp_path / f"garbage_{storage}"
        shutil.copytree(src, garbage)
        (garbage / data.name).write_bytes(b"\0not a bag\0" * 1000)
        out[f"garbage {storage}"] = garbage
    no_meta = tmp_path / "no_metadata"
    shutil.copytree(bags["mcap"], no_meta)
    (no_meta / "metadata.yaml").unlink()
    out["no metadata"] = no_meta
    bad_yaml = tmp_path / "bad_yaml"
    shutil.copytree(bags["mcap"], bad_yaml)
    (bad_yaml / "metadata.yaml").write_text("rosbag2_bagfile_information: [oops\n")
    out["bad metadata"] = bad_yaml
    out["missing"] = tmp_path / "does_not_exist"
    return out


def test_broken_bags_raise_bag_error_not_tracebacks(tmp_path, bags):
    for what, path in _broken_bags(tmp_path, bags).items():
        with pytest.raises(BagError) as info:
            with BagReader(path) as bag:
                for _ in bag.messages():
                    pass
        assert str(path) in str(info.value), what


@pytest.mark.parametrize("command", ["evaluate-bag", "replay"])
def test_cli_reports_broken_bags_with_exit_code_and_no_traceback(tmp_path, bags, command):
    broken = _broken_bags(tmp_path, bags)
    # a file cut short is read up to the cut (test_bag_damage.py); one cut before any message is not
    for what in ("cut to nothing sqlite3", "garbage mcap", "no metadata", "missing"):
        extra = ["--model", "untrained"] if command == "evaluate-bag" else ["--preroll", "0", "--rate", "100"]
        env_cmd = [command, broken[what], *extra]
        proc = _cli(*env_cmd)
        assert proc.returncode != 0, (what, proc.stdout, proc.stderr)
        assert "error:" in proc.stderr and "Traceback" not in proc.stderr, (what, proc.stderr)


def test_unknown_topic_type_is_a_clear_error(tmp_path):
    """A bag whose camera topic carries a type the encoders cannot take / a type not installed."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    path = tmp_path / "odd"
    with Writer(path, version=9) as writer:
        conn = writer.add_connection(T.CAMERA_TOPIC, "std_msgs/msg/Int32", typestore=store)
        writer.write(conn, 1, store.serialize_cdr(store.types["std_msgs/msg/Int32"](data=3), "std_msgs/msg/Int32"))
        custom = "my_robot_msgs/msg/Blob"
        conn2 = writer.add_connection("/blob", custom, msgdef="uint8[] data", rihs01="RIHS01_" + "0" * 64)
        writer.write(conn2, 2, b"\x00\x01\x00\x00\x00\x00\x00\x00")
    proc = _cli("evaluate-bag", path, "--model", "untrained")
    assert proc.returncode == 1 and "std_msgs/msg/Int32" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("replay", path, "--preroll", "0")
    assert proc.returncode == 1 and "my_robot_msgs/msg/Blob" in proc.stderr and "--skip-unknown" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_drop_spec_on_the_command_line_exits_2(bags):
    proc = _cli("replay", bags["mcap"], "--drop", "lidar@5-1")
    assert proc.returncode == 2 and "END must be greater" in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_bag_reports_phases_metrics_and_plot(tmp_path, bags):
    out_json, out_png = tmp_path / "r.json", tmp_path / "t.png"
    proc = _cli("evaluate-bag", bags["sqlite3"], "--model", "untrained", "--drop", "lidar@1-2",
                "--json", out_json, "--plot", out_png)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out_json.read_text())
    assert [p["name"] for p in doc["phases"]] == ["nominal", "drop lidar@1-2", "nominal"]
    assert doc["has_ground_truth"] and doc["overall"]["micro_f1"] is not None
    assert doc["ground_truth_dropped"] == 0  # every ground-truth message in the bag was read
    dropped = doc["phases"][1]
    # lidar is gone after its timeout (0.4 s default) and stays gone to the end of the window
    assert dropped["presence"]["lidar"] <= 0.5 and doc["phases"][0]["presence"]["camera"] > 0.9
    assert doc["plan_counters"]["dropped"]["lidar"] == 5
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # deterministic: a second run gives the same timeline
    again = tmp_path / "r2.json"
    assert _cli("evaluate-bag", bags["sqlite3"], "--model", "untrained", "--drop", "lidar@1-2",
                "--json", again).returncode == 0
    assert json.loads(again.read_text())["timeline"] == doc["timeline"]


def test_evaluate_bag_without_labels_still_gives_the_timeline(tmp_path, bags):
    """A user's bag with no ground truth: presence and weights only."""
    from aecf_ros.apps.evaluate_bag import evaluate_bag, load_model_for_eval, report
    from aecf_ros.runtime.drop_plan import build_plan

    model, name = load_model_for_eval("untrained", log=lambda *_: None)
    ev = evaluate_bag(bags["mcap"], build_plan(stalls=["text@1"]), model, name,
                      ground_truth_topic="/no/such/topic", log=lambda *_: None)
    doc = report(ev)
    assert not doc["has_ground_truth"] and "micro_f1" not in doc["overall"]
    assert len(doc["timeline"]) == 29 and all(t["truth"] is None for t in doc["timeline"])
    assert doc["phases"][1]["name"] == "stall text@1"


def test_evaluate_bag_failed_encoding_is_counted_and_never_fused_as_zeros(bags):
    """A lidar encoder that emits NaN: each failure is counted, and the lidar is absent from
    every output (the live node publishes nothing for such a sample), never fused as a
    placeholder of zeros."""
    import torch

    from aecf_ros.apps.evaluate_bag import evaluate_bag, load_model_for_eval, report
    from aecf_ros.runtime.drop_plan import build_plan

    model, name = load_model_for_eval("untrained", log=lambda *_: None)
    real_encode = model.encode

    def broken_lidar(modality, raw):
        out = real_encode(modality, raw)
        return torch.full_like(out, float("nan")) if modality == "lidar" else out

    model.encode = broken_lidar
    doc = report(evaluate_bag(bags["mcap"], build_plan(), model, name, log=lambda *_: None))
    assert doc["input_drops"]["lidar"].get("non_finite_embedding", 0) > 0
    assert doc["timeline"] and not any(t["present"]["lidar"] for t in doc["timeline"])
    assert any(t["present"]["camera"] for t in doc["timeline"])


def _damaged_copy(src, dst, change):
    """``src`` rewritten to ``dst`` with ``change(topic, msgtype, index, raw) -> raw`` applied to
    every message (index counts per topic)."""
    from rosbags.rosbag2 import Reader, Writer

    from aecf_ros.bag.bag_io import typestore

    store, seen = typestore(), {}
    with Reader(src) as reader, Writer(dst, version=9) as writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=store) for c in reader.connections}
        for conn, t, raw in reader.messages():
            i = seen[conn.topic] = seen.get(conn.topic, -1) + 1
            writer.write(conns[conn.id], t, change(conn.topic, conn.msgtype, i, bytes(raw)))


def test_evaluate_bag_counts_bad_stamps_like_the_live_nodes(tmp_path, bags):
    """Issue 18 item 1: a camera image with a negative header.stamp.sec (or nanosec >= 1e9) is a
    counted ``bad_stamp`` drop offline too (live: test_reliability_catalogue), and the run finishes."""
    from rclpy.serialization import serialize_message

    from aecf_ros.apps.evaluate_bag import evaluate_bag, load_model_for_eval, report
    from aecf_ros.runtime.drop_plan import build_plan

    def restamp(topic, msgtype, i, raw):
        if topic != T.CAMERA_TOPIC or i % 3:
            return raw
        msg = deserialize(raw, msgtype)
        msg.header.stamp.sec, msg.header.stamp.nanosec = (-3, 0) if i % 2 else (msg.header.stamp.sec, 1_200_000_000)
        return serialize_message(msg)

    damaged = tmp_path / "bad_stamps"
    _damaged_copy(bags["sqlite3"], damaged, restamp)
    model, name = load_model_for_eval("untrained", log=lambda *_: None)
    doc = report(evaluate_bag(damaged, build_plan(), model, name, log=lambda *_: None))
    assert doc["input_drops"]["camera"].get("bad_stamp") == 10  # frames 0, 3, ..., 27 of 30
    assert "stamp_behind" not in doc["input_drops"]["camera"]
    assert any(t["present"]["camera"] for t in doc["timeline"])


def test_evaluate_bag_skips_torn_messages_counts_them_and_finishes(tmp_path, bags):
    """Issue 18 item 3: a message that cannot be deserialized (a torn write) is skipped and counted
    per topic; the report is still written (it used to stop the whole evaluation)."""
    def tear(topic, msgtype, i, raw):
        return raw[:9] if topic == T.LIDAR_TOPIC and i in (2, 7) else raw

    damaged = tmp_path / "torn"
    _damaged_copy(bags["sqlite3"], damaged, tear)
    out_json = tmp_path / "torn.json"
    proc = _cli("evaluate-bag", damaged, "--model", "untrained", "--json", out_json)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out_json.read_text())
    assert doc["damaged_messages"] == {T.LIDAR_TOPIC: {"undeserializable": 2}} and doc["truncated"] == ""
    assert f"{T.LIDAR_TOPIC}: skipped 2 undeserializable" in proc.stdout
    assert doc["overall"]["presence"]["lidar"] > 0.5  # the other 13 clouds are fused
