"""``fusion_node``: fuses the newest embedding of each *present* modality into a prediction.

Subscribes ``aecf/embedding/<modality>`` (aecf_ros/ModalityEmbedding), publishes
``aecf/prediction`` (aecf_ros/FusedPrediction) and ``/diagnostics``.

Output timing: a timer on the node clock publishes at ``publish_rate_hz`` (default 10 Hz) from
whatever is present *at that moment* (``now - stamp <= timeout_s.<modality>``). A fixed rate
rather than one output per input because (a) output never depends on any one sensor's arrival,
so a dead sensor cannot stall it (the ``message_filters`` synchroniser failure mode); (b) the
cost is bounded whatever the input rates; (c) the time to notice a dead sensor is bounded by
``timeout_s + 1 / publish_rate_hz``. With fewer than ``min_present`` modalities present nothing
is published and ``/diagnostics`` says why (ERROR level, reason, which modalities are missing).

Low latency: ``output_trigger: <modality>`` publishes as soon as an embedding of that modality is
accepted (at most ``max_output_rate_hz``), the timer kept as a watchdog
(:class:`aecf_ros.runtime.output_gate.OutputGate`); ``/diagnostics`` reports embedding received ->
prediction published inside this node (``trigger_to_publish_ms_p50`` / ``_p99``).

All logic lives in :class:`aecf_ros.runtime.fusion_engine.FusionEngine` (shared with
``aecf-ros evaluate-bag``); this node only moves messages and parameters in and out of it.

Lifecycle: the model is loaded (and warmed up) in ``on_configure``; subscriptions and the
publish timer exist only while active. ``main()`` configures + activates the node itself
unless ``autostart`` is false. Every parameter in :data:`aecf_ros.graph.FUSION_PARAMETERS`
except model/device/qos changes live (validated, bad values rejected with a reason).
"""
from __future__ import annotations

import collections
import time
from typing import Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

from aecf_ros.msg import FusedPrediction, ModalityEmbedding
from aecf_ros import graph
from aecf_ros.nodes.diagnostics import ERROR, NO_HARDWARE, OK, WARN, diag_status, status_name
from aecf_ros.nodes.qos import qos_from_params
from aecf_ros.nodes.session import run_node
from aecf_ros.nodes.stamps import now_sec, sec_to_stamp, stamp_to_sec
from aecf_ros.nodes.lifecycle_base import ModelLifecycleNode
from aecf_ros.runtime.fusion_engine import FusionEngine, FusionPrediction, FusionSettings, NoOutput
from aecf_ros.runtime.stamps import BAD_STAMP, stamp_problem
from aecf_ros.runtime.output_gate import OutputGate, validate_trigger
from aecf_ros.runtime.stream_monitor import StreamState

SPEC = graph.node_spec("fusion_node")
STATE_LEVEL = {StreamState.OK: OK, StreamState.STALE: WARN, StreamState.NEVER_SEEN: WARN,
               StreamState.DISABLED: OK}


