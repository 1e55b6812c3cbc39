"""QoS profiles of the nodes' subscriptions and publishers."""
from __future__ import annotations

from rclpy.qos import (HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data,
                       qos_profile_system_default)


def qos_from_params(node, input_name: str) -> QoSProfile:
    """Input QoS from ``qos.<input>.profile`` / ``.reliability`` / ``.depth``.

    RELIABLE is the default on purpose: with FastDDS defaults, BEST_EFFORT ~1 MB images and
    clouds were measured delivering nothing on this kind of machine; RELIABLE delivered all.
    REP 2003 has drivers publish with SystemDefaultsQoS (RELIABLE: this default matches them) and
    consumers subscribe with SensorDataQoS (BEST_EFFORT); ``sensor_data`` is that consumer profile,
    needed for drivers that publish BEST_EFFORT: a RELIABLE subscription cannot match them (the
    nodes report that incompatibility in /diagnostics and the log).
    """
    return named_qos(node.get_parameter(f"qos.{input_name}.profile").value,
                     int(node.get_parameter(f"qos.{input_name}.depth").value),
                     node.get_parameter(f"qos.{input_name}.reliability").value)


def named_qos(profile: str, depth: int, reliability: str = "") -> QoSProfile:
    """``reliable`` | ``sensor_data`` | ``system_default`` with KEEP_LAST ``depth``;
    ``reliability`` (``reliable`` / ``best_effort``) overrides the profile's when not empty."""
    if profile == "sensor_data":
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                         reliability=qos_profile_sensor_data.reliability,
                         durability=qos_profile_sensor_data.durability)
    elif profile == "system_default":
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                         reliability=qos_profile_system_default.reliability,
                         durability=qos_profile_system_default.durability)
    else:
        qos = keep_last_qos("reliable", depth)
    if reliability:
        qos.reliability = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return qos


def keep_last_qos(reliability: str, depth: int) -> QoSProfile:
    """KEEP_LAST ``depth``; ``best_effort`` or (anything else) RELIABLE."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=int(depth),
        reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE)
