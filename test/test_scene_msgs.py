"""scene_msgs: numpy -> ROS messages, checked byte for byte and round-tripped through CDR
and (once present) the package's own msg -> numpy conversions."""
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image, PointCloud2

from aecf_ros.runtime.stamps import stamp_to_ns
from aecf_ros.sim import scene_msgs as sm

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
POINTS = np.concatenate(
    [RNG.normal(size=(60, 3)).astype(np.float32) * 10, RNG.uniform(0, 1, size=(60, 1)).astype(np.float32)], axis=1
)


def _pixels(msg: Image) -> np.ndarray:
    """Reference decode written independently of the package's conversions."""
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    if msg.encoding == "mono16":
        dtype = ">u2" if msg.is_bigendian else "<u2"
        return rows[:, : msg.width * 2].copy().view(dtype).reshape(msg.height, msg.width)
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}[msg.encoding]
    return rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)


def test_stamp_from_seconds_is_exact_to_the_nanosecond():
    t = sm.stamp_msg(12.000000001)
    assert (t.sec, t.nanosec) == (12, 1)
    assert stamp_to_ns(sm.time_from_ns(3_500_000_001)) == 3_500_000_001
    with pytest.raises(ValueError):
        sm.stamp_msg(-1.0)


@pytest.mark.parametrize("encoding", sm.IMAGE_ENCODINGS)
@pytest.mark.parametrize("padding", [0, 5])
def test_image_msg_holds_the_rgb_frame_in_every_encoding(encoding, padding):
    msg = sm.image_msg(RGB, 1.5, encoding=encoding, step_padding=padding)
    msg = deserialize_message(serialize_message(msg), Image)  # survives CDR unchanged
    assert (msg.height, msg.width, msg.encoding) == (24, 32, encoding)
    assert msg.header.stamp.sec == 1 and msg.header.stamp.nanosec == 500_000_000
    px = _pixels(msg)
    if encoding in ("rgb8", "rgba8"):
        np.testing.assert_array_equal(px[:, :, :3], RGB)
    elif encoding in ("bgr8", "bgra8"):
        np.testing.assert_array_equal(px[:, :, 2::-1], RGB)
    if encoding in ("rgba8", "bgra8"):
        assert (px[:, :, 3] == 255).all()
    if encoding == "mono8":
        import cv2

        np.testing.assert_array_equal(px[:, :, 0], cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY))
    if encoding == "mono16":
        assert px.dtype.itemsize == 2 and px.max() > 255
    assert msg.step == 32 * {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2}[encoding] + padding


def test_mono16_big_endian_sets_flag_and_byte_order():
    little = _pixels(sm.image_msg(RGB, 0.0, encoding="mono16"))
    big_msg = sm.image_msg(RGB, 0.0, encoding="mono16", big_endian=True)
    assert big_msg.is_bigendian == 1
    np.testing.assert_array_equal(_pixels(big_msg), little)


def test_bad_image_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unsupported image encoding"):
        sm.image_msg(RGB, 0.0, encoding="yuv422")
    with pytest.raises(ValueError, match="uint8"):
        sm.image_msg(RGB.astype(np.float32), 0.0)
    with pytest.raises(ValueError, match="jpeg"):
        sm.compressed_image_msg(RGB, 0.0, format="tiff")


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_image_decodes_back_to_the_frame(fmt):
    import cv2

    smooth = np.zeros((24, 32, 3), np.uint8)
    smooth[:, :, 0] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :]
    smooth[:, :, 1] = np.linspace(0, 255, 24, dtype=np.uint8)[:, None]
    smooth[:, :, 2] = 90
    rgb = RGB if fmt == "png" else smooth
    msg = deserialize_message(serialize_message(sm.compressed_image_msg(rgb, 2.0, format=fmt)), CompressedImage)
    assert fmt in msg.format
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    if fmt == "png":
        np.testing.assert_array_equal(decoded, RGB)
    else:  # lossy, but the colours stay where they were (catches an RGB/BGR swap)
        assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 8


@pytest.mark.parametrize(
    "layout",
    [
        sm.CloudLayout.xyzi(),
        sm.CloudLayout.velodyne(),
        sm.CloudLayout.ouster(),
        sm.CloudLayout.livox_uint8_intensity(),
        sm.CloudLayout(sm.CloudLayout.xyzi().fields, 16, big_endian=True),
    ],
    ids=["xyzi", "velodyne", "ouster", "livox", "big_endian"],
)
def test_pointcloud2_fields_hold_the_points(layout):
    msg = sm.pointcloud2_msg(POINTS, 0.1, layout=layout, height=3, row_padding=7)
    msg = deserialize_message(serialize_message(msg), PointCloud2)
    assert (msg.height, msg.width, msg.point_step) == (3, 20, layout.point_step)
    assert msg.row_step == 20 * layout.point_step + 7
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(3, msg.row_step)[:, : 20 * layout.point_step]
    cloud = np.ascontiguousarray(rows).view(layout.numpy_dtype()).reshape(-1)
    for axis, name in enumerate("xyz"):
        np.testing.assert_array_equal(cloud[name], POINTS[:, axis])
    by_name = {f.name: f for f in msg.fields}
    assert by_name["x"].datatype == 7 and by_name["x"].count == 1
    if layout.big_endian:
        assert msg.is_bigendian


