"""``aecf-ros sweep``: equal budgets, identical masks, selection on validation only (tiny config,
synthetic embeddings so no stage 1 is needed; real stage-2 training)."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from aecf_ros.train import sweep as S
from aecf_ros.train.config import load_config
from aecf_ros.train.evaluation import scenario_masks
from aecf_ros.train.pipeline import embedding_only_model
from aecf_ros.train.stage2 import EmbeddingSet

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "train_tiny.yaml"
MODS = ("camera", "lidar", "text")
DIMS = {"camera": 8, "lidar": 6, "text": 5}
C = 4


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    w = {m: torch.randn(C, d, generator=torch.Generator().manual_seed(100 + i)) for i, (m, d) in enumerate(DIMS.items())}
    y = (torch.rand(n, C, generator=g) < 0.3).float()
    emb = {m: y @ w[m] + 1.5 * torch.randn(n, DIMS[m], generator=g) for m in MODS}
    return EmbeddingSet(emb, y, torch.ones(n, 3, dtype=torch.bool), MODS)


def _shuffled_labels(data: EmbeddingSet, seed=7) -> EmbeddingSet:
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return EmbeddingSet(dict(data.embeddings), data.labels[perm], data.present.clone(), data.modalities)


def _no_timing(obj):
    if isinstance(obj, dict):
        return {k: _no_timing(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_no_timing(v) for v in obj]
    return obj


def _cfg():
    return load_config(TINY, ["stage2.epochs=4", "threads=1"])


def _spec(cfg, budget=2):
    raw = S.load_sweep(None)
    raw.update({
        "budget": budget,
        "methods": {"moddrop": {"grid": {"model.fusion.moddrop_p": [0.2, 0.5][:budget]}},
                    "aecf": {"configs": [{"model.fusion.curriculum.base_rate": 0.5,
                                          "stage2.objective.entropy_coef": 0.05},
                                         {"model.fusion.curriculum.base_rate": 1.0,
                                          "stage2.objective.entropy_coef": 0.0}][:budget]}},
        "selection": {"scenarios": ["drop_p0.3", "drop_p0.5", "drop_p0.7"], "metric": "map",
                      "mask_seed": 1, "seeds": [0]},
        "final": {"seeds": [0, 1], "report_scenarios": ["full", "drop_p0.5", "drop_p0.7"]},
    })
    return S.parse_sweep(raw, cfg)


def _make_model(cfg):
    return lambda method: embedding_only_model(cfg, MODS, DIMS, [f"c{i}" for i in range(C)], method)


@pytest.fixture(scope="module")
def sweeps():
    torch.set_num_threads(1)
    cfg = _cfg()
    spec = _spec(cfg)
    train, val, test = _data(240, 0), _data(120, 1), _data(160, 2)
    log = lambda msg: None  # noqa: E731
    a = S.run_sweep(_make_model(cfg), train, val, test, cfg, spec, log=log)
    b = S.run_sweep(_make_model(cfg), train, val, _shuffled_labels(test), cfg, spec, log=log)
    return cfg, spec, (train, val, test), a, b


def test_selection_never_sees_test(sweeps):
    _cfg_, _spec_, _data_, a, b = sweeps
    # the selection step has no test argument at all
    assert "test" not in inspect.signature(S.run_selection).parameters
    # shuffling the TEST labels changes the test numbers but not one selection number
    assert _no_timing(a["selection"]) == _no_timing(b["selection"])
    assert a["chosen"] == b["chosen"]
    assert a["aggregate"] != b["aggregate"]


def test_selection_depends_on_validation(sweeps):
    cfg, spec, (train, val, _test), a, _b = sweeps
    sel = S.run_selection(_make_model(cfg), train, _shuffled_labels(val), cfg, spec, log=lambda m: None)
    scores_a = [c["score"] for m in a["selection"].values() for c in m["configs"]]
    scores_s = [c["score"] for m in sel.values() for c in m["configs"]]
    assert scores_a != scores_s


def test_equal_budget_and_identical_masks(sweeps):
    _cfg_, spec, _data_, a, _b = sweeps
    val = _data_[1]
    counts = a["checks"]["configs_per_method"]
    assert counts == {"moddrop": 2, "aecf": 2}
    assert {m: len(s["configs"]) for m, s in a["selection"].items()} == counts
    assert a["checks"]["selection_masks_identical"] and a["checks"]["test_masks_identical"]
    digests = {s["mask_digest"] for m in a["selection"].values() for c in m["configs"] for s in c["seeds"]}
    assert len(digests) == 1
    # validation masks differ from the test masks' seed and are method-independent by construction
    m1 = scenario_masks(val, spec["selection"]["scenarios"], spec["selection"]["mask_seed"])
    m2 = scenario_masks(val, spec["selection"]["scenarios"], spec["selection"]["mask_seed"])
    assert all(torch.equal(m1[k], m2[k]) for k in m1)
    # each selected configuration is the arg-max of its validation scores; final = 2 seeds each
    for method, s in a["selection"].items():
        assert s["selected"] == max(range(len(s["configs"])), key=lambda j: s["configs"][j]["score"])
    assert sorted((r["method"], r["seed"]) for r in a["final_runs"]) == [
        ("aecf", 0), ("aecf", 1), ("moddrop", 0), ("moddrop", 1)]
    # seed 0 (a selection seed) is evaluated as trained in selection, seed 1 is trained anew;
    # the reused run reproduces its selection score, and retraining it gives the same test numbers
    assert [r["reused_selection_run"] for r in a["final_runs"]] == [True, False, True, False]
    assert a["checks"]["final_val_score_max_abs_diff_vs_selection"] < 1e-9
    cfg, (train, val, test) = _cfg_, _data_
    again = S.run_final(_make_model(cfg), train, val, test, cfg, {**spec, "final": {**spec["final"], "seeds": [0]}},
                        a["chosen"], log=lambda m: None)
    for r in again:
        ref = next(x for x in a["final_runs"] if x["method"] == r["method"] and x["seed"] == 0)
        assert not r["reused_selection_run"]
        assert r["evaluation"]["scenarios"] == ref["evaluation"]["scenarios"]
    v = a["verdict"]
    assert set(v["high_drop"]) == {"drop_p0.5", "drop_p0.7"} and v["lines"]
    md = S.markdown(a, spec, {"setup": {}, "timing": {"total": 1.0}})
    assert "selected" in md and "Verdict" in md and "masked/sample" in md


def test_spec_validation():
    cfg = _cfg()
    base = _spec(cfg)  # valid
    assert base["budget"] == 2

    def bad(mutate, match):
        raw = S.load_sweep(None)
        raw.update({"budget": 2, "methods": {"moddrop": {"grid": {"model.fusion.moddrop_p": [0.2, 0.5]}},
                                             "aecf": {"grid": {"model.fusion.curriculum.base_rate": [0.5, 1.0]}}}})
        mutate(raw)
        with pytest.raises(ValueError, match=match):
            S.parse_sweep(raw, cfg)

    bad(lambda r: r["methods"]["aecf"]["grid"].update({"model.fusion.curriculum.base_rate": [0.5, 2.0]}),
        "between 0 and 1")
    bad(lambda r: r["methods"]["moddrop"]["grid"].update({"model.fusion.moddrop_p": [0.1, 0.2, 0.3]}),
        "budget")
    bad(lambda r: r["methods"]["aecf"].update({"grid": {"model.fusion.moddrop_p": [0.1, 0.2]}}),
        "no effect")
    bad(lambda r: r["methods"]["aecf"].update({"grid": {"stage2.lr": [0.1, 0.2]}}), "not allowed")
    bad(lambda r: r["methods"]["moddrop"].update({"configs": [{"model.fusion.moddrop_p": 0.2}] * 2})
        or r["methods"]["moddrop"].pop("grid"), "duplicate")
    bad(lambda r: r["selection"].update({"scenarios": ["full"]}), "drop_p")
    # the shipped spec is valid against the shipped config: 6 configurations each
    spec = S.parse_sweep(S.load_sweep(REPO / "config" / "sweep.yaml"), load_config(REPO / "config" / "train.yaml"))
    assert {m: len(c) for m, c in spec["configs"].items()} == {"moddrop": 6, "aecf": 6}
