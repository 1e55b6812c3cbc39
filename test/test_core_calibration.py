"""ECE, reliability curve, temperature fitting and the presence-aware temperature scaler."""
import numpy as np
import pytest
import torch

from aecf_ros.core import (
    PresenceTemperatureScaler,
    TemperatureScaler,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
)


def test_ece_hand_computed_case_with_probability_one_in_last_bin():
    probs = [0.1, 0.1, 0.9, 1.0]
    labels = [0, 1, 1, 1]
    # bin 1 (0.1): mean 0.1 vs freq 0.5 -> 0.4 * 2/4; bin 13 (0.9): 0.1 * 1/4; bin 14 (1.0): 0
    assert expected_calibration_error(probs, labels) == pytest.approx(0.225)
    curve = reliability_curve(probs, labels)
    assert curve["count"][14] == 1 and curve["count"].sum() == 4
    assert curve["frequency"][1] == pytest.approx(0.5) and np.isnan(curve["mean_prob"][0])


def test_ece_multilabel_bins_every_sample_class_entry():
    probs = torch.tensor([[0.1, 0.9], [0.1, 1.0]])
    labels = torch.tensor([[0, 1], [1, 1]])
    assert expected_calibration_error(probs, labels) == pytest.approx(
        expected_calibration_error([0.1, 0.9, 0.1, 1.0], [0, 1, 1, 1]))
    assert expected_calibration_error(probs, labels, n_bins=1) == pytest.approx(abs(2.1 / 4 - 3 / 4))


def test_ece_is_zero_for_perfectly_calibrated_bins():
    probs = np.array([0.25] * 4 + [0.75] * 4)
    labels = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(probs, labels, n_bins=4) == pytest.approx(0.0)


@pytest.mark.parametrize("probs,labels,kw,match", [
    ([0.2, 1.2], [0, 1], {}, "probs"),
    ([0.2, 0.3], [0, 2], {}, "labels"),
    ([0.2], [0, 1], {}, "shape"),
    ([0.2], [0], {"n_bins": 0}, "n_bins"),
])
def test_ece_rejects_bad_arguments(probs, labels, kw, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(probs, labels, **kw)


def _synthetic(n, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    true_logits = 2.0 * torch.randn(n, 4, generator=gen)
    labels = (torch.rand(n, 4, generator=gen) < torch.sigmoid(true_logits)).float()
    return true_logits * scale, labels


@pytest.mark.parametrize("true_temperature", [2.5, 0.5])
def test_fit_temperature_recovers_known_temperature(true_temperature):
    logits, labels = _synthetic(5000, true_temperature, seed=0)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.08)
    scaler = TemperatureScaler().fit(logits, labels)
    before = expected_calibration_error(torch.sigmoid(logits), labels)
    after = expected_calibration_error(torch.sigmoid(scaler(logits)), labels)
    assert after < before


def test_fit_temperature_is_the_bce_minimiser():
    logits, labels = _synthetic(2000, 1.7, seed=4)
    t = fit_temperature(logits, labels)

    def bce(temp):
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.double() / temp, labels.double()).item()

    assert bce(t) < bce(t * 1.01) and bce(t) < bce(t / 1.01)


