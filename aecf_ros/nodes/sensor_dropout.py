"""``sensor_dropout``: a live relay that fails sensors on purpose, by the same drop plan as replay.

For robots and ``ros2 bag play``: each configured stream is relayed from ``<stream>.input_topic``
to ``<stream>.output_topic`` as raw serialized bytes (no deserialisation, any message type),
except where the drop plan (``aecf_ros.runtime.drop_plan``) drops, delays or freezes it. By
default the streams are the robot's declared sensors (``sensors: [...]`` and ``<name>.topic`` in
the ``/**`` section of its params file, the same declaration every node reads), each relayed
from its topic to ``/dropout<topic>``; start the graph on those (``aecf.launch.py
sensor_topic_prefix:=/dropout``, which ``replay.launch.py dropout:=true`` does).

Plan times are seconds since ``time_origin``: ``first_message`` (default: the first message on
any stream, i.e. the bag's start under ``ros2 bag play``) or ``node_start``; measured on the
node clock, so ``use_sim_time:=true`` with ``ros2 bag play --clock`` replays windows in bag time.

Parameters (``config/sensor_dropout.yaml``):

``sensors`` + ``<name>.kind/topic/transport``
    the declared sensor set (default camera, lidar, text); a bad declaration is a configuration
    error naming the parameter.
``streams`` (string[], default: the declared sensors)
    stream names; for each: ``<s>.input_topic`` (default: the sensor's topic), ``<s>.output_topic``
    (default ``/dropout`` + input), ``<s>.type`` (message type ``pkg/msg/Name``; default: the
    sensor's, by its kind and transport; empty = discover it from the graph), ``<s>.modality``
    (the name drop plans use, default the stream name: ``--drop rear_camera@5-10``).
``drop`` / ``stall`` / ``delay`` / ``freeze`` (string[]) and ``plan_file`` (YAML), ``seed`` (int)
    the drop plan, same syntax as ``aecf-ros replay --drop ...``.
``time_origin`` (``first_message`` | ``node_start``)
``qos.depth`` (int, 10), ``qos.reliability`` (``reliable`` | ``best_effort``)
``diagnostics_period_s`` (float, 1.0): counters on /diagnostics (passed / dropped / delayed /
    frozen per modality); the same numbers are logged at shutdown.
``autostart`` (bool, true): configure + activate at start-up; false = wait for a lifecycle manager.

Lifecycle node like the others: the parameters and the plan are checked at start (a bad plan is a
configuration error: exit 2 with the reason); ``on_configure`` makes the output publishers,
``on_activate`` the input subscriptions (nothing is relayed while inactive), ``on_deactivate``
removes them again.
"""
from __future__ import annotations

import heapq
import itertools
import sys
from dataclasses import dataclass
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from aecf_ros.graph import DROPOUT_PREFIX
from aecf_ros.nodes.diagnostics import NO_HARDWARE, OK, WARN, diag_status, status_name
from aecf_ros.nodes.guarded import GuardedCallbacks
from aecf_ros.nodes.qos import keep_last_qos
from aecf_ros.nodes.session import run_node
from aecf_ros.nodes.message_types import UnknownMessageType, message_class
from aecf_ros.nodes.sensor_params import declare_sensor_set
from aecf_ros.runtime.drop_plan import DropPlan, DropPlanError, PlanApplier, build_plan

OUTPUT_PREFIX = DROPOUT_PREFIX


@dataclass
class Stream:
    name: str
    modality: str
    input_topic: str
    output_topic: str
    msgtype: str  # "" until discovered
    publisher: object = None
    subscription: object = None


