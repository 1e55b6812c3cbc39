"""Every subscription and timer callback of an aecf_ros node runs under the node's
:class:`~aecf_ros.runtime.callback_guard.CallbackGuard` (the internal-error policy: keep serving).

:class:`GuardedCallbacks` is a mixin placed before ``rclpy`` 's ``Node`` / ``LifecycleNode``: it
overrides ``create_subscription`` and ``create_timer``, so no callback of the node (the
``/clock`` subscription of ``use_sim_time`` included) can be created unguarded. A callback that
raises is logged (traceback once per exception type), counted as ``internal_error`` under
``subscription <topic>`` / ``timer <function>``, and the node's /diagnostics status is ERROR
for :data:`~aecf_ros.runtime.callback_guard.HOLD_S` after it (:meth:`report_internal_errors`).
While the node's context is shut down an exception passes through: that is a normal end
(:class:`~aecf_ros.nodes.session.RosSession` treats it so).

Not guarded (rclpy runs them, not this package's wrappers): the parameter services and the
set-parameters callbacks (rclpy answers a raising one with an error response), the lifecycle
transition services (rclpy turns a raising ``on_configure`` & co. into the transition's
``ERROR``), QoS event callbacks (``event_callbacks``), and service/client callbacks (none here).
"""
from __future__ import annotations

from typing import Callable

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from aecf_ros.nodes.diagnostics import ERROR, level_value
from aecf_ros.runtime.callback_guard import CallbackGuard


class GuardedCallbacks:
    """Mixin: ``class MyNode(GuardedCallbacks, LifecycleNode)``."""

    @property
    def callback_guard(self) -> CallbackGuard:
        # created on first use: rclpy's Node.__init__ may already subscribe to /clock
        guard = self.__dict__.get("_callback_guard")
        if guard is None:
            guard = self.__dict__["_callback_guard"] = CallbackGuard(
                log=lambda line: self.get_logger().error(line),
                passthrough=lambda exc: not self.context.ok())
        return guard

    def create_subscription(self, msg_type, topic: str, callback: Callable, *args, **kwargs):
        name = f"subscription {self._guard_topic_name(topic)}"
        return super().create_subscription(msg_type, topic, self.callback_guard.wrap(name, callback),
                                           *args, **kwargs)

    def create_timer(self, timer_period_sec: float, callback: Callable, *args, **kwargs):
        name = f"timer {getattr(callback, '__name__', type(callback).__name__)}"
        return super().create_timer(timer_period_sec, self.callback_guard.wrap(name, callback), *args, **kwargs)

    def _guard_topic_name(self, topic: str) -> str:
        try:
            return self.resolve_topic_name(topic)
        except Exception:  # noqa: BLE001 - an unresolvable name still gets a name; rclpy reports it
            return topic

    def report_internal_errors(self, status: DiagnosticStatus) -> DiagnosticStatus:
        """Add the ``internal_error`` counters to ``status``; ERROR (and the callbacks named
        first in its message) while one raised within the hold time."""
        guard = self.callback_guard
        status.values = list(status.values) + [KeyValue(key=k, value=str(v)) for k, v in guard.values().items()]
        message = guard.message()
        if message:
            status.message = message + (f"; {status.message}" if status.message else "")
            if level_value(status.level) < ERROR:
                status.level = bytes([ERROR]) if isinstance(status.level, (bytes, bytearray)) else ERROR
        return status