def test_pointcloud2_rejects_bad_shapes_and_layouts():
    with pytest.raises(ValueError, match="points"):
        sm.pointcloud2_msg(POINTS[:, :2], 0.0)
    with pytest.raises(ValueError, match="organised"):
        sm.pointcloud2_msg(POINTS, 0.0, height=7)
    with pytest.raises(ValueError, match="does not fit"):
        sm.CloudLayout((sm.CloudField("x", "float32", 14),), 16)


def test_ground_truth_round_trips_labels_and_scene_index():
    from diagnostic_msgs.msg import DiagnosticArray

    names = ["person", "car", "dog"]
    msg = sm.ground_truth_msg(np.array([1, 0, 1], np.uint8), names, 4.25, scene_index=7)
    msg = deserialize_message(serialize_message(msg), DiagnosticArray)
    assert msg.header.stamp.sec == 4 and msg.status[0].message == "person,dog"
    labels, index = sm.labels_from_ground_truth(msg, names)
    np.testing.assert_array_equal(labels, [1, 0, 1])
    assert index == 7
    # A reader with more classes than the writer gets zeros for the unknown ones.
    labels, _ = sm.labels_from_ground_truth(msg, names + ["chair"])
    np.testing.assert_array_equal(labels, [1, 0, 1, 0])
    with pytest.raises(ValueError):
        sm.ground_truth_msg(np.array([1, 0]), names, 0.0)


def test_scene_messages_builds_every_modality():
    from types import SimpleNamespace

    scene = SimpleNamespace(labels=np.array([0, 1, 0], np.uint8), image=RGB, points=POINTS, text="a car")
    msgs = sm.scene_messages(scene, 3.0, class_names=["a", "b", "c"], compressed="png")
    assert set(msgs) == {"camera", "lidar", "text", "ground_truth"}
    assert isinstance(msgs["camera"], CompressedImage) and msgs["text"].data == "a car"
    assert msgs["lidar"].header.stamp.sec == 3


# --- round trip against the package's own conversions (the code the nodes run) ------------------


def _conversions():
    return pytest.importorskip("aecf_ros.runtime.conversions")


@pytest.mark.parametrize("encoding", sm.IMAGE_ENCODINGS)
def test_conversions_read_back_every_image_encoding(encoding):
    conv = _conversions()
    msg = deserialize_message(serialize_message(sm.image_msg(RGB, 0.0, encoding=encoding, step_padding=3)), Image)
    rgb = conv.image_msg_to_rgb(msg)
    assert rgb.shape == RGB.shape and rgb.dtype == np.uint8
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        np.testing.assert_array_equal(rgb, RGB)
    else:  # grey: every channel is the luminance
        assert np.abs(rgb[:, :, 0].astype(int) - _pixels(sm.image_msg(RGB, 0.0, encoding="mono8"))[:, :, 0]).max() <= 1


def test_conversions_read_back_png_compressed_image():
    conv = _conversions()
    msg = sm.compressed_image_msg(RGB, 0.0, format="png")
    np.testing.assert_array_equal(conv.compressed_msg_to_rgb(msg), RGB)


@pytest.mark.parametrize(
    "layout",
    [
        sm.CloudLayout.xyzi(),
        sm.CloudLayout.velodyne(),
        sm.CloudLayout.ouster(),
        sm.CloudLayout.livox_uint8_intensity(),
        sm.CloudLayout(sm.CloudLayout.xyzi().fields, 16, big_endian=True),
    ],
    ids=["xyzi", "velodyne", "ouster", "livox", "big_endian"],
)
def test_conversions_read_back_pointcloud2_layouts(layout):
    conv = _conversions()
    msg = sm.pointcloud2_msg(POINTS, 0.0, layout=layout, row_padding=4, height=2)
    points = conv.pointcloud_msg_to_xyzi(deserialize_message(serialize_message(msg), PointCloud2))
    np.testing.assert_array_equal(points[:, :3], POINTS[:, :3])
    if layout.fields[3].datatype == "float32":
        np.testing.assert_array_equal(points[:, 3], POINTS[:, 3])


def test_conversions_read_back_xyz_only_cloud_with_zero_intensity():
    conv = _conversions()
    points = conv.pointcloud_msg_to_xyzi(sm.pointcloud2_msg(POINTS, 0.0, layout=sm.CloudLayout.xyz()))
    np.testing.assert_array_equal(points[:, :3], POINTS[:, :3])
    assert (points[:, 3] == 0).all()
