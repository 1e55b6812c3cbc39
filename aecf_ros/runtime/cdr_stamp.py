"""Header stamps inside serialized CDR bytes, read and rewritten without deserialising.

Replay, evaluate-bag and the live ``sensor_dropout`` relay pass messages on as the bytes they
got; a drop plan's ``freeze:restamp`` still has to give a frozen copy a fresh header stamp, and
reading a stamp must not cost a deserialisation. Only header-first types qualify: their
``std_msgs/Header`` stamp sits right after the 4-byte CDR encapsulation.
"""
from __future__ import annotations

import struct

from aecf_ros.runtime.stamps import NS_PER_S, split_ns

#: Types whose first field is std_msgs/Header, so the stamp sits right after the CDR encapsulation.
HEADER_FIRST_TYPES = frozenset({
    "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/PointCloud2",
    "sensor_msgs/msg/LaserScan", "sensor_msgs/msg/Imu", "sensor_msgs/msg/CameraInfo",
    "diagnostic_msgs/msg/DiagnosticArray", "aecf_ros/msg/ModalityEmbedding", "aecf_ros/msg/FusedPrediction",
})


def _cdr_order(data) -> str:
    if len(data) < 12:
        raise ValueError(f"serialized message too short for a header ({len(data)} bytes)")
    return "<" if data[1] & 1 else ">"


def cdr_header_stamp_ns(data) -> int:
    """Header stamp (ns) of a serialized header-first message (CDR: 4-byte encapsulation, then sec, nanosec)."""
    sec, nanosec = struct.unpack_from(_cdr_order(data) + "iI", data, 4)
    return sec * NS_PER_S + nanosec


def cdr_with_header_stamp(data, stamp_ns: int) -> bytes:
    """Copy of a serialized header-first message with its header stamp replaced."""
    out = bytearray(data)
    struct.pack_into(_cdr_order(out) + "iI", out, 4, *split_ns(stamp_ns))
    return bytes(out)
