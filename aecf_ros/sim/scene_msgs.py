"""numpy sensor data -> real ROS 2 messages (the inverse of ``runtime/conversions.py``).

Used by ``aecf-ros make-bag``, the live demo and the node tests, so every producer of sensor
messages in this package writes the same, standard layouts:

* camera: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8, mono16; optional row padding)
  or ``sensor_msgs/CompressedImage`` (jpeg / png, ``format`` as image_transport writes it);
* lidar: ``sensor_msgs/PointCloud2`` with a configurable field layout (:class:`CloudLayout`:
  x, y, z, intensity float32 by default; Velodyne- and Ouster-like layouts with ring / time /
  padding so readers can be tested against what real drivers publish);
* text: ``std_msgs/String``;
* ground truth: ``diagnostic_msgs/DiagnosticArray`` (see :func:`ground_truth_msg`).

Stamps are given as seconds (``float``/``int``) or a ``builtin_interfaces/Time``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header, String

from aecf_ros.runtime.stamps import split_ns

CAMERA_FRAME = "camera_optical_frame"
LIDAR_FRAME = "lidar"
GROUND_TRUTH_FRAME = "base_link"

#: ``DiagnosticStatus.name`` of a ground-truth message; readers ignore statuses with other names.
GROUND_TRUTH_STATUS_NAME = "aecf_ros/ground_truth"
#: Key of the optional scene index inside the ground-truth KeyValues (not a class name).
SCENE_INDEX_KEY = "__scene_index__"

IMAGE_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16")


def stamp_msg(stamp) -> Time:
    """``builtin_interfaces/Time`` from seconds (float/int) or an existing Time (returned as is)."""
    if isinstance(stamp, Time):
        return stamp
    if not isinstance(stamp, (int, float, np.integer, np.floating)):
        raise TypeError(f"stamp must be seconds (float) or builtin_interfaces/Time, got {type(stamp).__name__}")
    if stamp < 0:
        raise ValueError(f"stamp must be >= 0 seconds, got {stamp}")
    return time_from_ns(int(round(float(stamp) * 1e9)))


def time_from_ns(nanoseconds: int) -> Time:
    """``builtin_interfaces/Time`` from integer nanoseconds (exact, no float rounding)."""
    sec, nanosec = split_ns(nanoseconds)
    return Time(sec=sec, nanosec=nanosec)


def _header(stamp, frame_id: str) -> Header:
    return Header(stamp=stamp_msg(stamp), frame_id=frame_id)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image uint8[H, W, 3], got {rgb.dtype}{list(rgb.shape)}")
    return rgb


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def encode_pixels(rgb: np.ndarray, encoding: str, big_endian: bool = False) -> np.ndarray:
    """RGB uint8[H, W, 3] -> the pixel array of ``encoding`` (uint8[H, W, c] or uint16[H, W])."""
    rgb = _check_rgb(rgb)
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return rgb[:, :, ::-1]
    if encoding in ("rgba8", "bgra8"):
        colour = rgb if encoding == "rgba8" else rgb[:, :, ::-1]
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        return np.concatenate([colour, alpha], axis=2)
    if encoding == "mono8":
        return _gray(rgb)
    if encoding == "mono16":
        # 0..255 -> 0..65535 so a reader that scales mono16 to 8 bit gets the mono8 image back.
        return (_gray(rgb).astype(np.uint16) * np.uint16(257)).astype(">u2" if big_endian else "<u2")
    raise ValueError(f"unsupported image encoding {encoding!r}; choose from {', '.join(IMAGE_ENCODINGS)}")


def image_msg(
    rgb: np.ndarray,
    stamp,
    frame_id: str = CAMERA_FRAME,
    encoding: str = "rgb8",
    step_padding: int = 0,
    big_endian: bool = False,
) -> Image:
    """``sensor_msgs/Image`` of an RGB uint8[H, W, 3] frame.

    Args:
        rgb: uint8[H, W, 3] RGB pixels.
        stamp: header stamp (seconds or ``builtin_interfaces/Time``).
        frame_id: header frame.
        encoding: one of ``rgb8, bgr8, rgba8, bgra8, mono8, mono16``.
        step_padding: extra bytes at the end of every row (``step = width * bpp + step_padding``),
            as some camera drivers publish; readers must honour ``step``.
        big_endian: only for mono16: write big-endian samples and set ``is_bigendian``.
    """
    if step_padding < 0:
        raise ValueError(f"step_padding must be >= 0, got {step_padding}")
    pixels = encode_pixels(rgb, encoding, big_endian=big_endian)
    height, width = pixels.shape[:2]
    row_bytes = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    if step_padding:
        row_bytes = np.concatenate([row_bytes, np.zeros((height, step_padding), np.uint8)], axis=1)
    msg = Image()
    msg.header = _header(stamp, frame_id)
    msg.height, msg.width = int(height), int(width)
    msg.encoding = encoding
    msg.is_bigendian = int(bool(big_endian and encoding == "mono16"))
    msg.step = int(row_bytes.shape[1])
    msg.data = np.ascontiguousarray(row_bytes).tobytes()
    return msg


def compressed_image_msg(
    rgb: np.ndarray, stamp, format: str = "jpeg", frame_id: str = CAMERA_FRAME, jpeg_quality: int = 90
) -> CompressedImage:
    """``sensor_msgs/CompressedImage`` (jpeg or png) of an RGB uint8[H, W, 3] frame.

    ``format`` is written the way image_transport's compressed publisher does
    (``"rgb8; jpeg compressed bgr8"``): readers decode the bytes with OpenCV whatever it says.
    """
    import cv2

    rgb = _check_rgb(rgb)
    fmt = format.lower()
    if fmt in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        fmt = "jpeg"
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
    else:
        raise ValueError(f"unsupported compressed format {format!r}; choose 'jpeg' or 'png'")
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode a {rgb.shape} image as {fmt}")
    msg = CompressedImage()
    msg.header = _header(stamp, frame_id)
    msg.format = f"rgb8; {fmt} compressed bgr8"
    msg.data = buf.tobytes()
    return msg


# --- PointCloud2 -------------------------------------------------------------------------------

_POINTFIELD_TYPES = {
    "int8": (PointField.INT8, "i1"),
    "uint8": (PointField.UINT8, "u1"),
    "int16": (PointField.INT16, "i2"),
    "uint16": (PointField.UINT16, "u2"),
    "int32": (PointField.INT32, "i4"),
    "uint32": (PointField.UINT32, "u4"),
    "float32": (PointField.FLOAT32, "f4"),
    "float64": (PointField.FLOAT64, "f8"),
}


@dataclass(frozen=True)
class CloudField:
    """One PointCloud2 field: ``name``, numpy-style ``datatype`` (e.g. ``"float32"``), byte ``offset``."""

    name: str
    datatype: str
    offset: int


@dataclass(frozen=True)
class CloudLayout:
    """Byte layout of one PointCloud2 point.

    Fields named x, y, z, intensity are filled from the points array; ``ring`` (laser index,
    ``i % 16``) and ``time``/``t`` (per-point offset within the sweep) are synthesised; any other
    field is zero. Bytes not covered by a field are padding (zero).
    """

    fields: tuple[CloudField, ...]
    point_step: int
    big_endian: bool = False

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in cloud layout: {names}")
        for f in self.fields:
            if f.datatype not in _POINTFIELD_TYPES:
                raise ValueError(f"unsupported PointField datatype {f.datatype!r} for field {f.name!r}")
            end = f.offset + np.dtype(_POINTFIELD_TYPES[f.datatype][1]).itemsize
            if f.offset < 0 or end > self.point_step:
                raise ValueError(f"field {f.name!r} ({f.offset}..{end}) does not fit point_step {self.point_step}")

    def numpy_dtype(self) -> np.dtype:
        order = ">" if self.big_endian else "<"
        return np.dtype(
            {
                "names": [f.name for f in self.fields],
                "formats": [order + _POINTFIELD_TYPES[f.datatype][1] for f in self.fields],
                "offsets": [f.offset for f in self.fields],
                "itemsize": self.point_step,
            }
        )

    def point_fields(self) -> list[PointField]:
        return [
            PointField(name=f.name, offset=f.offset, datatype=_POINTFIELD_TYPES[f.datatype][0], count=1)
            for f in self.fields
        ]

    @staticmethod
    def xyzi() -> "CloudLayout":
        """x, y, z, intensity float32, 16 bytes a point (the default)."""
        return CloudLayout(tuple(CloudField(n, "float32", 4 * i) for i, n in enumerate("x y z intensity".split())), 16)

    @staticmethod
    def xyz() -> "CloudLayout":
        """x, y, z float32 only (no intensity), 12 bytes a point."""
        return CloudLayout(tuple(CloudField(n, "float32", 4 * i) for i, n in enumerate("xyz")), 12)

    @staticmethod
    def velodyne() -> "CloudLayout":
        """velodyne_pointcloud: x, y, z, intensity float32, ring uint16, time float32; 22 bytes."""
        base = CloudLayout.xyzi().fields
        return CloudLayout(base + (CloudField("ring", "uint16", 16), CloudField("time", "float32", 18)), 22)

    @staticmethod
    def ouster() -> "CloudLayout":
        """ouster-ros: x, y, z float32, 4 bytes padding, intensity float32, t uint32,
        reflectivity uint16, ring uint16, ambient uint16, range uint32; 48 bytes (padded)."""
        return CloudLayout(
            (
                CloudField("x", "float32", 0),
                CloudField("y", "float32", 4),
                CloudField("z", "float32", 8),
                CloudField("intensity", "float32", 16),
                CloudField("t", "uint32", 20),
                CloudField("reflectivity", "uint16", 24),
                CloudField("ring", "uint16", 26),
                CloudField("ambient", "uint16", 28),
                CloudField("range", "uint32", 32),
            ),
            48,
        )

    @staticmethod
    def livox_uint8_intensity() -> "CloudLayout":
        """x, y, z float32 then intensity as uint8 (0..255), 13 bytes a point (unaligned)."""
        return CloudLayout(
            tuple(CloudField(n, "float32", 4 * i) for i, n in enumerate("xyz")) + (CloudField("intensity", "uint8", 12),),
            13,
        )


def pack_points(points: np.ndarray, layout: CloudLayout) -> np.ndarray:
    """float32[N, >=3] (x, y, z[, intensity]) -> structured array with ``layout``'s dtype."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"expected points float[N, >=3] (x, y, z[, intensity]), got shape {list(points.shape)}")
    n = points.shape[0]
    packed = np.zeros(n, dtype=layout.numpy_dtype())
    columns = {"x": 0, "y": 1, "z": 2, "intensity": 3}
    for f in layout.fields:
        if f.name in columns and columns[f.name] < points.shape[1]:
            values = points[:, columns[f.name]]
        elif f.name == "ring":
            values = np.arange(n) % 16
        elif f.name in ("time", "t"):
            # seconds within a 0.1 s sweep; ouster's ``t`` is integer nanoseconds
            values = np.arange(n) / max(n, 1) * (0.1 if f.datatype.startswith("float") else 1e8)
        elif f.name == "range" and f.datatype.startswith("uint"):
            values = np.linalg.norm(points[:, :3], axis=1) * 1000.0  # millimetres
        else:
            continue
        kind = np.dtype(_POINTFIELD_TYPES[f.datatype][1])
        if kind.kind in "iu":
            info = np.iinfo(kind)
            values = np.clip(np.rint(values), info.min, info.max)
        packed[f.name] = values.astype(kind)
    return packed


