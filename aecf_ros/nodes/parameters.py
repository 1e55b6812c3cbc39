"""Node parameters from the graph's table (``aecf_ros/graph.py``): declaration with descriptors,
and the set-parameters validator that rejects bad values with a reason."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional, Sequence

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter

from aecf_ros.graph import ParamSpec

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
