"""Helpers shared by the aecf_ros nodes: parameters from graph.py, QoS, model loading,
diagnostics and the ``main()`` that brings a lifecycle node up to active."""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from aecf_ros.nodes.graph import DEFAULT_MODEL, ParamSpec

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def declare_from_specs(node, specs: Iterable[ParamSpec]) -> None:
    """Declare each parameter with a descriptor (description, range) from graph.py."""
    for spec in specs:
        descriptor = ParameterDescriptor(
            description=spec.description + ("" if spec.applied == "live" else " [applied on configure]"))
        if spec.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
        if spec.range is not None:
            lo, hi = spec.range
            if isinstance(spec.default, bool):
                pass
            elif isinstance(spec.default, int):
                descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        node.declare_parameter(spec.name, spec.default, descriptor)


def check_choice(spec: ParamSpec, value: Any) -> Optional[str]:
    """Reason a value is invalid for ``spec`` (choices, device syntax), else None."""
    if spec.choices and value not in spec.choices:
        return f"{spec.name} must be one of {', '.join(spec.choices)}, got {value!r}"
    if spec.name == "device":
        v = str(value).lower()
        if not (v in DEVICE_CHOICES or (v.startswith("cuda:") and v[5:].isdigit())):
            return f"device must be auto, cpu, cuda or cuda:N, got {value!r}"
    if spec.range is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            return f"{spec.name} must be finite, got {value!r}"
    return None


def qos_from_params(node, input_name: str) -> QoSProfile:
    """Input QoS from ``qos.<input>.reliability`` / ``qos.<input>.depth``.

    RELIABLE is the default on purpose: with FastDDS defaults, BEST_EFFORT ~1 MB images and
    clouds were measured delivering nothing on this kind of machine; RELIABLE delivered all.
    ``best_effort`` (the sensor-data profile's reliability) stays available for drivers that
    only publish BEST_EFFORT (a RELIABLE subscription cannot match a BEST_EFFORT publisher).
    """
    return keep_last_qos(node.get_parameter(f"qos.{input_name}.reliability").value,
                         int(node.get_parameter(f"qos.{input_name}.depth").value))