class SensorDropoutNode(GuardedCallbacks, LifecycleNode):
    """Raw relay input -> output per stream, with a :class:`PlanApplier` in between."""

    NODE_NAME = "sensor_dropout"

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        d = lambda text: ParameterDescriptor(description=text)  # noqa: E731
        sensor_set, error = declare_sensor_set(self)
        if error:
            raise ValueError(f"sensor declaration: {error}")
        self.sensor_set = sensor_set
        self.declare_parameter("streams", list(sensor_set.names), d("stream names to relay (default: the "
                                                                    "declared sensors)"))
        for p in ("drop", "stall", "delay", "freeze"):
            self.declare_parameter(p, Parameter.Type.STRING_ARRAY, d(f"--{p} specs of the drop plan"))
        self.declare_parameter("plan_file", "", d("YAML drop plan (events added to drop/stall/...)"))
        self.declare_parameter("seed", 0, d("seed of random drops"))
        self.declare_parameter("time_origin", "first_message", d("first_message | node_start"))
        self.declare_parameter("qos.depth", 10, d("KEEP_LAST depth of inputs and outputs"))
        self.declare_parameter("qos.reliability", "reliable", d("reliable | best_effort"))
        self.declare_parameter("diagnostics_period_s", 1.0, d("period of counter reports on /diagnostics"))
        self.declare_parameter("autostart", True, d("configure + activate at start-up; false = wait for a "
                                                    "lifecycle manager"))

        self.streams: dict[str, Stream] = {}
        for name in self.get_parameter("streams").value or []:
            sensor = sensor_set[name] if name in sensor_set else None
            topic, msgtype = (sensor.topic, sensor.msgtype) if sensor is not None else ("", "")
            input_topic = self.declare_parameter(f"{name}.input_topic", topic).value
            default_output = OUTPUT_PREFIX + ("" if input_topic.startswith("/") else "/") + input_topic
            output_topic = self.declare_parameter(f"{name}.output_topic", default_output).value
            msgtype = self.declare_parameter(f"{name}.type", msgtype).value
            modality = self.declare_parameter(f"{name}.modality", name).value
            if not input_topic or input_topic == output_topic:
                raise ValueError(f"stream {name}: input_topic must be set and differ from output_topic")
            self.streams[input_topic] = Stream(name, modality, input_topic, output_topic, msgtype)

        topics: dict[str, list[str]] = {}
        for s in self.streams.values():
            topics.setdefault(s.modality, []).append(s.input_topic)
        def param(name: str) -> list[str]:  # an uninitialised string[] parameter means "none"
            value = self.get_parameter_or(name, Parameter(name, value=[])).value
            return [v for v in (value or []) if v]

        self.plan: DropPlan = build_plan(param("drop"), param("stall"), param("delay"), param("freeze"),
                                         self.get_parameter("plan_file").value or None,
                                         int(self.get_parameter("seed").value),
                                         [f"{m}={','.join(t)}" for m, t in topics.items()])
        self.applier = PlanApplier(self.plan)
        origin = self.get_parameter("time_origin").value
        if origin not in ("first_message", "node_start"):
            raise ValueError(f"time_origin must be first_message or node_start, got {origin!r}")
        self._t0: Optional[int] = self._now_ns() if origin == "node_start" else None
        self.qos = keep_last_qos(self.get_parameter("qos.reliability").value,
                                 int(self.get_parameter("qos.depth").value))
        self._pending: list = []  # (due_ns, seq, stream, data)
        self._seq = itertools.count()
        self._active = False
        self._discovery_timer = None
        self._delay_timer = None
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(self.get_parameter("diagnostics_period_s").value), self._publish_diagnostics)

    # -- lifecycle --------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        for s in self.streams.values():
            if s.msgtype and s.publisher is None:
                s.publisher = self.create_publisher(message_class(s.msgtype), s.output_topic, self.qos)
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for s in self.streams.values():
            if s.msgtype:
                self._connect(s)
        if any(not s.msgtype for s in self.streams.values()):
            self._discovery_timer = self.create_timer(0.5, self._discover)
        # a delayed message goes out on the next tick of this timer (<= 5 ms late)
        if any(e.kind == "delay" for e in self.plan.events):
            self._delay_timer = self.create_timer(0.005, self._flush)
        self._active = True
        self.get_logger().info("relaying " + ", ".join(f"{s.input_topic} -> {s.output_topic}"
                                                        for s in self.streams.values())
                               + f"; plan: {self.plan.describe()}")
        return super().on_activate(state)

    def _stop_relay(self) -> None:
        self._active = False
        for timer in (self._discovery_timer, self._delay_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._discovery_timer = self._delay_timer = None
        for s in self.streams.values():
            if s.subscription is not None:
                self.destroy_subscription(s.subscription)
                s.subscription = None
        self._pending = []

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_relay()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_relay()
        for s in self.streams.values():
            if s.publisher is not None:
                self.destroy_publisher(s.publisher)
                s.publisher = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_relay()
        return super().on_shutdown(state)

    # -- wiring -----------------------------------------------------------------------------------
    def _connect(self, s: Stream) -> None:
        cls = message_class(s.msgtype)
        if s.publisher is None:
            s.publisher = self.create_publisher(cls, s.output_topic, self.qos)
        s.subscription = self.create_subscription(cls, s.input_topic, lambda data, s=s: self._on_message(s, data),
                                                  self.qos, raw=True)

    def _discover(self) -> None:
        known = dict(self.get_topic_names_and_types())
        for s in self.streams.values():
            if not s.msgtype and s.input_topic in known:
                s.msgtype = known[s.input_topic][0]
                try:
                    self._connect(s)
                    self.get_logger().info(f"{s.input_topic}: discovered type {s.msgtype}")
                except UnknownMessageType as exc:
                    self.get_logger().error(str(exc))
        if all(s.msgtype for s in self.streams.values()) and self._discovery_timer is not None:
            self._discovery_timer.cancel()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    # -- relay ------------------------------------------------------------------------------------
    def _on_message(self, s: Stream, data: bytes) -> None:
        now = self._now_ns()
        if self._t0 is None:
            self._t0 = now
        t = (now - self._t0) / 1e9
        for e in self.applier.process_serialized(s.input_topic, s.msgtype, t, data):
            if e.time > t:
                heapq.heappush(self._pending, (now + int((e.time - t) * 1e9), next(self._seq), s, e.payload))
            else:
                s.publisher.publish(e.payload)
        if self._pending:
            self._flush()

    def _flush(self) -> None:
        now = self._now_ns()
        while self._pending and self._pending[0][0] <= now:
            _, _, s, data = heapq.heappop(self._pending)
            s.publisher.publish(data)

    # -- reporting --------------------------------------------------------------------------------
    def counters(self) -> dict[str, dict[str, int]]:
        return self.applier.counters.as_dict()

    def _publish_diagnostics(self) -> None:
        values = {f"{kind}.{m}": n for kind, table in self.counters().items() for m, n in table.items()}
        level, message = (OK, self.plan.describe()) if self._active else (WARN, "inactive: relaying nothing")
        status = self.report_internal_errors(diag_status(status_name(self, "plan"), NO_HARDWARE, level, message,
                                                         values))
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def _print_counters(node: SensorDropoutNode) -> None:
    # after Ctrl-C the context is already shut down: /rosout is gone, so print instead
    print(f"sensor_dropout: counters: {node.counters()}", file=sys.stderr)


def main(args=None) -> int:
    return run_node(SensorDropoutNode, args, config_errors=(DropPlanError, UnknownMessageType, ValueError),
                    on_exit=_print_counters)


if __name__ == "__main__":
    sys.exit(main())
