"""Drop plans: parsing (CLI and YAML), clear errors, and what the applier does to a stream."""
import math

import pytest

from aecf_ros.runtime import cdr_stamp
from aecf_ros.runtime import drop_plan as dp


def test_window_drop_parses_to_half_open_window():
    (event,) = dp.parse_spec("drop", "lidar@10-25")
    assert (event.kind, event.modality, event.start, event.end) == ("drop", "lidar", 10.0, 25.0)
    assert event.active(10.0) and event.active(24.999) and not event.active(25.0)


def test_every_cli_form_parses():
    plan = dp.build_plan(
        drops=["camera:p=0.3", "camera,text@5-6", "lidar:p=0.5@1-2:seed=9"],
        stalls=["text@30"],
        delays=["lidar:0.2", "camera:0.1@3-4"],
        freezes=["camera@40-45", "lidar@1-2:restamp"],
    )
    kinds = [(e.kind, e.modality) for e in plan.events]
    assert kinds == [
        ("random", "camera"), ("drop", "camera"), ("drop", "text"), ("random", "lidar"),
        ("stall", "text"), ("delay", "lidar"), ("delay", "camera"), ("freeze", "camera"), ("freeze", "lidar"),
    ]
    random_lidar = plan.events[3]
    assert (random_lidar.p, random_lidar.seed, random_lidar.start, random_lidar.end) == (0.5, 9, 1.0, 2.0)
    assert plan.events[4].start == 30 and math.isinf(plan.events[4].end)
    assert plan.events[5].delay_s == 0.2 and plan.events[8].restamp


@pytest.mark.parametrize(
    "kind,spec,message",
    [
        ("drop", "lidar", "needs a window"),
        ("drop", "lidar@25-10", "END must be greater"),
        ("drop", "lidar@ten-20", "bad time window"),
        ("drop", "camera:p=1.5", r"\[0, 1\]"),
        ("drop", "camera:q=0.5", "unknown option"),
        ("drop", "sonar@1-2", "unknown modality 'sonar'"),
        ("drop", "", "empty"),
        ("drop", "lidar@1-2@3-4", "more than one"),
        ("stall", "text", "MOD@TIME"),
        ("delay", "lidar", "MOD:SECONDS"),
        ("delay", "lidar:-1", "bad delay"),
        ("freeze", "camera", "needs a window"),
        ("freeze", "camera@1-2:wobble", "unknown option"),
        ("explode", "camera@1-2", "unknown plan action"),
    ],
)
def test_bad_specs_give_errors_that_say_what_is_wrong(kind, spec, message):
    with pytest.raises(dp.DropPlanError, match=message):
        if kind in ("drop", "stall", "delay", "freeze"):
            dp.build_plan(**{kind + "s" if kind != "delay" else "delays": [spec]})
        else:
            dp.parse_spec(kind, spec)


