"""What each encoder accepts and how one sensor message becomes model input (no ROS).

THE table of the encoders' input paths, read by the encoder nodes (live) and by
``aecf-ros evaluate-bag`` (offline), so both convert, check and stamp every message alike:

    modality -> message types accepted, each with its conversion (``conversions.py``), the
                node-internal topic and QoS parameter group it arrives on, and whether its
                stamp is the header stamp or the receive time; plus the modality's check of
                the converted input (e.g. a cloud with no valid point is no evidence).

:func:`prepare_input` runs one message through that path and raises
:class:`~aecf_ros.runtime.conversions.ConversionError` with the drop reason when it cannot be
used; :func:`check_embedding` is the check on the encoder's output that both sides apply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np

from aecf_ros.runtime.stamps import stamp_problem, stamp_to_sec
from aecf_ros.runtime.conversions import (
    ConversionError, compressed_msg_to_rgb, image_msg_to_rgb, pointcloud_msg_to_xyzi,
)
from aecf_ros.runtime.input_limits import InputLimits

__all__ = ["InputKind", "ModalityInput", "MODALITY_INPUTS", "PreparedInput", "prepare_input",
           "check_embedding", "header_stamp_sec", "InputLimits", "TEXT_CLIPPED"]

#: counter name (not a drop: the text is still encoded) for strings cut to ``max_text_chars``
TEXT_CLIPPED = "text_clipped"


@dataclass(frozen=True)
class InputKind:
    """One message type a modality's encoder takes."""

    msgtype: str  # ROS type name, ``pkg/msg/Name``
    topic: str  # node-internal topic name (remapped to the robot's topic by graph.py)
    qos_input: str  # the node's ``qos.<qos_input>.*`` parameters apply
    convert: Callable[[Any, InputLimits], Any]  # message -> raw model input; raises ConversionError
    stamp_from_header: bool = True  # False: no header, the evidence is as new as its arrival


@dataclass(frozen=True)
class ModalityInput:
    modality: str
    kinds: tuple[InputKind, ...]
    #: drop reason for a converted input the encoder cannot use, else None
    check_raw: Callable[[Any], Optional[str]] = lambda raw: None

    @property
    def msgtypes(self) -> tuple[str, ...]:
        return tuple(k.msgtype for k in self.kinds)

    def kind(self, msgtype: str) -> InputKind:
        for k in self.kinds:
            if k.msgtype == msgtype:
                return k
        raise KeyError(f"the {self.modality} encoder does not take {msgtype} (takes {' or '.join(self.msgtypes)})")


def _no_points(points: np.ndarray) -> Optional[str]:
    # an empty return (all NaN, nothing in range) is no evidence about the scene
    return "no_points" if len(points) == 0 else None


def _empty_text(text: str) -> Optional[str]:
    return "empty_text" if not text.strip() else None


def _string_data(msg: Any, limits: InputLimits) -> str:
    # cut before anything tokenizes it: the cost of a string must not grow with its length
    return msg.data[:limits.max_text_chars]


MODALITY_INPUTS: Mapping[str, ModalityInput] = {
    "camera": ModalityInput("camera", (
        InputKind("sensor_msgs/msg/Image", "image", "image",
                  lambda msg, limits: image_msg_to_rgb(msg, limits.max_pixels)),
        InputKind("sensor_msgs/msg/CompressedImage", "image_compressed", "image",
                  lambda msg, limits: compressed_msg_to_rgb(msg, limits.max_pixels)),
    )),
    "lidar": ModalityInput("lidar", (
        InputKind("sensor_msgs/msg/PointCloud2", "points", "points",
                  lambda msg, limits: pointcloud_msg_to_xyzi(msg)),
    ), check_raw=_no_points),
    "text": ModalityInput("text", (
        InputKind("std_msgs/msg/String", "text", "text", _string_data, stamp_from_header=False),
    ), check_raw=_empty_text),
}


def header_stamp_sec(msg: Any) -> float:
    """``msg.header.stamp`` in seconds (rclpy and rosbags messages alike)."""
    return stamp_to_sec(msg.header.stamp)


