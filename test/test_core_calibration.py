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
