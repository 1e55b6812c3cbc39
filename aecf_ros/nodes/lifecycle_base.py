"""The lifecycle skeleton shared by the model-loading nodes (the encoders and the fusion node).

Parameters declared from the node's :class:`~aecf_ros.graph.NodeSpec` and validated on
every change; ``/diagnostics`` published every ``diagnostics_period_s``; the model loaded in
``on_configure`` (:meth:`ModelLifecycleNode.load_model`); subscriptions (and whatever
:meth:`_stop_io` tears down) exist only while active; dropped inputs logged throttled per
reason (:class:`~aecf_ros.runtime.drop_log.PerReasonThrottle`); every subscription and timer
callback guarded (:mod:`aecf_ros.nodes.guarded`: an internal error is logged, counted, reported
ERROR, and the node keeps serving).
"""
from __future__ import annotations

from typing import Callable, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from aecf_ros import graph
from aecf_ros.nodes.guarded import GuardedCallbacks
from aecf_ros.nodes.model_loading import load_model_from_params
from aecf_ros.nodes.parameters import install_parameters
from aecf_ros.nodes.sensor_params import declare_sensor_set
from aecf_ros.sensors import DEFAULT_SENSOR_SET
from aecf_ros.runtime.drop_log import PerReasonThrottle

#: at most one log line per drop reason per this many seconds (all drops are counted)
DROP_LOG_PERIOD_S = 5.0


class ModelLifecycleNode(GuardedCallbacks, LifecycleNode):
    """Subclasses implement :meth:`diagnostics` and their own configure / activate steps."""

    #: True: the node reads the declared sensor set (``sensors``, ``<name>.*``) and its
    #: parameter table depends on it (``_specs_for(sensor_set) -> NodeSpec``)
    DECLARES_SENSORS = False

    def __init__(self, spec: graph.NodeSpec, node_name: Optional[str] = None,
                 extra_check: Optional[Callable[[dict], Optional[str]]] = None, **kwargs):
        super().__init__(node_name or spec.name, **kwargs)
        self.sensor_set, self.sensor_error = DEFAULT_SENSOR_SET, None
        if self.DECLARES_SENSORS:  # first, so the per-sensor parameters can follow it
            self.sensor_set, self.sensor_error = declare_sensor_set(self)
            spec = self._specs_for(self.sensor_set)
        install_parameters(self, spec.parameters, extra_check, on_set=self._on_params_set)
        self.model = None
        self.warm_up_s: Optional[float] = None
        self._pub = None  # the lifecycle publisher of the node's output
        self._subs = []
        self._active = False
        self.drop_log = PerReasonThrottle(DROP_LOG_PERIOD_S)
        self._diag_pub = self.create_publisher(DiagnosticArray, graph.DIAGNOSTICS_TOPIC, 10)
        self._diag_timer = self.create_timer(
            float(self.get_parameter("diagnostics_period_s").value), self._publish_diagnostics)

    # ------------------------------------------------------------------ hooks
    def _on_params_set(self, params) -> None:
        """Post-set callback (values already validated)."""

    def diagnostics(self) -> DiagnosticArray:
        raise NotImplementedError

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(self.diagnostics())

    # ------------------------------------------------------------------ helpers
    def load_model(self) -> bool:
        """Load the bundle named by the parameters into ``self.model``; False (logged) if it cannot."""
        from aecf_ros.model import ModelLoadError

        self.get_logger().info(f"loading model {self.get_parameter('model_path').value or 'default'} "
                               f"on {self.get_parameter('device').value}")
        # only this node's part: an encoder node its encoder, the fusion node no encoder at all
        # (the text encoder alone is 22.7 M parameters); fusion + head + calibrator are small
        modality = getattr(self, "sensor", "") or getattr(self, "MODALITY", "")
        try:
            self.model = load_model_from_params(self, parts=[modality] if modality else [])
        except ModelLoadError as exc:
            self.get_logger().error(f"cannot load model: {exc}")
            return False
        return True

    def log_drop(self, what: str, reason: str, detail: str = "") -> None:
        """Log a dropped input, throttled per ``reason`` (the caller counts it)."""
        suffix = self.drop_log.suffix(reason)
        if suffix is not None:
            self.get_logger().warning(f"dropped {what}: {reason}" + (f": {detail}" if detail else "") + suffix)

    # ------------------------------------------------------------------ lifecycle
    def _stop_io(self) -> None:
        self._active = False
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    def _release(self) -> None:
        """on_cleanup: drop what on_configure made."""
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
            self._pub = None
        self.model = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_shutdown(state)
