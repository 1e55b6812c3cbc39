"""FusionEngine: validation + counted drops, presence at `now`, gating knobs, no-output reasons."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aecf_ros.runtime.fusion_engine import FusionEngine, FusionPrediction, FusionSettings, NoOutput
from aecf_ros.runtime.stream_monitor import StreamState

MODS = ("camera", "lidar", "text")
DIMS = {"camera": 4, "lidar": 3, "text": 2}


class StubFusion:
    """Gate = softmax(bias / temperature) over present modalities (like AECF's prior)."""

    def __init__(self):
        self.temperature = 1.0
        self.bias = {m: 0.0 for m in MODS}

    def set_gate_prior(self, temperature=None, bias=None):
        if temperature is not None:
            self.temperature = temperature
        if bias:
            self.bias.update(bias)


class StubModel:
    modalities = MODS
    embedding_dims = DIMS
    encoder_ids = {"camera": "cam-1", "lidar": "lid-1", "text": "txt-1"}
    class_names = ["car", "person"]

    def __init__(self):
        self.fusion = StubFusion()
        self.calls = []

    def predict(self, embeddings, present):
        self.calls.append(({m: embeddings[m].clone() for m in MODS}, present.clone()))
        logits = torch.tensor([[self.fusion.bias[m] / self.fusion.temperature for m in MODS]])
        logits = logits.masked_fill(~present, -math.inf)
        weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)
        n = int(present.sum())
        ent = float(-(weights[weights > 0] * weights[weights > 0].log()).sum() / math.log(n)) if n > 1 else 0.0
        probs = torch.tensor([[0.9, 0.1]])
        return probs, SimpleNamespace(weights=weights, entropy=torch.tensor([ent]))


def _engine(**settings):
    model = StubModel()
    s = FusionSettings(timeout_s={"camera": 0.2, "lidar": 0.3, "text": 5.0}, **settings)
    return model, FusionEngine(model, s)


def _feed_all(engine, t):
    assert engine.submit("camera", np.ones(4), t, t, "cam-1") is None
    assert engine.submit("lidar", np.ones(3), t, t, "lid-1") is None
    assert engine.submit("text", np.ones(2), t, t, "txt-1") is None


def test_all_present_fuses_all_with_weights_summing_to_one():
    model, engine = _engine()
    _feed_all(engine, 1.0)
    res = engine.step(1.05)
    out = res.output
    assert isinstance(out, FusionPrediction)
    assert out.present == [True, True, True]
    assert out.weights.sum() == pytest.approx(1.0)
    assert out.stamp == 1.0 and out.ages_s == pytest.approx([0.05] * 3)
    assert [t.new for t in res.transitions] == [StreamState.OK] * 3
    assert out.detected(0.5) == ["car"]


def test_stale_modality_excluded_and_zero_weight_and_zeroed_input():
    model, engine = _engine()
    _feed_all(engine, 1.0)
    engine.submit("camera", np.ones(4), 1.25, 1.25, "cam-1")
    engine.submit("text", np.ones(2), 1.25, 1.25, "txt-1")
    res = engine.step(1.35)  # lidar (timeout 0.3) newest 1.0 -> age 0.35: stale
    out = res.output
    assert out.present == [True, False, True]
    assert out.weights[1] == 0.0 and out.weights.sum() == pytest.approx(1.0)
    assert out.ages_s[1] == pytest.approx(0.35)
    assert [(t.name, t.new) for t in res.transitions if t.new is StreamState.STALE] == [("lidar", StreamState.STALE)]
    emb, present = model.calls[-1]
    assert present.tolist() == [[True, False, True]]
    assert torch.count_nonzero(emb["lidar"]) == 0


def test_never_waits_nothing_present_reports_reason():
    _, engine = _engine()
    res = engine.step(0.0)
    assert isinstance(res.output, NoOutput) and res.output.reason == "no_modality_present"
    _feed_all(engine, 1.0)
    res = engine.step(100.0)
    assert isinstance(res.output, NoOutput) and res.output.reason == "no_modality_present"
    assert engine.no_output_counts["no_modality_present"] == 2


def test_min_present_withholds_output():
    _, engine = _engine(min_present=2)
    engine.submit("text", np.ones(2), 1.0, 1.0, "txt-1")
    res = engine.step(1.0)
    assert isinstance(res.output, NoOutput) and res.output.reason == "too_few_modalities"
    assert res.output.present == ["text"]
    engine.submit("camera", np.ones(4), 1.0, 1.0, "cam-1")
    assert isinstance(engine.step(1.0).output, FusionPrediction)


