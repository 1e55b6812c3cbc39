"""fusion_node in its own process, fed embeddings over DDS (loopback) by this test process.

Proves: predictions flow; a modality that stops is marked absent within timeout + one publish
period (+ slack), and comes back when data resumes; predictions keep flowing with any one
sensor dead; nothing is published (but diagnostics say why) when all are dead; bad embeddings
are counted by reason and the node keeps running; live parameter changes (gate_bias moves
modality_weights) apply and bad values are rejected; Ctrl-C exits cleanly.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from test_nodes_support import NodeProcess, diag_values, make_model_file, spin_for, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RATES_HZ = {"camera": 30.0, "lidar": 10.0, "text": 1.0}
TIMEOUT_S = {"camera": 0.25, "lidar": 0.3, "text": 3.0}
PUBLISH_RATE_HZ = 20.0
SLACK_S = 0.15  # DDS delivery + executor scheduling on a shared 2-core machine


@pytest.fixture(scope="module")
def fusion_graph(tmp_path_factory):
    import rclpy
    from conftest import ros_env
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from aecf_ros.msg import FusedPrediction, ModalityEmbedding

    tmp = tmp_path_factory.mktemp("fusion")
    model_path, model = make_model_file(tmp)
    args = ["-p", f"model_path:={model_path}", "-p", "device:=cpu",
            "-p", f"publish_rate_hz:={PUBLISH_RATE_HZ}", "-p", "diagnostics_period_s:=0.2"]
    for m, t in TIMEOUT_S.items():
        args += ["-p", f"timeout_s.{m}:={t}"]
    proc = NodeProcess("aecf_ros.nodes.fusion_node", args, ros_env(), tmp / "fusion_node.log")

    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = Node("fusion_test_driver", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    class Driver:
        pass

    d = Driver()
    d.proc, d.node, d.executor, d.model = proc, node, executor, model
    d.alive = {m: True for m in RATES_HZ}
    d.last_sent = {m: None for m in RATES_HZ}  # wall time of the newest published sample
    d.predictions = []  # (receive wall time, msg)
    d.diagnostics = []
    d.bad = {}  # modality -> callable producing a bad message, consumed once
    rng = np.random.default_rng(0)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {m: node.create_publisher(ModalityEmbedding, f"aecf/embedding/{m}", qos) for m in RATES_HZ}

    def publish(m):
        if not d.alive[m]:
            return
        msg = ModalityEmbedding()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.modality = m
        msg.embedding = rng.normal(size=model.embedding_dims[m]).astype(np.float32).tolist()
        msg.encoder_id = model.encoder_ids[m]
        pubs[m].publish(msg)
        d.last_sent[m] = time.time()

    d.publish = publish
    d.pubs = pubs
    for m, hz in RATES_HZ.items():
        node.create_timer(1.0 / hz, lambda m=m: publish(m))
    node.create_subscription(FusedPrediction, "aecf/prediction", lambda msg: d.predictions.append((time.time(), msg)), 10)
    node.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda msg: d.diagnostics.append(msg) if any(s.name.startswith("fusion_node:") for s in msg.status) else None, 10)
    ok = spin_until(executor, lambda: len(d.predictions) >= 5, timeout_s=60)
    assert ok, "fusion_node never published; log:\n" + proc.log()
    yield d
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
    code = proc.stop()
    log = proc.log()
    assert code == 0, f"fusion_node exited {code} on Ctrl-C:\n{log}"
    assert "Traceback" not in log, log


def _present(msg, modality):
    return bool(msg.modality_present[list(msg.modalities).index(modality)])


def _wait_for_prediction(d, predicate, timeout_s):
    start = len(d.predictions)
    found = []

    def check():
        for t, msg in d.predictions[start:]:
            if predicate(msg):
                found.append((t, msg))
                return True
        return False

    spin_until(d.executor, check, timeout_s)
    return found[0] if found else (None, None)


def _latest_diag(d, name):
    for arr in reversed(d.diagnostics):
        for s in arr.status:
            if s.name == f"fusion_node: {name}":
                return s
    return None


def test_predictions_flow_with_all_modalities(fusion_graph):
    d = fusion_graph
    t, msg = _wait_for_prediction(d, lambda m: all(m.modality_present), timeout_s=10)
    assert msg is not None
    assert list(msg.modalities) == ["camera", "lidar", "text"]
    assert len(msg.scores) == len(d.model.class_names) and list(msg.class_names) == d.model.class_names
    assert all(0.0 <= s <= 1.0 for s in msg.scores)
    assert sum(msg.modality_weights) == pytest.approx(1.0, abs=1e-4)
    assert all(0 <= a < 3.0 for a in msg.modality_age_s)
    assert 0.0 <= msg.gate_entropy <= 1.0
    # steady output rate (a fixed timer, not input driven)
    n0 = len(d.predictions)
    spin_for(d.executor, 1.0)
    rate = len(d.predictions) - n0
    assert PUBLISH_RATE_HZ * 0.6 <= rate <= PUBLISH_RATE_HZ * 1.3


@pytest.mark.parametrize("modality", ["lidar", "camera"])
def test_modality_marked_absent_within_timeout_then_returns(fusion_graph, modality):
    d = fusion_graph
    assert _wait_for_prediction(d, lambda m: all(m.modality_present), 10)[1] is not None
    d.alive[modality] = False
    spin_for(d.executor, 0.001)
    stopped_at = d.last_sent[modality]
    t_absent, msg = _wait_for_prediction(d, lambda m: not _present(m, modality), timeout_s=5)
    assert msg is not None, f"{modality} never marked absent"
    delay = t_absent - stopped_at
    bound = TIMEOUT_S[modality] + 1.0 / PUBLISH_RATE_HZ + SLACK_S
    print(f"\n{modality} stopped -> marked absent after {delay * 1e3:.0f} ms "
          f"(timeout {TIMEOUT_S[modality] * 1e3:.0f} ms, bound {bound * 1e3:.0f} ms)")
    assert TIMEOUT_S[modality] - 0.05 <= delay <= bound
    # it never came back while dead, and the others were still fused
    assert msg.modality_weights[list(msg.modalities).index(modality)] == 0.0
    assert sum(msg.modality_weights) == pytest.approx(1.0, abs=1e-4)
    diag = _wait_diag(d, modality, lambda s: s.message == "STALE")
    assert diag is not None and diag_values(diag)["state"] == "STALE"

    d.alive[modality] = True
    resumed_at = time.time()
    t_back, msg = _wait_for_prediction(d, lambda m: _present(m, modality), timeout_s=5)
    assert msg is not None, f"{modality} never came back"
    print(f"{modality} resumed -> present again after {(t_back - resumed_at) * 1e3:.0f} ms")
    assert t_back - resumed_at <= 1.0 / RATES_HZ[modality] + 1.0 / PUBLISH_RATE_HZ + SLACK_S


def _wait_diag(d, name, predicate, timeout_s=3.0):
    found = []

    def check():
        s = _latest_diag(d, name)
        if s is not None and predicate(s):
            found.append(s)
            return True
        return False

    spin_until(d.executor, check, timeout_s)
    return found[0] if found else None


@pytest.mark.parametrize("dead", ["camera", "lidar", "text"])
def test_predictions_keep_flowing_with_any_one_sensor_dead(fusion_graph, dead):
    d = fusion_graph
    d.alive[dead] = False
    try:
        # wait for the dead one to age out, then count predictions over one second
        _wait_for_prediction(d, lambda m: not _present(m, dead), timeout_s=TIMEOUT_S[dead] + 2)
        n0 = len(d.predictions)
        spin_for(d.executor, 1.0)
        recent = [msg for _, msg in d.predictions[n0:]]
        assert len(recent) >= PUBLISH_RATE_HZ * 0.6
        alive = [m for m in RATES_HZ if m != dead]
        for msg in recent:
            assert not _present(msg, dead)
            assert all(_present(msg, m) for m in alive)
            assert sum(msg.modality_weights) == pytest.approx(1.0, abs=1e-4)
    finally:
        d.alive[dead] = True


def test_all_dead_publishes_nothing_and_diagnostics_say_why(fusion_graph):
    d = fusion_graph
    for m in d.alive:
        d.alive[m] = False
    try:
        diag = _wait_diag(d, "output", lambda s: s.message.startswith("no output"), timeout_s=TIMEOUT_S["text"] + 3)
        assert diag is not None
        assert "no_modality_present" in diag.message
        from test_nodes_support import diag_values as dv
        from aecf_ros.nodes.diagnostics import level_value
        assert level_value(diag.level) == 2
        n0 = len(d.predictions)
        spin_for(d.executor, 0.5)
        assert len(d.predictions) == n0
        assert int(dv(diag)["no_output.no_modality_present"]) >= 1
    finally:
        for m in d.alive:
            d.alive[m] = True
    assert _wait_for_prediction(d, lambda m: all(m.modality_present), 5)[1] is not None


def test_bad_embeddings_counted_by_reason_node_keeps_running(fusion_graph):
    from aecf_ros.msg import ModalityEmbedding

    d = fusion_graph
    stamp = d.node.get_clock().now().to_msg()
    bad = []
    m = ModalityEmbedding(modality="lidar", encoder_id=d.model.encoder_ids["lidar"])
    m.header.stamp = stamp
    m.embedding = [0.0] * (d.model.embedding_dims["lidar"] + 3)
    bad.append(("lidar", m, "wrong_dim"))
    m = ModalityEmbedding(modality="lidar", encoder_id=d.model.encoder_ids["lidar"])
    m.header.stamp = stamp
    m.embedding = [float("nan")] * d.model.embedding_dims["lidar"]
    bad.append(("lidar", m, "non_finite"))
    m = ModalityEmbedding(modality="camera", encoder_id="some-other-camera-encoder")
    m.header.stamp = stamp
    m.embedding = [0.0] * d.model.embedding_dims["camera"]
    bad.append(("camera", m, "encoder_id_mismatch"))
    m = ModalityEmbedding(modality="text", encoder_id=d.model.encoder_ids["camera"])
    m.header.stamp = stamp
    m.embedding = [0.0] * d.model.embedding_dims["camera"]
    bad.append(("camera", m, "modality_mismatch"))  # text embedding on the camera topic
    for topic_modality, msg, _ in bad:
        d.pubs[topic_modality].publish(msg)
    for topic_modality, _, reason in bad:
        diag = _wait_diag(d, topic_modality, lambda s: int(diag_values(s).get(f"dropped.{reason}", 0)) >= 1)
        assert diag is not None, f"{reason} not reported for {topic_modality}"
    assert d.proc.proc.poll() is None
    assert _wait_for_prediction(d, lambda m: all(m.modality_present), 5)[1] is not None


def _set_params(d, params, timeout_s=5.0):
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = d.node.create_client(SetParameters, "/fusion_node/set_parameters")
    try:
        assert client.wait_for_service(timeout_sec=timeout_s)
        req = SetParameters.Request()
        req.parameters = [Parameter(n, value=v).to_parameter_msg() for n, v in params.items()]
        fut = client.call_async(req)
        assert spin_until(d.executor, fut.done, timeout_s)
        return fut.result().results
    finally:
        d.node.destroy_client(client)


def _mean_weight(d, modality, seconds=0.6):
    spin_for(d.executor, 0.15)  # let the change reach a few outputs
    n0 = len(d.predictions)
    spin_for(d.executor, seconds)
    msgs = [msg for _, msg in d.predictions[n0:] if all(msg.modality_present)]
    assert msgs
    i = list(msgs[0].modalities).index(modality)
    return float(np.mean([msg.modality_weights[i] for msg in msgs]))


def test_live_gate_bias_change_moves_weights(fusion_graph):
    d = fusion_graph
    base = _mean_weight(d, "lidar")
    try:
        (res,) = _set_params(d, {"gate_bias.lidar": -4.0})
        assert res.successful, res.reason
        low = _mean_weight(d, "lidar")
        (res,) = _set_params(d, {"gate_bias.lidar": 4.0})
        assert res.successful, res.reason
        high = _mean_weight(d, "lidar")
        print(f"\nlidar weight: bias -4 -> {low:.3f}, bias 0 -> {base:.3f}, bias +4 -> {high:.3f}")
        assert low < base < high
    finally:
        _set_params(d, {"gate_bias.lidar": 0.0})


def test_live_disable_and_timeout_change(fusion_graph):
    d = fusion_graph
    try:
        (res,) = _set_params(d, {"enabled.camera": False})
        assert res.successful
        _, msg = _wait_for_prediction(d, lambda m: not _present(m, "camera"), 3)
        assert msg is not None
        assert _wait_diag(d, "camera", lambda s: s.message == "DISABLED") is not None
    finally:
        _set_params(d, {"enabled.camera": True})
    assert _wait_for_prediction(d, lambda m: _present(m, "camera"), 3)[1] is not None
    try:
        # text arrives at 1 Hz: a 0.2 s timeout makes it absent most of the time
        (res,) = _set_params(d, {"timeout_s.text": 0.2})
        assert res.successful
        assert _wait_for_prediction(d, lambda m: not _present(m, "text"), 3)[1] is not None
    finally:
        _set_params(d, {"timeout_s.text": TIMEOUT_S["text"]})


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"gate_temperature": 0.0}, ""),  # out of descriptor range
        ({"publish_rate_hz": -5.0}, ""),
        ({"min_present": 7}, ""),
        ({"timeout_s.lidar": 0.0}, ""),
        ({"device": "tpu"}, "device"),
        ({"qos.embeddings.reliability": "sometimes"}, "reliab"),
    ],
)
def test_bad_parameter_values_rejected_with_reason(fusion_graph, params, fragment):
    d = fusion_graph
    (res,) = _set_params(d, params)
    assert not res.successful
    assert res.reason and fragment in res.reason
