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

Also guarded, by the code that installs them: the parameter post-set hooks
(:func:`~aecf_ros.nodes.parameters.install_parameters`: they run inside rclpy's parameter service,
in the same executor) and the encoders' incompatible-QoS event handlers
(:func:`~aecf_ros.nodes.qos_events.incompatible_qos_callbacks`).

Not guarded (rclpy runs them, not this package's wrappers): the parameter validators (they return
a result for any value), the parameter and lifecycle services' own code, the lifecycle transition
callbacks (rclpy turns a raising ``on_configure`` & co. into the transition's ``ERROR``, without a
log line), and service/client callbacks (none here). docs/RELIABILITY.md, "Internal errors: the
policy", has the whole list and the measured cost.
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
