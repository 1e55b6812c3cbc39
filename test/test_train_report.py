"""Issue 19 items 5 + 8: every verdict in the generated results.md is computed from the per-seed
figures of results.json (paired 95 % intervals, worded win / loss / unresolved), the per-pattern
experts are a reference row (never a ceiling), ``--report-only`` regenerates the same text from
the JSON with no training, and results written under the legacy names still render.
Synthetic JSON only: no training, no ROS."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from aecf_ros.cli import main as cli_main
from aecf_ros.train import report
from aecf_ros.train import sweep as S
from aecf_ros.train.per_pattern_experts import LEGACY_NAMES, PER_PATTERN_EXPERTS, enabled

SCENS = ("full", "no_text", "only_text", "drop_p0.5", "drop_p0.7")
SEEDS = (0, 1, 2, 3, 4)
# per-seed mAP offsets shared by every method (the seed effect the pairing removes)
SEED_FX = (0.000, 0.004, -0.003, 0.002, -0.001)
BASE = {"concat": 0.600, "mean": 0.610, "attention": 0.605, "moddrop": 0.612, "aecf": 0.620,
        "aecf_no_curriculum": 0.612, "aecf_no_entropy": 0.620}


def _run(method: str, seed: int, map_value: float, ece: float = 0.015, masked: float = 0.9) -> dict:
    scen = {s: {"map": map_value - (0.1 if s != "full" else 0.0), "map_raw": map_value, "ece_raw": ece + 0.01,
                "ece_global": ece, "ece_presence": ece, "ece_platt": ece, "ece_model": ece, "crr": 0.1,
                "crr_presence": 0.1, "entropy_mean": 0.9, "gate_mean": [1 / 3, 1 / 3, 1 / 3]} for s in SCENS}
    diag = [{"masked_per_sample": masked, "drop_fraction": masked / 3, "gate_entropy": 0.9}] * 3
    return {"method": method, "seed": seed, "train_seconds": 1.0, "seconds": 1.0,
            "history": {"epochs": [], "steps": 0, "diagnostics": diag if method != "concat" else []},
            "calibration": {"default_mode": "presence_platt", "validation_ece": {"none": 0.03}},
            "evaluation": {"scenarios": scen, "mask_digest": "d", "chance_map": 0.25}}


def payload(aecf_delta: float = 0.0, experts_name: str = PER_PATTERN_EXPERTS, noise: float = 0.0) -> dict:
    """A results.json: every method x 5 seeds; ``aecf_delta`` moves AECF against everyone."""
    runs = []
    for m, v in BASE.items():
        for i, s in enumerate(SEEDS):
            jitter = noise * (1 if (i + len(m)) % 2 else -1)
            runs.append(_run(m, s, v + SEED_FX[i] + (aecf_delta if m == "aecf" else 0.0) + jitter,
                             masked=0.0 if m in ("concat", "mean", "attention", "aecf_no_curriculum") else 0.9))
    for i, s in enumerate(SEEDS):
        runs.append(_run(experts_name, s, 0.615 + SEED_FX[i]))
    return {"config": {"benchmark": {"seeds": list(SEEDS), "regimes": {"syn": {"about": "synthetic"}}},
                       "cache_dir": "build/cache"},
            "meta": {"seeds": list(SEEDS), "setup": {"regime": "syn"}, "timing": {"total": 60.0}},
            "runs": runs}


def _verdict_line(md: str, scen: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"- {scen}: AECF mAP"))


def test_interval_matches_a_hand_computation():
    a = [0.70, 0.72, 0.71, 0.73, 0.69]
    b = [0.68, 0.69, 0.69, 0.71, 0.66]
    d = [x - y for x, y in zip(a, b)]  # 0.02 0.03 0.02 0.02 0.03
    mean = sum(d) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 4)
    half = 2.776 * sd / math.sqrt(5)  # t_{0.975, 4}
    ci = report.paired_ci(a, b)
    assert ci["mean"] == pytest.approx(0.024) and ci["lo"] == pytest.approx(mean - half)
    assert ci["hi"] == pytest.approx(mean + half) and report.outcome(ci) == "win"
    # pairing is by SEED, not by list position
    agg = {"x": {"s": {"map": {"values": [0.5, 0.6], "seeds": [1, 0]}}},
           "y": {"s": {"map": {"values": [0.4, 0.6], "seeds": [0, 1]}}}}
    assert report.paired(agg, "x", "y", "s")["mean"] == pytest.approx(((0.6 - 0.4) + (0.5 - 0.6)) / 2)
    # a one-sample interval for a single method's figure (ECE targets)
    m = report.mean_ci([0.01, 0.02, 0.03])
    assert m["hi"] - m["mean"] == pytest.approx(4.303 * 0.01 / math.sqrt(3))
    assert report.outcome({"mean": 1.0, "lo": float("nan"), "hi": float("nan"), "n": 1}) == "unresolved"


def test_verdicts_flip_when_the_figures_flip():
    win = report.regime_report(payload(+0.01), "syn")
    loss = report.regime_report(payload(-0.02), "syn")
    tie = report.regime_report(payload(0.0, noise=0.01), "syn")
    lw, ll = _verdict_line(win["markdown"], "drop_p0.5"), _verdict_line(loss["markdown"], "drop_p0.5")
    assert "-> AECF wins" in lw and "AECF loses" not in lw
    assert "-> AECF loses" in ll and "AECF wins" not in ll
    assert win["targets"]["per_scenario"]["drop_p0.5"]["outcome"] == "win"
    assert loss["targets"]["per_scenario"]["drop_p0.5"]["outcome"] == "loss"
    assert loss["targets"]["per_scenario"]["drop_p0.5"]["worse"]
    # AECF - ModDrop = -1.2 pp on three seeds and +2.8 pp on two (mean +0.4): the interval spans 0
    assert "(strongest baseline) +0.40 pp" in _verdict_line(tie["markdown"], "drop_p0.5")
    assert "-> unresolved" in _verdict_line(tie["markdown"], "drop_p0.5")
    assert tie["targets"]["per_scenario"]["drop_p0.5"]["outcome"] == "unresolved"
    # the "in no scenario worse" target follows the figures
    chk = lambda rep: next(c for c in rep["targets"]["checks"] if c["target"].startswith("in no scenario"))
    assert chk(win)["status"] == "met" and chk(loss)["status"] == "NOT met"
    # ablations: full AECF is better when it is above the ablation, not when below
    ab = lambda rep: next(line for line in rep["verdict"]["lines"] if line.startswith("ablation aecf_no_entropy"))
    assert "full AECF is better" in ab(win) and "the ablation is better" in ab(loss)
    # experts: beaten by AECF only when AECF's interval lies above them
    every = ", ".join(SCENS)
    assert f"AECF above them in {every}; below them in none; unresolved in none" in win["markdown"]
    assert f"AECF above them in none; below them in {every}; unresolved in none" in loss["markdown"]
    assert "they bound nothing, in full (" in win["markdown"]


def test_ece_target_and_masking_text_are_computed():
    p = payload(0.01)
    rep = report.regime_report(p, "syn")
    ece = next(c for c in rep["targets"]["checks"] if c["target"].startswith("ECE"))
    assert ece["status"] == "met"  # 1.5 % everywhere, no spread -> interval at 1.5 % <= 2 %
    hot = copy.deepcopy(p)
    for r in hot["runs"]:
        if r["method"] == "aecf":
            for s in r["evaluation"]["scenarios"].values():
                s["ece_model"] = 0.05 + 0.001 * r["seed"]
    rep_hot = report.regime_report(hot, "syn")
    ece_hot = next(c for c in rep_hot["targets"]["checks"] if c["target"].startswith("ECE"))
    assert ece_hot["status"] == "NOT met" and "above target" in ece_hot["detail"]
    # straddling the target: 2 % +- 1 % -> unresolved
    mid = copy.deepcopy(p)
    for r in mid["runs"]:
        if r["method"] == "aecf":
            for name, s in r["evaluation"]["scenarios"].items():
                s["ece_model"] = (0.02 if name in ("full", "no_text") else 0.03) + 0.005 * (r["seed"] - 2)
    ece_mid = next(c for c in report.regime_report(mid, "syn")["targets"]["checks"] if c["target"].startswith("ECE"))
    assert ece_mid["status"] == "unresolved"
    # the masking sentence states what the diagnostics say; no fixed "masks almost nothing"
    md = rep["markdown"]
    assert "masks almost nothing" not in md and "switches its own curriculum off" not in md
    assert "AECF minus ModDrop +0.000 [95 % CI" in md and "about as much (unresolved)" in md
    less = copy.deepcopy(p)
    for r in less["runs"]:
        if r["method"] == "aecf":
            r["history"]["diagnostics"] = [{"masked_per_sample": 0.05 + 0.001 * r["seed"], "drop_fraction": 0.02,
                                            "gate_entropy": 0.95}] * 3
    assert "-> AECF masks less" in report.regime_report(less, "syn")["markdown"]


def test_no_ceiling_wording_and_experts_reference_row():
    md = report.regime_report(payload(0.01), "syn")["markdown"]
    low = md.lower()
    assert "ceiling" not in low and "gap closed" not in low and "closes" not in low
    assert f"| {PER_PATTERN_EXPERTS} (reference) |" in md
    assert "per-pattern experts mAP (95 % CI)" in md and "not a bound" in md


def test_legacy_names_are_read():
    old = payload(0.01, experts_name=LEGACY_NAMES[0])
    # derived fields of an old results.json (legacy targets with a gap_closed) never reach the text
    old["targets"] = {"per_scenario": {"drop_p0.5": {"gap_closed": 0.8, "ceiling_map": 99.0}}, "checks": []}
    new = payload(0.01)
    a, b = report.regime_report(old, "syn"), report.regime_report(new, "syn")
    assert a["markdown"] == b["markdown"]
    assert PER_PATTERN_EXPERTS in a["aggregate"] and LEGACY_NAMES[0] not in a["aggregate"]
    assert enabled({"ceiling": False}) is False and enabled({}) is True
    assert enabled({"per_pattern_experts": False, "ceiling": True}) is False


def test_report_only_regenerates_identical_text(tmp_path):
    out = tmp_path / "results"
    (out / "syn").mkdir(parents=True)
    (out / "syn" / "results.json").write_text(json.dumps(payload(0.01, experts_name=LEGACY_NAMES[0])))
    cfg = tmp_path / "train.yaml"
    cfg.write_text((Path(__file__).resolve().parents[1] / "config" / "train_tiny.yaml").read_text())
    args = ["benchmark", "--report-only", "--config", str(cfg), "--out", str(out),
            "--set", "benchmark.regimes={syn: {about: synthetic}}"]
    assert cli_main(args) == 0
    first, summary = (out / "syn" / "results.md").read_text(), (out / "results.md").read_text()
    assert first == report.regime_report(json.loads((out / "syn" / "results.json").read_text()), "syn")["markdown"]
    (out / "syn" / "results.md").write_text("stale")
    assert cli_main(args) == 0
    assert (out / "syn" / "results.md").read_text() == first and (out / "results.md").read_text() == summary
    assert "Regime `syn`" in summary and "per_pattern_experts (reference)" in summary
    # a missing regime is an error, not a silent skip
    assert cli_main(["benchmark", "--report-only", "--config", str(cfg), "--out", str(tmp_path / "none"),
                     "--set", "benchmark.regimes={syn: {}}"]) == 2


def _sweep_payload(aecf_delta: float) -> dict:
    runs = []
    for m, v in (("moddrop", 0.612), ("aecf", 0.612 + aecf_delta)):
        for i, s in enumerate(SEEDS):
            scen = {k: {"map": v + SEED_FX[i]} for k in ("full", "drop_p0.5", "drop_p0.7")}
            runs.append({"method": m, "seed": s, "evaluation": {"scenarios": scen},
                         "diagnostics": {"per_epoch": [{"masked_per_sample": 0.9, "drop_fraction": 0.3,
                                                        "gate_entropy": 0.9}]}})
    cfgs = lambda m: {"configs": [{"index": j, "label": f"{m}{j}", "score": 0.6 + 0.001 * j, "score_std": 0.001,
                                   "overrides": {}, "per_scenario": {"drop_p0.5": 0.6},
                                   "diagnostics": {"masked_per_sample": 0.9, "gate_entropy": 0.9},
                                   "seeds": [{"seed": s, "score": 0.6 + 0.001 * j + 0.002 * s} for s in (0, 1, 2)]}
                                  for j in range(2)], "selected": 1, "runner_up": 0, "margin_pp": 0.1}
    return {"sweep_spec": {"aecf_method": "aecf", "budget": 2,
                           "selection": {"scenarios": ["drop_p0.5"], "metric": "map", "mask_seed": 1, "seeds": [0, 1, 2]},
                           "final": {"seeds": list(SEEDS), "report_scenarios": ["full", "drop_p0.5", "drop_p0.7"]}},
            "meta": {"setup": {}, "timing": {"total": 1.0}},
            "selection": {"moddrop": cfgs("moddrop"), "aecf": cfgs("aecf")},
            "chosen": {"moddrop": {}, "aecf": {}}, "final_runs": runs,
            "checks": {"configs_per_method": {"moddrop": 2, "aecf": 2}, "selection_mask_digests": ["a"],
                       "test_mask_digests": ["b"], "selection_masks_identical": True, "test_masks_identical": True,
                       "final_val_score_max_abs_diff_vs_selection": 0.0, "final_runs_reused_from_selection": 0}}


def test_sweep_verdict_is_paired_and_report_only_regenerates(tmp_path):
    win, loss = S.report_from_json(_sweep_payload(0.004)), S.report_from_json(_sweep_payload(-0.004))
    assert "drop_p0.5: tuned AECF" in win and "-> AECF WINS" in win and "AECF wins in full" not in win
    assert "AECF wins in drop_p0.5, drop_p0.7; loses in none" in win
    assert "loses in drop_p0.5, drop_p0.7" in loss and "seed spread" not in win + loss
    # selection margin: winner is +0.1 pp on every selection seed -> the interval lies above 0
    assert "the winner is better" in win
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps(_sweep_payload(0.004)))
    assert cli_main(["sweep", "--report-only", "--out", str(out)]) == 0
    assert (out / "sweep.md").read_text() == win
    assert cli_main(["sweep", "--report-only", "--out", str(tmp_path / "missing")]) == 2


def test_models_readme_states_the_class_defaults():
    from aecf_ros.core.fusion import AECFusion, CurriculumConfig
    from aecf_ros.core.losses import AECFObjective
    import inspect

    text = " ".join((Path(__file__).resolve().parents[1] / "aecf_ros" / "models" / "README.md").read_text().split())
    c, o = CurriculumConfig(), AECFObjective()
    sig = inspect.signature(AECFusion.__init__).parameters
    for phrase in (f"rule `{c.rule}`", f"min_rate {c.min_rate} / max_rate {c.max_rate}",
                   f"warmup_fraction {c.warmup_fraction} of training", f"min_present {c.min_present}", f"`base_rate` {c.base_rate}",
                   f"class default `embed_dim` is {sig['embed_dim'].default}", f"`gate_hidden` {sig['gate_hidden'].default}",
                   f"entropy_coef {o.entropy_coef} adaptive" if o.entropy_adaptive else f"entropy_coef {o.entropy_coef}",
                   f"infonce_coef {o.infonce_coef} at temperature {o.infonce_temperature}",
                   f"calibration_coef {o.calibration_coef}", f"distill_coef {o.distill_coef}"):
        assert phrase in text, phrase
    assert sig["presence_tokens"].default is True and "`presence_tokens` on" in text
