"""Issue 16 item 2: a sensor kind registered from inside a test (no package file edited) runs
through the real fusion node over DDS on loopback.

The kind ``test_sonar`` is one record (``register_kind``) whose encoder runs outside the package
(``family=None``: the user's node publishes ``aecf_ros/ModalityEmbedding`` on the sensor's topic).
A robot declares ``sonar`` of that kind beside a ``radar`` of the built-in ``embedding`` kind; the
fusion node takes the kind's default timeout, subscribes the sensor's own topic, fuses both by
name, reports the sensor in /diagnostics, and marks only the sonar absent once it stops.
"""
from __future__ import annotations

import pytest

from test_nodes_support import diag_values, spin_until

pytestmark = [pytest.mark.ros]

WAIT_S = 15.0  # upper bound on waiting for an event; never asserted as a duration
DIM = 16
SONAR_TIMEOUT_S = 0.3  # the new kind's default: the fusion node must declare timeout_s.sonar with it


@pytest.fixture
def sonar_kind():
    from aecf_ros.sensors import KINDS, SensorKind, register_kind

    kind = register_kind(SensorKind("test_sonar", {"raw": "aecf_ros/msg/ModalityEmbedding"}, family=None,
                                    defaults={"timeout_s": SONAR_TIMEOUT_S, "gate_bias": 0.5}))
    try:
        yield kind
    finally:
        KINDS.pop("test_sonar")


@pytest.fixture
def bundle(tmp_path):
    import torch

    from aecf_ros.model import save_model
    from aecf_ros.train.config import load_config
    from aecf_ros.train.pipeline import embedding_only_model

    torch.manual_seed(0)
    model = embedding_only_model(load_config(), ["sonar", "radar"], {"sonar": DIM, "radar": DIM},
                                 [f"c{i}" for i in range(4)], "aecf")
    return save_model(model.eval(), tmp_path / "sonar_radar.pt")


def test_a_kind_registered_in_the_test_runs_through_the_fusion_node(rclpy_context, sonar_kind, bundle):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from aecf_ros.msg import FusedPrediction, ModalityEmbedding
    from aecf_ros.nodes.fusion_node import FusionNode
    from aecf_ros.nodes.lifecycle import bring_up

    fusion = FusionNode(context=rclpy_context, parameter_overrides=[
        Parameter("sensors", value=["sonar", "radar"]),
        Parameter("sonar.kind", value="test_sonar"), Parameter("sonar.topic", value="/kind16/sonar/embedding"),
        Parameter("radar.kind", value="embedding"), Parameter("radar.topic", value="/kind16/radar/embedding"),
        Parameter("model_path", value=str(bundle)), Parameter("device", value="cpu"),
        Parameter("publish_rate_hz", value=20.0), Parameter("diagnostics_period_s", value=0.2)])
    peer = Node("kind16_peer", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    try:
        ex.add_node(fusion)
        ex.add_node(peer)
        assert fusion.sensor_error is None
        # the kind record's defaults became the sensor's fusion parameters
        assert fusion.get_parameter("timeout_s.sonar").value == pytest.approx(SONAR_TIMEOUT_S)
        assert fusion.get_parameter("gate_bias.sonar").value == pytest.approx(0.5)
        assert fusion.get_parameter("timeout_s.radar").value == pytest.approx(0.5)  # embedding's default
        assert bring_up(fusion)
        got, diags = [], {}
        peer.create_subscription(FusedPrediction, "aecf/prediction", got.append, 50)
        peer.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: diags.update({s.name: s for s in m.status}), 50)
        pubs = {n: peer.create_publisher(ModalityEmbedding, f"/kind16/{n}/embedding", 10) for n in ("sonar", "radar")}
        live = {"sonar": True, "radar": True}
        sent = {"sonar": 0, "radar": 0}

        def feed():
            for name, pub in pubs.items():
                if not live[name]:
                    continue
                msg = ModalityEmbedding(modality=name, embedding=[0.1 * (1 + sent[name] % 5)] * DIM, seq=sent[name])
                msg.header.stamp = peer.get_clock().now().to_msg()
                pub.publish(msg)
                sent[name] += 1

        peer.create_timer(0.05, feed)

        def both_present():
            return any(list(m.modalities) == ["sonar", "radar"] and all(m.modality_present) for m in got)

        assert spin_until(ex, both_present, WAIT_S), [(list(m.modalities), list(m.modality_present)) for m in got[-5:]]
        fused = next(m for m in got if all(m.modality_present))
        assert list(fused.class_names) == [f"c{i}" for i in range(4)]
        assert all(0.0 <= p <= 1.0 for p in fused.scores) and len(fused.scores) == 4
        assert all(w > 0.0 for w in fused.modality_weights)  # the gate weights both sensors

        def sonar_status():  # one status per sensor, its hardware_id the sensor's name
            return next((s for s in diags.values() if s.hardware_id == "sonar"), None)

        assert spin_until(ex, lambda: sonar_status() is not None
                          and diag_values(sonar_status())["state"] == "OK", WAIT_S), sorted(diags)
        assert float(diag_values(sonar_status())["timeout_s"]) == pytest.approx(SONAR_TIMEOUT_S)

        # the sonar stops: only it goes absent, the radar keeps the predictions coming
        live["sonar"] = False
        n_stop = len(got)

        def sonar_absent_radar_present():
            return any(not m.modality_present[0] and m.modality_present[1] for m in got[n_stop:])

        assert spin_until(ex, sonar_absent_radar_present, WAIT_S)
        after = [m for m in got[n_stop:] if not m.modality_present[0]]
        assert after and all(m.modality_present[1] for m in after)
        assert all(m.modality_weights[0] == 0.0 for m in after)  # an absent sensor gets no weight
        last = got[-1]
        assert list(last.modalities) == ["sonar", "radar"] and last.modality_present[1]
    finally:
        ex.shutdown()
        peer.destroy_node()
        fusion.destroy_node()
