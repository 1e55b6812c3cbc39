"""Issue 18 item 3: damaged bags through evaluate-bag, the dataset and replay (live, over DDS).

Real bags (make-bag), damaged the way a robot losing power damages them (test/bag_damage.py):
torn and zeroed messages, a file damaged mid-way (an mcap chunk failing its checksum, zeroed
sqlite3 pages), a data file cut short (no footer / index). Every tool applies the one rule of aecf_ros/bag/damage.py: the damaged messages
are skipped and counted per topic and reason, the read ends at damage of the file with everything
before it used, and the run finishes with exit 0 and a summary of the counts.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bag_damage as bd
from test_nodes_support import play_in_thread
from aecf_ros import graph as T
from aecf_ros.bag.damage import UNDESERIALIZABLE, ZEROED, DamageFilter

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 15.0  # upper bound on waiting for DDS events; never asserted as a duration

#: topic -> message index -> what happens to it (camera 30, lidar 15, text 4 messages in the bag)
DAMAGE = {T.CAMERA_TOPIC: {3: bd.TORN, 8: bd.ZEROED}, T.LIDAR_TOPIC: {2: bd.TORN}, T.TEXT_TOPIC: {1: bd.ZEROED}}
EXPECTED = {T.CAMERA_TOPIC: {UNDESERIALIZABLE: 1, ZEROED: 1}, T.LIDAR_TOPIC: {UNDESERIALIZABLE: 1},
            T.TEXT_TOPIC: {ZEROED: 1}}
MODALITY_TOPIC = {"camera": T.CAMERA_TOPIC, "lidar": T.LIDAR_TOPIC, "text": T.TEXT_TOPIC}


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Intact bags of both storages, their torn+zeroed copies, and copies damaged mid-file."""
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag

    root = tmp_path_factory.mktemp("damage")
    out = {}
    for storage in ("sqlite3", "mcap"):
        intact = root / storage
        write_scene_bag(intact, BagSpec(duration_s=3.0, scene_hold_s=1.5, camera_hz=10.0, lidar_hz=5.0,
                                        text_hz=1.0, ground_truth_hz=1.0, storage=storage))
        out[storage] = intact
        assert bd.damaged_copy(intact, root / f"torn_{storage}", DAMAGE) == EXPECTED
        out[f"torn {storage}"] = root / f"torn_{storage}"
    out["mid-file mcap"] = root / "chunk_mcap"
    out["mcap damage starts ns"] = bd.corrupt_mcap_chunk(out["mcap"], out["mid-file mcap"])
    out["mid-file sqlite3"] = root / "pages_sqlite3"
    bd.zero_sqlite_pages(out["sqlite3"], out["mid-file sqlite3"], at_fraction=0.5)
    for storage in ("sqlite3", "mcap"):
        out[f"cut {storage}"] = root / f"cut_{storage}"
        bd.cut_file(out[storage], out[f"cut {storage}"], 0.5)
    return out


def _read_by_the_rule(bag):
    """(messages read, the rule's damage record) of one read of ``bag`` through the damage rule."""
    rule = DamageFilter(lambda line: None)
    return list(rule.readable(bd.iter_messages(bag))), rule.damage


def _readable_before_damage(bags, storage) -> list[tuple[str, int]]:
    """(topic, timestamp) of the messages before the file damage, found without the package's
    reader: the intact bag's messages before the damaged mcap chunk starts; for sqlite3, what
    rosbags' own reader yields from the damaged file before it raises."""
    from rosbags.rosbag2 import Reader

    if storage == "mcap":
        start = bags["mcap damage starts ns"]
        return [(m[0], m[2]) for m in bd.read_all(bags["mcap"]) if m[2] < start]
    rows = []
    with pytest.raises(Exception, match="malformed"):
        with Reader(bags["mid-file sqlite3"]) as reader:
            for conn, t, _data in reader.messages():
                rows.append((conn.topic, t))
    return rows


def _per_topic(messages) -> dict[str, int]:
    out: dict[str, int] = {}
    for topic, *_ in messages:
        out[topic] = out.get(topic, 0) + 1
    return out