@dataclass(frozen=True)
class PreparedInput:
    raw: Any  # what ``model.encode(modality, raw)`` takes
    stamp: float  # seconds: the header stamp, or the receive time for header-less types
    notes: tuple[str, ...] = ()  # counted, not dropped: e.g. TEXT_CLIPPED


_DEFAULT_LIMITS = InputLimits()


def prepare_input(modality: str, msgtype: str, msg: Any, receive_time: float,
                  limits: InputLimits = _DEFAULT_LIMITS) -> PreparedInput:
    """Convert and check one message within ``limits``; raises ConversionError(reason_code,
    message) to drop it."""
    spec = MODALITY_INPUTS[modality]
    kind = spec.kind(msgtype)
    if kind.stamp_from_header:  # before any conversion work: a broken clock is no evidence
        header = getattr(msg, "header", None)
        reason = stamp_problem(getattr(header, "stamp", None))
        if reason:
            raise ConversionError(reason, f"header stamp is not a valid ROS time "
                                          f"({getattr(getattr(header, 'stamp', None), 'sec', '?')} s, "
                                          f"{getattr(getattr(header, 'stamp', None), 'nanosec', '?')} ns)")
    raw = kind.convert(msg, limits)
    reason = spec.check_raw(raw)
    if reason:
        raise ConversionError(reason, "input rejected")
    notes = ()
    if modality == "text" and len(msg.data) > len(raw):
        notes = (TEXT_CLIPPED,)
    return PreparedInput(raw, header_stamp_sec(msg) if kind.stamp_from_header else float(receive_time), notes)


def check_embedding(vector: np.ndarray) -> Optional[str]:
    """Drop reason for an encoder output the fusion must not get (NaN/inf), else None."""
    return None if np.isfinite(vector).all() else "non_finite_embedding"


@dataclass(frozen=True)
class EncodedInput:
    """What :func:`encode_input` made of one sensor message: an embedding to publish/fuse, or the
    reason it is dropped (nothing is published for it; the fusion keeps the previous embedding of
    the modality until that one's timeout)."""

    vector: Optional[np.ndarray]  # float32, flat; None when dropped
    stamp: Optional[float]  # seconds (see PreparedInput.stamp); None when the conversion failed
    reason: Optional[str] = None  # drop reason code (ConversionError codes, encode_error, non_finite_embedding)
    detail: str = ""
    notes: tuple[str, ...] = ()
    elapsed_s: float = 0.0  # convert + encode + check time

    @property
    def ok(self) -> bool:
        return self.vector is not None


def encode_input(model: Any, modality: str, msgtype: str, msg: Any, receive_time: float,
                 limits: InputLimits = _DEFAULT_LIMITS, sensor: Optional[str] = None) -> EncodedInput:
    """THE data path of one sensor message: convert, check the input, encode, check the embedding.

    The encoder node (live) and ``evaluate-bag`` (offline) both call this, so they drop the same
    messages for the same reasons. ``model`` is anything with ``encode(modality, raw)`` returning
    a tensor. ``modality`` picks the input table entry (the encoder family: camera / lidar /
    text); ``sensor`` (default: ``modality``) is the declared sensor the model encodes it as.
    Never raises for a bad message or a failing encoder."""
    import time

    t0 = time.perf_counter()
    try:
        prepared = prepare_input(modality, msgtype, msg, receive_time, limits)
    except ConversionError as exc:
        return EncodedInput(None, None, exc.reason_code, exc.message, elapsed_s=time.perf_counter() - t0)
    try:
        embedding = model.encode(sensor or modality, prepared.raw)
        vec = embedding.detach().float().cpu().numpy().reshape(-1)
    except Exception as exc:  # noqa: BLE001 - a bad input must never kill the node
        return EncodedInput(None, prepared.stamp, "encode_error", f"{type(exc).__name__}: {exc}", prepared.notes,
                            time.perf_counter() - t0)
    reason = check_embedding(vec)
    if reason:
        return EncodedInput(None, prepared.stamp, reason, "encoder produced NaN/inf", prepared.notes,
                            time.perf_counter() - t0)
    return EncodedInput(vec, prepared.stamp, None, "", prepared.notes, time.perf_counter() - t0)
