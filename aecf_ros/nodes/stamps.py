"""Header stamps and the node clock in seconds, on the ROS side (``rclpy.time.Time``).

ROS-free code (bags read with rosbags, the run-time logic) uses :mod:`aecf_ros.runtime.stamps`.
"""
from __future__ import annotations

from rclpy.time import Time


def stamp_to_sec(stamp) -> float:
    """Seconds of a ``builtin_interfaces/Time`` message."""
    return Time.from_msg(stamp).nanoseconds * 1e-9


def sec_to_stamp(seconds: float):
    """``builtin_interfaces/Time`` of ``seconds`` (rounded to the nanosecond; negative -> 0)."""
    return Time(nanoseconds=max(0, int(round(seconds * 1e9)))).to_msg()


def now_sec(node) -> float:
    """The node clock's now in seconds (sim time under ``use_sim_time``)."""
    return node.get_clock().now().nanoseconds * 1e-9
