"""sensor_dropout relays raw messages over DDS and fails them by the drop plan."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]


def _spin_until(executor, condition, timeout_s):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not condition():
        executor.spin_once(timeout_sec=0.01)
    return condition()


def test_relay_passes_drops_and_delays_by_plan(rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import String

    from aecf_ros.nodes.sensor_dropout import SensorDropoutNode
    from aecf_ros.sim.scene_msgs import pointcloud2_msg

    import numpy as np

    relay = SensorDropoutNode(context=rclpy_context, parameter_overrides=[
        Parameter("streams", value=["lidar", "text"]),
        Parameter("lidar.input_topic", value="/t_in/points"),
        Parameter("lidar.output_topic", value="/t_out/points"),
        Parameter("text.input_topic", value="/t_in/text"),
        Parameter("text.output_topic", value="/t_out/text"),
        Parameter("text.type", value=""),  # discovered from the graph
        Parameter("drop", value=["lidar:p=1.0"]),
        Parameter("delay", value=["text:0.2"]),
        Parameter("time_origin", value="node_start"),
    ])
    from aecf_ros.nodes.lifecycle import bring_up

    assert relay.streams["/t_in/points"].subscription is None  # a lifecycle node: nothing before active
    assert bring_up(relay)
    io = Node("dropout_test_io", context=rclpy_context)
    qos = QoSProfile(depth=50)
    pub_points = io.create_publisher(PointCloud2, "/t_in/points", qos)
    pub_text = io.create_publisher(String, "/t_in/text", qos)
    got_points, got_text = [], []
    io.create_subscription(PointCloud2, "/t_out/points", got_points.append, qos)
    io.create_subscription(String, "/t_out/text", lambda m: got_text.append((time.monotonic(), m.data)), qos)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(relay)
    executor.add_node(io)
    # wait for discovery (text type is discovered by polling the graph)
    assert _spin_until(executor, lambda: relay.streams["/t_in/text"].publisher is not None
                       and pub_text.get_subscription_count() > 0 and pub_points.get_subscription_count() > 0
                       and io.count_publishers("/t_out/text") > 0, 10.0)
    sent_at = {}
    cloud = pointcloud2_msg(np.zeros((10, 4), np.float32), 1.0)
    for i in range(5):
        sent_at[f"hello {i}"] = time.monotonic()
        pub_text.publish(String(data=f"hello {i}"))
        pub_points.publish(cloud)
        _spin_until(executor, lambda: False, 0.02)
    assert _spin_until(executor, lambda: len(got_text) == 5, 5.0)
    assert [d for _, d in got_text] == [f"hello {i}" for i in range(5)]
    lateness = [t - sent_at[d] for t, d in got_text]
    # each copy measured from its own send: DDS and load only add lateness, so this lower bound
    # cannot flake; it fails if the relay does not hold text for the plan's 0.2 s
    assert min(lateness) >= 0.19, lateness
    assert got_points == []  # p=1.0: every lidar message dropped
    counters = relay.counters()
    assert counters["dropped"]["lidar"] == 5 and counters["delayed"]["text"] == 5
    executor.shutdown()
    relay.destroy_node()
    io.destroy_node()


def _counters_from_diag(msg) -> dict:
    """The relay's plan counters as /diagnostics reports them ({"passed.text": 12, ...})."""
    for status in msg.status:
        if status.name.endswith("sensor_dropout: plan"):
            return {kv.key: int(kv.value) for kv in status.values}
    return {}


