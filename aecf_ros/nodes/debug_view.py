"""``debug_view``: ``aecf/debug_image`` (sensor_msgs/Image, rgb8) for rviz and Foxglove.

The newest camera frame with each sensor's state (fused / stale / never seen), its gate weight
and the top predictions with their scores, all read from ``aecf/prediction``
(:mod:`aecf_ros.runtime.debug_view` draws it). One image per prediction, at most
``max_rate_hz``; header = the prediction's stamp and the camera frame's ``frame_id``.

Nothing is computed while nobody looks: every ``subscriber_check_period_s`` the node counts the
subscribers of ``aecf/debug_image``; only while there is one does it subscribe to the camera
(``image`` or, with ``transport: compressed``, ``image_compressed``: remapped like the camera
encoder's; one of the two, never both) and the predictions, and draw. With none it holds no subscription, so camera frames are not even delivered to it.

No model is loaded (numpy + OpenCV only). Lifecycle node like the others (``autostart``).
While no prediction arrives for ``silence_s`` (the fusion node publishes nothing when too few
sensors are present, or it is down), the view says NO PREDICTION, every ``silence_s``.

Parameters: :data:`aecf_ros.graph.DEBUG_VIEW_PARAMETERS`. Counters in ``/diagnostics``:
``rendered``, ``rendered_no_prediction``, ``rate_limited``, ``bad_frame`` (a camera frame that
could not be decoded: the view is drawn without it), ``bad_prediction`` (a prediction whose arrays
disagree in length: not drawn), ``subscribers``.
"""
from __future__ import annotations

import collections
import sys
import time
from typing import Any, Optional

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image

from aecf_ros import graph
from aecf_ros.msg import FusedPrediction
from aecf_ros.nodes.diagnostics import NO_HARDWARE, OK, WARN, diag_status, status_name
from aecf_ros.nodes.guarded import GuardedCallbacks
from aecf_ros.nodes.parameters import install_parameters
from aecf_ros.nodes.qos import keep_last_qos, qos_from_params
from aecf_ros.nodes.session import run_node
from aecf_ros.runtime.conversions import ConversionError, compressed_msg_to_rgb, image_msg_to_rgb
from aecf_ros.runtime.debug_view import ViewInput, render, silent_view