class FusionNode(ModelLifecycleNode):
    DECLARES_SENSORS = True

    def __init__(self, node_name: str = SPEC.name, **kwargs):
        self.engine: Optional[FusionEngine] = None
        super().__init__(SPEC, node_name, extra_check=self._check_candidate, **kwargs)
        # per-sensor parameters (timeout_s.<name>, ...) exist only once the sensor set is known
        # (ModelLifecycleNode declared it before the rest: see _specs_for)
        self._timer = None
        self._last_output: FusionPrediction | NoOutput | None = None
        self._inference_ms = collections.deque(maxlen=200)
        self.gate = OutputGate()
        self._configure_gate()
        self._trigger_ms = collections.deque(maxlen=1000)  # embedding callback entry -> publish()

    def _configure_gate(self) -> None:
        self.gate.configure(str(self.get_parameter("output_trigger").value),
                            float(self.get_parameter("max_output_rate_hz").value),
                            1.0 / float(self.get_parameter("publish_rate_hz").value))
        if hasattr(self, "_trigger_ms"):
            self._trigger_ms.clear()  # the figure is per output mode

    # ------------------------------------------------------------------ parameters
    def settings_from_params(self, overrides: Optional[dict] = None) -> FusionSettings:
        def value(name):
            if overrides and name in overrides:
                return overrides[name]
            return self.get_parameter(name).value

        mods = list(self.engine.modalities) if self.engine else list(self.sensor_set.names)
        return FusionSettings.from_parameters(value, mods)

    @staticmethod
    def _specs_for(sensor_set) -> graph.NodeSpec:
        """The node's parameter table for the declared sensor set."""
        import dataclasses

        defaults = {s.name: dict(s.kind_record.defaults) for s in sensor_set}
        return dataclasses.replace(SPEC, parameters=graph.MODEL_PARAMETERS + graph.fusion_parameters(defaults))

    def _check_candidate(self, candidate: dict) -> Optional[str]:
        mods = list(self.engine.modalities) if self.engine else list(self.sensor_set.names)
        trigger = candidate.get("output_trigger", self.get_parameter("output_trigger").value)
        return (validate_trigger(str(trigger), mods)
                or FusionEngine.validate_settings(self.settings_from_params(candidate), mods))

    def _on_params_set(self, params) -> None:
        names = {p.name for p in params}
        if self.engine is not None:
            self.engine.apply_settings(self.settings_from_params())
            changed = sorted(n for n in names if n.split(".")[0] in (
                "timeout_s", "enabled", "gate_temperature", "gate_bias", "min_present", "score_threshold",
                "max_abs_embedding", "expected_rate_hz", "min_rate_fraction"))
            if changed:
                self.get_logger().info("applied live: " + ", ".join(
                    f"{n}={self.get_parameter(n).value}" for n in changed))
        if names & {"publish_rate_hz", "output_trigger", "max_output_rate_hz"}:
            self._configure_gate()
        if "publish_rate_hz" in names and self._timer is not None:
            self._start_timer()
        deferred = sorted(n for n in names if n in ("model_path", "device") or n.startswith("qos."))
        if deferred and self.engine is not None:
            self.get_logger().info(f"{', '.join(deferred)} changed: applied on the next configure")

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.sensor_error:
            self.get_logger().error(f"bad sensor declaration: {self.sensor_error}")
            return TransitionCallbackReturn.FAILURE
        if not self.load_model():
            return TransitionCallbackReturn.FAILURE
        declared = list(self.sensor_set.names)
        if list(self.model.modalities) != declared:
            self.get_logger().error(
                f"the model's sensors [{', '.join(self.model.modalities)}] differ from the declared sensors "
                f"[{', '.join(declared)}] (parameter 'sensors'); train a model for this sensor set "
                f"(aecf-ros train --params ...) or declare the model's sensors")
            self.model = None
            return TransitionCallbackReturn.FAILURE
        reason = validate_trigger(str(self.get_parameter("output_trigger").value), list(self.model.modalities))
        if reason:
            self.get_logger().error(reason)
            return TransitionCallbackReturn.FAILURE
        self.engine = FusionEngine(self.model, self.settings_from_params())
        if getattr(self.model.device, "type", "cpu") == "cuda":  # half precision + CUDA graph, batch 1
            self.get_logger().info(f"fusion step on CUDA: {self.engine.enable_cuda_step()}")
        else:  # a TorchScript trace checked against the module: same outputs, ~half the time
            self.get_logger().info(f"fusion step on CPU: {self.engine.enable_cpu_step()}")
        self.warm_up_s = self.engine.warm_up()
        self._pub = self.create_lifecycle_publisher(FusedPrediction, graph.PREDICTION_TOPIC, 10)
        self.get_logger().info(
            f"model {self.model.method} on {self.model.device} loaded, warm-up {self.warm_up_s * 1e3:.1f} ms; "
            f"modalities {', '.join(self.model.modalities)}; publishing at "
            f"{self.get_parameter('publish_rate_hz').value} Hz"
            + (f" as a watchdog; output on each {self.gate.trigger} embedding (at most "
               f"{self.gate.max_output_rate_hz:g} Hz)" if self.gate.triggered else ""))
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos = qos_from_params(self, "embeddings")
        for m in self.engine.modalities:
            # an `embedding` sensor's own node publishes on the sensor's declared topic
            sensor = self.sensor_set[m] if m in self.sensor_set else None
            topic = sensor.topic if sensor is not None and sensor.family is None else graph.embedding_topic(m)
            self._subs.append(self.create_subscription(
                ModalityEmbedding, topic, lambda msg, m=m: self._on_embedding(m, msg), qos))
        self._start_timer()
        self._active = True
        return super().on_activate(state)

    def _release(self) -> None:
        super()._release()
        self.engine = None

    def _stop_io(self) -> None:
        super()._stop_io()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _start_timer(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
        self._timer = self.create_timer(1.0 / float(self.get_parameter("publish_rate_hz").value), self._on_timer)

    # ------------------------------------------------------------------ data path
    def _on_embedding(self, topic_modality: str, msg: ModalityEmbedding) -> None:
        t_received = time.perf_counter()
        modality = msg.modality or topic_modality
        if modality != topic_modality:
            self.engine.count_drop(topic_modality, "modality_mismatch")
            reason = "modality_mismatch"
        elif stamp_problem(msg.header.stamp):  # a broken clock upstream: counted, never raised
            reason = BAD_STAMP
            self.engine.count_drop(topic_modality, reason)
        else:
            # float64: the engine judges the values before any float32 overflow hides them
            reason = self.engine.submit(modality, np.asarray(msg.embedding, dtype=np.float64),
                                        stamp_to_sec(msg.header.stamp), now_sec(self), msg.encoder_id,
                                        seq=int(msg.seq))
        if reason:
            self.log_drop(f"{topic_modality} embedding", reason)
        elif self.gate.triggered and self.gate.on_embedding(modality, now_sec(self)):
            if self._output(now_sec(self)):
                self._trigger_ms.append((time.perf_counter() - t_received) * 1e3)

    def _on_timer(self) -> None:
        if self.engine is None:
            return
        now = now_sec(self)
        if self.gate.on_timer(now):
            self._output(now)

    def _output(self, now: float) -> bool:
        """One fusion step at ``now``; True if a prediction was published."""
        self.gate.published(now)
        result = self.engine.step(now)
        for t in result.transitions:
            if t.new is StreamState.OK:
                self.get_logger().info(t.describe())
            else:
                self.get_logger().warning(t.describe())
        out = result.output
        previous, self._last_output = self._last_output, out
        if isinstance(out, NoOutput):
            if not isinstance(previous, NoOutput) or previous.reason != out.reason:
                # (two call sites: rclpy refuses one call site logging at two severities)
                if out.reason == "invalid_output":
                    self.get_logger().error(f"not publishing: {out.message}")
                else:
                    self.get_logger().warning(f"not publishing: {out.message}")
            return False
        if isinstance(previous, NoOutput):
            self.get_logger().info(f"publishing again from {', '.join(out.present_modalities)}")
        self._inference_ms.append(out.inference_time_s * 1e3)
        msg = FusedPrediction()
        msg.header.stamp = sec_to_stamp(out.stamp)
        msg.header.frame_id = str(self.get_parameter("frame_id").value)
        msg.class_names = list(out.class_names)
        msg.scores = [float(s) for s in out.scores]
        msg.modalities = list(out.modalities)
        msg.modality_present = [bool(p) for p in out.present]
        msg.modality_weights = [float(w) for w in out.weights]
        msg.modality_age_s = [float(a) for a in out.ages_s]
        msg.gate_entropy = float(out.gate_entropy)
        self._pub.publish(msg)
        return True

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> DiagnosticArray:
        """Per-modality status + output status (also used by tests in-process)."""
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        if self.engine is None:
            arr.status.append(self.report_internal_errors(diag_status(
                status_name(self, "output"), NO_HARDWARE, WARN, "not configured (no model loaded)", {})))
            return arr
        now = now_sec(self)
        for m, snap in self.engine.snapshot(now).items():
            state = StreamState(snap["state"])
            values = {"state": state.value, "age_s": snap["age_s"], "receive_rate_hz": snap["receive_rate_hz"],
                      "timeout_s": snap["timeout_s"], "enabled": snap["enabled"], "received": snap["received"],
                      "time_jumps": snap["time_jumps"],
                      "dropped": sum(snap["drops"].values()),
                      "lost": snap["lost"], "encoder_restarts": snap["encoder_restarts"],
                      "rate_state": snap["rate_state"], "rate_hz": snap["rate_hz"],
                      "expected_rate_hz": snap["expected_rate_hz"]}
            values.update({f"dropped.{r}": n for r, n in sorted(snap["drops"].items())})
            level, message = STATE_LEVEL[state], state.value
            if state is StreamState.OK and snap["rate_message"]:
                level, message = WARN, f"{state.value}; {snap['rate_message']}"
            arr.status.append(diag_status(status_name(self, m), m, level, message, values))  # hw id: the sensor
        out = self._last_output
        values = {"published": self.engine.published, "publish_rate_hz": self.get_parameter("publish_rate_hz").value,
                  "inference_ms_last": self._inference_ms[-1] if self._inference_ms else None,
                  "inference_ms_mean": float(np.mean(self._inference_ms)) if self._inference_ms else None,
                  "inference_ms_max": float(np.max(self._inference_ms)) if self._inference_ms else None,
                  "warm_up_ms": self.warm_up_s * 1e3 if self.warm_up_s else None,
                  "device": str(self.model.device), "method": self.model.method}
        values.update({f"no_output.{r}": n for r, n in sorted(self.engine.no_output_counts.items())})
        values["output_trigger"] = self.gate.trigger
        values.update({f"output.{r}": n for r, n in sorted(self.gate.counts.items())})
        if self._trigger_ms:
            ms = np.asarray(self._trigger_ms)
            values["trigger_to_publish_ms_p50"] = float(np.median(ms))
            values["trigger_to_publish_ms_p99"] = float(np.percentile(ms, 99))
            values["trigger_to_publish_n"] = len(ms)
        values.update({f"dropped.{r}": n for r, n in sorted(self.engine.engine_drops.items())})
        if not self._active:
            level, message = WARN, "inactive"
        elif isinstance(out, NoOutput):
            level, message = ERROR, f"no output: {out.reason} ({out.message})"
        elif isinstance(out, FusionPrediction):
            present = out.present_modalities
            missing = [m for m, p in zip(out.modalities, out.present) if not p]
            level = OK if not missing else WARN
            message = f"fusing {'+'.join(present)}" + (f"; missing {'+'.join(missing)}" if missing else "")
            values["present"] = ",".join(present)
            values["weights"] = ",".join(f"{m}={w:.3f}" for m, w in zip(out.modalities, out.weights))
        else:
            level, message = WARN, "no step yet"
        # an internal error in any callback (one sensor's embedding, the fusion step) is the node's:
        # reported on its output status, the per-sensor statuses keep saying how each sensor is
        arr.status.append(self.report_internal_errors(
            diag_status(status_name(self, "output"), NO_HARDWARE, level, message, values)))
        return arr


NODE_CLASS = FusionNode


def main(args=None) -> int:
    return run_node(FusionNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
