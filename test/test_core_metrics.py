"""Metrics match sklearn exactly and count confidence rises correctly."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from aecf_ros.core import average_precision, confidence_rise_rate, macro_map


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(200) < 0.3).astype(int)
    scores = rng.random(200) + 0.3 * labels
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(100 + seed)
    labels = (rng.random(150) < 0.4).astype(int)
    scores = rng.integers(0, 5, 150).astype(float)  # heavy ties
    assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_average_precision_hand_cases_and_torch_input():
    assert average_precision([0.9, 0.8, 0.1], [1, 0, 1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == pytest.approx(0.5)
    assert average_precision([0.1, 0.2], [0, 0]) == 0.0  # sklearn's value too
    with pytest.raises(ValueError, match="labels"):
        average_precision([0.1, 0.2], [0, 3])
    with pytest.raises(ValueError, match="1-D"):
        average_precision([[0.1]], [[1]])


def test_macro_map_skips_classes_without_positives():
    rng = np.random.default_rng(0)
    labels = (rng.random((60, 4)) < 0.5).astype(int)
    labels[:, 2] = 0
    scores = rng.random((60, 4))
    expected = np.mean([average_precision_score(labels[:, c], scores[:, c]) for c in (0, 1, 3)])
    assert macro_map(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(macro_map(scores, np.zeros_like(labels)))


def test_confidence_rise_rate_counts_entries_that_get_more_confident():
    full = np.array([[0.8, 0.3], [0.5, 0.9]])
    subset = np.array([[0.9, 0.2], [0.5, 0.6]])  # rises, rises (0.7 -> 0.8), equal, falls
    assert confidence_rise_rate(full, subset) == pytest.approx(0.5)
    assert confidence_rise_rate(full, subset, threshold=0.2) == 0.0
    with pytest.raises(ValueError, match="threshold"):
        confidence_rise_rate(full, subset, threshold=-1)
    with pytest.raises(ValueError, match="probs_subset"):
        confidence_rise_rate(full, subset[:1])