@pytest.mark.parametrize(
    "modality, vector, encoder_id, reason",
    [
        ("camera", np.ones(5), "cam-1", "wrong_dim"),
        ("lidar", np.array([1.0, math.nan, 0.0]), "lid-1", "non_finite"),
        ("lidar", np.array([1.0, math.inf, 0.0]), "lid-1", "non_finite"),
        ("text", np.ones(2), "some-other-text-model", "encoder_id_mismatch"),
        ("radar", np.ones(2), "x", "unknown_modality"),
    ],
)
def test_bad_embeddings_are_counted_by_reason(modality, vector, encoder_id, reason):
    _, engine = _engine()
    assert engine.submit(modality, vector, 1.0, 1.0, encoder_id) == reason
    if modality in MODS:
        assert engine.monitors[modality].drops[reason] == 1
        assert engine.snapshot(1.0)[modality]["drops"] == {reason: 1}
    else:
        assert engine.engine_drops[reason] == 1
    assert isinstance(engine.step(1.0).output, NoOutput)  # nothing bad was stored


def test_stamp_in_future_and_out_of_order_counted():
    _, engine = _engine()
    assert engine.submit("lidar", np.ones(3), 50.0, 1.0, "lid-1") == "stamp_in_future"
    assert engine.submit("lidar", np.ones(3), 2.0, 2.0, "lid-1") is None
    assert engine.submit("lidar", np.ones(3), 1.9, 2.0, "lid-1") == "out_of_order"
    assert engine.monitors["lidar"].drops == {"stamp_in_future": 1, "out_of_order": 1}


def test_gate_bias_and_temperature_move_weights():
    model, engine = _engine()
    _feed_all(engine, 1.0)
    base = engine.step(1.0).output.weights
    assert base == pytest.approx([1 / 3] * 3)
    s = engine.settings
    engine.apply_settings(FusionSettings(timeout_s=s.timeout_s, enabled=s.enabled,
                                         gate_bias={"camera": 0.0, "lidar": -2.0, "text": 0.0}))
    w = engine.step(1.0).output.weights
    assert w[1] < base[1] and w[0] > base[0]
    engine.apply_settings(FusionSettings(timeout_s=s.timeout_s, enabled=s.enabled, gate_temperature=100.0,
                                         gate_bias={"camera": 0.0, "lidar": -2.0, "text": 0.0}))
    w_flat = engine.step(1.0).output.weights
    assert abs(w_flat[1] - 1 / 3) < abs(w[1] - 1 / 3)


def test_disable_modality_live():
    _, engine = _engine()
    _feed_all(engine, 1.0)
    s = engine.settings
    engine.apply_settings(FusionSettings(timeout_s=s.timeout_s, enabled={"camera": False}))
    res = engine.step(1.0)
    assert res.output.present == [False, True, True]
    assert engine.states(1.0)["camera"] is StreamState.DISABLED


@pytest.mark.parametrize(
    "settings",
    [
        dict(gate_temperature=0.0),
        dict(gate_temperature=math.nan),
        dict(min_present=0),
        dict(min_present=4),
        dict(score_threshold=1.5),
        dict(timeout_s={"lidar": -1.0}),
        dict(timeout_s={"radar": 1.0}),
        dict(gate_bias={"lidar": math.inf}),
        dict(enabled={"sonar": True}),
    ],
)
def test_invalid_settings_rejected_with_reason(settings):
    _, engine = _engine()
    before = engine.settings
    reason = FusionEngine.validate_settings(FusionSettings(**settings), MODS)
    assert reason
    with pytest.raises(ValueError):
        engine.apply_settings(FusionSettings(**settings))
    assert engine.settings is before


def test_bag_loop_time_jump_resets_without_crash():
    _, engine = _engine()
    for i in range(20):
        _feed_all(engine, 10.0 + 0.1 * i)
        engine.step(10.0 + 0.1 * i)
    res = engine.step(0.0)  # clock jumped back to the bag start
    assert isinstance(res.output, NoOutput)
    assert all(engine.monitors[m].time_jumps == 1 for m in MODS)
    _feed_all(engine, 0.05)
    assert isinstance(engine.step(0.1).output, FusionPrediction)


