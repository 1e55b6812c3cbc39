"""Image / CompressedImage / PointCloud2 conversions against independent references.

Each test starts from a known truth (an RGB array, a list of points), encodes it into message
bytes with plain ``struct``/Python loops (not the code under test), converts it back with
``aecf_ros.runtime.conversions`` and compares with the truth.
"""
import io
import math
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from aecf_ros.runtime.conversions import (
    ConversionError,
    compressed_image_to_rgb,
    image_msg_to_rgb,
    image_to_rgb,
    pointcloud_msg_to_xyzi,
    pointcloud_to_xyzi,
)

RNG = np.random.default_rng(7)
H, W = 5, 7


def _truth_rgb():
    return RNG.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _encode_rows(pixel_bytes, step):
    """pixel_bytes(r, c) -> bytes for one pixel; rows padded with 0xAB to `step` bytes."""
    out = bytearray()
    for r in range(H):
        row = bytearray()
        for c in range(W):
            row += pixel_bytes(r, c)
        assert len(row) <= step
        row += b"\xab" * (step - len(row))
        out += row
    return bytes(out)


@pytest.mark.parametrize("padding", [0, 3, 16])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_color_encodings_convert_to_rgb(encoding, padding):
    truth = _truth_rgb()
    order = {"rgb8": (0, 1, 2), "bgr8": (2, 1, 0), "rgba8": (0, 1, 2, None), "bgra8": (2, 1, 0, None)}[encoding]

    def px(r, c):
        return bytes(int(truth[r, c, ch]) if ch is not None else 77 for ch in order)

    step = W * len(order) + padding
    data = _encode_rows(px, step)
    for is_bigendian in (0, 1):  # irrelevant for 8-bit channels
        rgb = image_to_rgb(encoding, H, W, step, is_bigendian, data)
        assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3) and rgb.flags.c_contiguous
        np.testing.assert_array_equal(rgb, truth)


@pytest.mark.parametrize("padding", [0, 5])
def test_mono8_replicated_to_three_channels(padding):
    truth = RNG.integers(0, 256, size=(H, W), dtype=np.uint8)
    step = W + padding
    data = _encode_rows(lambda r, c: bytes([int(truth[r, c])]), step)
    rgb = image_to_rgb("mono8", H, W, step, 0, data)
    for ch in range(3):
        np.testing.assert_array_equal(rgb[:, :, ch], truth)


