"""Shared body of the three encoder nodes: sensor message -> aecf_ros/ModalityEmbedding.

Per input message: convert and check it by the modality's entry in
:data:`aecf_ros.runtime.inputs.MODALITY_INPUTS` (the table evaluate-bag uses too), encode with
the model bundle's encoder (the same preprocessing path as training; ``torch.inference_mode``,
batch 1), publish on ``aecf/embedding/<modality>`` with the source header (stamp + frame)
copied, and the model's ``encoder_ids[modality]`` so the fusion node can reject embeddings from
another model. A message that cannot be used is a counted drop by reason
(``unsupported_encoding``, ``truncated``, ``missing_field``, ``no_points``,
``non_finite_embedding``, ...), logged (throttled per reason) and reported in
``/diagnostics``; the node keeps running.

Input silence: when no sensor message has arrived for longer than ``input_quiet_s`` (node
clock), ``/diagnostics`` reports WARN with the age of the newest message and the node logs it
once; when messages arrive again it logs that once and the report goes back to OK.

Input rate: with ``expected_rate_hz`` > 0, ``/diagnostics`` reports WARN while messages arrive
slower than ``min_rate_fraction`` of it (:class:`~aecf_ros.runtime.rate_monitor.RateMonitor`, node
clock), and header-stamp gaps longer than 1.5 periods are counted as ``lost_estimate`` (inputs
that never reached the callback: the sensor -> encoder hop has no sequence number, and neither
QoS message-lost events nor Humble's callbacks see KEEP_LAST overwrites).

Size bounds: ``max_pixels`` (camera: compressed images are checked from their header before
decoding, ``too_large``) and ``max_text_chars`` (text: cut before tokenizing, ``text_clipped``).

Output: each embedding carries ``seq`` (1, 2, 3, ... per encoder process) so the fusion node
counts embeddings lost on the encoder -> fusion hop.

Lifecycle: model load + warm-up in ``on_configure``; subscriptions only while active.
"""
from __future__ import annotations

import collections
import time
from typing import Any, Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Header

from aecf_ros.msg import ModalityEmbedding
from aecf_ros import graph
from aecf_ros.nodes.diagnostics import OK, WARN, diag_status, status_name
from aecf_ros.nodes.qos import qos_from_params
from aecf_ros.nodes.qos_events import IncompatibleQos, incompatible_qos_callbacks
from aecf_ros.nodes.session import run_node
from aecf_ros.nodes.stamps import now_sec, sec_to_stamp
from aecf_ros.nodes.lifecycle_base import ModelLifecycleNode
from aecf_ros.nodes.message_types import message_class
from aecf_ros.runtime.input_limits import InputLimits
from aecf_ros.runtime.inputs import MODALITY_INPUTS, InputKind, encode_input
from aecf_ros.runtime.rate_monitor import RateMonitor, RateState
from aecf_ros.runtime.stamps import stamp_problem, stamp_to_sec
from aecf_ros.sensors import valid_name_token as graph_name_ok
from aecf_ros.runtime.stream_monitor import StreamMonitor, StreamState