def test_fit_temperature_validation_and_bounds():
    with pytest.raises(ValueError, match="empty"):
        fit_temperature(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="non-finite"):
        fit_temperature(torch.tensor([float("nan")]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(torch.tensor([1.0]), torch.tensor([0.5]))
    # perfectly separable data wants T -> 0: clamped to the lower bound
    t = fit_temperature(torch.tensor([5.0, -5.0]), torch.tensor([1.0, 0.0]), min_temperature=0.1)
    assert t == pytest.approx(0.1)
    with pytest.raises(ValueError, match="temperature"):
        TemperatureScaler(0.0)


def test_presence_scaler_fits_a_temperature_per_pattern_with_global_fallback():
    logits_ab, labels_ab = _synthetic(2000, 1.0, seed=1)  # both sensors: calibrated
    logits_a, labels_a = _synthetic(2000, 3.0, seed=2)  # camera only: over-confident
    logits_b, labels_b = _synthetic(10, 0.3, seed=3)  # lidar only: too few rows
    logits = torch.cat([logits_ab, logits_a, logits_b])
    labels = torch.cat([labels_ab, labels_a, labels_b])
    present = torch.tensor([[True, True]] * 2000 + [[True, False]] * 2000 + [[False, True]] * 10)
    scaler = PresenceTemperatureScaler(2, min_samples=50).fit(logits, labels, present)
    assert scaler.temperatures[0b11].item() == pytest.approx(1.0, rel=0.1)
    assert scaler.temperatures[0b01].item() == pytest.approx(3.0, rel=0.1)
    assert scaler.temperatures[0b10].item() == pytest.approx(scaler.global_temperature.item())
    assert scaler.pattern_counts.tolist() == [0, 2000, 10, 2000]

    calibrated = scaler.apply(logits, present)
    assert torch.allclose(calibrated[2000:4000], logits_a / scaler.temperatures[1])
    single = TemperatureScaler().fit(logits, labels)
    assert expected_calibration_error(torch.sigmoid(calibrated), labels) < \
        expected_calibration_error(torch.sigmoid(single(logits)), labels)

    restored = PresenceTemperatureScaler(2)
    restored.load_state_dict(scaler.state_dict())
    assert torch.equal(restored(logits, present), calibrated)


def test_presence_scaler_validation_and_module_apply_still_recurses():
    with pytest.raises(ValueError, match="n_modalities"):
        PresenceTemperatureScaler(0)
    scaler = PresenceTemperatureScaler(3)
    with pytest.raises(ValueError, match="present"):
        scaler.apply(torch.zeros(2, 4), torch.ones(2, 2, dtype=torch.bool))
    parent = torch.nn.Sequential(scaler)
    seen = []
    parent.apply(lambda m: seen.append(type(m).__name__))
    assert "PresenceTemperatureScaler" in seen


# ------------------------------------------------------------------ presence-aware Platt scaling
from aecf_ros.core.calibration import PresencePlattScaler, fit_platt, platt_scale  # noqa: E402


def _shifted_patterns(n=4000, c=6, seed=0, shift=1.5):
    """Calibrated logits for pattern "111"; pattern "100" (camera only) shifted by ``shift``:
    a pure per-pattern BIAS, the miscalibration a temperature cannot undo."""
    g = torch.Generator().manual_seed(seed)
    true = 2.0 * torch.randn(n, c, generator=g) - 1.0
    labels = (torch.rand(n, c, generator=g) < torch.sigmoid(true)).double()
    present = torch.ones(n, 3, dtype=torch.bool)
    present[n // 2:, 1:] = False
    logits = true.clone()
    logits[n // 2:] += shift
    return logits, labels, present


def test_presence_platt_fixes_a_per_pattern_bias_that_temperature_cannot():
    fit_logits, fit_labels, present = _shifted_patterns(seed=0)
    test_logits, test_labels, _ = _shifted_patterns(seed=1)
    temp = PresenceTemperatureScaler(3).fit(fit_logits, fit_labels, present)
    platt = PresencePlattScaler(3, fit_logits.shape[1]).fit(fit_logits, fit_labels, present)
    shifted = slice(len(test_logits) // 2, None)
    p_temp = torch.sigmoid(temp(test_logits.float(), present))[shifted]
    p_platt = torch.sigmoid(platt(test_logits.float(), present))[shifted]
    y = test_labels[shifted]
    assert expected_calibration_error(p_temp, y) > 0.05       # the best temperature stays off
    assert expected_calibration_error(p_platt, y) < 0.02      # temperature + bias removes it
    assert float(p_platt.mean()) == pytest.approx(float(y.mean()), abs=0.01)
    t, b = platt.parameters_for(present[-1:])
    assert float(t[0]) == pytest.approx(1.0, abs=0.1) and float(b.mean()) == pytest.approx(-1.5, abs=0.15)


def test_fit_platt_recovers_temperature_and_per_class_bias():
    g = torch.Generator().manual_seed(3)
    true = 1.5 * torch.randn(20000, 3, generator=g)
    labels = (torch.rand(20000, 3, generator=g) < torch.sigmoid(true)).double()
    bias = torch.tensor([0.5, -1.0, 2.0])
    observed = (true - bias) * 2.0            # true = observed / 2 + bias
    t, b = fit_platt(observed, labels, per_class_bias=True)
    assert t == pytest.approx(2.0, rel=0.05)
    torch.testing.assert_close(b, bias.double(), atol=0.08, rtol=0)
    t_shared, b_shared = fit_platt(observed, labels)
    assert torch.all(b_shared == b_shared[0])  # one shared bias without per_class_bias
    out = platt_scale(observed.float(), t, b)
    torch.testing.assert_close(out, observed.float() / t + b.float())


def test_fit_platt_clamps_the_temperature_and_keeps_the_bias_finite():
    z = torch.linspace(-3, 3, 400)
    y = (torch.arange(400) % 4 == 0).double()             # labels unrelated to the logits
    t, b = fit_platt(z, y, max_temperature=5.0)
    assert t == pytest.approx(5.0)
    assert float(torch.sigmoid(z / t + b).mean()) == pytest.approx(0.25, abs=0.02)
    t0, b0 = fit_platt(torch.randn(50, 2), torch.zeros(50, 2), per_class_bias=True)  # no positives
    assert torch.isfinite(b0).all() and (b0 < -2).all()


def test_presence_platt_rare_patterns_fall_back_to_global():
    logits, labels, present = _shifted_patterns(n=1000)
    present[:10] = torch.tensor([False, False, True])     # 10 rows: below min_samples
    platt = PresencePlattScaler(3, logits.shape[1], min_samples=30).fit(logits, labels, present)
    t, b = platt.parameters_for(torch.tensor([[False, False, True]]))
    assert float(t[0]) == pytest.approx(float(platt.global_temperature))
    torch.testing.assert_close(b[0], platt.global_bias)
    assert int(platt.pattern_counts[4]) == 10 and bool(platt.fitted)
    clone = PresencePlattScaler(3, logits.shape[1])
    clone.load_state_dict(platt.state_dict())
    torch.testing.assert_close(clone(logits.float(), present), platt(logits.float(), present))


@pytest.mark.parametrize("kwargs, match", [
    ({"per_class_bias": False, "ridge": -1.0}, "ridge"),
    ({"iterations": 0}, "iterations"),
    ({"min_temperature": 2.0, "max_temperature": 1.0}, "temperature bounds"),
])
def test_fit_platt_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_platt(torch.zeros(4, 2), torch.zeros(4, 2), **kwargs)


def test_platt_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="same shape"):
        fit_platt(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="0/1"):
        fit_platt(torch.zeros(4), torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="empty"):
        fit_platt(torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="non-finite"):
        fit_platt(torch.tensor([float("nan")]), torch.zeros(1))
    with pytest.raises(ValueError, match="bias"):
        platt_scale(torch.zeros(2, 3), 1.0, torch.zeros(4))
    with pytest.raises(ValueError, match=r"> 0, but got \[0\.0\]"):
        platt_scale(torch.zeros(2, 3), torch.tensor([1.0, 0.0]), torch.zeros(3))
    with pytest.raises(ValueError, match="finite and > 0, but got \\[nan\\]"):
        platt_scale(torch.zeros(2, 3), float("nan"), torch.zeros(3))
    for bad in ({"n_modalities": 0, "num_classes": 3}, {"n_modalities": 3, "num_classes": 0},
                {"n_modalities": 3, "num_classes": 3, "min_samples": 0}):
        with pytest.raises(ValueError):
            PresencePlattScaler(**bad)
    scaler = PresencePlattScaler(3, 2)
    with pytest.raises(ValueError, match="present"):
        scaler(torch.zeros(4, 2), torch.ones(4, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="logits"):
        scaler(torch.zeros(4, 5), torch.ones(4, 3, dtype=torch.bool))
