"""StreamMonitor: presence on the caller's clock, transitions once, rate, drops, time jumps."""
import math

import pytest

from aecf_ros.runtime.stream_monitor import StreamMonitor, StreamState


def test_never_seen_until_first_sample_then_ok():
    mon = StreamMonitor("lidar", timeout_s=0.5)
    assert mon.tick(0.0) == [] and mon.state is StreamState.NEVER_SEEN
    assert not mon.is_present(0.0)
    mon.feed(stamp=0.95, receive_time=1.0)
    (t,) = mon.tick(1.0)
    assert (t.old, t.new) == (StreamState.NEVER_SEEN, StreamState.OK)
    assert mon.is_present(1.0)
    assert mon.age(1.0) == pytest.approx(0.05)


def test_lidar_marked_missing_exactly_after_timeout_on_stamp():
    mon = StreamMonitor("lidar", timeout_s=0.5)
    mon.feed(10.0, 10.02)
    mon.tick(10.02)
    assert mon.is_present(10.5)  # now - stamp == timeout: still present
    assert mon.tick(10.5) == []
    (t,) = mon.tick(10.5001)
    assert (t.old, t.new) == (StreamState.OK, StreamState.STALE)
    assert t.age_s == pytest.approx(0.5001)
    assert "lidar: OK -> STALE" in t.describe()


def test_each_transition_reported_once():
    mon = StreamMonitor("camera", timeout_s=0.2)
    reported = []
    now = 0.0
    for i in range(100):  # 30 Hz for ~1 s, silence ~1 s, then data again
        now = i * 0.033
        if i < 30 or i > 60:
            mon.feed(now, now)
        reported += mon.tick(now)
    assert [(t.old, t.new) for t in reported] == [
        (StreamState.NEVER_SEEN, StreamState.OK),
        (StreamState.OK, StreamState.STALE),
        (StreamState.STALE, StreamState.OK),
    ]


def test_disable_and_enable_at_run_time():
    mon = StreamMonitor("text", timeout_s=5.0)
    mon.feed(1.0, 1.0)
    mon.tick(1.0)
    mon.set_enabled(False)
    (t,) = mon.tick(1.1)
    assert t.new is StreamState.DISABLED and not mon.is_present(1.1)
    mon.set_enabled(True)
    (t,) = mon.tick(1.2)
    assert t.new is StreamState.OK


def test_timeout_change_applies_immediately():
    mon = StreamMonitor("lidar", timeout_s=1.0)
    mon.feed(0.0, 0.0)
    assert mon.is_present(0.5)
    mon.set_timeout(0.25)
    assert not mon.is_present(0.5)
    with pytest.raises(ValueError):
        mon.set_timeout(0.0)
    with pytest.raises(ValueError):
        StreamMonitor("x", timeout_s=-1)


def test_receive_rate_sliding_window():
    mon = StreamMonitor("camera", timeout_s=0.5, rate_window_s=1.0)
    for i in range(31):
        mon.feed(i / 30, i / 30)
    assert mon.receive_rate(1.0) == pytest.approx(30.0, rel=0.05)
    assert mon.receive_rate(1.5) == pytest.approx(30.0, rel=0.1)  # half the window left
    assert mon.receive_rate(2.5) == 0.0  # all samples aged out


def test_drops_counted_by_reason():
    mon = StreamMonitor("lidar", timeout_s=0.5, max_future_s=1.0)
    mon.count_drop("missing_field")
    mon.count_drop("missing_field")
    assert not mon.feed(math.nan, 1.0)
    assert not mon.feed(10.0, 1.0)  # stamped 9 s ahead of the clock
    assert mon.feed(1.0, 1.0)
    assert not mon.feed(0.9, 1.01)  # small regression: out of order, ignored
    assert mon.newest_stamp == 1.0
    assert mon.drops == {"missing_field": 2, "non_finite_stamp": 1, "stamp_in_future": 1, "out_of_order": 1}
    assert mon.snapshot(1.0)["drops"]["missing_field"] == 2


def test_clock_going_backwards_resets_and_is_counted():
    """A looping bag: the node clock jumps from 30 s back to 0 s."""
    mon = StreamMonitor("camera", timeout_s=0.5)
    for i in range(10):
        mon.feed(29.0 + i * 0.1, 29.0 + i * 0.1)
        mon.tick(29.0 + i * 0.1)
    assert mon.state is StreamState.OK
    (t,) = mon.tick(0.05)  # the newest stamp (29.9) is now 'in the future': forget it
    assert t.new is StreamState.NEVER_SEEN and mon.time_jumps == 1
    assert not mon.is_present(0.05)
    assert mon.feed(0.1, 0.1)
    assert mon.tick(0.1)[0].new is StreamState.OK


def test_stamp_jumping_back_far_restarts_from_new_sample():
    mon = StreamMonitor("lidar", timeout_s=0.5)
    mon.feed(100.0, 100.0)
    assert mon.feed(3.0, 3.0)  # source and clock restarted
    assert mon.time_jumps == 1 and mon.newest_stamp == 3.0
    assert mon.is_present(3.2)


def test_non_finite_now_never_crashes():
    mon = StreamMonitor("lidar", timeout_s=0.5)
    assert mon.tick(math.inf) == [] and mon.tick(math.nan) == []