class EncoderNode(ModelLifecycleNode):
    """Subclasses set ``MODALITY``, ``SPEC_NAME`` and implement :meth:`warm_up_input`."""

    MODALITY = ""
    SPEC_NAME = ""

    def __init__(self, node_name: Optional[str] = None, **kwargs):
        super().__init__(graph.node_spec(self.SPEC_NAME), node_name, **kwargs)
        #: the declared sensor this node encodes (its name names the embedding topic and
        #: ModalityEmbedding.modality); MODALITY is the encoder family / input table it uses
        self.sensor = str(self.get_parameter("sensor").value) or self.MODALITY
        self.encoder_id = ""
        # judges message *arrivals* on the node clock (stamps are judged by the fusion node)
        self.monitor = StreamMonitor(self.sensor, float(self.get_parameter("input_quiet_s").value))
        self.rate = RateMonitor(float(self.get_parameter("expected_rate_hz").value),
                                float(self.get_parameter("min_rate_fraction").value))
        self.limits = self._limits_from_params()
        self.notes: collections.Counter[str] = collections.Counter()  # counted, not dropped
        self.encoded = 0
        self.published = 0
        self._seq = 0  # ModalityEmbedding.seq of the last embedding published by this process
        self._encode_ms = collections.deque(maxlen=200)
        self.qos_incompatible = IncompatibleQos()
        self._kinds: tuple[InputKind, ...] = ()  # the input kinds subscribed on activate (set on configure)

    def _limits_from_params(self) -> InputLimits:
        def value(name, default):
            return int(self.get_parameter(name).value) if self.has_parameter(name) else default

        base = InputLimits()
        return InputLimits(max_pixels=value("max_pixels", base.max_pixels),
                           max_text_chars=value("max_text_chars", base.max_text_chars))

    def warm_up_input(self) -> Any:
        raise NotImplementedError

    def input_kinds(self) -> tuple[InputKind, ...]:
        """The input kinds this node subscribes to: every kind of the modality, or, for a node with
        a ``transport`` parameter (the camera), only the one on that transport's topic."""
        kinds = MODALITY_INPUTS[self.MODALITY].kinds
        if not self.has_parameter("transport"):
            return kinds
        topic = graph.CAMERA_TRANSPORTS[str(self.get_parameter("transport").value)]
        return tuple(k for k in kinds if k.topic == topic)

    # ------------------------------------------------------------------ lifecycle
    def _on_params_set(self, params) -> None:
        deferred = []
        for p in params:
            if p.name == "input_quiet_s":
                self.monitor.set_timeout(float(p.value))
            elif p.name in ("expected_rate_hz", "min_rate_fraction"):
                self.rate.configure(float(self.get_parameter("expected_rate_hz").value),
                                    float(self.get_parameter("min_rate_fraction").value))
            elif p.name in ("max_pixels", "max_text_chars"):
                self.limits = self._limits_from_params()
            else:
                deferred.append(p.name)
        if deferred and self.model is not None:
            self.get_logger().info(f"{', '.join(deferred)} changed: applied on the next configure")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.sensor = str(self.get_parameter("sensor").value) or self.MODALITY
        if not graph_name_ok(self.sensor):
            self.get_logger().error(f"parameter 'sensor': {self.sensor!r} is not a valid sensor name")
            return TransitionCallbackReturn.FAILURE
        if not self.load_model():
            return TransitionCallbackReturn.FAILURE
        if self.sensor not in self.model.modalities:
            self.get_logger().error(f"model has no sensor {self.sensor!r} (its sensors: "
                                    f"{', '.join(self.model.modalities)})")
            return TransitionCallbackReturn.FAILURE
        family = self.model.sensor_families.get(self.sensor)
        if family != self.MODALITY:
            self.get_logger().error(f"sensor {self.sensor!r} is encoded by the model's {family} encoder; this is "
                                    f"the {self.MODALITY} encoder node")
            return TransitionCallbackReturn.FAILURE
        self.monitor.name = self.sensor
        self.encoder_id = self.model.encoder_ids[self.sensor]
        self._kinds = self.input_kinds()
        t0 = time.perf_counter()
        for _ in range(3):  # first calls allocate / pick kernels: keep that out of the data path
            self.model.encode(self.sensor, self.warm_up_input())
        self.warm_up_s = time.perf_counter() - t0
        self._pub = self.create_lifecycle_publisher(ModalityEmbedding, graph.embedding_topic(self.sensor), 10)
        inputs = ", ".join(f"{self.resolve_topic_name(k.topic)} ({k.msgtype.rsplit('/', 1)[-1]})" for k in self._kinds)
        self.get_logger().info(
            f"{self.sensor} ({self.MODALITY}) encoder {self.encoder_id} on {self.model.device}; "
            f"warm-up {self.warm_up_s * 1e3:.1f} ms; input {inputs}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for kind in self._kinds:
            self._subs.append(self.create_subscription(
                message_class(kind.msgtype), kind.topic, lambda msg, kind=kind: self._on_message(kind, msg),
                qos_from_params(self, kind.qos_input),
                event_callbacks=incompatible_qos_callbacks(self, self.qos_incompatible, kind.topic,
                                                           f"qos.{kind.qos_input}")))
        self.monitor.reset()  # silence while inactive is not the sensor's
        self.rate.reset()
        self._active = True
        return super().on_activate(state)

    # ------------------------------------------------------------------ data path
    def _drop(self, reason: str, detail: str) -> None:
        self.monitor.count_drop(reason)
        self.log_drop(f"{self.sensor} input", reason, detail)

    def _on_message(self, kind: InputKind, msg: Any) -> None:
        receive_time = now_sec(self)
        previous_arrival = self.monitor.newest_receive_time
        arrival = receive_time
        if previous_arrival is not None and 0.0 < previous_arrival - arrival <= self.monitor.time_jump_tolerance_s:
            # Arrivals are in order by definition: a node clock that steps back a little (sim time
            # under load) must not count this message as an out-of-order drop while it is still
            # encoded. A large step back still reaches feed() and resets the monitor (bag loop).
            arrival = previous_arrival
        self.monitor.feed(arrival, arrival)
        self._check_input(receive_time, previous_arrival)
        header = getattr(msg, "header", None) if kind.stamp_from_header else None
        # a bad stamp is dropped by encode_input (bad_stamp); it never reaches the stamp-gap estimate
        stamp = stamp_to_sec(header.stamp) if header is not None and not stamp_problem(header.stamp) else None
        self.rate.record(receive_time, stamp)
        result = encode_input(self.model, self.MODALITY, kind.msgtype, msg, receive_time, self.limits,
                              sensor=self.sensor)
        for note in result.notes:
            self.notes[note] += 1
        if not result.ok:  # nothing published: the fusion keeps the previous embedding until its timeout
            self._drop(result.reason, result.detail)
            return
        vec = result.vector
        self._encode_ms.append(result.elapsed_s * 1e3)
        self.encoded += 1
        out = ModalityEmbedding()
        # header-less inputs (std_msgs/String): the evidence is as new as its arrival
        out.header = msg.header if kind.stamp_from_header else Header(stamp=sec_to_stamp(result.stamp))
        out.modality = self.sensor
        out.embedding = vec.tolist()
        out.encoder_id = self.encoder_id
        self._seq += 1
        out.seq = self._seq
        self._pub.publish(out)
        self.published += 1

    def _check_input(self, now: float, previous_arrival: Optional[float] = None) -> None:
        """Log the input going quiet / resuming, once per change (diagnostics report it too)."""
        for t in self.monitor.tick(now):
            if t.new is StreamState.STALE:
                self.get_logger().warning(
                    f"{self.sensor} input quiet: no message for {t.age_s:.2f} s (input_quiet_s "
                    f"{self.monitor.timeout_s:g})")
            elif t.new is StreamState.OK and t.old is StreamState.STALE:
                gap = f" after {now - previous_arrival:.2f} s quiet" if previous_arrival is not None else ""
                self.get_logger().info(f"{self.sensor} input resumed{gap}")

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> DiagnosticArray:
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        now = now_sec(self)
        snap = self.monitor.snapshot(now)
        drops = snap["drops"]
        values = {"state": snap["state"], "receive_rate_hz": snap["receive_rate_hz"], "age_s": snap["age_s"],
                  "input_quiet_s": self.monitor.timeout_s,
                  "received": snap["received"], "encoded": self.encoded, "published": self.published,
                  "dropped": sum(drops.values()),
                  "encode_ms_mean": float(np.mean(self._encode_ms)) if self._encode_ms else None,
                  "encode_ms_max": float(np.max(self._encode_ms)) if self._encode_ms else None,
                  "encode_ms_p50": float(np.median(self._encode_ms)) if self._encode_ms else None,
                  "encode_ms_p99": float(np.percentile(self._encode_ms, 99)) if self._encode_ms else None,
                  "encoder_id": self.encoder_id,
                  "device": str(self.model.device) if self.model is not None else "-",
                  "lost_estimate": self.rate.lost_estimate}
        values.update(self.rate.snapshot(now))
        values.update({f"dropped.{r}": n for r, n in sorted(drops.items())})
        values.update({r: n for r, n in sorted(self.notes.items())})
        dropped = f"; {sum(drops.values())} inputs dropped" if drops else ""
        if self.model is None:
            level, message = WARN, "not configured (no model loaded)"
        elif not self._active:
            level, message = WARN, "inactive"
        elif snap["state"] == StreamState.STALE.value:
            level = WARN
            message = (f"input quiet for {snap['age_s']:.2f} s (> input_quiet_s {self.monitor.timeout_s:g})"
                       + dropped)
        elif self.rate.state(now) is RateState.LOW:
            level = WARN
            message = f"input {snap['state']}; {self.rate.describe(now)}" + dropped
        else:
            level = OK
            message = f"input {snap['state']}" + dropped
        values.update(self.qos_incompatible.values())
        if self.qos_incompatible.counts:  # the likely reason the input is quiet: say it
            level, message = max(level, WARN), (message + "; " if level != OK else "") + self.qos_incompatible.message()
        # hardware_id: the sensor this status is about, not this node
        arr.status.append(self.report_internal_errors(
            diag_status(status_name(self, f"{self.sensor} input"), self.sensor, level, message, values)))
        return arr

    def _publish_diagnostics(self) -> None:
        if self._active:
            self._check_input(now_sec(self))
        super()._publish_diagnostics()


def encoder_main(node_class, args=None) -> int:
    return run_node(node_class, args)
