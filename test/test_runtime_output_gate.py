"""OutputGate: timer mode publishes every tick; trigger mode publishes once per trigger embedding,
rate-limited, with the timer as a watchdog that only fires when nothing was published for a period."""
import pytest

from aecf_ros.runtime.output_gate import TIMER, OutputGate, validate_trigger


def test_timer_mode_publishes_every_tick_and_ignores_embeddings():
    g = OutputGate(TIMER, 100.0, 0.1)
    assert not g.triggered
    assert all(g.on_timer(t * 0.1) for t in range(5))
    assert not g.on_embedding("camera", 0.55)
    assert g.counts["timer"] == 5


def test_trigger_mode_once_per_trigger_embedding_rate_limited():
    g = OutputGate("camera", max_output_rate_hz=20.0, timer_period_s=0.2)
    fired = []
    for i in range(20):  # camera at 100 Hz for 0.2 s
        t = i * 0.01
        if g.on_embedding("camera", t):
            g.published(t)
            fired.append(t)
        assert not g.on_embedding("lidar", t)  # other modalities never publish
    assert fired == pytest.approx([0.0, 0.05, 0.10, 0.15])
    assert g.counts["rate_limited"] == 16
    # an input exactly at the limit is never skipped
    g2 = OutputGate("lidar", 10.0, 1.0)
    for i in range(5):
        assert g2.on_embedding("lidar", i * 0.1)
        g2.published(i * 0.1)


def test_watchdog_publishes_only_when_the_trigger_went_quiet():
    g = OutputGate("camera", 100.0, 0.1)
    assert g.on_timer(0.0)  # nothing published yet: the watchdog fires
    g.published(0.0)
    for i in range(1, 10):  # camera at 30 Hz: the watchdog stays silent
        t = i / 30.0
        assert g.on_embedding("camera", t)
        g.published(t)
        assert not g.on_timer(t + 0.001)
    last = 9 / 30.0
    # trigger dies: the first tick one period after the last output publishes, then every tick
    assert g.on_timer(last + 0.1)
    g.published(last + 0.1)
    assert g.on_timer(last + 0.2)
    assert g.counts["watchdog"] == 3  # (the first tick, before any output, too)


def test_validate_trigger_and_bad_rates():
    assert validate_trigger("timer", ["camera"]) is None
    assert validate_trigger("lidar", ["camera", "lidar"]) is None
    assert "output_trigger" in validate_trigger("radar", ["camera", "lidar"])
    with pytest.raises(ValueError):
        OutputGate("camera", 0.0, 0.1)


def test_a_watchdog_output_does_not_hold_back_the_next_trigger():
    """The camera resumes 10 ms after a watchdog tick: it is answered at once, not rate-limited
    (this was the output-trigger node test's flake: a trigger embedding landing within
    1 / max_output_rate_hz after a watchdog output got no prediction of its own)."""
    g = OutputGate("camera", max_output_rate_hz=25.0, timer_period_s=0.25)
    assert g.on_embedding("camera", 0.0)
    g.published(0.0)
    assert g.on_timer(0.25)  # camera quiet for a period: the watchdog publishes
    g.published(0.25)
    assert g.on_embedding("camera", 0.26)  # 10 ms later: published, not rate_limited
    g.published(0.26)
    assert not g.on_embedding("camera", 0.27)  # the rate limit still holds between triggers
    assert g.counts["rate_limited"] == 1 and g.counts["trigger"] == 2 and g.counts["watchdog"] == 1
