"""Property-based fuzzing (hypothesis) of every message -> array/tensor conversion and of the
stream state machine (issue 11).

Conversions: for any field values and bytes, the result is the documented array (shape, dtype,
finite coordinates) or a ConversionError with a known reason code; nothing else escapes, and
valid inputs built from a known truth round-trip exactly. Stream monitor: for random arrival and
clock sequences (out of order, bad stamps, future stamps, clock jumps, restarts), presence at
every tick matches an independent model of the specification.
"""
from __future__ import annotations

import math
import struct
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aecf_ros.runtime.conversions import (
    IMAGE_ENCODINGS, ConversionError, compressed_image_to_rgb, image_to_rgb, pointcloud_to_xyzi,
)
from aecf_ros.runtime.stream_monitor import StreamMonitor

REASONS = {"unsupported_encoding", "bad_dimensions", "truncated", "too_large", "unsupported_format",
           "decode_failed", "missing_field", "duplicate_field", "bad_field"}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------- images
@FUZZ
@given(encoding=st.sampled_from([*IMAGE_ENCODINGS, "nv12", "", "RGB8 ", "16uc1", "YUYV"]),
       height=st.integers(-2, 12), width=st.integers(-2, 12), step=st.integers(-4, 80),
       is_bigendian=st.integers(0, 2), data=st.binary(max_size=1200), max_pixels=st.integers(0, 200))
def test_image_conversion_returns_rgb_or_a_typed_error(encoding, height, width, step, is_bigendian, data,
                                                       max_pixels):
    try:
        rgb = image_to_rgb(encoding, height, width, step, is_bigendian, data, max_pixels=max_pixels)
    except ConversionError as exc:
        assert exc.reason_code in REASONS
        return
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert max_pixels == 0 or height * width <= max_pixels


@FUZZ
@given(height=st.integers(1, 9), width=st.integers(1, 9), padding=st.integers(0, 7), seed=st.integers(0, 2**16))
def test_rgb8_and_bgr8_round_trip_exactly(height, width, padding, seed):
    truth = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    step = width * 3 + padding
    for encoding, pixels in (("rgb8", truth), ("bgr8", truth[:, :, ::-1])):
        rows = np.zeros((height, step), np.uint8)
        rows[:, :width * 3] = pixels.reshape(height, -1)
        np.testing.assert_array_equal(image_to_rgb(encoding, height, width, step, 0, rows.tobytes()), truth)


def _png(rgb):
    import cv2

    return cv2.imencode(".png", rgb)[1].tobytes()


@FUZZ
@given(data=st.one_of(st.binary(max_size=300),
                      st.builds(lambda head, tail: b"\x89PNG\r\n\x1a\n" + head + tail,
                                st.binary(min_size=0, max_size=30), st.binary(max_size=100)),
                      st.builds(lambda tail: b"\xff\xd8" + tail, st.binary(max_size=200))),
       fmt=st.sampled_from(["png", "jpeg", "", "rgb8; jpeg compressed bgr8", "tiff"]))
def test_compressed_conversion_returns_rgb_or_a_typed_error(data, fmt):
    try:
        rgb = compressed_image_to_rgb(fmt, data)
    except ConversionError as exc:
        assert exc.reason_code in REASONS
        return
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8


@FUZZ
@given(width=st.integers(1, 40_000), height=st.integers(1, 40_000), max_pixels=st.integers(1, 5000))
def test_declared_png_size_is_judged_before_decoding(width, height, max_pixels):
    data = bytearray(_png(np.zeros((3, 4, 3), np.uint8)))
    struct.pack_into(">II", data, 16, width, height)
    try:
        compressed_image_to_rgb("png", bytes(data), max_pixels=max_pixels)
    except ConversionError as exc:
        if width * height > max_pixels:
            assert exc.reason_code == "too_large"
        else:
            assert exc.reason_code == "decode_failed"  # forged size: the decoder refuses it
        return
    assert (width, height) == (4, 3)