@pytest.mark.parametrize("is_bigendian", [0, 1])
@pytest.mark.parametrize("padding", [0, 6])
def test_mono16_both_byte_orders_keep_high_byte(is_bigendian, padding):
    truth16 = RNG.integers(0, 65536, size=(H, W)).astype(np.uint16)
    fmt = ">H" if is_bigendian else "<H"
    step = 2 * W + padding
    data = _encode_rows(lambda r, c: struct.pack(fmt, int(truth16[r, c])), step)
    rgb = image_to_rgb("mono16", H, W, step, is_bigendian, data)
    expected = np.array([[v // 256 for v in row] for row in truth16.tolist()], dtype=np.uint8)
    for ch in range(3):
        np.testing.assert_array_equal(rgb[:, :, ch], expected)


def test_image_from_message_object_with_array_data():
    import array

    truth = _truth_rgb()
    msg = SimpleNamespace(encoding="rgb8", height=H, width=W, step=W * 3, is_bigendian=0,
                          data=array.array("B", truth.tobytes()))
    np.testing.assert_array_equal(image_msg_to_rgb(msg), truth)


def test_last_row_without_padding_accepted():
    truth = _truth_rgb()
    step = W * 3 + 4
    data = _encode_rows(lambda r, c: bytes(truth[r, c].tolist()), step)[:-4]
    np.testing.assert_array_equal(image_to_rgb("rgb8", H, W, step, 0, data), truth)


@pytest.mark.parametrize(
    "args, reason",
    [
        (("nv12", H, W, W, 0, bytes(H * W * 3 // 2 + W)), "unsupported_encoding"),
        (("yuv420", H, W, W, 0, bytes(H * W * 2)), "unsupported_encoding"),
        (("32FC1", H, W, W * 4, 0, bytes(H * W * 4)), "unsupported_encoding"),
        (("rgb8", H, W, W * 3, 0, bytes(H * W * 3 - 1)), "truncated"),
        (("rgb8", H, W, W * 3, 0, b""), "truncated"),
        (("rgb8", H, W, W * 3 - 1, 0, bytes(H * W * 3)), "bad_dimensions"),
        (("rgb8", 0, W, W * 3, 0, b""), "bad_dimensions"),
        (("mono16", H, W, W * 2, 0, bytes(H * W * 2 - 2)), "truncated"),
        (("16UC1", H, W, W * 2, 0, bytes(H * W * 2 - 2)), "truncated"),
        (("uyvy", H, 6, 12, 0, bytes(H * 12 - 1)), "truncated"),
        (("yuyv", H, 6, 11, 0, bytes(H * 12)), "bad_dimensions"),
        (("yuv422", H, W, W * 2, 0, bytes(H * W * 2)), "bad_dimensions"),  # odd width: no 4:2:2
        (("bayer_rggb8", H, W, W, 0, bytes(H * W - 1)), "truncated"),
        (("bayer_grbg8", H, W, W - 1, 0, bytes(H * W)), "bad_dimensions"),
        (("bayer_bggr8", H, 0, 0, 0, b""), "bad_dimensions"),
    ],
)
def test_bad_images_raise_typed_error(args, reason):
    with pytest.raises(ConversionError) as err:
        image_to_rgb(*args)
    assert err.value.reason_code == reason
    assert err.value.message


# ------------------------------------------------- YUV 4:2:2, Bayer, 16-bit mono: against OpenCV
def _padded(plane: np.ndarray, step: int) -> bytes:
    """uint8[H, row_bytes] (or [H, W, C]) -> message bytes with each row padded to `step` with 0xAB."""
    rows = plane.reshape(plane.shape[0], -1)
    pad = np.full((rows.shape[0], step - rows.shape[1]), 0xAB, np.uint8)
    return np.concatenate([rows, pad], axis=1).tobytes()


YUV_W = 8  # 4:2:2 needs an even width


@pytest.mark.parametrize("padding", [0, 6])
@pytest.mark.parametrize("encoding, code", [
    ("yuv422", "COLOR_YUV2RGB_UYVY"),   # ROS "yuv422" is UYVY (sensor_msgs image_encodings)
    ("uyvy", "COLOR_YUV2RGB_UYVY"),
    ("yuyv", "COLOR_YUV2RGB_YUYV"),
    ("yuv422_yuy2", "COLOR_YUV2RGB_YUYV"),
])
def test_yuv422_matches_opencv_cvtcolor(encoding, code, padding):
    import cv2

    packed = RNG.integers(0, 256, size=(H, YUV_W, 2), dtype=np.uint8)
    step = YUV_W * 2 + padding
    rgb = image_to_rgb(encoding, H, YUV_W, step, 0, _padded(packed, step))
    assert rgb.dtype == np.uint8 and rgb.shape == (H, YUV_W, 3) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, cv2.cvtColor(packed, getattr(cv2, code)))


@pytest.mark.parametrize("encoding, luma_at", [("yuv422", 1), ("uyvy", 1), ("yuyv", 0), ("yuv422_yuy2", 0)])
def test_yuv422_byte_order_puts_luma_where_the_encoding_says(encoding, luma_at):
    """Neutral chroma (128): every pixel is grey, 1.164 * (Y - 16) (BT.601 video range), with Y
    taken from the byte the encoding names as luma; reading the other order would give flat grey."""
    luma = RNG.integers(16, 236, size=(H, YUV_W), dtype=np.uint8)
    packed = np.full((H, YUV_W, 2), 128, np.uint8)
    packed[:, :, luma_at] = luma
    rgb = image_to_rgb(encoding, H, YUV_W, YUV_W * 2, 0, packed.tobytes()).astype(int)
    expected = np.clip(np.round(1.164 * (luma.astype(float) - 16)), 0, 255)
    for ch in range(3):
        np.testing.assert_allclose(rgb[:, :, ch], expected, atol=1.5)


def test_yuv422_last_row_without_padding_and_max_pixels():
    import cv2

    packed = RNG.integers(0, 256, size=(H, YUV_W, 2), dtype=np.uint8)
    step = YUV_W * 2 + 4
    data = _padded(packed, step)[:-4]
    np.testing.assert_array_equal(image_to_rgb("uyvy", H, YUV_W, step, 0, data),
                                  cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_UYVY))
    with pytest.raises(ConversionError) as err:
        image_to_rgb("uyvy", H, YUV_W, step, 0, data, max_pixels=H * YUV_W - 1)
    assert err.value.reason_code == "too_large"


# ROS pattern -> OpenCV's newer name spelling the same pattern the ROS way (OpenCV >= 4.5)
BAYER = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("encoding", list(BAYER))
def test_bayer_matches_opencv_cvtcolor(encoding, padding):
    import cv2

    mosaic = RNG.integers(0, 256, size=(6, 8), dtype=np.uint8)
    step = 8 + padding
    rgb = image_to_rgb(encoding, 6, 8, step, 0, _padded(mosaic, step))
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 8, 3) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, cv2.cvtColor(mosaic, getattr(cv2, f"COLOR_Bayer{BAYER[encoding]}2RGB")))


@pytest.mark.parametrize("encoding", list(BAYER))
def test_bayer_flat_colour_comes_back(encoding):
    """A mosaic of one colour sampled with the pattern the encoding names (top-left 2x2 block,
    row by row) demosaics to that colour: proves the ROS -> OpenCV pattern mapping, not just
    agreement with a code of our own choosing."""
    colour = {"R": 200, "G": 100, "B": 30}
    pattern = BAYER[encoding]
    mosaic = np.empty((8, 10), np.uint8)
    for dr in (0, 1):
        for dc in (0, 1):
            mosaic[dr::2, dc::2] = colour[pattern[2 * dr + dc]]
    rgb = image_to_rgb(encoding, 8, 10, 10, 0, mosaic.tobytes())
    np.testing.assert_array_equal(rgb[2:-2, 2:-2], np.broadcast_to([200, 100, 30], (4, 6, 3)))


@pytest.mark.parametrize("encoding, code", [("rgba8", "COLOR_RGBA2RGB"), ("bgra8", "COLOR_BGRA2RGB")])
def test_four_channel_matches_opencv_cvtcolor(encoding, code):
    import cv2

    pixels = RNG.integers(0, 256, size=(H, W, 4), dtype=np.uint8)
    step = W * 4 + 5
    np.testing.assert_array_equal(image_to_rgb(encoding, H, W, step, 0, _padded(pixels, step)),
                                  cv2.cvtColor(pixels, getattr(cv2, code)))


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "16uc1"])
@pytest.mark.parametrize("is_bigendian", [0, 1])
def test_sixteen_bit_mono_matches_opencv_gray_to_rgb_high_byte(encoding, is_bigendian):
    """16UC1 is read exactly like mono16: OpenCV's GRAY2RGB of the 16-bit plane, high byte kept."""
    import cv2

    plane = RNG.integers(0, 65536, size=(H, W)).astype(">u2" if is_bigendian else "<u2")
    step = W * 2 + 2
    rgb = image_to_rgb(encoding, H, W, step, is_bigendian, _padded(plane.view(np.uint8).reshape(H, -1), step))
    reference = cv2.cvtColor(plane.astype(np.uint16), cv2.COLOR_GRAY2RGB) >> 8
    np.testing.assert_array_equal(rgb, reference.astype(np.uint8))


