"""The traced CPU fusion step answers exactly like the eager fusion + head on every presence pattern
and for every fusion method, follows live gate-prior changes, and refuses a trace that differs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aecf_ros.model import build_model
from aecf_ros.runtime.cpu_step import TracedFusionStep, TraceMismatch
from aecf_ros.runtime.fusion_engine import FusionEngine, FusionSettings


@pytest.mark.parametrize("method", ["aecf", "attention", "mean", "concat"])
def test_engine_predictions_identical_with_the_traced_step(method):
    torch.manual_seed(0)
    model = build_model({}, fusion={"method": method}).eval()
    settings = FusionSettings(timeout_s={m: 1e6 for m in model.modalities})
    eager, traced = FusionEngine(model, settings), FusionEngine(model, settings)
    assert traced.enable_cpu_step() == "traced"
    rng = np.random.default_rng(0)
    for i, m in enumerate(model.modalities):  # one more modality present each round
        vec = rng.normal(size=model.embedding_dims[m])
        for e in (eager, traced):
            assert e.submit(m, vec, 1.0, 1.0, model.encoder_ids[m]) is None
        a, b = eager.step(1.0).output, traced.step(1.0).output
        np.testing.assert_allclose(b.scores, a.scores, rtol=0, atol=1e-6)
        np.testing.assert_allclose(b.weights, a.weights, rtol=0, atol=1e-6)
        assert b.present == a.present and b.gate_entropy == pytest.approx(a.gate_entropy, abs=1e-6)


def test_live_gate_prior_reaches_the_trace():
    torch.manual_seed(1)
    model = build_model({}).eval()
    settings = FusionSettings(timeout_s={m: 1e6 for m in model.modalities})
    engine = FusionEngine(model, settings)
    assert engine.enable_cpu_step() == "traced"
    rng = np.random.default_rng(1)
    for m in model.modalities:
        engine.submit(m, rng.normal(size=model.embedding_dims[m]), 1.0, 1.0, model.encoder_ids[m])
    before = engine.step(1.0).output.weights
    settings.gate_bias["lidar"] = -5.0
    engine.apply_settings(settings)
    after = engine.step(1.0).output.weights
    lidar = list(model.modalities).index("lidar")
    assert after[lidar] < before[lidar] - 0.05
    eager = FusionEngine(model, settings)  # the eager path with the same prior agrees
    for m in model.modalities:
        eager.submit(m, engine._embeddings[m], 1.0, 1.0, model.encoder_ids[m])
    np.testing.assert_allclose(eager.step(1.0).output.weights, after, rtol=0, atol=1e-6)


def test_a_trace_that_differs_is_refused():
    class Noisy(torch.nn.Module):  # a different answer every call: no trace can match it
        def forward(self, fused):
            return fused + torch.rand_like(fused)

    torch.manual_seed(2)
    model = build_model({}).eval()
    with pytest.raises(TraceMismatch):
        TracedFusionStep(model.fusion, Noisy(), model.modalities, model.embedding_dims)
