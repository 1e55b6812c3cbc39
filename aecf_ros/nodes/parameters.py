"""Node parameters from the graph's table (``aecf_ros/graph.py``): declaration with descriptors,
and the set-parameters validator that rejects bad values with a reason."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter

from aecf_ros.graph import ParamSpec

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def install_parameters(node, specs: Sequence[ParamSpec],
                       extra_check: Optional[Callable[[dict], Optional[str]]] = None,
                       on_set: Optional[Callable[[list], None]] = None) -> None:
    """Declare ``specs`` on ``node`` and install their checks: the validator (choices, ranges,
    ``extra_check`` over the candidate values), ``on_set(params)`` after a change, and integers
    accepted for float parameters. Humble's rclpy lacks the pre/post-set hooks:
    :mod:`aecf_ros.nodes.compat` supplies them. On a node with a ``callback_guard``
    (:mod:`aecf_ros.nodes.guarded`) ``on_set`` runs under it: a change that makes it raise is an
    internal error (logged, counted, ERROR in /diagnostics), not the end of the node's spin."""
    from aecf_ros.nodes.compat import add_post_set_parameters_callback, add_pre_set_parameters_callback

    declare_from_specs(node, specs)
    node.add_on_set_parameters_callback(ParameterValidator(node, specs, extra_check))
    if on_set is not None:
        guard = getattr(node, "callback_guard", None)  # a GuardedCallbacks node: keep serving
        add_post_set_parameters_callback(node, guard.wrap("parameters post-set", on_set) if guard else on_set)
    add_pre_set_parameters_callback(node, int_to_float(specs))  # (after the post-set hook: compat's order)


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
        if isinstance(spec.default, float):
            declare_float(node, spec.name, spec.default, descriptor)
        else:
            node.declare_parameter(spec.name, spec.default, descriptor)


def declare_float(node, name: str, default: float, descriptor: ParameterDescriptor) -> None:
    """Declare a DOUBLE parameter that also takes an integer from a params file (``timeout_s.text: 3``).

    rclpy (every distro) rejects an INTEGER override of a DOUBLE parameter at declaration
    (``InvalidParameterTypeException``), while rcl's YAML rules make ``3`` an integer. The
    override is read through a dynamically typed declaration, then the parameter is declared
    for real as DOUBLE with the value converted (public API only: works on Humble too).
    """
    probe = node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True)).value
    node.undeclare_parameter(name)
    value = float(probe) if isinstance(probe, (int, float)) and not isinstance(probe, bool) else probe
    node.declare_parameter(name, value, descriptor, ignore_override=True)


def int_to_float(specs: Iterable[ParamSpec]) -> Callable[[list], list]:
    """Pre-set callback: an INTEGER value for a DOUBLE parameter becomes DOUBLE
    (``ros2 param set /ns/fusion_node gate_temperature 2`` works like ``2.0``)."""
    floats = {s.name for s in specs if isinstance(s.default, float)}

    def convert(params: list) -> list:
        return [Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
                if p.name in floats and p.type_ == Parameter.Type.INTEGER else p for p in params]

    return convert


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