def test_node_from_yaml_relays_then_stalls_and_exits_cleanly(tmp_path, ros_subprocess_env):
    """The node as `ros2 run` starts it, with a params file: relays, stalls text at 1.5 s.

    Every time here is measured from an event the test observed, never from its own start: the
    relay's plan clock starts when the FIRST message reaches it, and the first hops after
    discovery can lose or hold samples (a RELIABLE reader matched a little after the writer; a
    repair delay of ~0.5 s was seen on 2 cores). So the test numbers its messages, asks the relay
    (its /diagnostics counters) what it passed and dropped, and checks the split of the stream by
    behaviour (a contiguous prefix passed, the whole tail dropped by the stall) plus two bounds on
    the stall's instant, each derived from an observed event.
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from std_msgs.msg import String

    from test_nodes_support import NodeProcess, Timeline

    params = tmp_path / "dropout.yaml"
    params.write_text(
        "sensor_dropout:\n  ros__parameters:\n"
        "    streams: [text]\n"
        "    text: {input_topic: /y_in/text, output_topic: /y_out/text, type: std_msgs/msg/String}\n"
        "    stall: ['text@1.5']\n"
        "    time_origin: first_message\n"
        "    diagnostics_period_s: 0.2\n"
    )
    node = NodeProcess("aecf_ros.nodes.sensor_dropout", ["--params-file", str(params)], ros_subprocess_env,
                       tmp_path / "sensor_dropout.log")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    timeline = Timeline("dropout relay")
    sent = []  # send time (monotonic) of message i
    back = {}  # i -> receive time (monotonic) of its relayed copy
    diag = {}
    try:
        io = Node("dropout_yaml_io", context=context)
        pub = io.create_publisher(String, "/y_in/text", QoSProfile(depth=50))

        def on_back(m):
            i = int(m.data)
            back.setdefault(i, time.monotonic())
            timeline.add("/y_out/text", i=i, sent_s=f"{timeline.since_first(sent[i]):.3f}")

        def on_diag(m):
            c = _counters_from_diag(m)
            if c:
                diag.update(c)

        io.create_subscription(String, "/y_out/text", on_back, QoSProfile(depth=50))
        io.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(io)
        assert _spin_until(executor, lambda: pub.get_subscription_count() > 0
                           and io.count_publishers("/y_out/text") > 0, 20.0), "relay did not come up\n" + node.log()
        # publish ~20 Hz until 1 s past the last relayed message (the stall has surely begun)
        while not back or time.monotonic() - max(back.values()) < 1.0 or len(sent) < 40:
            assert len(sent) < 400, f"no stall after {len(sent)} messages\n{timeline}"
            sent.append(time.monotonic())
            timeline.add("/y_in/text", i=len(sent) - 1)
            pub.publish(String(data=str(len(sent) - 1)))
            _spin_until(executor, lambda: False, 0.05)
        m_sent = len(sent)
        # the relay has seen everything it will see when its counters add up to a stable total
        last = {}

        def settled():
            total = diag.get("passed.text", 0) + diag.get("dropped.text", 0)
            done = total > 0 and last.get("total") == total and time.monotonic() - last["at"] > 0.6
            if last.get("total") != total:
                last.update(total=total, at=time.monotonic())
            return done
        assert _spin_until(executor, settled, 15.0), f"relay counters never settled: {diag}\n{timeline}"
    finally:
        rclpy.shutdown(context=context)
        code = node.stop()
    out = node.log()
    got = sorted(back)
    passed, dropped = diag.get("passed.text", 0), diag.get("dropped.text", 0)
    seen = f"{timeline}\nrelay counters {diag}, {m_sent} sent\n{out}"
    assert got, seen
    k, n = got[0], got[-1] + 1  # first relayed copy seen here; one past the last
    # order and counts, no timing: the relayed copies are one contiguous run k..n-1 (nothing lost
    # or reordered once the stream flows); every message after it reached the relay and was
    # dropped by the plan (the tail was stalled, not lost); the relay passed n - j messages, j
    # being the first it saw (those before j were lost to discovery on the first hop, so j <= k).
    assert got == list(range(k, n)), seen
    assert dropped == m_sent - n and dropped > 0, seen
    j = n - passed
    assert 0 <= j <= k, seen
    # The stall's instant, from observed events only. The relay's origin is when message j reached
    # it, no later than when copy k came back here, so the last passed message was sent before
    # back[k] + 1.5 s (+ 0.05 s for the relay's clock vs ours): fails if the stall came late or
    # not at all (the relay passing the tail), or the origin were a later message.
    assert sent[n - 1] < back[k] + 1.5 + 0.05, seen
    # ...and the first stalled message reached the relay >= 1.5 s after message j was sent, so it
    # was sent at least 1.5 s - its own hop (< 0.5 s even on 2 loaded cores) after j: fails if the
    # stall began early (another stall time, or the origin taken before the first message).
    assert sent[n] - sent[j] > 1.5 - 0.5, seen
    assert code == 0, out
    assert "Traceback" not in out
    assert "dropped" in out  # counters logged at shutdown


def test_bad_plan_parameter_exits_with_a_message(ros_subprocess_env):
    proc = subprocess.run([sys.executable, "-m", "aecf_ros.nodes.sensor_dropout", "--ros-args",
                           "-p", "drop:=['sonar@1-2']"], env=ros_subprocess_env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown modality 'sonar'" in proc.stderr and "Traceback" not in proc.stderr


ROBOT = [("sensors", ["front_camera", "rear_camera", "lidar"]),
         ("front_camera.kind", "image"), ("front_camera.topic", "/r16d/front/image_raw"),
         ("rear_camera.kind", "image"), ("rear_camera.topic", "/r16d/rear/image_raw/compressed"),
         ("rear_camera.transport", "compressed"),
         ("lidar.kind", "pointcloud"), ("lidar.topic", "/r16d/points")]


def test_relay_of_a_declared_robot_relays_its_sensors_and_drops_one_by_name(rclpy_context):
    """Issue 16 item 3: with the robot's declaration (the /** section of its params file) and no
    streams, the relay relays every declared sensor, from its topic to /dropout<topic> with the
    message type of its kind and transport, and a plan names sensors: rear_camera dropped alone."""
    import numpy as np
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import CompressedImage, Image, PointCloud2

    from aecf_ros.nodes.lifecycle import bring_up
    from aecf_ros.nodes.sensor_dropout import SensorDropoutNode
    from aecf_ros.runtime.sensor_graph import graph_nodes
    from aecf_ros.sim.scene_msgs import compressed_image_msg, image_msg, pointcloud2_msg

    relay = SensorDropoutNode(context=rclpy_context, parameter_overrides=[
        *(Parameter(k, value=v) for k, v in ROBOT), Parameter("drop", value=["rear_camera:p=1.0"]),
        Parameter("time_origin", value="node_start")])
    streams = {s.name: (s.input_topic, s.output_topic, s.msgtype) for s in relay.streams.values()}
    assert streams == {
        "front_camera": ("/r16d/front/image_raw", "/dropout/r16d/front/image_raw", "sensor_msgs/msg/Image"),
        "rear_camera": ("/r16d/rear/image_raw/compressed", "/dropout/r16d/rear/image_raw/compressed",
                        "sensor_msgs/msg/CompressedImage"),
        "lidar": ("/r16d/points", "/dropout/r16d/points", "sensor_msgs/msg/PointCloud2")}
    # what the graph behind the relay reads (replay.launch.py dropout:=true) is what it writes
    nodes = {g.name: dict(g.remaps) for g in graph_nodes(relay.sensor_set, topic_prefix="/dropout")}
    assert nodes["front_camera_encoder"]["image"] == streams["front_camera"][1]
    assert nodes["rear_camera_encoder"]["image_compressed"] == streams["rear_camera"][1]
    assert nodes["lidar_encoder"]["points"] == streams["lidar"][1]

    assert bring_up(relay)
    io = Node("dropout_robot_io", context=rclpy_context)
    qos = QoSProfile(depth=50)
    types_ = {"front_camera": Image, "rear_camera": CompressedImage, "lidar": PointCloud2}
    pubs = {n: io.create_publisher(types_[n], streams[n][0], qos) for n in types_}
    got = {n: [] for n in types_}
    for n in types_:
        io.create_subscription(types_[n], streams[n][1], lambda m, n=n: got[n].append(m), qos)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(relay)
    executor.add_node(io)
    assert _spin_until(executor, lambda: all(p.get_subscription_count() > 0 for p in pubs.values())
                       and all(io.count_publishers(streams[n][1]) > 0 for n in types_), 10.0)
    frame = np.zeros((24, 32, 3), np.uint8)
    msgs = {"front_camera": image_msg(frame, 1.0), "rear_camera": compressed_image_msg(frame, 1.0),
            "lidar": pointcloud2_msg(np.zeros((10, 4), np.float32), 1.0)}
    for _ in range(5):
        for n, p in pubs.items():
            p.publish(msgs[n])
        _spin_until(executor, lambda: False, 0.02)
    assert _spin_until(executor, lambda: len(got["front_camera"]) == 5 and len(got["lidar"]) == 5, 5.0), \
        {n: len(v) for n, v in got.items()}
    # every front/lidar message came through while the 5 rear ones, sent in between, were dropped
    assert got["rear_camera"] == [] and relay.counters()["dropped"]["rear_camera"] == 5
    assert got["front_camera"][0].width == 32 and got["lidar"][0].width == 10
    executor.shutdown()
    relay.destroy_node()
    io.destroy_node()


def test_relay_refuses_a_bad_sensor_declaration_naming_the_parameter(rclpy_context):
    from rclpy.parameter import Parameter

    from aecf_ros.nodes.sensor_dropout import SensorDropoutNode

    with pytest.raises(ValueError, match="lidar.kind"):
        SensorDropoutNode(context=rclpy_context, parameter_overrides=[
            *(Parameter(k, value=("sonar" if k == "lidar.kind" else v)) for k, v in ROBOT)])
