"""fusion_node under use_sim_time with a /clock publisher (bag replay), in its own process.

Proves: presence is judged on the simulated clock (sim-time stamps are fresh, wall-time would
make them decades old); a modality that stops is marked absent after its timeout in sim time;
the clock jumping back (a looping bag) is counted, does not crash the node, and output resumes.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from test_nodes_support import (AGE_EPS_S, NodeProcess, describe_predictions, diag_values, make_model_file,
                                presence_transition, spin_until)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SIM_START_S = 1000.0


def test_fusion_on_sim_time_with_clock_and_bag_loop(tmp_path):
    import rclpy
    from conftest import ros_env
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock

    from aecf_ros.msg import FusedPrediction, ModalityEmbedding
    from aecf_ros.nodes.stamps import sec_to_stamp

    model_path, model = make_model_file(tmp_path)
    proc = NodeProcess("aecf_ros.nodes.fusion_node",
                       ["-p", f"model_path:={model_path}", "-p", "device:=cpu", "-p", "use_sim_time:=true",
                        "-p", "publish_rate_hz:=20.0", "-p", "timeout_s.lidar:=0.3", "-p", "timeout_s.camera:=0.3",
                        "-p", "timeout_s.text:=0.3", "-p", "diagnostics_period_s:=0.2"],
                       ros_env(), tmp_path / "fusion_node.log")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = Node("sim_clock_driver", context=context)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(node)
    try:
        sim = {"base": SIM_START_S, "wall0": time.monotonic()}
        alive = {"camera": True, "lidar": True, "text": True}

        def sim_now():
            return sim["base"] + (time.monotonic() - sim["wall0"])

        clock_pub = node.create_publisher(Clock, "/clock", 10)
        node.create_timer(0.005, lambda: clock_pub.publish(Clock(clock=sec_to_stamp(sim_now()))))
        pubs = {m: node.create_publisher(ModalityEmbedding, f"aecf/embedding/{m}", 10) for m in alive}
        rng = np.random.default_rng(1)

        def publish(m):
            if not alive[m]:
                return
            t = sim_now()
            msg = ModalityEmbedding(modality=m, encoder_id=model.encoder_ids[m])
            msg.header.stamp = sec_to_stamp(t)
            msg.embedding = rng.normal(size=model.embedding_dims[m]).astype(np.float32).tolist()
            pubs[m].publish(msg)

        for m in alive:
            node.create_timer(0.05, lambda m=m: publish(m))
        preds, diags = [], []
        node.create_subscription(FusedPrediction, "aecf/prediction", lambda msg: preds.append((sim_now(), msg)), 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 20)

        assert spin_until(ex, lambda: any(all(p.modality_present) for _, p in preds), 60), proc.log()
        # the prediction that fused all three (under load a later one may already miss one)
        p = next(p for _, p in preds if all(p.modality_present))
        stamp = p.header.stamp.sec + p.header.stamp.nanosec * 1e-9
        assert SIM_START_S <= stamp < SIM_START_S + 120  # sim-time stamps, judged on sim time
        # slightly negative when the node's /clock lags the publisher's (a busy machine delays
        # /clock delivery): that still proves sim-time judging; wall time would give decades
        assert all(-0.15 <= a < 0.3 for a in p.modality_age_s), list(p.modality_age_s)

        # lidar stops: absent after its timeout on the *simulated* clock, judged on the node's own
        # numbers (presence and sample age of consecutive outputs), not on when this process got
        # the prediction (a late /clock or delivery under load moved that)
        n0 = len(preds)
        alive["lidar"] = False
        assert spin_until(ex, lambda: any(not q.modality_present[1] for _, q in preds[n0:]), 5)
        window = [q for _, q in preds[n0:]]
        seen = describe_predictions(window, "lidar")
        before, after = presence_transition(window, "lidar", True)
        assert before is not None, seen
        print(f"\nsim time: lidar absent at age {after.modality_age_s[1] * 1e3:.0f} ms (sim), present at "
              f"{before.modality_age_s[1] * 1e3:.0f} ms (timeout 300 ms)")
        # present <=> age <= 0.3 s on the node's clock: breaks if it marks lidar absent early or late
        assert before.modality_age_s[1] <= 0.3 + AGE_EPS_S and after.modality_age_s[1] > 0.3 - AGE_EPS_S, seen
        # ages in sim seconds: one output period past the timeout (+ 0.5 s for /clock and the node's
        # timer under load); judged on wall time the age would be decades
        assert after.modality_age_s[1] < 0.3 + 0.05 + 0.5, seen
        alive["lidar"] = True

        # the bag loops: /clock jumps back by 30 s -> counted, no crash, output resumes
        n_before = len(preds)
        sim["base"], sim["wall0"] = SIM_START_S - 30.0, time.monotonic()

        def jump_reported():
            for arr in diags[-6:]:
                for s in arr.status:
                    if s.name == "fusion_node: lidar" and int(diag_values(s).get("time_jumps", 0)) >= 1:
                        return True
            return False

        assert spin_until(ex, jump_reported, 5), proc.log()
        assert spin_until(ex, lambda: any(
            all(q.modality_present) and q.header.stamp.sec < SIM_START_S for _, q in preds[n_before:]), 5)
        assert proc.proc.poll() is None
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        code = proc.stop()
    log = proc.log()
    assert code == 0 and "Traceback" not in log, log