def _cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "aecf_ros.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------------- the rule
def test_the_rule_skips_torn_and_zeroed_messages_counts_them_and_hands_back_the_rest(bags):
    from aecf_ros.bag.bag_io import deserialize

    logged = []
    rule = DamageFilter(logged.append)
    kept = []
    for topic, msgtype, t, raw in rule.readable(bd.read_all(bags["torn sqlite3"])):
        msg = rule.message(topic, msgtype, raw)
        if msg is not None:
            kept.append((topic, t, msg))
    assert rule.damage.messages == EXPECTED and rule.damage.truncated == ""
    # every other message is handed back exactly as recorded
    damaged = {(topic, i) for topic, idx in DAMAGE.items() for i in idx}
    seen, intact = {}, []
    for topic, msgtype, t, raw in bd.read_all(bags["sqlite3"]):
        i = seen[topic] = seen.get(topic, -1) + 1
        if (topic, i) not in damaged:
            intact.append((topic, t, deserialize(raw, msgtype)))
    assert kept == intact
    # one warning per topic and reason, naming both
    assert len(logged) == 4, logged
    assert any(T.CAMERA_TOPIC in line and "zeroed" in line for line in logged)


def test_a_damaged_file_is_read_up_to_the_damage_by_the_rule(bags):
    for storage in ("mcap", "sqlite3"):
        rule = DamageFilter(lambda line: None)
        read = [(m[0], m[2]) for m in rule.readable(bd.iter_messages(bags[f"mid-file {storage}"]))]
        expected = _readable_before_damage(bags, storage)
        assert 0 < len(expected) < len(bd.read_all(bags[storage])), storage
        assert read == expected, storage
        # and what was read is the recording itself, byte for byte
        intact = {(m[0], m[2]): m[3] for m in bd.read_all(bags[storage])}
        damaged = bd.iter_messages(bags[f"mid-file {storage}"])
        assert all(raw == intact[(topic, t)] for _, (topic, _, t, raw) in zip(expected, damaged)), storage
        assert rule.damage.truncated and rule.damage.truncated_after_ns == expected[-1][1]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_data_file_cut_short_is_read_up_to_the_cut(bags, storage):
    """A recording that never closed its file (rosbags cannot open it: no mcap footer, a sqlite3
    file shorter than its header says) is read as far as it goes (aecf_ros/bag/salvage.py)."""
    read, damage = _read_by_the_rule(bags[f"cut {storage}"])
    intact = bd.read_all(bags[storage])
    assert 0 < len(read) < len(intact)
    assert read == intact[:len(read)]  # the recording itself, in its order, up to the cut
    assert "cut short" in damage.truncated and damage.truncated_after_ns == read[-1][2]
    # nearly everything before the cut is read: mcap loses at most the chunk the cut went through
    # (rosbags writes 1 MiB chunks), sqlite3 at most the message whose pages it went through
    lost = bd.data_file(bags[f"cut {storage}"]).stat().st_size - sum(len(m[3]) for m in read)
    largest = max(len(m[3]) for m in intact)
    assert lost <= (2**20 if storage == "mcap" else 0) + 2 * largest, lost


def test_a_file_cut_before_any_message_is_still_a_clear_error(tmp_path, bags):
    from aecf_ros.bag.bag_io import BagError, BagReader

    for storage in ("mcap", "sqlite3"):
        bd.cut_file(bags[storage], tmp_path / storage, 0.002)
        with pytest.raises(BagError, match="cannot open bag"):
            with BagReader(tmp_path / storage):
                pass


