"""``diagnostic_msgs/DiagnosticStatus`` building and reading for the nodes' /diagnostics reports."""
from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


def diag_status(name: str, hardware_id: str, level: int, message: str, values: dict) -> DiagnosticStatus:
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, message=message)
    status.level = bytes([level]) if isinstance(DiagnosticStatus.OK, bytes) else level
    status.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return status


def status_name(node, what: str) -> str:
    """``<namespace>/<node>: <what>`` (``robot1/fusion_node: lidar``): status names carry the
    namespace, so two robots' reports stay apart in rqt_robot_monitor and diagnostic aggregators,
    which group by name (without a namespace: ``fusion_node: lidar``)."""
    return f"{node.get_fully_qualified_name().lstrip('/')}: {what}"


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
