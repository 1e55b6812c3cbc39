"""Header stamps as integer nanoseconds and seconds, ROS-free (the one helper outside ``nodes/``).

A stamp is anything with ``sec`` and ``nanosec`` (an rclpy ``builtin_interfaces/Time``, a
rosbags message's, or raw CDR fields). ROS nodes use ``rclpy.time.Time``
(:mod:`aecf_ros.nodes.stamps`) instead.
"""
from __future__ import annotations

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp) -> int:
    """Nanoseconds of a stamp (exact)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_to_sec(stamp) -> float:
    """Seconds of a stamp."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def split_ns(nanoseconds: int) -> tuple[int, int]:
    """``(sec, nanosec)`` of integer nanoseconds, ``0 <= nanosec < 1e9``."""
    nanoseconds = int(nanoseconds)
    return nanoseconds // NS_PER_S, nanoseconds % NS_PER_S