# ------------------------------------------------------------------------------ evaluate-bag
def test_evaluate_bag_finishes_on_torn_and_zeroed_messages_and_reports_them_per_topic(tmp_path, bags):
    out_json = tmp_path / "torn.json"
    proc = _cli("evaluate-bag", bags["torn sqlite3"], "--model", "untrained", "--json", out_json)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out_json.read_text())
    assert doc["damaged_messages"] == EXPECTED and doc["truncated"] == ""
    assert f"{T.CAMERA_TOPIC}: skipped 1 undeserializable, 1 zeroed" in proc.stdout
    assert f"{T.TEXT_TOPIC}: skipped 1 zeroed" in proc.stdout
    # the zeroed image never reached the encoder (it would be an empty image: a conversion drop)
    assert not [r for r in doc["input_drops"]["camera"] if not r.startswith("fusion:")], doc["input_drops"]
    assert doc["overall"]["presence"]["camera"] > 0.8 and doc["overall"]["presence"]["lidar"] > 0.8


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_evaluate_bag_reads_a_file_damaged_mid_way_up_to_the_damage(bags, storage):
    from aecf_ros.apps.evaluate_bag import evaluate_bag, load_model_for_eval, report
    from aecf_ros.runtime.drop_plan import build_plan

    expected = _per_topic(_readable_before_damage(bags, storage))
    last_ns = _readable_before_damage(bags, storage)[-1][1]
    model, name = load_model_for_eval("untrained", log=lambda *_: None)
    ev = evaluate_bag(bags[f"mid-file {storage}"], build_plan(), model, name, log=lambda *_: None)
    doc = report(ev)
    assert doc["truncated"] and doc["damaged_messages"] == {}
    # every message before the damage went through (the plan sees each one it is given)
    assert doc["plan_counters"]["passed"] == {m: expected[t] for m, t in MODALITY_TOPIC.items() if t in expected}
    assert doc["truncated_after_s"] == pytest.approx((last_ns - ev.start_ns) / 1e9)
    # the timeline ends where the readable part ends: no invented absence after it
    assert ev.ticks and ev.ticks[-1].t <= doc["truncated_after_s"] + 1e-9
    assert ev.ticks[-1].t > doc["truncated_after_s"] - 0.2


def test_evaluate_bag_reads_a_data_file_cut_short_up_to_the_cut(tmp_path, bags):
    read, _ = _read_by_the_rule(bags["cut sqlite3"])
    out_json = tmp_path / "cut.json"
    proc = _cli("evaluate-bag", bags["cut sqlite3"], "--model", "untrained", "--json", out_json)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out_json.read_text())
    assert "cut short" in doc["truncated"] and "bag file damaged: read up to the damage after" in proc.stdout
    counts = _per_topic(read)
    assert doc["plan_counters"]["passed"] == {m: counts[t] for m, t in MODALITY_TOPIC.items() if t in counts}


# ----------------------------------------------------------------------------------- dataset
def test_dataset_skips_damaged_messages_and_keeps_a_damaged_files_samples_up_to_the_damage(tmp_path, bags,
                                                                                          capsys):
    import numpy as np

    from aecf_ros.cli import main

    args = ["--split", "blocks", "--block", "1", "--gap", "0", "--no-progress"]
    assert main(["dataset", str(bags["torn mcap"]), "--out", str(tmp_path / "torn"), *args]) == 0
    rep = json.loads((tmp_path / "torn" / "dataset.json").read_text())["bags"][0]
    assert rep["damaged_messages"] == EXPECTED and rep["truncated"] == ""
    assert f"{T.LIDAR_TOPIC}: skipped 1 undeserializable" in capsys.readouterr().out
    # a file damaged mid-way: refused unless asked, then its samples up to the damage
    damaged = str(bags["mid-file mcap"])
    assert main(["dataset", damaged, "--out", str(tmp_path / "cut"), *args]) == 2
    assert "--allow-truncated" in capsys.readouterr().err
    assert main(["dataset", damaged, "--out", str(tmp_path / "cut"), "--allow-truncated", *args]) == 0
    rep = json.loads((tmp_path / "cut" / "dataset.json").read_text())["bags"][0]
    assert "checksum" in rep["truncated"] and rep["truncated_after_ns"] < bags["mcap damage starts ns"]
    with np.load(tmp_path / "cut" / "features.npz") as z:
        stamps = z["stamps_ns"]
    assert len(stamps) and stamps.max() <= rep["truncated_after_ns"]
    assert "bag file damaged: read up to the damage after" in capsys.readouterr().out
    # a data file cut short, likewise
    assert main(["dataset", str(bags["cut sqlite3"]), "--out", str(tmp_path / "short"), "--allow-truncated",
                 *args, "--block", "0.2"]) == 0  # ~1.4 s are readable: short blocks to split
    rep = json.loads((tmp_path / "short" / "dataset.json").read_text())["bags"][0]
    assert "cut short" in rep["truncated"] and rep["samples"] > 0