def keep_last_qos(reliability: str, depth: int) -> QoSProfile:
    """KEEP_LAST ``depth``; ``best_effort`` or (anything else) RELIABLE."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=int(depth),
        reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE)


def configure_torch_threads() -> int:
    """One intra-op thread per process unless ``AECF_TORCH_THREADS`` says otherwise.

    Batch-1 inference of these small networks gains nothing from more threads, and on a busy
    2-core machine torch's default (one thread per core, spin-waiting) was measured 30-50x
    slower (default camera encoder ~100 ms vs ~2 ms a frame) as the nodes' threads fight.
    """
    import torch

    threads = int(os.environ.get("AECF_TORCH_THREADS", "1") or 1)
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def load_model_from_params(node):
    """Load the bundle named by ``model_path`` on ``device``; raises ModelLoadError."""
    from aecf_ros.model import load_model

    configure_torch_threads()
    path = str(node.get_parameter("model_path").value or "")
    device = str(node.get_parameter("device").value or "auto")
    return load_model(None if path in ("", DEFAULT_MODEL) else path, device)


def unmatched(endpoints: Mapping[str, Any]) -> list[str]:
    """Names of the endpoints with no peer yet: a publisher without a matched subscription, or
    a subscription without a matched publisher."""
    def peers(endpoint) -> int:
        if hasattr(endpoint, "get_subscription_count"):
            return endpoint.get_subscription_count()
        return endpoint.get_publisher_count()

    return [name for name, endpoint in endpoints.items() if peers(endpoint) == 0]


def wait_for_discovery(endpoints: Mapping[str, Any], timeout_s: float,
                       while_waiting: Optional[Callable[[], None]] = None,
                       stop: Optional[Callable[[], bool]] = None, poll_s: float = 0.05) -> list[str]:
    """Block until every endpoint (``{name: publisher or subscription}``) has matched a peer.

    DDS discovery of a new participant took > 2 s on a busy 2-core machine, so whatever starts
    a timed scenario (bag replay, the demo's sensors) waits for it instead of guessing a delay.
    ``while_waiting()`` runs every ``poll_s`` (e.g. publish /clock, spin an executor once);
    ``stop()`` true ends the wait early. Returns the names still unmatched: empty when all
    matched, else the wait timed out or was stopped.
    """
    deadline = time.monotonic() + float(timeout_s)
    while True:
        missing = unmatched(endpoints)
        if not missing or time.monotonic() > deadline or (stop is not None and stop()):
            return missing
        if while_waiting is not None:
            while_waiting()
        time.sleep(poll_s)


def stamp_to_sec(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def sec_to_stamp(seconds: float):
    from builtin_interfaces.msg import Time

    ns = max(0, int(round(seconds * 1e9)))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def now_sec(node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


def diag_status(name: str, hardware_id: str, level: int, message: str, values: dict) -> DiagnosticStatus:
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, message=message)
    status.level = bytes([level]) if isinstance(DiagnosticStatus.OK, bytes) else level
    status.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return status


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def level_value(level) -> int:
    """DiagnosticStatus.level arrives as bytes in rclpy: b'\\x01' -> 1."""
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)


OK, WARN, ERROR, STALE = 0, 1, 2, 3


class ParameterValidator:
    """``add_on_set_parameters_callback`` body: choice/syntax checks from graph.py specs plus
    an optional node-specific check of the whole candidate set of values."""

    def __init__(self, node, specs: Sequence[ParamSpec],
                 extra_check: Optional[Callable[[dict], Optional[str]]] = None):
        self.node = node
        self.specs = {s.name: s for s in specs}
        self.extra_check = extra_check

    def __call__(self, params: list[Parameter]) -> SetParametersResult:
        candidate = {}
        for p in params:
            spec = self.specs.get(p.name)
            if spec is None:
                continue
            reason = check_choice(spec, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            candidate[p.name] = p.value
        if self.extra_check and candidate:
            reason = self.extra_check(candidate)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)


def bring_up(node: LifecycleNode) -> bool:
    """Configure + activate a lifecycle node in-process (what ``autostart`` does).

    Returns True when the node ended up active. Used by ``main()`` (parameter ``autostart``,
    default true) and by the runner, so ``ros2 launch`` / ``aecf-ros run`` need no lifecycle
    manager; with ``autostart:=false`` an external manager drives the lifecycle services.
    """
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("configure failed; node stays unconfigured")
        return False
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("activate failed; node stays inactive")
        return False
    return True


class ShutdownRequested(KeyboardInterrupt):
    """Raised in the main thread by :class:`RosSession` on SIGINT (Ctrl-C) or SIGTERM."""


#: how long one executor wait may block: the longest a Ctrl-C waits to be noticed while idle
SPIN_PERIOD_S = 0.1


class RosSession:
    """The one copy of the clean-shutdown logic; every aecf_ros entry point runs inside one.

    ::

        with RosSession(args) as ros:
            node = ros.add_node(MyNode(context=ros.context))
            if ros.bring_up(node):
                ros.spin()
        return ros.exit_code

    Why not rclpy's own signal handlers: they shut the rcl context down from a helper thread
    the moment SIGINT arrives, while the main thread may be building a wait set, publishing from
    a timer or loading a model in ``on_configure``. Each of those then fails with an ``RCLError``
    (``context is not valid``) instead of a ``KeyboardInterrupt`` (a traceback, or a lifecycle
    transition that "fails" and exits 1), and the ``KeyboardInterrupt`` Python queued for the
    same signal goes off later, in the middle of the cleanup. Under CPU load both orders
    happen. Here SIGINT/SIGTERM raise :class:`ShutdownRequested` in the main thread only, the
    context stays valid until this class shuts it down, and cleanup runs once, in order
    (executor, then each node once, then the context), with later signals only counted.

    Leaving the ``with`` block with ``KeyboardInterrupt``, ``ExternalShutdownException`` or,
    once the context is no longer ok (someone else shut it down), an ``RCLError`` /
    ``InvalidHandle`` is a normal end: suppressed, ``interrupted`` set, ``exit_code`` 0 unless
    the body set another. Any other exception propagates. With ``on_signal``, the first signal
    calls it instead of raising (the body stops itself), a second one raises.
    """

    def __init__(self, args: Optional[list[str]] = None, *, context=None, handle_signals: bool = True,
                 on_signal: Optional[Callable[[], None]] = None):
        from rclpy.context import Context

        self.args = args
        self.on_signal = on_signal
        self.context = context if context is not None else Context()
        self.handle_signals = handle_signals
        self.nodes: list = []
        self.executor: Optional[SingleThreadedExecutor] = None
        self.exit_code = 0
        self.interrupted = False
        self._closing = False
        self._signals_while_closing = 0
        self._previous_handlers: dict = {}

    # ------------------------------------------------------------------ set-up
    def __enter__(self) -> "RosSession":
        from rclpy.signals import SignalHandlerOptions

        if self.handle_signals:
            self._install_handlers()
        try:
            rclpy.init(args=self.args if self.args is not None else [], context=self.context,
                       signal_handler_options=SignalHandlerOptions.NO)
        except BaseException:
            self._restore_handlers()
            raise
        return self

    def _install_handlers(self) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (tests run us in-process)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_handlers(self) -> None:
        import signal

        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def _on_signal(self, signum, _frame) -> None:
        if self._closing:
            # cleanup is bounded and already under way: a second Ctrl-C must not turn it into a
            # traceback; a third means the user really wants out of a cleanup that hangs.
            self._signals_while_closing += 1
            if self._signals_while_closing >= 2:
                os._exit(1)
            return
        if not self.interrupted:
            self.interrupted = True
            if self.on_signal is not None:
                self.on_signal()  # cooperative stop (bag replay finishes its report)
                return
            raise ShutdownRequested()
        if self.on_signal is not None:
            raise ShutdownRequested()  # the second Ctrl-C does not wait for the cooperative stop

    # ------------------------------------------------------------------ the body's helpers
    def add_node(self, node):
        """Track ``node`` so the session destroys it (exactly once) on the way out."""
        self.nodes.append(node)
        if self.executor is not None:
            self.executor.add_node(node)
        return node

    def get_executor(self) -> SingleThreadedExecutor:
        """The session's SingleThreadedExecutor with every added node (MultiThreaded is broken here)."""
        if self.executor is None:
            self.executor = SingleThreadedExecutor(context=self.context)
            for node in self.nodes:
                self.executor.add_node(node)
        return self.executor

    def bring_up(self, node) -> bool:
        """:func:`bring_up` that tells a real failure from a shutdown during the transitions."""
        if bring_up(node):
            return True
        if not self.context.ok():
            raise ExternalShutdownException()
        return False

    @property
    def ok(self) -> bool:
        return self.context.ok() and not self.interrupted

    def spin_once(self, timeout_sec: float = SPIN_PERIOD_S) -> None:
        self.get_executor().spin_once(timeout_sec=min(float(timeout_sec), SPIN_PERIOD_S))

    def spin(self, until: Optional[Callable[[], bool]] = None, duration_s: Optional[float] = None) -> None:
        """Spin until shutdown, ``until()`` is true or ``duration_s`` has passed.

        Waits are at most :data:`SPIN_PERIOD_S` long so a signal is acted on promptly (no rclpy
        signal guard condition wakes the executor here)."""
        deadline = None if duration_s is None else time.monotonic() + float(duration_s)
        executor = self.get_executor()
        while self.context.ok() and not (until is not None and until()):
            if deadline is not None and time.monotonic() >= deadline:
                return
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)

    # ------------------------------------------------------------------ the end
    def is_shutdown_exception(self, exc: Optional[BaseException]) -> bool:
        """True for what a normal shutdown looks like: Ctrl-C / SIGTERM, an external shutdown,
        or an rcl error raised because the context is no longer valid."""
        from rclpy.exceptions import InvalidHandle
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        if isinstance(exc, (KeyboardInterrupt, ExternalShutdownException)):
            return True
        return isinstance(exc, (_rclpy.RCLError, InvalidHandle)) and not self.context.ok()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._closing = True
        try:
            suppress = exc is not None and self.is_shutdown_exception(exc)
            if suppress:
                self.interrupted = True
            self.close()
            return suppress
        finally:
            self._restore_handlers()

    def close(self) -> None:
        """Executor, then each node once, then the context. Idempotent."""
        self._closing = True
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=1.0)
            self.executor = None
        nodes, self.nodes = self.nodes, []
        for node in reversed(nodes):
            try:
                node.destroy_node()
            except Exception as exc:  # noqa: BLE001 - one node's failed teardown must not skip the rest
                if self.context.ok():
                    print(f"error destroying {node.get_name()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        self.context.try_shutdown()


def run_node(node_factory: Callable[..., Any], args: Optional[list[str]] = None, *,
             config_errors: tuple[type[BaseException], ...] = (),
             on_exit: Optional[Callable[[Any], None]] = None) -> int:
    """``main()`` body for every aecf_ros node: init, create, autostart, spin, clean exit.

    Exits 0 on Ctrl-C / SIGTERM / external shutdown at any moment (no traceback; see
    :class:`RosSession`); 1 if a lifecycle node's autostart failed (e.g. the model file is
    missing: the reason is logged); 2 if creating the node raised one of ``config_errors``
    (printed as ``<node>: error: ...``). ``on_exit(node)`` runs before the node is destroyed
    (after Ctrl-C /rosout may be gone: print, do not log).
    """
    node = None
    try:
        with RosSession(args if args is not None else sys.argv) as ros:
            try:
                node = ros.add_node(node_factory(context=ros.context))
                lifecycle = isinstance(node, LifecycleNode)
                if lifecycle and node.get_parameter("autostart").value and not ros.bring_up(node):
                    ros.exit_code = 1
                else:
                    ros.spin()
            finally:
                if node is not None and on_exit is not None:
                    on_exit(node)
    except config_errors as exc:
        name = getattr(node_factory, "NODE_NAME", None) or getattr(node_factory, "__name__", "node")
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    return ros.exit_code