def test_with_real_untrained_model():
    """The engine runs the real PerceptionModel (AECF) end to end."""
    from aecf_ros.model import build_model

    model = build_model()
    engine = FusionEngine(model, FusionSettings(timeout_s={m: 1.0 for m in model.modalities}))
    assert engine.warm_up() > 0
    ids = model.encoder_ids
    for m in model.modalities:
        assert engine.submit(m, np.random.default_rng(0).normal(size=model.embedding_dims[m]), 1.0, 1.0, ids[m]) is None
    out = engine.step(1.1).output
    assert isinstance(out, FusionPrediction)
    assert out.scores.shape == (len(model.class_names),)
    assert out.weights.sum() == pytest.approx(1.0, abs=1e-5)
    s = engine.settings
    engine.apply_settings(FusionSettings(timeout_s=s.timeout_s, gate_bias={"lidar": -5.0}))
    out2 = engine.step(1.1).output
    lidar = list(model.modalities).index("lidar")
    assert out2.weights[lidar] < out.weights[lidar]
    engine.apply_settings(FusionSettings(timeout_s=s.timeout_s, enabled={"camera": False}))
    out3 = engine.step(1.1).output
    assert out3.weights[list(model.modalities).index("camera")] == 0.0


@pytest.mark.parametrize("huge", [1e30, 1e20, 1.0001e4, -1e30, 1e300])
def test_embedding_beyond_the_exact_bound_dropped_as_out_of_range(huge):
    """Issue 11 item 1: one huge finite element made every score NaN; it is dropped and counted."""
    model, engine = _engine()
    _feed_all(engine, 1.0)
    vec = np.ones(4)
    vec[2] = huge
    assert engine.submit("camera", vec, 1.01, 1.01, "cam-1") == "out_of_range"
    assert engine.monitors["camera"].drops["out_of_range"] == 1
    res = engine.step(1.02)
    assert isinstance(res.output, FusionPrediction) and res.output.present[0]
    np.testing.assert_array_equal(model.calls[-1][0]["camera"][0].numpy(), np.ones(4))  # the good one
    edge = np.full(4, 1.0e4, dtype=np.float32)
    assert engine.submit("camera", edge, 1.03, 1.03, "cam-1") is None  # the bound itself is fine


def test_max_abs_embedding_is_a_setting_and_is_validated():
    _, engine = _engine(max_abs_embedding=10.0)
    assert engine.submit("camera", np.full(4, 11.0), 1.0, 1.0, "cam-1") == "out_of_range"
    assert FusionEngine.validate_settings(FusionSettings(max_abs_embedding=0.0), MODS)
    assert FusionEngine.validate_settings(FusionSettings(max_abs_embedding=math.inf), MODS)


@pytest.mark.parametrize("bad_probs, bad_weights", [
    ([[math.nan, 0.1]], None), ([[1.5, 0.1]], None), ([[0.5, -0.01]], None),
    (None, [[math.nan, math.nan, math.nan]]), (None, [[0.5, 0.5, 1.2]]),
])
def test_non_finite_or_out_of_range_output_is_withheld_and_counted(bad_probs, bad_weights):
    """Whatever the maths does, a NaN or out-of-[0, 1] score or weight is never published."""
    model, engine = _engine()
    real_predict = model.predict

    def broken_predict(embeddings, present):
        probs, out = real_predict(embeddings, present)
        if bad_probs is not None:
            probs = torch.tensor(bad_probs)
        if bad_weights is not None:
            out.weights = torch.tensor(bad_weights)
        return probs, out

    model.predict = broken_predict
    _feed_all(engine, 1.0)
    res = engine.step(1.0)
    assert isinstance(res.output, NoOutput) and res.output.reason == "invalid_output"
    assert engine.no_output_counts["invalid_output"] == 1 and engine.published == 0
    model.predict = real_predict
    assert isinstance(engine.step(1.01).output, FusionPrediction)


def test_sequence_gaps_reported_as_lost_per_modality():
    _, engine = _engine()
    for n, t in [(1, 1.0), (2, 1.01), (6, 1.02)]:
        assert engine.submit("lidar", np.ones(3), t, t, "lid-1", seq=n) is None
    engine.submit("lidar", np.full(3, math.nan), 1.03, 1.03, "lid-1", seq=7)  # received, then dropped
    engine.submit("lidar", np.ones(3), 1.04, 1.04, "lid-1", seq=8)
    snap = engine.snapshot(1.05)
    assert snap["lidar"]["lost"] == 3 and snap["camera"]["lost"] == 0


def test_expected_rate_low_reported_in_snapshot():
    _, engine = _engine(expected_rate_hz={"camera": 30.0}, min_rate_fraction=0.5)
    for i in range(16):  # 5 Hz for 3 s
        t = 10.0 + i * 0.2
        engine.submit("camera", np.ones(4), t, t, "cam-1")
    snap = engine.snapshot(13.0)["camera"]
    assert snap["rate_state"] == "LOW" and "expected 30 Hz" in snap["rate_message"]
    assert engine.snapshot(13.0)["lidar"]["rate_state"] == "NOT MONITORED"