# ------------------------------------------------------------------------------------ replay
def test_replay_command_finishes_on_a_damaged_bag_and_prints_the_counts(bags):
    proc = _cli("replay", bags["torn mcap"], "--preroll", "0", "--rate", "10", "--no-clock")
    assert proc.returncode == 0, proc.stderr
    assert f"{T.CAMERA_TOPIC}: skipped 1 undeserializable, 1 zeroed" in proc.stderr
    assert f"{T.LIDAR_TOPIC}: skipped 1 undeserializable" in proc.stderr
    published = {line.split()[0]: int(line.split()[1]) for line in proc.stderr.splitlines()
                 if line.strip().endswith(" published")}
    assert published == {T.CAMERA_TOPIC: 28, T.LIDAR_TOPIC: 14, T.TEXT_TOPIC: 3, T.GROUND_TRUTH_TOPIC: 4}
    proc = _cli("replay", bags["mid-file sqlite3"], "--preroll", "0", "--rate", "10", "--no-clock")
    assert proc.returncode == 0, proc.stderr
    assert "bag file damaged: read up to the damage after" in proc.stderr and "malformed" in proc.stderr
    # a data file cut short: played up to the cut
    proc = _cli("replay", bags["cut mcap"], "--preroll", "0", "--rate", "10", "--no-clock")
    assert proc.returncode == 0, proc.stderr
    assert "cut short" in proc.stderr
    published = {line.split()[0]: int(line.split()[1]) for line in proc.stderr.splitlines()
                 if line.strip().endswith(" published")}
    assert published == _per_topic(_read_by_the_rule(bags["cut mcap"])[0])


def _replay_to_listener(bag):
    """Replay ``bag`` with the real replayer over DDS to a listener subscribed (raw bytes) to its
    topics; returns (replayer, {topic: [bytes received]})."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile

    from aecf_ros.apps.replay import BagReplayer
    from aecf_ros.bag.bag_io import BagReader, message_class

    with BagReader(bag) as reader:
        topics = {t.name: t.msgtype for t in reader.info().topics}
    context = rclpy.context.Context()
    rclpy.init(context=context)
    received = {t: [] for t in topics}
    errors, node, executor, thread = [], None, None, None
    try:
        node = rclpy.create_node("damage_listener", context=context)
        for topic, msgtype in topics.items():
            node.create_subscription(message_class(msgtype), topic, received[topic].append, QoSProfile(depth=100),
                                     raw=True)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        replayer = BagReplayer(bag, context=context, delay_s=0.5, rate=2.0, clock=False, log=lambda *_: None,
                               wait_for=list(topics), wait_timeout_s=60.0)

        thread, errors = play_in_thread(replayer)  # what it raises lands in errors
        while thread.is_alive():
            executor.spin_once(timeout_sec=0.02)
        total = sum(replayer.stats.published.values())
        end = time.monotonic() + WAIT_S
        while time.monotonic() < end and sum(map(len, received.values())) < total:
            executor.spin_once(timeout_sec=0.02)
    finally:
        if thread is not None:
            replayer.stop.set()
            thread.join(timeout=30)
        if executor is not None:
            executor.remove_node(node)
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.shutdown(context=context)
    assert not errors, errors
    return replayer, received


@pytest.mark.ros
def test_live_replay_publishes_every_undamaged_message_and_counts_the_damaged_ones(bags):
    replayer, received = _replay_to_listener(bags["torn sqlite3"])
    assert replayer.stats.damage.messages == EXPECTED and replayer.stats.damage.truncated == ""
    damaged = {(topic, i) for topic, idx in DAMAGE.items() for i in idx}
    seen, expected = {}, {}
    for topic, _, _, raw in bd.read_all(bags["torn sqlite3"]):
        i = seen[topic] = seen.get(topic, -1) + 1
        if (topic, i) not in damaged:
            expected.setdefault(topic, []).append(raw)
    # what the subscribers got is exactly the undamaged messages, byte for byte, in order
    assert {t: [bytes(b) for b in r] for t, r in received.items()} == expected
    assert replayer.stats.published == {t: len(r) for t, r in expected.items()}


@pytest.mark.ros
def test_live_replay_of_a_file_damaged_mid_way_plays_up_to_the_damage(bags):
    replayer, received = _replay_to_listener(bags["mid-file mcap"])
    expected = _per_topic(_readable_before_damage(bags, "mcap"))
    assert "checksum" in replayer.stats.damage.truncated
    assert replayer.stats.published == expected
    assert {t: len(r) for t, r in received.items() if r} == expected
