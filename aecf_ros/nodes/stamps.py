"""Header stamps and the node clock in seconds, on the ROS side (``rclpy.time.Time``).

ROS-free code (bags read with rosbags, the run-time logic) uses :mod:`aecf_ros.runtime.stamps`.
"""
from __future__ import annotations

from rclpy.time import Time

from aecf_ros.runtime.stamps import stamp_to_sec as runtime_stamp_to_sec


def stamp_to_sec(stamp) -> float:
    """Seconds of a ``builtin_interfaces/Time`` message. Never raises: ``Time.from_msg`` raises
    ``ValueError`` on a negative ``sec`` (which int32 allows), and a raise in a subscription
    callback ends the node's spin. Invalid stamps are dropped as ``bad_stamp`` by
    :func:`aecf_ros.runtime.stamps.stamp_problem` before this is reached."""
    return runtime_stamp_to_sec(stamp)


def sec_to_stamp(seconds: float):
    """``builtin_interfaces/Time`` of ``seconds`` (rounded to the nanosecond; negative -> 0)."""
    return Time(nanoseconds=max(0, int(round(seconds * 1e9)))).to_msg()


def now_sec(node) -> float:
    """The node clock's now in seconds (sim time under ``use_sim_time``)."""
    return node.get_clock().now().nanoseconds * 1e-9
