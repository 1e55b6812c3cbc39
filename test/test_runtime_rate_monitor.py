"""RateMonitor (rate against an expected rate, caller's clock) and SequenceTracker (lost counts)."""
import pytest

from aecf_ros.runtime.rate_monitor import RateMonitor, RateState
from aecf_ros.runtime.sequence import SequenceTracker


def _arrivals(mon, hz, start, seconds, stamps=True):
    n = int(round(seconds * hz))
    for i in range(n):
        t = start + i / hz
        mon.record(t, t if stamps else None)
    return start + n / hz


def test_30hz_camera_arriving_at_5hz_is_low():
    """Issue 11 item 8: a 30 Hz camera at 5 Hz must not look OK."""
    mon = RateMonitor(30.0, 0.5)
    end = _arrivals(mon, 5.0, 0.0, 3.0)
    assert mon.state(end) is RateState.LOW
    assert mon.rate(end) == pytest.approx(5.0, abs=0.6)
    assert "expected 30 Hz" in mon.describe(end)


def test_nominal_rate_is_ok_and_start_up_is_not_a_false_low():
    mon = RateMonitor(30.0, 0.5)
    assert mon.state(0.0) is RateState.STARTING
    _arrivals(mon, 30.0, 0.0, 1.0)
    assert mon.state(1.0) is RateState.STARTING  # less than one window seen
    end = _arrivals(mon, 30.0, 1.0, 2.0)
    assert mon.state(end) is RateState.OK and mon.describe(end) == ""
    assert mon.lost_estimate == 0


def test_not_monitored_without_expected_rate_and_live_reconfigure():
    mon = RateMonitor(0.0)
    _arrivals(mon, 1.0, 0.0, 5.0)
    assert mon.state(5.0) is RateState.NOT_MONITORED
    mon.configure(10.0, 0.8)
    assert mon.window_s == 2.0 and mon.state(5.0) is RateState.STARTING
    with pytest.raises(ValueError):
        mon.configure(-1.0)
    with pytest.raises(ValueError):
        mon.configure(10.0, 0.0)
    assert RateMonitor(1.0).window_s == 10.0  # always ~10 expected arrivals


def test_stamp_gaps_estimate_lost_inputs():
    mon = RateMonitor(10.0)
    for i in [0, 1, 2, 5, 6, 10]:  # 3,4 and 7,8,9 never arrived
        mon.record(i * 0.1, i * 0.1)
    assert mon.lost_estimate == 5
    mon.record(1.1, 0.5)  # an old stamp: no negative loss
    assert mon.lost_estimate == 5


def test_clock_going_back_restarts_the_rate_measurement():
    mon = RateMonitor(10.0)
    _arrivals(mon, 10.0, 100.0, 3.0)
    mon.record(0.0)
    assert mon.state(0.5) is RateState.STARTING


def test_sequence_gaps_counted_as_lost_and_restarts_are_not_losses():
    seq = SequenceTracker()
    for n in [5, 6, 9, 10]:  # first seen at 5: nothing before it is counted
        seq.observe(n)
    assert seq.lost == 2
    assert seq.observe(1) == 0 and seq.restarts == 1  # encoder restarted
    assert seq.observe(4) == 2 and seq.lost == 4
    assert seq.observe(0) == 0 and seq.lost == 4  # unnumbered
