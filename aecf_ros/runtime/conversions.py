"""Sensor message fields -> numpy arrays, without ROS.

The functions take the *fields* of ``sensor_msgs/Image``, ``sensor_msgs/CompressedImage`` and
``sensor_msgs/PointCloud2`` (plain Python values and a bytes-like ``data``), so they run on
rclpy messages, on ``rosbags``-deserialised messages and on test fixtures alike. The
``*_msg_*`` helpers just read those fields off a message object.

Every failure raises :class:`ConversionError` with a short machine-readable ``reason_code``
(nodes count dropped inputs by it) and a human-readable message.

Conventions
-----------
* Images come out as RGB ``uint8[H, W, 3]`` (C-contiguous, a copy: the message buffer can go).
  ``mono16`` / ``16UC1`` are reduced to 8 bits by keeping the high byte (``v >> 8``), the usual
  16 -> 8 bit display conversion. Packed YUV 4:2:2 (``yuv422`` = UYVY, ``uyvy``, ``yuyv``,
  ``yuv422_yuy2`` = YUYV) and 8-bit Bayer mosaics (``bayer_rggb8`` / ``bggr8`` / ``gbrg8`` /
  ``grbg8``) are converted with OpenCV's ``cv2.cvtColor``, the codes cv_bridge uses.
* Point clouds come out as ``float32[N, 4]`` = x, y, z, intensity (0 when the cloud has no
  intensity field). Points with a non-finite x, y or z are dropped (organised clouds mark
  missing returns with NaN). Extra fields (ring, time, ...) are ignored. Either byte order.
* Size bounds: an image declaring more than ``max_pixels`` pixels is ``too_large``; for a
  compressed image the size is read from the PNG/JPEG header *before* decoding, so a small file
  declaring 16000 x 16000 (a decompression bomb: seconds of CPU, GBs of memory) costs nothing.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from aecf_ros.runtime.input_limits import DEFAULT_MAX_PIXELS

__all__ = [
    "ConversionError",
    "IMAGE_ENCODINGS",
    "image_to_rgb",
    "compressed_image_to_rgb",
    "pointcloud_to_xyzi",
    "image_msg_to_rgb",
    "compressed_msg_to_rgb",
    "pointcloud_msg_to_xyzi",
    "POINTFIELD_DTYPES",
    "DEFAULT_MAX_PIXELS",
    "compressed_image_size",
]


class ConversionError(ValueError):
    """A sensor message that cannot be converted.

    ``reason_code`` is one of: ``unsupported_encoding``, ``bad_dimensions``, ``truncated``,
    ``too_large``, ``unsupported_format``, ``decode_failed``, ``missing_field``, ``duplicate_field``,
    ``bad_field``.
    """

    def __init__(self, reason_code: str, message: str):
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


# encoding (as sensor_msgs/image_encodings spells it) -> (channels, bytes per channel) of the
# message buffer. Matched case-insensitively after stripping blanks.
IMAGE_ENCODINGS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "mono16": (1, 2),
    "16UC1": (1, 2),  # read like mono16 (a 16-bit single channel; e.g. depth in mm)
    # packed YUV 4:2:2, two bytes a pixel; "yuv422" is UYVY in ROS (image_encodings.hpp)
    "yuv422": (2, 1),
    "uyvy": (2, 1),
    "yuyv": (2, 1),
    "yuv422_yuy2": (2, 1),  # = YUYV
    # 8-bit Bayer mosaics, one byte a pixel
    "bayer_rggb8": (1, 1),
    "bayer_bggr8": (1, 1),
    "bayer_gbrg8": (1, 1),
    "bayer_grbg8": (1, 1),
}
_ENCODING_BY_LOWER = {name.lower(): name for name in IMAGE_ENCODINGS}

# packed YUV 4:2:2 -> the OpenCV conversion (as cv_bridge converts them)
_YUV422_CODES = {"yuv422": "COLOR_YUV2RGB_UYVY", "uyvy": "COLOR_YUV2RGB_UYVY",
                 "yuyv": "COLOR_YUV2RGB_YUYV", "yuv422_yuy2": "COLOR_YUV2RGB_YUYV"}
# ROS names a Bayer pattern by its top-left 2x2 block read row by row; OpenCV's older names
# (the ones every OpenCV 4 has) use the 2x2 block starting at the second row and column, so
# ROS rggb = OpenCV "BG" (cv_bridge uses the same mapping; OpenCV >= 4.5 also spells it
# COLOR_BayerRGGB2RGB, the same value).
_BAYER_CODES = {"bayer_rggb8": "COLOR_BayerBG2RGB", "bayer_bggr8": "COLOR_BayerRG2RGB",
                "bayer_gbrg8": "COLOR_BayerGR2RGB", "bayer_grbg8": "COLOR_BayerGB2RGB"}


# sensor_msgs/PointField datatype constants -> numpy base type (byte order added later)
POINTFIELD_DTYPES: dict[int, str] = {
    1: "i1",  # INT8
    2: "u1",  # UINT8
    3: "i2",  # INT16
    4: "u2",  # UINT16
    5: "i4",  # INT32
    6: "u4",  # UINT32
    7: "f4",  # FLOAT32
    8: "f8",  # FLOAT64
}


def _as_buffer(data: Any) -> memoryview:
    """bytes / bytearray / array.array / numpy -> flat byte memoryview, without copying."""
    if isinstance(data, np.ndarray):
        return memoryview(np.ascontiguousarray(data).view(np.uint8).reshape(-1))
    try:
        view = memoryview(data)
    except TypeError:  # a list of ints (some deserialisers)
        view = memoryview(bytes(bytearray(data)))
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view



def _check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    if max_pixels and width * height > max_pixels:
        raise ConversionError(
            "too_large", f"{what} declares {width}x{height} = {width * height} pixels > max_pixels {max_pixels}")


def image_to_rgb(encoding: str, height: int, width: int, step: int, is_bigendian: int | bool,
                 data: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Raw ``sensor_msgs/Image`` fields -> RGB ``uint8[H, W, 3]``.

    Handles the encodings of :data:`IMAGE_ENCODINGS`: rgb8, bgr8, rgba8, bgra8 (alpha dropped),
    mono8, mono16 / 16UC1 (either byte order), packed YUV 4:2:2 (yuv422 = uyvy, yuyv =
    yuv422_yuy2; the width must be even) and 8-bit Bayer (rggb, bggr, gbrg, grbg), with any row
    padding (``step`` larger than ``width * bytes_per_pixel``). The last row may omit its
    padding (some drivers do), so only ``(H - 1) * step + W * bpp`` bytes are required.
    More than ``max_pixels`` pixels (0 = no bound): ``too_large``.
    """
    enc = _ENCODING_BY_LOWER.get((encoding or "").strip().lower())
    if enc is None:
        raise ConversionError(
            "unsupported_encoding",
            f"image encoding {encoding!r} is not supported (use one of {', '.join(IMAGE_ENCODINGS)})")
    channels, depth = IMAGE_ENCODINGS[enc]
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ConversionError("bad_dimensions", f"image is {width}x{height}; both must be > 0")
    if enc in _YUV422_CODES and width % 2:
        raise ConversionError("bad_dimensions", f"{enc} image is {width} wide; 4:2:2 needs an even width")
    _check_pixels(width, height, max_pixels, "image")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ConversionError(
            "bad_dimensions",
            f"step {step} is smaller than width*bytes_per_pixel = {width}*{channels * depth} = {row_bytes}")
    buf = _as_buffer(data)
    needed = (height - 1) * step + row_bytes
    if len(buf) < needed:
        raise ConversionError(
            "truncated", f"{enc} {width}x{height} step {step} needs {needed} bytes, got {len(buf)}")
    raw = np.frombuffer(buf, dtype=np.uint8, count=needed)
    # rows of `step` bytes; pad the missing tail of the last row virtually via as_strided
    rows = np.lib.stride_tricks.as_strided(raw, shape=(height, row_bytes), strides=(step, 1))
    if depth == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        pixels = rows.copy().view(dtype).reshape(height, width)  # copy: unaligned-safe
        mono = (pixels >> 8).astype(np.uint8)
        return np.repeat(mono[:, :, None], 3, axis=2)
    pixels = rows.reshape(height, width, channels)
    if enc in _YUV422_CODES or enc in _BAYER_CODES:
        import cv2

        code = getattr(cv2, _YUV422_CODES.get(enc) or _BAYER_CODES[enc])
        src = np.ascontiguousarray(pixels if channels == 2 else pixels[:, :, 0])
        return np.ascontiguousarray(cv2.cvtColor(src, code))
    if enc == "rgb8":
        return np.ascontiguousarray(pixels)
    if enc == "bgr8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(pixels[:, :, :3])
    if enc == "bgra8":
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))  # mono8


_COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (SOF0-SOF15 except DHT C4, JPG C8, DAC CC) carry the frame size
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def compressed_image_size(data: Any) -> tuple[int, int]:
    """``(width, height)`` a PNG or JPEG stream declares, read from its header without decoding.

    Raises ``decode_failed`` when the bytes are neither (cv2 would try other formats, whose size
    this cannot bound) or the header is cut short before the size.
    """
    head = bytes(_as_buffer(data)[:1 << 20])  # the size is near the start; bound the scan
    if head.startswith(_PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise ConversionError("decode_failed", "PNG without a complete IHDR header")
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(head):
            if head[i] != 0xFF:
                raise ConversionError("decode_failed", f"JPEG marker expected at byte {i}")
            marker = head[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
                i += 2
                continue
            length = int.from_bytes(head[i + 2:i + 4], "big")
            if marker in _JPEG_SOF:
                if i + 9 > len(head) or length < 7:
                    break
                height = int.from_bytes(head[i + 5:i + 7], "big")
                width = int.from_bytes(head[i + 7:i + 9], "big")
                return width, height
            if length < 2:
                raise ConversionError("decode_failed", f"JPEG segment of length {length} at byte {i}")
            i += 2 + length
        raise ConversionError("decode_failed", "JPEG without a frame header (SOF) in its first 1 MiB")
    raise ConversionError("decode_failed", "data is neither a PNG nor a JPEG stream")


def compressed_image_to_rgb(format: str, data: Any,  # noqa: A002 - ROS field name
                            max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg or png, as image_transport writes the ``format``
    field, e.g. ``"jpeg"`` or ``"bgr8; jpeg compressed bgr8"``) -> RGB ``uint8[H, W, 3]``.

    The declared size is checked against ``max_pixels`` (0 = no bound) before anything is
    decoded (``too_large``)."""
    import cv2

    fmt = (format or "").lower()
    if fmt and not any(name in fmt for name in _COMPRESSED_FORMATS):
        raise ConversionError("unsupported_format",
                              f"compressed image format {format!r} is not jpeg or png")
    buf = np.frombuffer(_as_buffer(data), dtype=np.uint8)
    if buf.size == 0:
        raise ConversionError("truncated", "compressed image has no data")
    width, height = compressed_image_size(buf)
    if width <= 0 or height <= 0:
        raise ConversionError("bad_dimensions", f"compressed image declares {width}x{height}")
    _check_pixels(width, height, max_pixels, "compressed image")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ConversionError("decode_failed",
                              f"could not decode {len(buf)} bytes as {format or 'jpeg/png'}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _field_attr(field: Any, name: str):
    return field[name] if isinstance(field, dict) else getattr(field, name)


def pointcloud_to_xyzi(fields: Iterable[Any], height: int, width: int, point_step: int,
                       row_step: int, is_bigendian: int | bool, data: Any) -> np.ndarray:
    """Raw ``sensor_msgs/PointCloud2`` fields -> ``float32[N, 4]`` (x, y, z, intensity).

    ``fields`` are PointField-like objects or dicts with ``name``, ``offset``, ``datatype``,
    ``count``. x, y, z must exist as FLOAT32 (FLOAT64 is accepted too); intensity is optional,
    any numeric type. Any offsets, ``point_step`` and ``row_step`` padding work. Points with a
    non-finite coordinate are dropped. Big-endian clouds are decoded (as
    ``sensor_msgs_py.read_points`` does). An ambiguous layout is rejected: two fields of one
    name (``duplicate_field``: which one is x?) or any field with ``count`` 0 (``bad_field``).
    """
    height, width = int(height), int(width)
    point_step, row_step = int(point_step), int(row_step)
    byte_order = ">" if is_bigendian else "<"
    by_name = {}
    for f in fields:
        name = str(_field_attr(f, "name"))
        if name in by_name:
            raise ConversionError("duplicate_field", f"point cloud has two fields named {name!r}")
        count = _field_attr(f, "count")
        if count is not None and int(count) <= 0:
            raise ConversionError("bad_field", f"field {name!r} has count {int(count)}; expected >= 1")
        by_name[name] = f
    missing = [n for n in ("x", "y", "z") if n not in by_name]
    if missing:
        raise ConversionError(
            "missing_field",
            f"point cloud has no {'/'.join(missing)} field (fields: {', '.join(by_name) or 'none'})")
    if height < 0 or width < 0:
        raise ConversionError("bad_dimensions", f"cloud is {width}x{height}")
    if height * width == 0:
        return np.zeros((0, 4), dtype=np.float32)
    names, formats, offsets = [], [], []
    for name in ("x", "y", "z", "intensity"):
        if name not in by_name:
            continue
        f = by_name[name]
        datatype = int(_field_attr(f, "datatype"))
        count = _field_attr(f, "count")
        count = 1 if count is None else int(count)
        offset = int(_field_attr(f, "offset"))
        if datatype not in POINTFIELD_DTYPES:
            raise ConversionError("bad_field", f"field {name!r} has unknown datatype {datatype}")
        if name != "intensity" and POINTFIELD_DTYPES[datatype] not in ("f4", "f8"):
            raise ConversionError(
                "bad_field", f"field {name!r} must be FLOAT32 (datatype 7), got datatype {datatype}")
        if count != 1:
            raise ConversionError("bad_field", f"field {name!r} has count {count}; expected 1")
        dtype = np.dtype(byte_order + POINTFIELD_DTYPES[datatype])
        if offset < 0 or offset + dtype.itemsize > point_step:
            raise ConversionError(
                "bad_field", f"field {name!r} at offset {offset} does not fit point_step {point_step}")
        names.append(name)
        formats.append(dtype)
        offsets.append(offset)
    if row_step < width * point_step:
        raise ConversionError(
            "bad_dimensions", f"row_step {row_step} < width*point_step = {width}*{point_step}")
    buf = _as_buffer(data)
    needed = (height - 1) * row_step + width * point_step
    if len(buf) < needed:
        raise ConversionError(
            "truncated", f"cloud {width}x{height} (point_step {point_step}, row_step {row_step}) "
                         f"needs {needed} bytes, got {len(buf)}")
    record = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                       "itemsize": point_step})
    raw = np.frombuffer(buf, dtype=np.uint8, count=needed)
    points = np.ndarray(shape=(height, width), dtype=record, buffer=raw,
                        strides=(row_step, point_step))
    out = np.empty((height * width, 4), dtype=np.float32)
    for col, name in enumerate(("x", "y", "z")):
        out[:, col] = points[name].reshape(-1)
    out[:, 3] = points["intensity"].reshape(-1) if "intensity" in names else 0.0
    finite = np.isfinite(out[:, :3]).all(axis=1)
    if not finite.all():
        out = out[finite]
    return out


# ---------------------------------------------------------------------------------------------
# message-object helpers (rclpy or rosbags messages)
# ---------------------------------------------------------------------------------------------
def image_msg_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/Image`` message -> RGB uint8[H, W, 3]."""
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data,
                        max_pixels=max_pixels)


def compressed_msg_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` message -> RGB uint8[H, W, 3]."""
    return compressed_image_to_rgb(msg.format, msg.data, max_pixels=max_pixels)


def pointcloud_msg_to_xyzi(msg: Any) -> np.ndarray:
    """``sensor_msgs/PointCloud2`` message -> float32[N, 4]."""
    return pointcloud_to_xyzi(msg.fields, msg.height, msg.width, msg.point_step, msg.row_step,
                              msg.is_bigendian, msg.data)
