"""`aecf-ros benchmark` end to end on the tiny config (two regimes, per-pattern experts, paired
verdicts), the per-pattern experts' routing, and the paired-difference statistics. Real small models."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aecf_ros.cli import main as cli_main
from aecf_ros.train.per_pattern_experts import (PER_PATTERN_EXPERTS, PatternRouter, train_per_pattern_experts,
                                                with_pattern)
from aecf_ros.train.config import load_config
from aecf_ros.train.distributed import DistContext
from aecf_ros.train.pipeline import embedding_only_model
from aecf_ros.train.report import paired_ci, regime_report, regime_targets, sensitivity
from aecf_ros.train.scenarios import all_patterns
from aecf_ros.train.stage2 import EmbeddingSet

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "config" / "train_tiny.yaml")


def _set(n, seed, c=4):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, c, generator=g) < 0.3).float()
    w = {m: torch.randn(c, 6, generator=torch.Generator().manual_seed(7 + i))
         for i, m in enumerate(("camera", "lidar", "text"))}
    emb = {m: y @ w[m] + 0.8 * torch.randn(n, 6, generator=g) for m in w}
    return EmbeddingSet(emb, y, torch.ones(n, 3, dtype=torch.bool), ("camera", "lidar", "text"))


def test_paired_ci_is_a_paired_t_interval():
    a, b = [0.70, 0.72, 0.71, 0.73, 0.69], [0.68, 0.69, 0.69, 0.71, 0.66]
    ci = paired_ci(a, b)
    d = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    half = 2.776 * float(d.std()) / 5 ** 0.5  # t_{0.975, 4}
    assert ci["mean"] == pytest.approx(float(d.mean()))
    assert ci["hi"] - ci["mean"] == pytest.approx(half)
    assert ci["beats"] and not ci["worse"]
    # the same means unpaired-looking but with seed noise that swamps the difference
    noisy = paired_ci([0.70, 0.60, 0.80, 0.65, 0.75], [0.69, 0.62, 0.77, 0.66, 0.72])
    assert not noisy["beats"] and not noisy["worse"]
    assert paired_ci([0.5], [0.4])["beats"] is False  # one seed proves nothing


def test_experts_route_every_row_to_the_model_of_its_pattern():
    cfg = load_config(TINY, ["stage2.epochs=2"])
    train, val, test = _set(200, 0), _set(64, 1), _set(96, 2)
    dims = {m: 6 for m in train.modalities}
    fresh = lambda method: embedding_only_model(cfg, train.modalities, dims, ["a", "b", "c", "d"], method)
    res = train_per_pattern_experts(fresh, train, val, test, cfg, seed=0, dist=DistContext())
    assert res["method"] == PER_PATTERN_EXPERTS and set(res["evaluation"]["scenarios"]) >= {"full", "only_text", "drop_p0.5"}
    # routing: rebuild a router from two specialists and check rows against each model alone
    models = {}
    for pattern in ((True, True, True), (False, False, True)):
        m = fresh("attention").eval()
        models[pattern] = m
    router = PatternRouter(models, train.modalities)
    present = torch.tensor([[True, True, True], [False, False, True], [True, True, True]])
    emb = {m: test.embeddings[m][:3] for m in train.modalities}
    logits, _ = router(emb, present)
    for i, pattern in enumerate(((True, True, True), (False, False, True), (True, True, True))):
        ref, _ = models[pattern]({m: e[i:i + 1] for m, e in emb.items()}, present[i:i + 1], curriculum=False)
        assert torch.allclose(logits[i], ref[0], atol=1e-6)
    with pytest.raises(ValueError, match="no per-pattern expert"):
        router(emb, torch.tensor([[True, False, False]] * 3))
    imposed = with_pattern(train, (True, False, True))
    assert imposed.present[:, 1].any().item() is False and imposed.present[:, 0].all()
    assert len(all_patterns(3)) == 7


def test_benchmark_runs_every_regime_with_the_experts_and_paired_targets(tmp_path):
    out = tmp_path / "results"
    rc = cli_main(["benchmark", "--config", TINY, "--out", str(out), "--no-progress",
                   "--methods", "attention,moddrop,aecf", "--seeds", "0,1",
                   "--set", f"workdir={tmp_path / 'work'}", "--set", f"cache_dir={tmp_path / 'cache'}",
                   "--set", "stage2.epochs=2", "--set", "data.n_train=200",
                   "--set", "benchmark.regimes={plain: {scene: {}}, dom: {discriminative: true, "
                            "scene: {text_mention_scale: 3.0}}}"])
    assert rc == 0
    summary = (out / "results.md").read_text()
    assert "Regime `plain`" in summary and "Regime `dom`" in summary and "95 %" in summary
    for regime in ("plain", "dom"):
        data = json.loads((out / regime / "results.json").read_text())
        methods = {r["method"] for r in data["runs"]}
        assert methods == {"attention", "moddrop", "aecf", PER_PATTERN_EXPERTS}
        assert len({r["evaluation"]["mask_digest"] for r in data["runs"]}) == 1
        checks = {c["target"]: c["met"] for c in data["targets"]["checks"]}
        assert any("0.5 pp" in t for t in checks)
        if regime == "dom":
            assert any("ModDrop" in t for t in checks) and not any("ceiling" in t for t in checks)
        assert data["sensitivity"]["scenario"] == "drop_p0.5"
        assert (out / regime / "results.md").is_file() and (out / regime / "map_vs_drop.png").is_file()
        # the verdict is computed from the numbers: recompute one cell
        agg = data["aggregate"]
        again = regime_targets(agg, discriminative=regime == "dom")
        assert again["per_scenario"]["drop_p0.5"]["diff_pp"] == pytest.approx(
            data["targets"]["per_scenario"]["drop_p0.5"]["diff_pp"])
        again_sens = sensitivity(agg)
        assert again_sens["moddrop_minus_attention_pp"]["mean"] == pytest.approx(
            data["sensitivity"]["moddrop_minus_attention_pp"]["mean"])
        # results.md is what --report-only renders from results.json alone
        assert (out / regime / "results.md").read_text() == regime_report(data, regime)["markdown"]
    # the summary can be rebuilt from the regimes' results.json alone (parallel regime runs)
    (out / "results.md").unlink()
    rc = cli_main(["benchmark", "--config", TINY, "--out", str(out), "--summary-only",
                   "--set", "benchmark.regimes={plain: {scene: {}}, dom: {discriminative: true, "
                            "scene: {text_mention_scale: 3.0}}}"])
    assert rc == 0
    same = lambda text: [line for line in text.splitlines() if not line.startswith("Total")]
    assert same((out / "results.md").read_text()) == same(summary)
    # the two regimes really are different data
    a = json.loads((out / "plain" / "results.json").read_text())["aggregate"]["attention"]["full"]["map"]["mean"]
    b = json.loads((out / "dom" / "results.json").read_text())["aggregate"]["attention"]["full"]["map"]["mean"]
    assert a != b
