"""Header stamps as integer nanoseconds and seconds, ROS-free (the one helper outside ``nodes/``).

A stamp is anything with ``sec`` and ``nanosec`` (an rclpy ``builtin_interfaces/Time``, a
rosbags message's, or raw CDR fields). ROS nodes use ``rclpy.time.Time``
(:mod:`aecf_ros.nodes.stamps`) instead.
"""
from __future__ import annotations

from typing import Optional

NS_PER_S = 1_000_000_000

#: drop reason of a header stamp that is not a valid ROS time (see :func:`stamp_problem`)
BAD_STAMP = "bad_stamp"


def stamp_problem(stamp) -> Optional[str]:
    """``"bad_stamp"`` when ``stamp`` is not a valid ROS time, else None. THE stamp check of every
    input, live (encoders, fusion node) and offline (evaluate-bag, dataset tools) alike.

    Invalid: ``sec < 0`` (int32 allows it; a driver with a broken clock sends it, and rclpy's
    ``Time.from_msg`` raises on it), ``nanosec`` outside ``[0, 1e9)`` (not normalised), or fields
    that are not integers. The behind/future rules are judged later, on valid stamps, by the
    stream monitor. Never raises.
    """
    try:
        sec, nanosec = stamp.sec, stamp.nanosec
        if isinstance(sec, bool) or isinstance(nanosec, bool) or int(sec) != sec or int(nanosec) != nanosec:
            return BAD_STAMP
        sec, nanosec = int(sec), int(nanosec)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return BAD_STAMP
    if sec < 0 or not 0 <= nanosec < NS_PER_S:
        return BAD_STAMP
    return None


def stamp_to_ns(stamp) -> int:
    """Nanoseconds of a stamp (exact)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_to_sec(stamp) -> float:
    """Seconds of a stamp (plain arithmetic: never raises on an invalid one; check those with
    :func:`stamp_problem` first)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def split_ns(nanoseconds: int) -> tuple[int, int]:
    """``(sec, nanosec)`` of integer nanoseconds, ``0 <= nanosec < 1e9``."""
    nanoseconds = int(nanoseconds)
    return nanoseconds // NS_PER_S, nanoseconds % NS_PER_S