class DebugViewNode(GuardedCallbacks, LifecycleNode):
    NODE_NAME = "debug_view"

    def __init__(self, node_name: Optional[str] = None, **kwargs):
        super().__init__(node_name or self.NODE_NAME, **kwargs)
        spec = graph.node_spec(self.NODE_NAME)
        install_parameters(self, spec.parameters)
        self.counters: collections.Counter[str] = collections.Counter()
        self._pub = None
        self._watch_timer = None
        self._silence_timer = None
        self._subs: list = []
        self._frame_msg: Any = None  # newest camera message, decoded only when drawn
        self._last_render = -1e9
        self._last_prediction = 0.0  # monotonic time of the newest prediction (or of subscribing)
        self._modalities: list[str] = list(graph.MODALITIES)  # the newest prediction's
        self._camera_input = "image"  # the transport's input topic, read on configure
        self._diag_pub = self.create_publisher(DiagnosticArray, graph.DIAGNOSTICS_TOPIC, 10)
        self.create_timer(float(self.get_parameter("diagnostics_period_s").value), self._publish_diagnostics)

    # -- lifecycle --------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._camera_input = graph.CAMERA_TRANSPORTS[str(self.get_parameter("transport").value)]
        self._pub = self.create_lifecycle_publisher(Image, graph.DEBUG_IMAGE_TOPIC, keep_last_qos("reliable", 2))
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._watch_timer = self.create_timer(float(self.get_parameter("subscriber_check_period_s").value),
                                              self._watch)
        result = super().on_activate(state)
        self._watch()
        return result

    def _stop(self) -> None:
        if self._watch_timer is not None:
            self.destroy_timer(self._watch_timer)
            self._watch_timer = None
        self._unsubscribe()

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
            self._pub = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        return super().on_shutdown(state)

    # -- subscribe only while watched ---------------------------------------------------------------
    @property
    def watching(self) -> bool:
        return bool(self._subs)

    def _watch(self) -> None:
        n = self._pub.get_subscription_count() if self._pub is not None else 0
        self.counters["subscribers"] = n
        if n and not self._subs:
            qos = qos_from_params(self, "image")
            frame_type = CompressedImage if self._camera_input == "image_compressed" else Image
            self._subs = [
                self.create_subscription(frame_type, self._camera_input, self._on_frame, qos),
                self.create_subscription(FusedPrediction, graph.PREDICTION_TOPIC, self._on_prediction,
                                         keep_last_qos("reliable", 1)),
            ]
            self._last_prediction = time.monotonic()
            self._silence_timer = self.create_timer(float(self.get_parameter("silence_s").value),
                                                    self._on_silence)
            self.get_logger().info(f"{n} subscriber(s) on {self._pub.topic_name}: drawing")
        elif not n and self._subs:
            self._unsubscribe()
            self.get_logger().info("no subscriber: not drawing, camera and predictions unsubscribed")

    def _unsubscribe(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._frame_msg = None
        if self._silence_timer is not None:
            self.destroy_timer(self._silence_timer)
            self._silence_timer = None

    # -- drawing --------------------------------------------------------------------------------
    def _on_frame(self, msg) -> None:
        self._frame_msg = msg

    def _frame(self):
        msg = self._frame_msg
        if msg is None:
            return None
        max_pixels = int(self.get_parameter("max_pixels").value)
        try:
            if isinstance(msg, CompressedImage):
                return compressed_msg_to_rgb(msg, max_pixels)
            return image_msg_to_rgb(msg, max_pixels)
        except ConversionError as exc:
            self.counters["bad_frame"] += 1
            self.get_logger().warning(f"camera frame not drawn: {exc}", throttle_duration_sec=5.0)
            return None

    def _on_prediction(self, msg: FusedPrediction) -> None:
        view_input = ViewInput.from_msg(msg)
        problem = view_input.problem()
        if problem:  # checked at the boundary: drawing it would raise
            self.counters["bad_prediction"] += 1
            self.get_logger().warning(f"prediction not drawn: {problem}", throttle_duration_sec=5.0)
            return
        now = time.monotonic()
        self._last_prediction = now
        self._modalities = list(msg.modalities)
        if now - self._last_render < 1.0 / float(self.get_parameter("max_rate_hz").value):
            self.counters["rate_limited"] += 1
            return
        self._last_render = now
        self._publish_view(view_input, msg.header.stamp, msg.header.frame_id)
        self.counters["rendered"] += 1

    def _on_silence(self) -> None:
        """No prediction for ``silence_s``: say so (the fusion node publishes nothing with too few
        sensors present), with the newest camera frame if there is one."""
        silent = time.monotonic() - self._last_prediction
        if silent < float(self.get_parameter("silence_s").value):
            return
        self._publish_view(silent_view(self._modalities, silent), self.get_clock().now().to_msg(), "")
        self.counters["rendered_no_prediction"] += 1

    def _publish_view(self, view_input: ViewInput, stamp, frame_id: str) -> None:
        view = render(view_input, self._frame(), width=int(self.get_parameter("width").value),
                      top_k=int(self.get_parameter("top_k").value))
        out = Image(height=view.image.shape[0], width=view.image.shape[1], encoding="rgb8", is_bigendian=0,
                    step=view.image.shape[1] * 3)
        out.data = view.image.tobytes()
        out.header.stamp = stamp
        out.header.frame_id = self._frame_msg.header.frame_id if self._frame_msg is not None else frame_id
        self._pub.publish(out)

    # -- reporting --------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        active = self._pub is not None and self._watch_timer is not None
        if not active:
            level, message = WARN, "inactive: not drawing"
        elif self.watching:
            level, message = OK, f"drawing for {self.counters['subscribers']} subscriber(s)"
        else:
            level, message = OK, "idle: nobody subscribes to the debug image"
        status = self.report_internal_errors(diag_status(status_name(self, "view"), NO_HARDWARE, level, message,
                                                         dict(self.counters)))
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


NODE_CLASS = DebugViewNode


def main(args=None) -> int:
    return run_node(DebugViewNode, args)


if __name__ == "__main__":
    sys.exit(main())