def test_yaml_plan_accepts_strings_and_mappings(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(
        "seed: 4\n"
        "topics: {lidar: /velodyne_points}\n"
        "drop: ['lidar@10-25']\n"
        "events:\n"
        "  - {type: stall, modality: text, at: 30}\n"
        "  - {type: drop, modality: camera, p: 0.3}\n"
        "  - {type: freeze, modality: [camera], start: 40, end: 45, restamp: true}\n"
        "  - {delay: 'lidar:0.2'}\n"
    )
    plan = dp.build_plan(plan_file=path, drops=["camera@1-2"])
    assert plan.seed == 4
    assert plan.modality_of("/velodyne_points") == "lidar" and plan.modality_of("/lidar/points") is None
    assert [e.kind for e in plan.events] == ["drop", "stall", "random", "freeze", "delay", "drop"]
    assert plan.events[3].restamp


@pytest.mark.parametrize(
    "text,message",
    [
        ("- a\n- b\n", "mapping at the top level"),
        ("drops: ['lidar@1-2']\n", "unknown keys"),
        ("events:\n  - {type: drop, modality: lidar}\n", "needs start/end"),
        ("events:\n  - {type: vanish, modality: lidar}\n", "unknown event type"),
        ("events:\n  - {type: drop, modality: lidar, start: 1, end: 2, colour: red}\n", "unknown keys"),
        ("seed: abc\n", "seed must be an integer"),
        ("drop: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml_plans_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(dp.DropPlanError, match=message):
        dp.load_plan(path)
    with pytest.raises(dp.DropPlanError, match="cannot read plan file"):
        dp.load_plan(tmp_path / "missing.yaml")


def test_topic_map_moves_a_modality_and_rejects_relative_names():
    plan = dp.build_plan(drops=["camera@0-1"], topic_map=["camera=/front/image,/front/image/compressed"])
    assert plan.modality_of("/front/image/compressed") == "camera"
    with pytest.raises(dp.DropPlanError, match="absolute"):
        dp.build_plan(topic_map=["camera=front"])
    with pytest.raises(dp.DropPlanError, match="MODALITY="):
        dp.build_plan(topic_map=["/front/image"])


def _run(plan, topic, times):
    applier = dp.PlanApplier(plan)
    out = []
    for i, t in enumerate(times):
        out += [(t, e) for e in applier.process(topic, t, f"msg{i}")]
    return applier, out


def test_window_drop_and_stall_remove_exactly_the_planned_messages():
    plan = dp.build_plan(drops=["lidar@1-2"], stalls=["lidar@3"])
    times = [i * 0.1 for i in range(40)]
    applier, out = _run(plan, "/lidar/points", times)
    kept = [round(t, 3) for t, _ in out]
    assert kept == [round(t, 3) for t in times if not (1.0 <= t < 2.0 or t >= 3.0)]
    assert applier.counters.dropped["lidar"] == 40 - len(kept)
    assert all(plan.planned_absent("lidar", t) for t in (1.0, 1.5, 3.0, 99.0))
    assert not plan.planned_absent("lidar", 2.0)
    # other modalities and unmapped topics pass untouched
    assert len(_run(plan, "/camera/image_raw", times)[1]) == 40
    assert len(_run(plan, "/scene/ground_truth", times)[1]) == 40


def test_random_drop_is_seeded_and_close_to_p():
    times = [i / 30 for i in range(3000)]
    plan = dp.build_plan(drops=["camera:p=0.3"], seed=1)
    first = [e.payload for _, e in _run(plan, "/camera/image_raw", times)[1]]
    again = [e.payload for _, e in _run(plan, "/camera/image_raw", times)[1]]
    other = [e.payload for _, e in _run(dp.build_plan(drops=["camera:p=0.3"], seed=2), "/camera/image_raw", times)[1]]
    assert first == again and first != other
    assert 0.66 < len(first) / 3000 < 0.74


def test_delay_shifts_publish_time_and_keeps_payload():
    plan = dp.build_plan(delays=["lidar:0.25"])
    _, out = _run(plan, "/lidar/points", [0.0, 0.1])
    assert [(e.time, e.payload, e.action) for _, e in out] == [(0.25, "msg0", "delay"), (0.35, "msg1", "delay")]


def test_freeze_repeats_the_last_frame_before_the_window():
    plan = dp.build_plan(freezes=["camera@1-2"])
    _, out = _run(plan, "/camera/image_raw", [0.5, 0.9, 1.0, 1.5, 2.0])
    assert [e.payload for _, e in out] == ["msg0", "msg1", "msg1", "msg1", "msg4"]
    assert [e.action for _, e in out][2:4] == ["freeze", "freeze"]
    assert all(e.restamp_ns is None for _, e in out)
    # restamp carries the stamp of the message the frozen copy replaces
    applier = dp.PlanApplier(dp.build_plan(freezes=["camera@1-2:restamp"]))
    applier.process("/camera/image_raw", 0.5, "a", stamp_ns=500)
    (e,) = applier.process("/camera/image_raw", 1.5, "b", stamp_ns=1500)
    assert (e.payload, e.restamp_ns) == ("a", 1500)


def test_phases_split_the_timeline_at_event_boundaries():
    plan = dp.build_plan(drops=["lidar@10-25"], stalls=["text@30"])
    phases = plan.phases(40.0)
    assert [(p.name, p.start, p.end) for p in phases] == [
        ("nominal", 0.0, 10.0), ("drop lidar@10-25", 10.0, 25.0), ("nominal", 25.0, 30.0), ("stall text@30", 30.0, 40.0),
    ]
    assert phases[1].absent == {"lidar"} and phases[3].absent == {"text"}


def test_cdr_header_stamp_is_read_and_rewritten_in_place():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 7, 123
    msg.encoding = "rgb8"
    data = serialize_message(msg)
    assert cdr_stamp.cdr_header_stamp_ns(data) == 7_000_000_123
    back = deserialize_message(cdr_stamp.cdr_with_header_stamp(data, 9_000_000_001), Image)
    assert (back.header.stamp.sec, back.header.stamp.nanosec, back.encoding) == (9, 1, "rgb8")


def test_schedule_orders_delayed_messages_and_restamps_frozen_frames_in_the_bytes():
    from rclpy.serialization import serialize_message

    from aecf_ros.bag.schedule import planned_messages
    from aecf_ros.runtime.stamps import stamp_to_ns
    from aecf_ros.sim.scene_msgs import image_msg, text_msg, time_from_ns

    import numpy as np

    start = 10_000_000_000
    rgb = np.zeros((2, 2, 3), np.uint8)
    msgs = []
    for k in range(6):  # camera and text at 0.0, 0.1, ... 0.5 s
        t = start + k * 100_000_000
        msgs.append(("/camera/image_raw", "sensor_msgs/msg/Image", t, serialize_message(image_msg(rgb, time_from_ns(t)))))
        msgs.append(("/operator/text", "std_msgs/msg/String", t, serialize_message(text_msg(f"t{k}"))))
    plan = dp.build_plan(delays=["text:0.25"], freezes=["camera@0.2-0.4:restamp"])
    out = list(planned_messages(msgs, plan, start))
    assert [o.time_ns for o in out] == sorted(o.time_ns for o in out)
    text = [o for o in out if o.topic == "/operator/text"]
    assert [(o.time_ns - o.recorded_ns) for o in text] == [250_000_000] * 6
    camera = [o for o in out if o.topic == "/camera/image_raw"]
    frozen = [o for o in camera if o.action == "freeze"]
    assert len(frozen) == 2  # frames at 0.2 and 0.3 s are copies of the 0.1 s frame...
    for o in frozen:  # ...stamped like the frames they replace (restamp)
        assert cdr_stamp.cdr_header_stamp_ns(o.data) == o.recorded_ns
        assert o.data[12:] == camera[1].data[12:]
    # skipping the start of the bag
    assert min(o.recorded_ns for o in planned_messages(msgs, dp.DropPlan(), start, start_offset_s=0.3)) == start + 300_000_000
