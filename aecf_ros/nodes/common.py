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


def run_node(node_factory: Callable[..., Any], args: Optional[list[str]] = None, *,
             config_errors: tuple[type[BaseException], ...] = (),
             on_exit: Optional[Callable[[Any], None]] = None) -> int:
    """``main()`` body for every aecf_ros node: init, create, autostart, spin, clean exit.

    Exits 0 on Ctrl-C / external shutdown (no traceback); 1 if a lifecycle node's autostart
    failed (e.g. the model file is missing: the reason is logged); 2 if creating the node raised
    one of ``config_errors`` (printed as ``<node>: error: ...``). ``on_exit(node)`` runs before
    the node is destroyed (after Ctrl-C /rosout is gone: print, do not log).
    """
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    code = 0
    try:
        node = node_factory()
        lifecycle = isinstance(node, LifecycleNode)
        if lifecycle and node.get_parameter("autostart").value and not bring_up(node):
            code = 1
        else:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except config_errors as exc:
        name = getattr(node_factory, "NODE_NAME", None) or getattr(node_factory, "__name__", "node")
        print(f"{name}: error: {exc}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            if on_exit is not None:
                on_exit(node)
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return code
