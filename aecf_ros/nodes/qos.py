"""QoS profiles of the nodes' subscriptions and publishers."""
from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy


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
