"""Equal-budget hyper-parameter selection on VALIDATION, then a test comparison (``aecf-ros sweep``).

Why: one arbitrary setting per method can decide a comparison. Here every compared method gets
the SAME number of configurations (``budget``) over its own masking-strength knobs (ModDrop:
``moddrop_p``; AECF: curriculum ``base_rate`` x ``entropy_coef``), each configuration is trained
with the selection seeds and scored on the VALIDATION split only, and each method's best
configuration is then evaluated with the final seeds on TEST with the standard
protocol (:func:`aecf_ros.train.pipeline.train_stage2_and_eval`, the same masks for every run).

Protocol (see ``config/sweep.yaml``):

1. Spec validation (:func:`parse_sweep`): every method has exactly ``budget`` distinct
   configurations; a knob must be a ``model.fusion.*`` or ``stage2.objective.*`` key (so the
   stage-1 cache and everything else stay identical), must exist, must act on that method (a
   knob the method ignores would waste budget) and its value must be accepted by the code
   (the fusion module and the objective are built once per configuration, e.g. ``base_rate``
   has to lie in [0, 1]).
2. Selection (:func:`run_selection`, which is never given the test split): per configuration
   and selection seed, stage 2 + validation calibration (the standard ones), then the score =
   mean over ``selection.scenarios`` (i.i.d. drop scenarios on validation, masks seeded by
   ``selection.mask_seed``, identical for every method and configuration) of the macro mAP of
   the model output. A configuration's score is the mean over selection seeds; the highest wins
   (ties: the earlier configuration).
3. Final (:func:`run_final`): the selected configuration of each method with ``final.seeds``,
   evaluated on the test split under every scenario (``evaluate.scenario_seed`` masks, identical
   for every run). A (configuration, seed) already trained during selection is evaluated as
   trained there (training is deterministic, so retraining would give the same model); other
   seeds are trained in this step.
4. Verdict (:func:`verdict`): at every reported drop scenario with p >= 0.5, AECF minus the
   best other tuned method, paired by seed (same seed, same test masks), with its 95 % Student-t
   interval, worded from the interval as in ``aecf-ros benchmark``: win (above 0), loss (below
   0), unresolved (spans 0). ``aecf-ros sweep --report-only`` re-renders ``sweep.md`` from
   ``sweep.json`` (:func:`report_from_json`).
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import yaml

from aecf_ros.model.config import merge_config
from aecf_ros.train.config import METHODS, get_dotted, model_config, read_yaml_mapping, set_dotted
from aecf_ros.train.distributed import DistContext
from aecf_ros.train.scenarios import drop_rate, scenario_names

REPO_ROOT = Path(__file__).resolve().parents[2]
from aecf_ros.resources import package_file  # noqa: E402
DEFAULT_SWEEP_PATH = package_file("config", "sweep.yaml")  # source tree, ament index or install share/
ALLOWED_PREFIXES = ("model.fusion.", "stage2.objective.")
SCORE_METRICS = ("map", "map_raw")  # higher is better
from aecf_ros.core.baselines import FUSION_METHODS as _ALL  # noqa: E402
from aecf_ros.core.fusion import CurriculumConfig  # noqa: E402

CURRICULUM_METHODS = tuple(m for m in _ALL if m.startswith("aecf") and m != "aecf_no_curriculum")

_MISSING = object()
SWEEP_DEFAULTS: dict[str, Any] = {
    "budget": 6,
    "aecf_method": "aecf",
    "methods": {},
    "selection": {"scenarios": ["drop_p0.3", "drop_p0.5", "drop_p0.7"], "metric": "map",
                  "mask_seed": 1, "seeds": [0, 1, 2]},
    "final": {"seeds": [0, 1, 2], "report_scenarios": ["full", "drop_p0.3", "drop_p0.5", "drop_p0.7"]},
}


# ----------------------------------------------------------------------------- the spec
def load_sweep(path: str | Path | None = None) -> dict:
    """The raw sweep spec: :data:`SWEEP_DEFAULTS` merged with the YAML file (if given)."""
    raw = read_yaml_mapping(path, "sweep spec", SWEEP_DEFAULTS, "key(s)") if path is not None else {}
    spec = merge_config(SWEEP_DEFAULTS, {k: v for k, v in raw.items() if k != "methods"})
    spec["methods"] = copy.deepcopy(raw.get("methods") or {})
    return spec


def expand(entry: Mapping) -> list[dict]:
    """A method entry -> list of ``{dotted key: value}`` configurations.

    ``{"grid": {key: [v, ...], ...}}`` is the Cartesian product in key order (last key fastest);
    ``{"configs": [{key: value, ...}, ...]}`` is an explicit list."""
    if not isinstance(entry, Mapping) or set(entry) - {"grid", "configs"} or len(entry) != 1:
        raise ValueError(f"a method entry needs exactly one of 'grid' or 'configs', got {entry!r}")
    if "configs" in entry:
        configs = entry["configs"]
        if not isinstance(configs, list) or not all(isinstance(c, Mapping) for c in configs):
            raise ValueError(f"'configs' must be a list of mappings, got {configs!r}")
        return [dict(c) for c in configs]
    grid = entry["grid"]
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"'grid' must be a non-empty mapping key -> list of values, got {grid!r}")
    keys = list(grid)
    for k in keys:
        if not isinstance(grid[k], list) or not grid[k]:
            raise ValueError(f"grid[{k!r}] must be a non-empty list, got {grid[k]!r}")
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def apply_overrides(cfg: Mapping, overrides: Mapping[str, Any]) -> dict:
    out = copy.deepcopy(dict(cfg))
    for key, value in overrides.items():
        set_dotted(out, key, copy.deepcopy(value))
    return out


def knob_applies(method: str, key: str) -> bool:
    """Whether the dotted config ``key`` changes how ``method`` trains."""
    from aecf_ros.core.baselines import objective_flags

    if key == "model.fusion.moddrop_p":
        return method == "moddrop"
    if key.startswith("model.fusion.curriculum."):
        return method in CURRICULUM_METHODS
    if key == "model.fusion.presence_tokens":
        return method.startswith("aecf") and method != "aecf_no_presence"
    if key == "model.fusion.embed_dim":
        return True
    if key == "model.fusion.gate_hidden":
        return method not in ("concat", "mean")
    if key == "model.fusion.concat_hidden":
        return method == "concat"
    if key.startswith("stage2.objective."):
        flags = objective_flags(method)
        name = key.split(".", 2)[2]
        if name.startswith("entropy") or name == "schedule_steps":
            return flags["use_entropy"]
        if name.startswith("infonce"):
            return flags["use_infonce"]
        if name.startswith("calibration"):
            return flags["use_calibration"]
        if name.startswith("distill"):
            return flags["use_distillation"]
    return False


def config_label(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in overrides.items()) or "(base)"


def _check_config(method: str, cfg: Mapping, overrides: Mapping[str, Any]) -> None:
    """Build the fusion and the objective of one configuration (raises if a value is rejected)."""
    from aecf_ros.core.losses import AECFObjective
    from aecf_ros.model import build_fusion_from_config
    from aecf_ros.train.stage2 import build_objective

    fusion_defaults = model_config({"model": {}})["fusion"]
    objective_args = set(inspect.signature(AECFObjective.__init__).parameters) - {"self"}
    for key in overrides:
        if not key.startswith(ALLOWED_PREFIXES):
            raise ValueError(f"{method}: knob {key!r} is not allowed; only {ALLOWED_PREFIXES} keys may be swept "
                             f"(anything else would change the shared stage-1 embeddings or the protocol)")
        if key.startswith("model.fusion.curriculum."):
            if key.rsplit(".", 1)[-1] not in {f.name for f in dataclasses.fields(CurriculumConfig)}:
                raise ValueError(f"{method}: unknown curriculum knob {key!r}")
        elif key.startswith("model.fusion."):
            if get_dotted({"model": {"fusion": fusion_defaults}}, key, default=KeyError) is KeyError:
                raise ValueError(f"{method}: unknown fusion knob {key!r}")
        elif key.split(".", 2)[2] not in objective_args:
            raise ValueError(f"{method}: unknown objective knob {key!r}; AECFObjective takes {sorted(objective_args)}")
        if not knob_applies(method, key):
            raise ValueError(f"{method}: knob {key!r} has no effect on this method (it would waste budget)")
    fusion_cfg = dict(model_config(cfg)["fusion"])
    fusion_cfg["method"] = method
    try:
        build_fusion_from_config(fusion_cfg, {"camera": 4, "lidar": 4, "text": 4})
        build_objective(method, cfg["stage2"].get("objective"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{method} configuration {config_label(overrides)}: value rejected by the code: {exc}") from exc


def parse_sweep(spec: Mapping, base_cfg: Mapping) -> dict:
    """Validate ``spec`` against ``base_cfg``; returns it with ``configs`` (method -> list of
    override dicts) filled in. Raises ValueError on anything that would make it unfair/invalid."""
    spec = copy.deepcopy(dict(spec))
    budget = spec.get("budget")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    methods = spec.get("methods") or {}
    if len(methods) < 2:
        raise ValueError(f"a sweep compares at least two methods, got {list(methods)}")
    aecf = spec.get("aecf_method")
    if aecf not in methods:
        raise ValueError(f"aecf_method {aecf!r} is not among the swept methods {list(methods)}")
    configs: dict[str, list[dict]] = {}
    for method, entry in methods.items():
        if method not in METHODS:
            raise ValueError(f"unknown fusion method {method!r}; choose from {', '.join(METHODS)}")
        cs = expand(entry)
        if len(cs) != budget:
            raise ValueError(f"{method}: {len(cs)} configurations but the budget is {budget} for EVERY "
                             f"method (equal budgets keep the comparison fair)")
        seen = set()
        for c in cs:
            key = yaml.safe_dump(c, sort_keys=True)
            if key in seen:
                raise ValueError(f"{method}: duplicate configuration {config_label(c)}")
            seen.add(key)
            _check_config(method, apply_overrides(base_cfg, c), c)
        configs[method] = cs
    sel = spec["selection"]
    if sel.get("metric") not in SCORE_METRICS:
        raise ValueError(f"selection.metric must be one of {SCORE_METRICS}, got {sel.get('metric')!r}")
    scen = list(sel.get("scenarios") or [])
    if not scen or any(drop_rate(s) is None for s in scen):
        raise ValueError(f"selection.scenarios must be drop_p<rate> scenarios, got {scen!r}")
    for s in scen:
        if not 0.0 <= drop_rate(s) < 1.0:
            raise ValueError(f"selection scenario {s!r}: drop rate must be in [0, 1)")
    for part, key in (("selection", "seeds"), ("final", "seeds")):
        seeds = spec[part].get(key)
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ValueError(f"{part}.{key} must be a non-empty list of ints, got {seeds!r}")
    known = set(scenario_names(("camera", "lidar", "text"), base_cfg["evaluate"]["drop_rates"]))
    bad = [s for s in spec["final"]["report_scenarios"] if s not in known]
    if bad:
        raise ValueError(f"final.report_scenarios {bad} are not evaluated (evaluate.drop_rates "
                         f"{base_cfg['evaluate']['drop_rates']})")
    spec["configs"] = configs
    return spec


# ----------------------------------------------------------------------------- running
def _diagnostics(history: Mapping) -> dict:
    eps = history.get("epochs") or []
    keys = ("masked_per_sample", "drop_fraction", "gate_entropy")
    per_epoch = [{"epoch": e["epoch"], **{k: float(e[k]) for k in keys if k in e}} for e in eps]
    summary = {k: float(np.mean([e[k] for e in per_epoch])) for k in keys if per_epoch and k in per_epoch[0]}
    return {"per_epoch": per_epoch, "mean": summary}


def _train(model, method: str, seed: int, train, val, test, cfg: Mapping, overrides: Mapping,
           dist: DistContext, desc: str) -> dict:
    from aecf_ros.train.pipeline import train_stage2_and_eval

    run_cfg = apply_overrides(cfg, overrides)
    model.config["fusion"] = copy.deepcopy(model_config(run_cfg)["fusion"])
    return train_stage2_and_eval(model, method, int(seed), train, val, test, run_cfg, dist=dist,
                                 progress=False, desc=desc)


def validation_score(model, val, spec: Mapping) -> dict:
    """Score of a trained + calibrated model on VALIDATION: mean over the selection scenarios of
    the selection metric, with masks seeded by ``selection.mask_seed`` (method-independent)."""
    from aecf_ros.train.evaluation import evaluate_model

    sel = spec["selection"]
    rates = tuple(drop_rate(s) for s in sel["scenarios"])
    ev = evaluate_model(model, val, seed=int(sel["mask_seed"]), drop_rates=rates, reliability=False)
    per = {s: float(ev["scenarios"][s][sel["metric"]]) for s in sel["scenarios"]}
    return {"score": float(np.mean(list(per.values()))), "per_scenario": per,
            "mask_digest": ev["mask_digest"], "n": ev["n"]}


def _snapshot(model, history: Mapping) -> dict:
    return {"fusion": copy.deepcopy(model.fusion), "head": copy.deepcopy(model.head),
            "calibrator": copy.deepcopy(model.calibrator), "history": copy.deepcopy(dict(history)),
            "fusion_config": copy.deepcopy(model.config["fusion"])}


def run_selection(make_model: Callable[[str], Any], train, val, cfg: Mapping, spec: Mapping, *,
                  dist: DistContext | None = None, log: Callable[[str], None] = print,
                  keep: dict | None = None) -> dict:
    """Train every configuration of every method with the selection seeds and score it on
    VALIDATION. The test split is deliberately not a parameter. Returns
    ``{method: {"configs": [...], "selected": index}}``. ``keep`` (a dict), if given, receives
    the trained fusion/head/calibrator of every run under ``(method, index, seed)`` so the final
    step can evaluate a selected (configuration, seed) without retraining it."""
    dist = dist or DistContext()
    out: dict = {}
    for method, configs in spec["configs"].items():
        model = make_model(method)
        rows = []
        for i, overrides in enumerate(configs):
            seeds = []
            for seed in spec["selection"]["seeds"]:
                t0 = time.perf_counter()
                res = _train(model, method, seed, train, val, None, cfg, overrides, dist,
                             desc=f"sel {i}")
                vs = validation_score(model, val, spec)
                if keep is not None:
                    keep[(method, i, int(seed))] = _snapshot(model, res["history"])
                seeds.append({"seed": int(seed), **vs, "diagnostics": _diagnostics(res["history"])["mean"],
                              "calibration_mode": res["calibration"].get("default_mode"),
                              "seconds": time.perf_counter() - t0})
            scores = [s["score"] for s in seeds]
            row = {"index": i, "overrides": dict(overrides), "label": config_label(overrides),
                   "score": float(np.mean(scores)),
                   "score_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
                   "per_scenario": {s: float(np.mean([x["per_scenario"][s] for x in seeds]))
                                    for s in spec["selection"]["scenarios"]},
                   "diagnostics": {k: float(np.mean([x["diagnostics"][k] for x in seeds]))
                                   for k in seeds[0]["diagnostics"]},
                   "seeds": seeds}
            rows.append(row)
            log(f"[sweep] select {method:8s} #{i} {row['label']:40s} val score {100 * row['score']:.2f} "
                f"± {100 * row['score_std']:.2f}  masked/sample {row['diagnostics'].get('masked_per_sample', 0):.3f}  "
                f"H {row['diagnostics'].get('gate_entropy', float('nan')):.3f}")
        best = max(range(len(rows)), key=lambda j: (rows[j]["score"], -j))
        out[method] = {"configs": rows, "selected": best}
    return out


def selected_overrides(selection: Mapping) -> dict[str, dict]:
    return {m: dict(s["configs"][s["selected"]]["overrides"]) for m, s in selection.items()}


def run_final(make_model: Callable[[str], Any], train, val, test, cfg: Mapping, spec: Mapping,
              chosen: Mapping[str, Mapping], *, dist: DistContext | None = None,
              log: Callable[[str], None] = print, trained: Mapping | None = None) -> list[dict]:
    """Each method's chosen configuration with ``final.seeds``, evaluated on TEST with the
    standard protocol (every scenario, ``evaluate.scenario_seed`` masks). A (method, seed)
    found in ``trained`` (``{(method, seed): snapshot}`` from the selection step, i.e. the SAME
    configuration and seed, deterministic training) is evaluated as trained there; any other
    seed is trained here."""
    from aecf_ros.train.evaluation import evaluate_model

    dist = dist or DistContext()
    ev_cfg = cfg["evaluate"]
    runs = []
    for method, overrides in chosen.items():
        model = make_model(method)
        for seed in spec["final"]["seeds"]:
            t0 = time.perf_counter()
            snap = (trained or {}).get((method, int(seed)))
            if snap is None:
                res = _train(model, method, seed, train, val, test, cfg, overrides, dist, desc=f"final {seed}")
                reused = False
            else:
                model.config["fusion"] = copy.deepcopy(snap["fusion_config"])
                model.fusion, model.head = copy.deepcopy(snap["fusion"]), copy.deepcopy(snap["head"])
                model.calibrator = copy.deepcopy(snap["calibrator"])
                model.to(dist.device)
                res = {"history": snap["history"], "calibration": model.calibrator.summary(),
                       "evaluation": evaluate_model(model, test, seed=int(ev_cfg["scenario_seed"]),
                                                    drop_rates=tuple(ev_cfg["drop_rates"]),
                                                    n_bins=int(ev_cfg["ece_bins"]))}
                reused = True
            vs = validation_score(model, val, spec)
            ev = res["evaluation"]["scenarios"]
            runs.append({"method": method, "seed": int(seed), "overrides": dict(overrides),
                         "label": config_label(overrides), "validation": vs,
                         "evaluation": res["evaluation"], "calibration": res["calibration"],
                         "diagnostics": _diagnostics(res["history"]), "reused_selection_run": reused,
                         "seconds": time.perf_counter() - t0})
            log(f"[sweep] final  {method:8s} seed {seed}: test full mAP {100 * ev['full']['map']:.2f}  "
                f"p0.5 {100 * ev.get('drop_p0.5', {}).get('map', float('nan')):.2f}  "
                f"p0.7 {100 * ev.get('drop_p0.7', {}).get('map', float('nan')):.2f}")
    return runs


def aggregate_final(runs: Sequence[Mapping], scenarios: Sequence[str]) -> dict:
    """method -> scenario -> {"mean", "std", "values", "seeds"} of the test macro mAP (model output)."""
    out: dict = {}
    for r in runs:
        out.setdefault(r["method"], {})
    for method in out:
        rs = sorted([r for r in runs if r["method"] == method], key=lambda r: int(r["seed"]))
        for s in scenarios:
            vals = [float("nan") if r["evaluation"]["scenarios"][s]["map"] is None
                    else float(r["evaluation"]["scenarios"][s]["map"]) for r in rs]
            out[method][s] = {"mean": float(np.mean(vals)),
                              "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                              "values": vals, "seeds": [int(r["seed"]) for r in rs]}
    return out


_WORDS = {"win": "AECF WINS (the interval lies above 0)", "loss": "AECF LOSES (the interval lies below 0)",
          "unresolved": "unresolved (the interval spans 0)"}


def verdict(agg: Mapping, aecf: str, scenarios: Sequence[str]) -> dict:
    """At each reported drop scenario with p >= 0.5: AECF vs the best other tuned method, paired
    by seed with its 95 % interval (:func:`aecf_ros.train.report.paired_ci`)."""
    from aecf_ros.train.report import fmt_ci, outcome, paired_lists

    others = [m for m in agg if m != aecf]
    lines, high = [], {}

    def diff(s, best):
        a, b = agg[aecf][s], agg[best][s]
        return paired_lists(a.get("seeds") or list(range(len(a["values"]))), a["values"],
                            b.get("seeds") or list(range(len(b["values"]))), b["values"])

    for s in scenarios:
        p = drop_rate(s)
        if p is None or p < 0.5:
            continue
        best = max(others, key=lambda m: agg[m][s]["mean"])
        a, b = agg[aecf][s], agg[best][s]
        ci = diff(s, best)
        o = outcome(ci)
        high[s] = {"baseline": best, "aecf_mean": a["mean"], "aecf_std": a["std"], "baseline_mean": b["mean"],
                   "baseline_std": b["std"], "diff_pp": {k: 100 * ci[k] for k in ("mean", "lo", "hi")},
                   "outcome": o, "beats": o == "win"}
        lines.append(f"{s}: tuned AECF {100 * a['mean']:.2f} ± {100 * a['std']:.2f} vs tuned {best} "
                     f"{100 * b['mean']:.2f} ± {100 * b['std']:.2f}: AECF minus {best} {fmt_ci(ci)} -> {_WORDS[o]}.")
    outcomes = [v["outcome"] for v in high.values()]
    res: dict = {"high_drop": high, "aecf_beats_at_high_drop": bool(high) and all(o == "win" for o in outcomes)}
    if "full" in scenarios:
        best = max(others, key=lambda m: agg[m]["full"]["mean"])
        ci = diff("full", best)
        res["full"] = {"baseline": best, "diff_pp": {k: 100 * ci[k] for k in ("mean", "lo", "hi")},
                       "outcome": outcome(ci)}
        lines.append(f"full (all modalities): tuned AECF {100 * agg[aecf]['full']['mean']:.2f} vs tuned {best} "
                     f"{100 * agg[best]['full']['mean']:.2f}: AECF minus {best} {fmt_ci(ci)} -> {_WORDS[outcome(ci)]}.")
    by = {o: [s for s, v in high.items() if v["outcome"] == o] for o in ("win", "loss", "unresolved")}
    lines.insert(0, f"Overall at p >= 0.5 against tuned {'/'.join(others)} (paired 95 % intervals): AECF wins in "
                 + (", ".join(by["win"]) or "none") + "; loses in " + (", ".join(by["loss"]) or "none")
                 + "; unresolved in " + (", ".join(by["unresolved"]) or "none") + ".")
    res["lines"] = lines
    return res


def selection_margin(s: Mapping) -> dict | None:
    """Winner minus runner-up validation score, paired over the selection seeds (95 % interval)."""
    from aecf_ros.train.report import paired_lists

    if "runner_up" not in s:
        return None
    win, run = s["configs"][s["selected"]], s["configs"][s["runner_up"]]
    return paired_lists([x["seed"] for x in win["seeds"]], [x["score"] for x in win["seeds"]],
                        [x["seed"] for x in run["seeds"]], [x["score"] for x in run["seeds"]])


def report_from_json(payload: Mapping) -> str:
    """``sweep.md`` from a written ``sweep.json`` (the verdict recomputed from its final runs)."""
    spec = payload["sweep_spec"]
    scen = list(spec["final"]["report_scenarios"])
    agg = aggregate_final(payload["final_runs"], scen)
    result = {**payload, "aggregate": agg, "verdict": verdict(agg, spec["aecf_method"], scen)}
    return markdown(result, spec, payload.get("meta") or {})


def run_sweep(make_model: Callable[[str], Any], train, val, test, cfg: Mapping, spec: Mapping, *,
              dist: DistContext | None = None, log: Callable[[str], None] = print) -> dict:
    """Selection on validation (test never touched) -> final training + test evaluation -> verdict."""
    t0 = time.perf_counter()
    keep: dict = {}
    selection = run_selection(make_model, train, val, cfg, spec, dist=dist, log=log, keep=keep)
    t1 = time.perf_counter()
    chosen = selected_overrides(selection)
    trained = {(m, seed): snap for (m, i, seed), snap in keep.items() if i == selection[m]["selected"]}
    del keep
    runs = run_final(make_model, train, val, test, cfg, spec, chosen, dist=dist, log=log, trained=trained)
    t2 = time.perf_counter()
    scen = list(spec["final"]["report_scenarios"])
    agg = aggregate_final(runs, scen)
    ver = verdict(agg, spec["aecf_method"], scen)
    for method, m in selection.items():
        for row in m["configs"]:
            row["is_base_config"] = all(get_dotted(cfg, k, default=_MISSING) == v
                                        for k, v in row["overrides"].items())
        ranked = sorted(m["configs"], key=lambda r: -r["score"])
        if len(ranked) > 1:
            m["margin_pp"] = 100 * (ranked[0]["score"] - ranked[1]["score"])
            m["runner_up"] = ranked[1]["index"]
    sel_digests = sorted({s["mask_digest"] for m in selection.values() for c in m["configs"] for s in c["seeds"]})
    test_digests = sorted({r["evaluation"]["mask_digest"] for r in runs})
    # a final run of a (configuration, seed) also scored in selection must reproduce its score
    repro = []
    for r in runs:
        sel = selection[r["method"]]
        row = sel["configs"][sel["selected"]]
        for s in row["seeds"]:
            if s["seed"] == r["seed"]:
                repro.append(abs(s["score"] - r["validation"]["score"]))
    return {"selection": selection, "chosen": chosen, "final_runs": runs, "aggregate": agg, "verdict": ver,
            "checks": {"configs_per_method": {m: len(c) for m, c in spec["configs"].items()},
                       "selection_mask_digests": sel_digests, "test_mask_digests": test_digests,
                       "selection_masks_identical": len(sel_digests) == 1,
                       "test_masks_identical": len(test_digests) == 1,
                       "final_val_score_max_abs_diff_vs_selection": max(repro) if repro else None,
                       "final_runs_reused_from_selection": sum(bool(r["reused_selection_run"]) for r in runs)},
            "timing": {"selection_s": t1 - t0, "final_s": t2 - t1}}


# ----------------------------------------------------------------------------- report
def _pm(d: Mapping) -> str:
    return f"{100 * d['mean']:.2f} ± {100 * d['std']:.2f}"


def markdown(result: Mapping, spec: Mapping, meta: Mapping) -> str:
    from aecf_ros.train.report import fmt_ci, outcome

    sel, agg, ver = result["selection"], result["aggregate"], result["verdict"]
    scen_sel = spec["selection"]["scenarios"]
    scen_rep = spec["final"]["report_scenarios"]
    aecf = spec["aecf_method"]
    L = ["# Equal-budget hyper-parameter sweep: tuned ModDrop vs tuned AECF", "",
         "Generated by `aecf-ros sweep` (numbers are measured; every run is in `sweep.json`; "
         "`aecf-ros sweep --report-only` regenerates this text from it). Comparisons are paired by seed "
         "(same seed, same masks) with their 95 % Student-t interval: win = above 0, loss = below 0, "
         "unresolved = it spans 0.", "",
         "## Protocol", ""]
    for k, v in meta.get("setup", {}).items():
        L.append(f"- {k}: {v}")
    L += [f"- budget: {spec['budget']} configurations per method ("
          + ", ".join(f"{m}: {n}" for m, n in result["checks"]["configs_per_method"].items()) + ")",
          f"- selection: VALIDATION split only; score = mean macro mAP ({spec['selection']['metric']}, the model "
          f"output after its validation-fitted calibrator) over {', '.join(scen_sel)}; masks seed "
          f"{spec['selection']['mask_seed']}, digest {', '.join(result['checks']['selection_mask_digests'])} "
          f"(identical for every method, configuration and seed: {result['checks']['selection_masks_identical']}); "
          f"each configuration trained with seeds {spec['selection']['seeds']} and scored by the mean over them; "
          f"highest score wins (ties: the earlier configuration). The test split is not an input of the selection step.",
          f"- final: each selected configuration with seeds {spec['final']['seeds']} evaluated on TEST (the "
          f"DEVELOPMENT split: data.seed's test range, which design looked at; the benchmark's final test "
          f"split is never used by a sweep) "
          f"with the standard protocol (all scenarios; masks digest {', '.join(result['checks']['test_mask_digests'])}, "
          f"identical for every run: {result['checks']['test_masks_identical']}); "
          f"{result['checks']['final_runs_reused_from_selection']} of the {len(result['final_runs'])} final runs are the "
          f"selection runs of the same (configuration, seed) (deterministic training; not retrained), "
          f"{len(result['final_runs']) - result['checks']['final_runs_reused_from_selection']} trained for this step; "
          f"validation scores of final vs selection runs differ by at most "
          f"{100 * (result['checks']['final_val_score_max_abs_diff_vs_selection'] or 0):.4f} pp",
          ""]
    L += ["## Verdict (computed from the numbers below)", ""] + [f"- {line}" for line in ver["lines"]]
    for method, s in sel.items():
        if "margin_pp" in s:
            best = s["configs"][s["selected"]]
            ci = selection_margin(s)
            L.append(f"- selection margin {method}: {best['label']} {100 * best['score']:.2f} vs runner-up "
                     f"{s['configs'][s['runner_up']]['label']}: winner minus runner-up over the selection seeds "
                     f"{fmt_ci(ci)} -> "
                     + {"win": "the winner is better (the interval lies above 0).",
                        "loss": "the runner-up is better on the paired seeds (the interval lies below 0).",
                        "unresolved": "unresolved: the choice is within the seed noise (the interval spans 0)."
                        }[outcome(ci)])
    L += [""]
    L += ["## Validation score of every configuration (selection)", "",
          f"Mean ± std over selection seeds of the validation macro mAP (%); score = mean over {', '.join(scen_sel)}. "
          "masked/sample = modalities the training-time masking (AECF curriculum / ModDrop) removed per "
          "training sample, mean over epochs; H = mean normalised gate entropy on the full input, mean over epochs.", "",
          "`base` marks the configuration equal to the training config's own setting.", "",
          "| method | # | configuration | " + " | ".join(f"val {s}" for s in scen_sel)
          + " | val score | masked/sample | H | selected |",
          "|---|---|---|" + "---|" * len(scen_sel) + "---|---|---|---|"]
    for method, s in sel.items():
        for row in s["configs"]:
            mark = "**selected**" if row["index"] == s["selected"] else ""
            base = " (base)" if row.get("is_base_config") else ""
            L.append(f"| {method} | {row['index']} | {row['label']}{base} | "
                     + " | ".join(f"{100 * row['per_scenario'][x]:.2f}" for x in scen_sel)
                     + f" | {100 * row['score']:.2f} ± {100 * row['score_std']:.2f} | "
                     f"{row['diagnostics'].get('masked_per_sample', 0):.3f} | "
                     f"{row['diagnostics'].get('gate_entropy', float('nan')):.3f} | {mark} |")
    L += ["", "## Test comparison of the selected configurations", "",
          f"Macro mAP (%) of the model output on the test (development) split, mean ± std over seeds {spec['final']['seeds']}.", "",
          "| method | selected configuration | " + " | ".join(scen_rep) + " |",
          "|---|---|" + "---|" * len(scen_rep)]
    for method in agg:
        L.append(f"| {method} | {config_label(result['chosen'][method])} | "
                 + " | ".join(_pm(agg[method][s]) for s in scen_rep) + " |")
    # curriculum diagnostics of the selected AECF configuration (and the selected baselines)
    L += ["", "## Training-time masking of the selected configurations (final runs, mean over seeds)", ""]
    by: dict = {}
    for r in result["final_runs"]:
        by.setdefault(r["method"], []).append(r["diagnostics"]["per_epoch"])
    if by:
        n = min(len(d) for ds in by.values() for d in ds)
        pick = [e for e in (1, 2, 3, 5, 10, 20, 30, n) if e <= n]
        pick = sorted(set(pick))
        L += ["| method | " + " | ".join(f"masked/sample ep{e}" for e in pick) + " | "
              + " | ".join(f"H ep{e}" for e in pick) + " | masked/sample mean | masked % of present | H mean |",
              "|---|" + "---|" * (2 * len(pick) + 3)]
        summary = {}
        for method, ds in by.items():
            mean_at = {k: [float(np.mean([d[i][k] for d in ds])) for i in range(n)]
                       for k in ("masked_per_sample", "drop_fraction", "gate_entropy")}
            summary[method] = {k: float(np.mean(v)) for k, v in mean_at.items()}
            L.append(f"| {method} | " + " | ".join(f"{mean_at['masked_per_sample'][e - 1]:.3f}" for e in pick) + " | "
                     + " | ".join(f"{mean_at['gate_entropy'][e - 1]:.3f}" for e in pick)
                     + f" | {summary[method]['masked_per_sample']:.3f} | {100 * summary[method]['drop_fraction']:.1f} | "
                     f"{summary[method]['gate_entropy']:.3f} |")
        if aecf in summary:
            a = summary[aecf]
            others = ", ".join(f"{m} {summary[m]['masked_per_sample']:.3f} ({100 * summary[m]['drop_fraction']:.1f} %)"
                               for m in summary if m != aecf)
            L += ["", f"Measured: the selected AECF configuration ({config_label(result['chosen'][aecf])}) removed on "
                  f"average {a['masked_per_sample']:.3f} modalities per training sample "
                  f"({100 * a['drop_fraction']:.1f} % of the present ones) at mean gate entropy {a['gate_entropy']:.3f}; "
                  f"the selected baseline(s): {others}."]
    L += ["", "## Runtime", ""] + [f"- {k}: {v:.1f} s" for k, v in meta.get("timing", {}).items()] + [""]
    return "\n".join(L)