def pointcloud2_msg(
    points: np.ndarray,
    stamp,
    frame_id: str = LIDAR_FRAME,
    layout: CloudLayout | None = None,
    height: int = 1,
    row_padding: int = 0,
) -> PointCloud2:
    """``sensor_msgs/PointCloud2`` of float32[N, 4] points (x, y, z, intensity).

    Args:
        points: float32[N, >=3]; column 3 (intensity) is optional.
        stamp: header stamp (seconds or ``builtin_interfaces/Time``).
        frame_id: header frame.
        layout: point byte layout; default :meth:`CloudLayout.xyzi`.
        height: rows of an organised cloud (N must divide by it); 1 = unorganised.
        row_padding: extra bytes after every row (``row_step = width * point_step + row_padding``).
    """
    layout = layout or CloudLayout.xyzi()
    packed = pack_points(points, layout)
    n = packed.shape[0]
    if height < 1 or n % height:
        raise ValueError(f"{n} points cannot form an organised cloud of height {height}")
    width = n // height
    rows = packed.view(np.uint8).reshape(height, width * layout.point_step)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((height, row_padding), np.uint8)], axis=1)
    msg = PointCloud2()
    msg.header = _header(stamp, frame_id)
    msg.height, msg.width = int(height), int(width)
    msg.fields = layout.point_fields()
    msg.is_bigendian = bool(layout.big_endian)
    msg.point_step = int(layout.point_step)
    msg.row_step = int(rows.shape[1])
    msg.data = np.ascontiguousarray(rows).tobytes()
    msg.is_dense = bool(np.isfinite(np.asarray(points, dtype=np.float64)[:, :3]).all())
    return msg