# ------------------------------------------------------------------------------------- clouds
FIELD = st.builds(lambda name, offset, datatype, count: SimpleNamespace(name=name, offset=offset,
                                                                        datatype=datatype, count=count),
                  st.sampled_from(["x", "y", "z", "intensity", "ring", "t", ""]),
                  st.integers(-4, 40), st.integers(0, 9), st.integers(0, 3))


@FUZZ
@given(fields=st.lists(FIELD, max_size=7), height=st.integers(-1, 4), width=st.integers(-1, 6),
       point_step=st.integers(0, 40), row_step=st.integers(0, 200), is_bigendian=st.booleans(),
       data=st.binary(max_size=900))
def test_cloud_conversion_returns_points_or_a_typed_error(fields, height, width, point_step, row_step,
                                                          is_bigendian, data):
    try:
        pts = pointcloud_to_xyzi(fields, height, width, point_step, row_step, is_bigendian, data)
    except ConversionError as exc:
        assert exc.reason_code in REASONS
        return
    names = [f.name for f in fields]
    assert len(names) == len(set(names)) and all(f.count >= 1 for f in fields)
    assert pts.dtype == np.float32 and pts.ndim == 2 and pts.shape[1] == 4
    assert pts.shape[0] <= max(height, 0) * max(width, 0)
    assert np.isfinite(pts[:, :3]).all()


@FUZZ
@given(n=st.integers(1, 12), big=st.booleans(), order=st.permutations(["x", "y", "z", "intensity"]),
       gap=st.integers(0, 5), row_pad=st.integers(0, 9), seed=st.integers(0, 2**16))
