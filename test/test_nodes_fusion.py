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

from test_nodes_support import (AGE_EPS_S, NodeProcess, describe_predictions, diag_values, make_model_file,
                                prediction_time, presence_transition, spin_for, spin_until)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

RATES_HZ = {"camera": 30.0, "lidar": 10.0, "text": 1.0}
TIMEOUT_S = {"camera": 0.25, "lidar": 0.3, "text": 3.0}
PUBLISH_RATE_HZ = 20.0


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
    d.first_sent_after_resume = {}  # modality -> wall time of its first sample once set to None
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
        if d.first_sent_after_resume.get(m, 0) is None:
            d.first_sent_after_resume[m] = d.last_sent[m]

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
    # steady output rate (a fixed timer, not input driven), on the node's clock: 20 outputs in a row
    # span 20 periods (from the first one seen here, not from the test's own clock); breaks if
    # output is input-driven (camera 30 Hz) or the timer runs at the wrong rate
    n0 = len(d.predictions)
    assert spin_until(d.executor, lambda: len(d.predictions) - n0 >= 21, 10.0)
    times = [prediction_time(m) for _, m in d.predictions[n0:n0 + 21]]
    rate = 20 / (times[-1] - times[0])
    assert PUBLISH_RATE_HZ * 0.6 <= rate <= PUBLISH_RATE_HZ * 1.3, (rate, [round(t - times[0], 3) for t in times])


@pytest.mark.parametrize("modality", ["lidar", "camera"])
def test_modality_marked_absent_within_timeout_then_returns(fusion_graph, modality):
    """Judged on the node's own numbers (each prediction's presence flags and sample ages, on its
    clock), so a slow test process or a late DDS delivery cannot move the result: the output just
    before the transition still had the modality inside its timeout, the first one after it had
    the modality's newest sample older than its timeout, i.e. it was marked absent at the first
    output after its timeout had passed (<= timeout + one publish period), never earlier."""
    d = fusion_graph
    assert _wait_for_prediction(d, lambda m: all(m.modality_present), 10)[1] is not None
    n0 = len(d.predictions)
    d.alive[modality] = False
    t_absent, msg = _wait_for_prediction(d, lambda m: not _present(m, modality), timeout_s=5)
    window = [m for _, m in d.predictions[n0:]]
    seen = describe_predictions(window, modality)
    assert msg is not None, f"{modality} never marked absent\n{seen}"
    before, after = presence_transition(window, modality, True)
    assert before is not None, f"no present -> absent pair in consecutive outputs\n{seen}"
    k = list(after.modalities).index(modality)
    timeout = TIMEOUT_S[modality]
    print(f"\n{modality} absent at age {after.modality_age_s[k] * 1e3:.0f} ms, present before at "
          f"{before.modality_age_s[k] * 1e3:.0f} ms (timeout {timeout * 1e3:.0f} ms)")
    # present <=> age <= timeout, on the node's clock: breaks if it drops a modality early (before
    # its timeout) or keeps it past its timeout for more than one output
    assert 0 <= before.modality_age_s[k] <= timeout + AGE_EPS_S, seen
    assert after.modality_age_s[k] > timeout - AGE_EPS_S, seen
    # the outputs went on at the publish rate across the loss: one period apart on the node's clock
    # (+ 0.3 s for its timer on a loaded 2-core machine); breaks if output stalls while a sensor dies
    gap = prediction_time(after) - prediction_time(before)
    assert 0 < gap <= 1.0 / PUBLISH_RATE_HZ + 0.3, (gap, seen)
    # it never came back while dead (its age only grows), and the others were still fused
    ages = [m.modality_age_s[k] for m in window[window.index(after):]]
    assert ages == sorted(ages), seen
    assert msg.modality_weights[list(msg.modalities).index(modality)] == 0.0
    assert sum(msg.modality_weights) == pytest.approx(1.0, abs=1e-4)
    diag = _wait_diag(d, modality, lambda s: s.message == "STALE")
    assert diag is not None and diag_values(diag)["state"] == "STALE"

    n1 = len(d.predictions)
    d.first_sent_after_resume[modality] = None
    d.alive[modality] = True
    t_back, msg = _wait_for_prediction(d, lambda m: _present(m, modality), timeout_s=5)
    window = [m for _, m in d.predictions[n1 - 1:]]  # from the last output before the resume
    seen = describe_predictions(window, modality)
    assert msg is not None, f"{modality} never came back\n{seen}"
    assert not _present(window[0], modality), seen  # still absent when it resumed
    before, after = presence_transition(window, modality, False)
    assert after is not None and after.modality_age_s[k] <= timeout + AGE_EPS_S, seen  # a fresh sample
    sent = d.first_sent_after_resume[modality]
    print(f"{modality} resumed -> present again {(t_back - sent) * 1e3:.0f} ms after its first new sample")
    # measured from the first sample sent after the resume (not from the flag flip: that adds the
    # sensor's own period): present on the next output, one publish period later, + 0.3 s for DDS
    # and two loaded processes; breaks if a returning modality is held absent (e.g. for a hold-off)
    assert t_back - sent <= 1.0 / PUBLISH_RATE_HZ + 0.3, seen


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