def text_msg(text: str) -> String:
    """``std_msgs/String`` (String has no header: receivers stamp it on arrival)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    return String(data=text)


# --- ground truth ------------------------------------------------------------------------------


def ground_truth_msg(
    labels: np.ndarray,
    class_names: Sequence[str],
    stamp,
    scene_index: int | None = None,
    frame_id: str = GROUND_TRUTH_FRAME,
) -> DiagnosticArray:
    """The multi-hot labels of the scene in view as a standard, stamped message.

    Type: ``diagnostic_msgs/DiagnosticArray`` (standard, has a header, readable by any ROS tool):
    ``header.stamp`` = when this truth holds; one ``DiagnosticStatus`` with
    ``name = "aecf_ros/ground_truth"``, ``level = OK``, ``message`` = present class names joined by
    ``","``, ``hardware_id = "scene_generator"`` and one ``KeyValue(key=class_name, value="1"|"0")``
    per class in model order (+ ``KeyValue("__scene_index__", "<i>")`` when given).
    Decode with :func:`labels_from_ground_truth`.
    """
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != len(class_names):
        raise ValueError(f"{labels.shape[0]} labels for {len(class_names)} class names")
    values = [KeyValue(key=str(name), value="1" if labels[i] else "0") for i, name in enumerate(class_names)]
    if scene_index is not None:
        values.append(KeyValue(key=SCENE_INDEX_KEY, value=str(int(scene_index))))
    status = DiagnosticStatus(
        level=DiagnosticStatus.OK,
        name=GROUND_TRUTH_STATUS_NAME,
        message=",".join(str(n) for i, n in enumerate(class_names) if labels[i]),
        hardware_id="scene_generator",
        values=values,
    )
    return DiagnosticArray(header=_header(stamp, frame_id), status=[status])


def labels_from_ground_truth(msg, class_names: Sequence[str]) -> tuple[np.ndarray, int | None]:
    """(uint8[C] multi-hot in ``class_names`` order, scene index or None) from a ground-truth message.

    Works on rclpy and rosbags-deserialised messages. Classes the message does not mention are 0;
    a message without an ``aecf_ros/ground_truth`` status raises ``ValueError``.
    """
    for status in msg.status:
        if status.name != GROUND_TRUTH_STATUS_NAME:
            continue
        values = {kv.key: kv.value for kv in status.values}
        labels = np.array([1 if values.get(name, "0").strip() in ("1", "true", "True") else 0 for name in class_names], np.uint8)
        index = values.get(SCENE_INDEX_KEY)
        return labels, (int(index) if index is not None else None)
    raise ValueError(f"no {GROUND_TRUTH_STATUS_NAME!r} status in the ground-truth message")


def scene_messages(
    scene,
    stamp,
    class_names: Sequence[str] | None = None,
    scene_index: int | None = None,
    image_encoding: str = "rgb8",
    compressed: str | None = None,
    cloud_layout: CloudLayout | None = None,
) -> Mapping[str, object]:
    """All messages of one scene at one stamp: ``{"camera", "lidar", "text", "ground_truth"}``.

    ``scene`` is a ``aecf_ros.data.scenes.Scene`` (labels, image, points, text). ``compressed``
    ("jpeg"/"png") makes the camera message a CompressedImage instead of an Image.
    """
    if class_names is None:
        from aecf_ros.data.classes import CLASS_NAMES as class_names  # noqa: N811
    camera = (
        compressed_image_msg(scene.image, stamp, format=compressed)
        if compressed
        else image_msg(scene.image, stamp, encoding=image_encoding)
    )
    return {
        "camera": camera,
        "lidar": pointcloud2_msg(scene.points, stamp, layout=cloud_layout),
        "text": text_msg(scene.text),
        "ground_truth": ground_truth_msg(scene.labels, class_names, stamp, scene_index=scene_index),
    }