# --------------------------------------------------------------------------------- compressed
def test_png_decodes_exactly_like_pillow():
    from PIL import Image as PILImage

    truth = _truth_rgb()
    buf = io.BytesIO()
    PILImage.fromarray(truth).save(buf, format="PNG")
    rgb = compressed_image_to_rgb("png", buf.getvalue())
    np.testing.assert_array_equal(rgb, truth)


def test_grayscale_png_becomes_rgb():
    from PIL import Image as PILImage

    gray = RNG.integers(0, 256, size=(H, W), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(gray).save(buf, format="PNG")
    rgb = compressed_image_to_rgb("png", buf.getvalue())
    np.testing.assert_array_equal(rgb, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("fmt", ["jpeg", "bgr8; jpeg compressed bgr8", ""])
def test_jpeg_decodes_close_to_pillow_reference(fmt):
    from PIL import Image as PILImage

    # smooth image so JPEG loss is small and decoders agree closely
    yy, xx = np.mgrid[0:48, 0:64]
    truth = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(truth).save(buf, format="JPEG", quality=95)
    reference = np.asarray(PILImage.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    rgb = compressed_image_to_rgb(fmt, buf.getvalue())
    assert rgb.shape == truth.shape and rgb.dtype == np.uint8
    # RGB order check: the channels differ a lot, a BGR mix-up would be far off
    assert np.abs(rgb.astype(int) - reference.astype(int)).mean() < 2.0
    assert np.abs(rgb.astype(int) - truth.astype(int)).mean() < 4.0


@pytest.mark.parametrize(
    "fmt, data, reason",
    [
        ("jpeg", b"", "truncated"),
        ("jpeg", b"\xff\xd8\xff\xe0 definitely not a jpeg", "decode_failed"),
        ("tiff", b"II*\x00", "unsupported_format"),
    ],
)
def test_bad_compressed_images_raise_typed_error(fmt, data, reason):
    with pytest.raises(ConversionError) as err:
        compressed_image_to_rgb(fmt, data)
    assert err.value.reason_code == reason


def _png_bytes(rgb):
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(rgb, progressive=False):
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="JPEG", quality=90, progressive=progressive)
    return buf.getvalue()


def _declare_size(data, width, height):
    """The same file with a forged header size (what a decompression bomb looks like)."""
    data = bytearray(data)
    if data.startswith(b"\x89PNG"):
        struct.pack_into(">II", data, 16, width, height)
        return bytes(data)
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


@pytest.mark.parametrize("kind", ["png", "jpeg", "progressive_jpeg"])
def test_compressed_size_read_from_header_matches_image(kind):
    from aecf_ros.runtime.conversions import compressed_image_size

    rgb = RNG.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    data = _png_bytes(rgb) if kind == "png" else _jpeg_bytes(rgb, progressive=kind.startswith("prog"))
    assert compressed_image_size(data) == (53, 37)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_compressed_bomb_rejected_from_header_before_decoding(kind, monkeypatch):
    """A small file declaring 16000x16000 is too_large without being decoded (issue 11 item 2)."""
    import cv2

    rgb = _truth_rgb()
    data = _declare_size(_png_bytes(rgb) if kind == "png" else _jpeg_bytes(rgb), 16000, 16000)
    calls = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(a))
    with pytest.raises(ConversionError) as err:
        compressed_image_to_rgb(kind, data)
    assert err.value.reason_code == "too_large" and "16000x16000" in err.value.message
    assert calls == []  # never reached the decoder
    monkeypatch.undo()
    # a bound above the declared size lets it through to the decoder
    compressed_image_to_rgb(kind, _png_bytes(rgb) if kind == "png" else _jpeg_bytes(rgb), max_pixels=H * W)
    with pytest.raises(ConversionError) as err:
        compressed_image_to_rgb(kind, _png_bytes(rgb) if kind == "png" else _jpeg_bytes(rgb), max_pixels=H * W - 1)
    assert err.value.reason_code == "too_large"


def test_compressed_data_that_is_neither_png_nor_jpeg_is_not_decoded():
    import cv2

    bmp = cv2.imencode(".bmp", _truth_rgb())[1].tobytes()
    with pytest.raises(ConversionError) as err:
        compressed_image_to_rgb("png", bmp)  # cv2 would decode a BMP whatever the format field says
    assert err.value.reason_code == "decode_failed"


def test_raw_image_over_max_pixels_is_too_large():
    truth = _truth_rgb()
    with pytest.raises(ConversionError) as err:
        image_to_rgb("rgb8", H, W, W * 3, 0, truth.tobytes(), max_pixels=H * W - 1)
    assert err.value.reason_code == "too_large"
    # a huge declared size is too_large, not merely truncated
    with pytest.raises(ConversionError) as err:
        image_to_rgb("rgb8", 16000, 16000, 48000, 0, truth.tobytes())
    assert err.value.reason_code == "too_large"
    np.testing.assert_array_equal(image_to_rgb("rgb8", H, W, W * 3, 0, truth.tobytes(), max_pixels=H * W), truth)


def test_truncated_png_is_decode_failure():
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(_truth_rgb()).save(buf, format="PNG")
    with pytest.raises(ConversionError) as err:
        compressed_image_to_rgb("png", buf.getvalue()[: len(buf.getvalue()) // 2])
    assert err.value.reason_code == "decode_failed"


# --------------------------------------------------------------------------------- clouds
FLOAT32, FLOAT64, UINT8, UINT16, INT32 = 7, 8, 2, 4, 5
STRUCT_CODE = {FLOAT32: "f", FLOAT64: "d", UINT8: "B", UINT16: "H", INT32: "i"}


def _field(name, offset, datatype, count=1):
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


def _pack_cloud(points, layout, point_step, height, width, row_step, extra_fill=None):
    """points: list of dicts name -> value. layout: list of (name, offset, datatype)."""
    data = bytearray(b"\xcd" * (row_step * height))
    for i, p in enumerate(points):
        r, c = divmod(i, width)
        base = r * row_step + c * point_step
        for name, offset, datatype in layout:
            value = p.get(name, 0)
            struct.pack_into("<" + STRUCT_CODE[datatype], data, base + offset, value)
    return bytes(data)


def _random_points(n, with_nan=0):
    pts = []
    for i in range(n):
        p = {"x": float(RNG.normal() * 10), "y": float(RNG.normal() * 10), "z": float(RNG.normal()),
             "intensity": float(RNG.uniform(0, 255)), "ring": int(i % 16), "time": float(i) * 1e-5}
        pts.append(p)
    for i in range(with_nan):
        pts[(3 * i + 1) % n]["x" if i % 2 else "z"] = math.nan
    return pts


def _reference(points, has_intensity=True, intensity_cast=float):
    rows = []
    for p in points:
        xyz = [p["x"], p["y"], p["z"]]
        xyz32 = [struct.unpack("<f", struct.pack("<f", v))[0] for v in xyz]
        if any(math.isnan(v) or math.isinf(v) for v in xyz32):
            continue
        rows.append(xyz32 + [intensity_cast(p["intensity"]) if has_intensity else 0.0])
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


LAYOUTS = {
    # name: (layout, point_step)
    "xyz_packed": ([("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32)], 12),
    "xyzi_packed": ([("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("intensity", 12, FLOAT32)], 16),
    # PCL PointXYZI: x y z pad, intensity, 12 bytes pad
    "pcl_xyzi_aligned": ([("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("intensity", 16, FLOAT32)], 32),
    # Velodyne/ouster-like: ring uint16 and time float32 extras, intensity first
    "velodyne_like": ([("intensity", 0, FLOAT32), ("x", 4, FLOAT32), ("y", 8, FLOAT32), ("z", 12, FLOAT32),
                       ("ring", 16, UINT16), ("time", 18, FLOAT32)], 22),
    "shuffled_offsets": ([("z", 0, FLOAT32), ("time", 4, FLOAT64), ("y", 12, FLOAT32), ("x", 20, FLOAT32)], 28),
}


@pytest.mark.parametrize("layout_name", list(LAYOUTS))
@pytest.mark.parametrize("organised, row_pad", [(False, 0), (True, 0), (True, 8)])
def test_pointcloud_layouts_match_reference(layout_name, organised, row_pad):
    layout, point_step = LAYOUTS[layout_name]
    height, width = (4, 6) if organised else (1, 24)
    points = _random_points(height * width, with_nan=3)
    row_step = width * point_step + row_pad
    data = _pack_cloud(points, layout, point_step, height, width, row_step)
    fields = [_field(n, o, d) for n, o, d in layout]
    out = pointcloud_to_xyzi(fields, height, width, point_step, row_step, 0, data)
    has_i = any(n == "intensity" for n, _, _ in layout)
    expected = _reference(points, has_intensity=has_i)
    assert out.dtype == np.float32 and out.shape == expected.shape
    assert len(expected) == height * width - 3  # NaN points dropped
    np.testing.assert_array_equal(out, expected)


def test_integer_intensity_and_dict_fields_from_message_object():
    layout = [("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("intensity", 12, UINT8)]
    points = _random_points(10)
    for p in points:
        p["intensity"] = int(p["intensity"])
    data = _pack_cloud(points, layout, 13, 1, 10, 130)
    msg = SimpleNamespace(fields=[{"name": n, "offset": o, "datatype": d, "count": 1} for n, o, d in layout],
                          height=1, width=10, point_step=13, row_step=130, is_bigendian=False, data=data)
    np.testing.assert_array_equal(pointcloud_msg_to_xyzi(msg), _reference(points))


def test_float64_xyz_accepted():
    layout = [("x", 0, FLOAT64), ("y", 8, FLOAT64), ("z", 16, FLOAT64)]
    points = _random_points(5)
    data = _pack_cloud(points, layout, 24, 1, 5, 120)
    out = pointcloud_to_xyzi([_field(n, o, d) for n, o, d in layout], 1, 5, 24, 120, 0, data)
    np.testing.assert_allclose(out[:, :3], _reference(points, has_intensity=False)[:, :3], rtol=1e-6)


def test_empty_cloud_gives_zero_points():
    fields = [_field(n, o, FLOAT32) for n, o in (("x", 0), ("y", 4), ("z", 8))]
    out = pointcloud_to_xyzi(fields, 1, 0, 12, 0, 0, b"")
    assert out.shape == (0, 4) and out.dtype == np.float32


XYZ = [_field(n, o, FLOAT32) for n, o in (("x", 0), ("y", 4), ("z", 8))]


def test_big_endian_cloud_decoded_like_little_endian():
    """Big-endian clouds are decoded (sensor_msgs_py.read_points does), not rejected."""
    pts = _random_points(9, with_nan=2)
    layout = LAYOUTS["velodyne_like"][0]
    point_step = LAYOUTS["velodyne_like"][1]
    fields = [_field(n, o, d) for n, o, d in layout]
    little = _pack_cloud(pts, layout, point_step, 1, 9, 9 * point_step)
    big = bytearray(b"\xcd" * (9 * point_step))
    for i, p in enumerate(pts):
        for name, offset, datatype in layout:
            struct.pack_into(">" + STRUCT_CODE[datatype], big, i * point_step + offset, p.get(name, 0))
    expected = pointcloud_to_xyzi(fields, 1, 9, point_step, 9 * point_step, 0, little)
    got = pointcloud_to_xyzi(fields, 1, 9, point_step, 9 * point_step, 1, bytes(big))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, _reference(pts))


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        (dict(fields=[*XYZ, _field("x", 0, FLOAT32)], height=1, width=4, point_step=12, row_step=48,
              is_bigendian=0, data=bytes(48)), "duplicate_field"),
        (dict(fields=[_field("x", 0, FLOAT32, count=0), *XYZ[1:]], height=1, width=4, point_step=12,
              row_step=48, is_bigendian=0, data=bytes(48)), "bad_field"),
        (dict(fields=[*XYZ, _field("ring", 12, UINT16, count=0)], height=1, width=4, point_step=14,
              row_step=56, is_bigendian=0, data=bytes(56)), "bad_field"),
        (dict(fields=XYZ[:2], height=1, width=4, point_step=12, row_step=48, is_bigendian=0, data=bytes(48)), "missing_field"),
        (dict(fields=[], height=1, width=4, point_step=12, row_step=48, is_bigendian=0, data=bytes(48)), "missing_field"),
        (dict(fields=XYZ, height=1, width=4, point_step=12, row_step=48, is_bigendian=0, data=bytes(47)), "truncated"),
        (dict(fields=XYZ, height=2, width=4, point_step=12, row_step=40, is_bigendian=0, data=bytes(96)), "bad_dimensions"),
        (dict(fields=XYZ, height=1, width=4, point_step=8, row_step=32, is_bigendian=0, data=bytes(32)), "bad_field"),
        (dict(fields=[_field("x", 0, UINT16), *XYZ[1:]], height=1, width=4, point_step=12, row_step=48,
              is_bigendian=0, data=bytes(48)), "bad_field"),
        (dict(fields=[_field("x", 0, 42), *XYZ[1:]], height=1, width=4, point_step=12, row_step=48,
              is_bigendian=0, data=bytes(48)), "bad_field"),
    ],
)
def test_bad_clouds_raise_typed_error(kwargs, reason):
    with pytest.raises(ConversionError) as err:
        pointcloud_to_xyzi(**kwargs)
    assert err.value.reason_code == reason
    assert err.value.message


def test_real_ros_messages_convert():
    """rclpy message objects (array.array data) work the same as plain fields."""
    from sensor_msgs.msg import Image, PointCloud2, PointField

    truth = _truth_rgb()
    img = Image(height=H, width=W, encoding="bgr8", step=W * 3 + 2, is_bigendian=0)
    img.data = _encode_rows(lambda r, c: bytes(truth[r, c, ::-1].tolist()), W * 3 + 2)
    np.testing.assert_array_equal(image_msg_to_rgb(img), truth)

    layout, point_step = LAYOUTS["velodyne_like"]
    points = _random_points(12, with_nan=2)
    cloud = PointCloud2(height=1, width=12, point_step=point_step, row_step=12 * point_step, is_dense=False)
    cloud.fields = [PointField(name=n, offset=o, datatype=d, count=1) for n, o, d in layout]
    cloud.data = _pack_cloud(points, layout, point_step, 1, 12, 12 * point_step)
    np.testing.assert_array_equal(pointcloud_msg_to_xyzi(cloud), _reference(points))