def test_any_float_layout_and_byte_order_round_trips(n, big, order, gap, row_pad, seed):
    """Points packed with struct (not the code under test) at shuffled offsets, either byte order."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(scale=20, size=(n, 4)).astype(np.float32)
    offsets = {name: i * (4 + gap) for i, name in enumerate(order)}
    point_step = 4 * (4 + gap)
    row_step = n * point_step + row_pad
    data = bytearray(row_step)
    for i, p in enumerate(truth):
        for col, name in enumerate(("x", "y", "z", "intensity")):
            struct.pack_into((">" if big else "<") + "f", data, i * point_step + offsets[name], float(p[col]))
    fields = [SimpleNamespace(name=k, offset=v, datatype=7, count=1) for k, v in offsets.items()]
    got = pointcloud_to_xyzi(fields, 1, n, point_step, row_step, big, bytes(data))
    np.testing.assert_array_equal(got, truth)


# ------------------------------------------------------------------------- text and embeddings
@FUZZ
@given(text=st.text(max_size=300), limit=st.integers(1, 120))
def test_text_cut_to_the_limit_before_encoding(text, limit):
    from aecf_ros.runtime.input_limits import InputLimits
    from aecf_ros.runtime.inputs import TEXT_CLIPPED, prepare_input

    msg = SimpleNamespace(data=text)
    try:
        prepared = prepare_input("text", "std_msgs/msg/String", msg, 1.0, InputLimits(max_text_chars=limit))
    except ConversionError as exc:
        assert exc.reason_code == "empty_text" and not text[:limit].strip()
        return
    assert prepared.raw == text[:limit] and prepared.stamp == 1.0
    assert (TEXT_CLIPPED in prepared.notes) == (len(text) > limit)


class _Model:
    modalities = ("camera",)
    embedding_dims = {"camera": 6}
    encoder_ids = {"camera": "cam"}
    class_names = ["a"]


@FUZZ
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                 st.floats(-2e4, 2e4), st.sampled_from([1e4, -1e4, 1e30, 1e20])),
                       min_size=0, max_size=8))
def test_embedding_accepted_exactly_when_finite_in_bound_and_right_size(values):
    from aecf_ros.runtime.fusion_engine import FusionEngine, FusionSettings

    engine = FusionEngine(_Model(), FusionSettings(timeout_s={"camera": 1.0}))
    reason = engine.submit("camera", values, 1.0, 1.0, "cam")
    arr = np.asarray(values, dtype=np.float64)
    ok = len(values) == 6 and np.isfinite(arr).all() and (len(arr) == 0 or np.abs(arr).max() <= 1e4)
    assert (reason is None) == ok, (reason, values)
    if ok:
        stored = engine._embeddings["camera"]
        assert stored.dtype == np.float32 and np.isfinite(stored).all()
        np.testing.assert_array_equal(stored, arr.astype(np.float32))
    else:
        assert reason in ("wrong_dim", "non_finite", "out_of_range")
        assert engine._embeddings["camera"] is None


# ---------------------------------------------------------------------- the stream state machine
class SpecModel:
    """The presence specification, written independently of StreamMonitor:

    - a sample is ignored if its stamp or clock is not finite, or it is stamped more than
      ``timeout`` ahead of its receive time;
    - the clock going back by more than 1 s forgets everything (a /clock reset);
    - a stamp earlier than the newest: within 1 s it is ignored (out of order); further back it is
      ignored unless it completes a run of N such samples, each 0..1 s after the previous one,
      with nothing accepted in between: then it becomes the newest (a new time base);
    - present(now) <=> something accepted and now - newest <= timeout.
    """

    def __init__(self, timeout, n):
        self.timeout, self.n = timeout, n
        self.newest, self.last_now, self.run = None, None, []
        self.jumps = 0

    def _clock(self, now):
        if self.last_now is not None and now < self.last_now - 1.0:
            self.newest, self.last_now, self.run = None, None, []
            self.jumps += 1
        if self.last_now is None or now > self.last_now:
            self.last_now = now

    def feed(self, stamp, now):
        if not (math.isfinite(stamp) and math.isfinite(now)):
            return
        self._clock(now)
        if stamp - now > self.timeout:
            return
        if self.newest is not None and stamp < self.newest:
            if self.newest - stamp <= 1.0:
                return
            if self.run and not 0 <= stamp - self.run[-1] <= 1.0:
                self.run = []
            self.run.append(stamp)
            if len(self.run) < self.n:
                return
            self.jumps += 1
        self.run = []
        self.newest = stamp

    def tick(self, now):
        if math.isfinite(now):
            self._clock(now)

    def present(self, now):
        return self.newest is not None and now - self.newest <= self.timeout


EVENT = st.one_of(
    st.tuples(st.just("sample"), st.floats(0.0, 0.1), st.sampled_from([0.0, 0.0, 0.0, -0.05, -0.5, -3.0, -1e9,
                                                                       0.1, 0.2, 0.3, 2.0, math.nan])),
    st.tuples(st.just("tick"), st.floats(0.0, 0.3), st.just(0.0)),
    st.tuples(st.just("clock_back"), st.floats(0.5, 50.0), st.just(0.0)),
    st.tuples(st.just("restart"), st.floats(0.0, 0.1), st.floats(-100.0, -2.0)),
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(EVENT, max_size=80), timeout=st.sampled_from([0.1, 0.25, 0.4, 3.0]),
       n=st.integers(1, 4))
def test_presence_matches_the_specification_at_every_tick(events, timeout, n):
    mon = StreamMonitor("camera", timeout_s=timeout, time_base_samples=n)
    spec = SpecModel(timeout, n)
    now, base = 100.0, 0.0  # base: the source's clock offset (a restart moves it)
    for kind, dt, offset in events:
        if kind == "clock_back":
            now -= dt
            mon.tick(now)
            spec.tick(now)
        elif kind == "tick":
            now += dt
            mon.tick(now)
            spec.tick(now)
        else:
            now += dt
            if kind == "restart":
                base, offset = offset, 0.0
            stamp = now + base + offset
            mon.feed(stamp, now)
            spec.feed(stamp, now)
            mon.tick(now)
            spec.tick(now)
        assert mon.is_present(now) == spec.present(now), (kind, now, mon.newest_stamp, spec.newest)
        assert mon.newest_stamp == spec.newest
        assert mon.time_jumps == spec.jumps
        if mon.newest_stamp is not None:  # nothing accepted from further ahead than the timeout
            assert mon.newest_stamp <= spec.last_now + timeout + 1e-9
