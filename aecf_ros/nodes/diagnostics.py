"""``diagnostic_msgs/DiagnosticStatus`` building and reading for the nodes' /diagnostics reports."""
from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


def diag_status(name: str, hardware_id: str, level: int, message: str, values: dict) -> DiagnosticStatus:
    status = DiagnosticStatus(name=name, hardware_id=hardware_id, message=message)
    status.level = bytes([level]) if isinstance(DiagnosticStatus.OK, bytes) else level
    status.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return status


#: ``hardware_id`` of a status that is about no sensor (the fusion output, the debug view, the
#: dropout plan): diagnostic_updater asks for ``none`` "for devices that do not have a HW_ID"
NO_HARDWARE = "none"


def status_name(node, what: str) -> str:
    """``<node name>: <what>``, as diagnostic_updater names a task's status (``fusion_node: lidar``).

    In a namespace the name is the fully qualified one, ``/robot1/fusion_node: lidar``, which
    is what diagnostic_updater writes with its ``diagnostic_updater.use_fqn: true``: two robots'
    reports then stay apart in rqt_robot_monitor and diagnostic aggregators, which group by name
    (the updater's default, the bare node name, would merge them)."""
    base = node.get_name() if node.get_namespace() in ("", "/") else node.get_fully_qualified_name()
    return f"{base}: {what}"


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
