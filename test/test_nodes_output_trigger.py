"""fusion_node with ``output_trigger: camera`` in its own process, fed embeddings over DDS.

Proves: one prediction per camera embedding (its stamp = that embedding's), none for other
modalities' embeddings; ``max_output_rate_hz`` limits a burst; when the camera dies the timer
(watchdog) keeps predictions flowing with camera marked absent; switching live back to
``timer`` restores the fixed rate.
"""
from __future__ import annotations

import numpy as np
import pytest

from test_nodes_support import NodeProcess, diag_values, make_model_file, prediction_time, spin_for, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]

WATCHDOG_HZ = 4.0
MAX_RATE_HZ = 25.0


@pytest.fixture(scope="module")
def trig(tmp_path_factory):
    import rclpy
    from conftest import ros_env
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from aecf_ros.msg import FusedPrediction, ModalityEmbedding

    tmp = tmp_path_factory.mktemp("trigger")
    model_path, model = make_model_file(tmp)
    args = ["-p", f"model_path:={model_path}", "-p", "device:=cpu", "-p", f"publish_rate_hz:={WATCHDOG_HZ}",
            "-p", "output_trigger:=camera", "-p", f"max_output_rate_hz:={MAX_RATE_HZ}",
            "-p", "diagnostics_period_s:=0.2", "-p", "timeout_s.camera:=0.2", "-p", "timeout_s.lidar:=5.0"]
    proc = NodeProcess("aecf_ros.nodes.fusion_node", args, ros_env(), tmp / "fusion_node.log")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = Node("trigger_test_driver", context=context)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(node)

    class D:
        pass

    d = D()
    d.proc, d.node, d.executor, d.model = proc, node, ex, model
    d.predictions, d.diag = [], {}
    rng = np.random.default_rng(0)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {m: node.create_publisher(ModalityEmbedding, f"aecf/embedding/{m}", qos) for m in ("camera", "lidar")}

    d.sent = {"camera": 0, "lidar": 0}

    def send(m):
        d.sent[m] += 1
        msg = ModalityEmbedding(modality=m, encoder_id=model.encoder_ids[m])
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.embedding = rng.normal(size=model.embedding_dims[m]).astype(np.float32).tolist()
        pubs[m].publish(msg)
        return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    d.send = send
    node.create_subscription(FusedPrediction, "aecf/prediction", lambda msg: d.predictions.append(msg), 100)

    def on_diag(arr):
        for s in arr.status:
            d.diag[s.name] = s
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    # bring-up: lidar once (present for 5 s), camera until a prediction carries its stamp
    ok = spin_until(ex, lambda: bool(send("lidar")) and bool(send("camera")) and spin_until(
        ex, lambda: len(d.predictions) > 0, 0.5), timeout_s=60)
    assert ok, "fusion_node never published; log:\n" + proc.log()
    yield d
    ex.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
    code = proc.stop()
    assert code == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


