"""Shared body of the three encoder nodes: sensor message -> aecf_ros/ModalityEmbedding.

Per input message: convert (``aecf_ros.runtime.conversions``), encode with the model bundle's
encoder (the same preprocessing path as training; ``torch.inference_mode``, batch 1), publish
on ``aecf/embedding/<modality>`` with the source header (stamp + frame) copied, and the
model's ``encoder_ids[modality]`` so the fusion node can reject embeddings from another model.
A message that cannot be used is a counted drop by reason (``unsupported_encoding``,
``truncated``, ``missing_field``, ``no_points``, ``non_finite_embedding``, ...), logged
(throttled) and reported in ``/diagnostics``; the node keeps running.

Lifecycle: model load + warm-up in ``on_configure``; subscriptions only while active.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Header

from aecf_ros.msg import ModalityEmbedding
from aecf_ros.nodes import graph
from aecf_ros.nodes.common import (
    OK, WARN, ParameterValidator, declare_from_specs, diag_status, load_model_from_params, now_sec,
    qos_from_params, run_node, sec_to_stamp, stamp_to_sec,
)
from aecf_ros.runtime.conversions import ConversionError
from aecf_ros.runtime.stream_monitor import StreamMonitor


@dataclass(frozen=True)
class EncoderInput:
    topic: str  # node-internal name (remapped by graph.py)
    msg_type: type
    qos_input: str  # qos.<qos_input>.* parameters
    convert: Callable[[Any], Any]  # message -> raw model input; raises ConversionError
    has_header: bool = True


class EncoderNode(LifecycleNode):
    """Subclasses set ``MODALITY``, ``SPEC_NAME`` and implement :meth:`inputs`."""

    MODALITY = ""
    SPEC_NAME = ""
    #: stream monitor timeout: only for the diagnostics state (encoders do not gate anything)
    INPUT_TIMEOUT_S = 2.0

    def __init__(self, node_name: Optional[str] = None, **kwargs):
        spec = graph.node_spec(self.SPEC_NAME)
        super().__init__(node_name or spec.name, **kwargs)
        declare_from_specs(self, spec.parameters)
        self.add_on_set_parameters_callback(ParameterValidator(self, spec.parameters))
        self.add_post_set_parameters_callback(self._on_params_set)
        self.model = None
        self.encoder_id = ""
        self.monitor = StreamMonitor(self.MODALITY, self.INPUT_TIMEOUT_S)
        self.published = 0
        self._encode_ms = collections.deque(maxlen=200)
        self._pub = None
        self._subs = []
        self._active = False
        self.warm_up_s: Optional[float] = None
        self._diag_pub = self.create_publisher(DiagnosticArray, graph.DIAGNOSTICS_TOPIC, 10)
        self._diag_timer = self.create_timer(
            float(self.get_parameter("diagnostics_period_s").value), self._publish_diagnostics)

    # ------------------------------------------------------------------ to implement
    def inputs(self) -> list[EncoderInput]:
        raise NotImplementedError

    def warm_up_input(self) -> Any:
        raise NotImplementedError

    def check_raw(self, raw: Any) -> Optional[str]:
        """Drop reason for a converted input the encoder cannot use, else None."""
        return None

    # ------------------------------------------------------------------ lifecycle
    def _on_params_set(self, params) -> None:
        if self.model is not None:
            names = ", ".join(p.name for p in params)
            self.get_logger().info(f"{names} changed: applied on the next configure")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from aecf_ros.model import ModelLoadError

        try:
            self.model = load_model_from_params(self)
        except ModelLoadError as exc:
            self.get_logger().error(f"cannot load model: {exc}")
            return TransitionCallbackReturn.FAILURE
        if self.MODALITY not in self.model.modalities:
            self.get_logger().error(f"model has no {self.MODALITY} modality ({self.model.modalities})")
            return TransitionCallbackReturn.FAILURE
        self.encoder_id = self.model.encoder_ids[self.MODALITY]
        t0 = time.perf_counter()
        for _ in range(3):  # first calls allocate / pick kernels: keep that out of the data path
            self.model.encode(self.MODALITY, self.warm_up_input())
        self.warm_up_s = time.perf_counter() - t0
        self._pub = self.create_lifecycle_publisher(ModalityEmbedding, graph.embedding_topic(self.MODALITY), 10)
        self.get_logger().info(
            f"{self.MODALITY} encoder {self.encoder_id} on {self.model.device}; warm-up {self.warm_up_s * 1e3:.1f} ms")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for inp in self.inputs():
            self._subs.append(self.create_subscription(
                inp.msg_type, inp.topic, lambda msg, inp=inp: self._on_message(inp, msg),
                qos_from_params(self, inp.qos_input)))
        self._active = True
        return super().on_activate(state)

    def _stop_io(self) -> None:
        self._active = False
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
            self._pub = None
        self.model = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_shutdown(state)

    # ------------------------------------------------------------------ data path
    def _drop(self, reason: str, detail: str) -> None:
        self.monitor.count_drop(reason)
        self.get_logger().warning(f"dropped {self.MODALITY} input: {reason}: {detail}", throttle_duration_sec=5.0)

    def _on_message(self, inp: EncoderInput, msg: Any) -> None:
        receive_time = now_sec(self)
        if inp.has_header:
            header = msg.header
        else:  # std_msgs/String: the evidence is as new as its arrival
            header = Header(stamp=sec_to_stamp(receive_time), frame_id="")
        t0 = time.perf_counter()
        try:
            raw = inp.convert(msg)
        except ConversionError as exc:
            self._drop(exc.reason_code, exc.message)
            return
        reason = self.check_raw(raw)
        if reason:
            self._drop(reason, "input rejected")
            return
        try:
            embedding = self.model.encode(self.MODALITY, raw)
        except Exception as exc:  # noqa: BLE001 - a bad input must never kill the node
            self._drop("encode_error", f"{type(exc).__name__}: {exc}")
            return
        vec = embedding.detach().float().cpu().numpy().reshape(-1)
        if not np.isfinite(vec).all():
            self._drop("non_finite_embedding", "encoder produced NaN/inf")
            return
        self._encode_ms.append((time.perf_counter() - t0) * 1e3)
        # the encoder's monitor tracks arrivals (rate, silence); stamps are judged by fusion
        self.monitor.feed(receive_time, receive_time)
        out = ModalityEmbedding()
        out.header = header
        out.modality = self.MODALITY
        out.embedding = vec.tolist()
        out.encoder_id = self.encoder_id
        self._pub.publish(out)
        self.published += 1

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> DiagnosticArray:
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        now = now_sec(self)
        snap = self.monitor.snapshot(now)
        drops = snap["drops"]
        values = {"state": snap["state"], "receive_rate_hz": snap["receive_rate_hz"], "age_s": snap["age_s"],
                  "encoded": snap["received"], "published": self.published, "dropped": sum(drops.values()),
                  "encode_ms_mean": float(np.mean(self._encode_ms)) if self._encode_ms else None,
                  "encode_ms_max": float(np.max(self._encode_ms)) if self._encode_ms else None,
                  "encoder_id": self.encoder_id,
                  "device": str(self.model.device) if self.model is not None else "-"}
        values.update({f"dropped.{r}": n for r, n in sorted(drops.items())})
        if self.model is None:
            level, message = WARN, "not configured (no model loaded)"
        elif not self._active:
            level, message = WARN, "inactive"
        else:
            level = OK
            message = f"input {snap['state']}" + (f"; {sum(drops.values())} inputs dropped" if drops else "")
        arr.status.append(diag_status(f"{self.get_name()}: {self.MODALITY} input", self.get_fully_qualified_name(),
                                      level, message, values))
        return arr

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(self.diagnostics())


def encoder_main(node_class, args=None) -> int:
    return run_node(node_class, args)