def _stamp(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _fusion_received(d, modality):
    """The fusion node's count of accepted ``modality`` embeddings, from its /diagnostics."""
    status = d.diag.get(f"fusion_node: {modality}")
    if status is None:
        return None
    values = {kv.key: kv.value for kv in status.values}
    return int(float(values["received"])) if "received" in values else None


def _warm_up_camera(d):
    """Send camera embeddings until one is answered by a prediction with its stamp.

    A RELIABLE FastDDS writer that lost a sample during matching holds later samples back until
    the next heartbeat repairs it (~3 s by default); after that, delivery is immediate. Waiting
    here keeps that one-off repair out of the per-embedding checks below."""
    def answered():
        stamp = d.send("camera")
        n0 = len(d.predictions)
        return spin_until(d.executor, lambda: any(abs(_stamp(p) - stamp) < 1e-6 for p in d.predictions[n0:]), 1.0)
    assert spin_until(d.executor, answered, 20.0), "no camera-triggered prediction"
    spin_for(d.executor, 0.3)  # drain anything held back


def test_one_prediction_per_trigger_embedding(trig):
    d = trig
    d.send("lidar")
    spin_for(d.executor, 0.3)
    _warm_up_camera(d)
    d.send("lidar")
    # every camera embedding is answered by exactly one prediction with its stamp (a watchdog
    # output just before it does not hold it back: test_runtime_output_gate.py)
    spin_for(d.executor, 0.4)  # a /diagnostics report after the warm-up's last camera embedding
    base_received, base_sent = _fusion_received(d, "camera"), d.sent["camera"]
    assert base_received is not None, d.diag.keys()
    stamps, held = [], []
    for i in range(10):
        n0 = len(d.predictions)
        stamps.append(d.send("camera"))
        if not spin_until(d.executor, lambda: any(abs(_stamp(p) - stamps[-1]) < 1e-6 for p in d.predictions[n0:]),
                          2.0):
            # Not answered: either the node got it and did not answer (the bug this test is about)
            # or a RELIABLE writer is holding it until a heartbeat repairs a lost fragment (~3 s
            # here; seen once in 2040 loaded test runs), after which it is stale (camera timeout
            # 0.2 s) and rightly not fused. The node's own `received` count in /diagnostics tells.
            spin_for(d.executor, 0.5)  # a fresh /diagnostics (period 0.2 s)
            received = _fusion_received(d, "camera") - base_received
            assert received < d.sent["camera"] - base_sent, (
                f"camera embedding {i} reached the node ({received} of the loop's {i + 1} received) "
                "but got no prediction of its own")
            held.append(i)
            print(f"\ncamera embedding {i} held back by DDS ({received} of the loop's {i + 1} received)")
        spin_for(d.executor, 0.06 if i % 2 else 0.3)  # > 1 / max_output_rate_hz; odd: past a watchdog tick
    assert len(held) <= 2, f"camera embeddings {held} never reached the node in time"
    got = [_stamp(p) for p in d.predictions]
    for k, s in enumerate(stamps):
        if k not in held:
            assert sum(abs(g - s) < 1e-6 for g in got) == 1, "exactly one prediction per camera embedding"
    # a lidar embedding alone publishes nothing (it is not the trigger)
    n0 = len(d.predictions)
    lidar_stamp = d.send("lidar")
    spin_for(d.executor, 0.15)
    assert not any(abs(_stamp(p) - lidar_stamp) < 1e-6 for p in d.predictions[n0:])


def test_burst_is_rate_limited(trig):
    d = trig
    d.send("lidar")
    spin_for(d.executor, 0.3)
    n0 = len(d.predictions)
    sent = 0
    import time
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:  # camera at ~200 Hz for 1 s
        d.send("camera")
        sent += 1
        spin_for(d.executor, 0.005)
    spin_for(d.executor, 0.2)
    burst = d.predictions[n0:]
    n = len(burst)
    times = [prediction_time(p) for p in burst]
    span = times[-1] - times[0] if burst else 0.0
    print(f"\n{sent} camera embeddings in 1 s -> {n} predictions over {span:.2f} s of the node's clock "
          f"(max_output_rate_hz {MAX_RATE_HZ})")
    seen = [round(t - times[0], 3) for t in times]
    assert sent > 3 * MAX_RATE_HZ
    # the rate limit on the node's own clock (the outputs' instants, not when this process got
    # them): trigger outputs >= 1 / max_output_rate_hz apart, plus at most one watchdog output per
    # timer period; breaks if every camera embedding is answered (no limit)
    assert n <= span * (MAX_RATE_HZ + WATCHDOG_HZ) + 2, (n, span, seen)
    # ...and the burst was answered (not all limited): about MAX_RATE_HZ for 1 s, here >= 30 %
    # of it (a starved node on a loaded machine answers fewer); breaks if the limit swallows the trigger
    assert n >= 0.3 * MAX_RATE_HZ, (n, span, seen)
    assert spin_until(d.executor, lambda: int(diag_values(d.diag["fusion_node: output"]).get(
        "output.rate_limited", 0)) > 0, 2.0)
    v = diag_values(d.diag["fusion_node: output"])
    assert v["output_trigger"] == "camera" and float(v["trigger_to_publish_ms_p50"]) > 0


def test_watchdog_keeps_output_when_trigger_dies_then_timer_mode_live(trig):
    d = trig
    d.send("lidar")  # lidar stays present (timeout 5 s); camera stops now
    spin_for(d.executor, 0.5)  # camera ages out (timeout 0.2 s)
    n0 = len(d.predictions)
    spin_for(d.executor, 1.5)
    recent = d.predictions[n0:]
    times = [prediction_time(p) for p in recent]
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
    print(f"\ncamera dead: {len(recent)} watchdog predictions in 1.5 s (timer {WATCHDOG_HZ} Hz), gaps {gaps}")
    # the watchdog on the node's clock: it publishes only after a whole timer period (0.9 of it,
    # the gate's jitter allowance) without output; load only widens gaps, so this cannot flake;
    # breaks if a dead trigger makes the node publish faster than its timer
    assert all(g >= 0.9 / WATCHDOG_HZ - 0.01 for g in gaps), gaps
    # ...and it keeps output flowing: >= 3 outputs in 1.5 s (half the timer rate, for a loaded
    # machine); breaks if a dead trigger stops the output
    assert len(recent) >= 0.5 * WATCHDOG_HZ * 1.5, gaps
    for p in recent:
        present = dict(zip(p.modalities, p.modality_present))
        assert not present["camera"] and present["lidar"]
    from test_nodes_fusion import _set_params
    (res,) = _set_params(d, {"output_trigger": "timer"})
    assert res.successful, res.reason
    (res,) = _set_params(d, {"output_trigger": "radar"})
    assert not res.successful
    d.send("lidar")
    n0 = len(d.predictions)
    spin_for(d.executor, 1.0)
    assert len(d.predictions) - n0 >= 0.5 * WATCHDOG_HZ
