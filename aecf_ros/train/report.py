"""Benchmark aggregation, the computed verdicts, ``results.md`` and the PNG plots.

Every verdict sentence is computed from the per-seed numbers: a comparison is the mean of the
per-seed differences between two methods (paired by seed: same seed, same data, same test
masks) with its two-sided 95 % Student-t interval, worded from the interval alone: "win" (the
interval lies above 0), "loss" (below 0) or "unresolved" (it spans 0). A target is "met" when
the interval lies on the right side of the threshold, "NOT met" when it lies on the wrong side
and "unresolved" otherwise. Only definitions are fixed text.

:func:`regime_report` renders a regime's ``results.md`` from its ``results.json`` alone (what
``aecf-ros benchmark`` writes and what ``--report-only`` re-reads), so the text can always be
regenerated from the figures without training. Results written before the per-pattern experts
were renamed (method ``ceiling_per_pattern``) are read through :func:`normalise_runs`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from aecf_ros.train.per_pattern_experts import PER_PATTERN_EXPERTS, canonical_method

EXPERTS = PER_PATTERN_EXPERTS
BASELINES = ("concat", "mean", "attention", "moddrop")
TABLE_METRICS = ("map", "ece_raw", "ece_global", "ece_presence", "ece_platt", "ece_model", "crr")
CALIBRATORS = (("ece_raw", "raw (no calibration)"), ("ece_global", "global temperature"),
               ("ece_presence", "presence-aware temperature"),
               ("ece_platt", "presence-aware Platt (temperature + per-class bias)"))
DIAG_KEYS = ("masked_per_sample", "drop_fraction", "gate_entropy")


def _num(v) -> float:
    """A JSON number (``null`` = NaN, as :func:`nan_safe` writes it)."""
    return float("nan") if v is None else float(v)


def normalise_runs(runs: Sequence[Mapping]) -> list[dict]:
    """``runs`` with legacy method names (``ceiling_per_pattern``) renamed to their current ones."""
    return [{**r, "method": canonical_method(r["method"])} for r in runs]


def aggregate(runs: Sequence[Mapping]) -> dict:
    """runs -> {method: {scenario: {metric: {"mean", "std", "n", "values", "seeds"}}}}."""
    out: dict = {}
    by_method: dict = {}
    for r in normalise_runs(runs):
        by_method.setdefault(r["method"], []).append(r)
    for method, rs in by_method.items():
        rs = sorted(rs, key=lambda r: int(r["seed"]))
        seeds = [int(r["seed"]) for r in rs]
        out[method] = {}
        for scen in rs[0]["evaluation"]["scenarios"]:
            out[method][scen] = {}
            for metric in TABLE_METRICS + ("map_raw", "crr_presence", "entropy_mean"):
                vals = [_num(r["evaluation"]["scenarios"][scen].get(metric)) for r in rs]
                out[method][scen][metric] = {
                    "mean": float(np.mean(vals)),
                    "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                    "n": len(vals), "values": vals, "seeds": seeds}
            gates = np.array([[_num(g) for g in r["evaluation"]["scenarios"][scen]["gate_mean"]] for r in rs])
            out[method][scen]["gate_mean"] = gates.mean(0).tolist()
    return out


def calibration_modes(runs: Sequence[Mapping]) -> dict:
    """method -> {"modes": [default mode per seed], "validation_ece": {mode: mean over seeds}}."""
    out: dict = {}
    for r in runs:
        cal = r.get("calibration", {})
        d = out.setdefault(r["method"], {"modes": [], "validation_ece": {}})
        d["modes"].append(cal.get("default_mode"))
        for mode, v in (cal.get("validation_ece") or {}).items():
            if v is not None:
                d["validation_ece"].setdefault(mode, []).append(float(v))
    for d in out.values():
        d["validation_ece"] = {m: float(np.mean(v)) for m, v in d["validation_ece"].items()}
    return out


def training_diagnostics(runs: Sequence[Mapping]) -> dict:
    """method -> per-epoch means over seeds of masked_per_sample / drop_fraction / gate_entropy,
    plus ``per_seed``: each seed's mean over epochs (for paired comparisons)."""
    by: dict = {}
    for r in normalise_runs(runs):
        diag = r.get("history", {}).get("diagnostics") or []
        if diag and "masked_per_sample" in diag[0]:
            by.setdefault(r["method"], []).append((int(r["seed"]), diag))
    out = {}
    for method, items in by.items():
        items.sort(key=lambda x: x[0])
        ds = [d for _, d in items]
        n = min(len(d) for d in ds)
        out[method] = {k: [float(np.mean([_num(d[i][k]) for d in ds])) for i in range(n)] for k in DIAG_KEYS}
        out[method]["epoch"] = list(range(1, n + 1))
        out[method]["per_seed"] = {"seeds": [s for s, _ in items],
                                   **{k: [float(np.mean([_num(e[k]) for e in d[:n]])) for d in ds]
                                      for k in DIAG_KEYS}}
    return out


# ----------------------------------------------------------------------------- intervals
# two-sided 95 % Student-t quantiles t_{0.975, df}, df = 1..30 (beyond: 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci(values: Sequence[float]) -> dict:
    """Mean of ``values`` with its two-sided 95 % Student-t interval (NaN half-width below 2)."""
    d = np.asarray(values, dtype=float)
    n = int(d.size)
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        half = float("nan")
    else:
        t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
        half = float(t * d.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def paired_ci(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of the per-seed differences ``a_s - b_s`` with its two-sided 95 % t interval.

    ``a`` and ``b`` are the same seeds of two methods (same data, masks, batch order), so the
    difference is paired. ``beats`` = the interval lies entirely above 0, ``worse`` = entirely
    below 0."""
    ci = mean_ci(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    n = ci["n"]
    return {**ci, "beats": bool(n >= 2 and ci["lo"] > 0), "worse": bool(n >= 2 and ci["hi"] < 0)}


def outcome(ci: Mapping, threshold: float = 0.0) -> str:
    """``"win"`` if the interval lies above ``threshold``, ``"loss"`` below it, else ``"unresolved"``."""
    if ci.get("n", 0) < 2 or not (math.isfinite(ci["lo"]) and math.isfinite(ci["hi"])):
        return "unresolved"
    return "win" if ci["lo"] > threshold else "loss" if ci["hi"] < threshold else "unresolved"


def _paired_values(cell_a: Mapping, cell_b: Mapping) -> tuple[list[float], list[float]]:
    """The values of two aggregate cells on their common seeds (paired by seed)."""
    sa = cell_a.get("seeds") or list(range(len(cell_a["values"])))
    sb = cell_b.get("seeds") or list(range(len(cell_b["values"])))
    va, vb = dict(zip(sa, cell_a["values"])), dict(zip(sb, cell_b["values"]))
    common = [s for s in sa if s in vb]
    return [va[s] for s in common], [vb[s] for s in common]


def paired(agg: Mapping, a: str, b: str, scen: str, metric: str = "map") -> dict:
    """:func:`paired_ci` of ``a - b`` on ``metric`` in ``scen``, paired by seed."""
    return paired_ci(*_paired_values(agg[a][scen][metric], agg[b][scen][metric]))


def paired_lists(seeds_a, values_a, seeds_b, values_b) -> dict:
    vb = dict(zip(seeds_b, values_b))
    common = [(v, vb[s]) for s, v in zip(seeds_a, values_a) if s in vb]
    return paired_ci([x for x, _ in common], [y for _, y in common])


def _pp(ci: Mapping, scale: float = 100.0, digits: int = 2) -> dict:
    return {k: scale * ci[k] for k in ("mean", "lo", "hi")}


def fmt_ci(ci: Mapping, scale: float = 100.0, digits: int = 2, unit: str = " pp", sign: bool = True) -> str:
    """``+0.32 pp [95 % CI +0.20, +0.44]`` (``ci`` in fractions, printed times ``scale``)."""
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    lo, hi = ci["lo"], ci["hi"]
    inner = (f"{f.format(scale * lo)}, {f.format(scale * hi)}" if math.isfinite(lo) and math.isfinite(hi)
             else "n/a: fewer than 2 seeds")
    return f"{f.format(scale * ci['mean'])}{unit} [95 % CI {inner}]"


def _fmt(cell: Mapping, scale: float = 100.0, digits: int = 1) -> str:
    return f"{scale * cell['mean']:.{digits}f} ± {scale * cell['std']:.{digits}f}"


def _join(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


def mean_present(scen: str, n_modalities: int = 3) -> float:
    """Expected number of present modalities in a scenario (ECE target: >= 2 -> 0.02)."""
    from aecf_ros.train.scenarios import drop_rate

    if scen == "full":
        return float(n_modalities)
    if scen.startswith("no_"):
        return float(n_modalities - 1)
    if scen.startswith("only_"):
        return 1.0
    p = drop_rate(scen)
    # i.i.d. drops with one modality restored in empty rows
    return float(n_modalities * (1 - p) + p ** n_modalities)


def ece_target(scen: str, ece_two: float = 0.02, ece_one: float = 0.04) -> float:
    return ece_two if mean_present(scen) >= 2 else ece_one


def ece_status(values: Sequence[float], target: float) -> tuple[str, dict]:
    """"met" (95 % interval of the mean ECE at or below ``target``), "NOT met" (entirely above)
    or "unresolved"."""
    ci = mean_ci(values)
    if ci["n"] >= 2 and ci["hi"] <= target:
        return "met", ci
    if ci["n"] >= 2 and ci["lo"] > target:
        return "NOT met", ci
    if ci["n"] < 2:
        return ("met" if ci["mean"] <= target else "NOT met"), ci
    return "unresolved", ci


def _high_drop(scens: Sequence[str]) -> list[str]:
    return [s for s in scens if s.startswith("drop_p") and float(s[6:]) >= 0.5]


def _ablations(agg: Mapping, aecf: str) -> list[str]:
    return [m for m in agg if m.startswith(aecf + "_")]


_WORD = {"win": "AECF wins", "loss": "AECF loses", "unresolved": "unresolved (the interval spans 0)"}
_LOWER = {"loss": "lower with AECF", "win": "higher with AECF", "unresolved": "unresolved (the interval spans 0)"}


def verdict(agg: Mapping, aecf: str = "aecf", ece_two: float = 0.02, ece_one: float = 0.04) -> dict:
    """AECF vs the strongest baseline, ModDrop and attention (high drop rates and full input),
    ECE against its targets, and every ablation, each a paired 95 % interval worded by
    :func:`outcome`. Computed from ``agg`` (the per-pattern experts are reported separately by
    :func:`experts_lines`)."""
    agg = {m: v for m, v in agg.items() if m != EXPERTS}
    res: dict = {"aecf_method": aecf, "baselines": [b for b in BASELINES if b in agg]}
    if aecf not in agg or not res["baselines"]:
        res["lines"] = ["AECF or every baseline missing from the benchmark: no verdict."]
        return res
    lines = []
    scens = list(agg[aecf])
    high = _high_drop(scens)
    res["high_drop"] = {}
    for scen in high:
        best = max(res["baselines"], key=lambda b: agg[b][scen]["map"]["mean"])
        row: dict = {"strongest_baseline": best}
        parts = [f"{scen}: AECF mAP {100 * agg[aecf][scen]['map']['mean']:.2f}"]
        for label, other in (("strongest baseline", best), ("ModDrop", "moddrop"), ("attention", "attention")):
            if other not in agg or (label != "strongest baseline" and other == best):
                continue
            ci = paired(agg, aecf, other, scen)
            row[other] = {"diff_pp": _pp(ci), "outcome": outcome(ci)}
            name = f"{other} (strongest baseline)" if label == "strongest baseline" else other
            parts.append(f"minus {name} {fmt_ci(ci)} -> {_WORD[outcome(ci)]}")
        res["high_drop"][scen] = row
        lines.append("; ".join(parts) + ".")
    if "full" in agg[aecf]:
        best_full = max(res["baselines"], key=lambda b: agg[b]["full"]["map"]["mean"])
        ci = paired(agg, aecf, best_full, "full")
        o = outcome(ci, -0.005)
        res["full"] = {"strongest_baseline": best_full, "diff_pp": _pp(ci),
                       "within_0.5pp": {"win": "met", "loss": "NOT met"}.get(o, "unresolved")}
        lines.append(f"full (all modalities): AECF minus {best_full} {fmt_ci(ci)} -> "
                     + {"win": "within 0.5 pp or better (the interval lies above -0.5 pp).",
                        "loss": "MORE than 0.5 pp worse (the interval lies below -0.5 pp).",
                        "unresolved": "unresolved against the 0.5 pp margin (the interval spans -0.5 pp)."}[o])
    res["ece"] = {}
    for metric, label in CALIBRATORS[1:] + (("ece_model", "the model's default calibrator (chosen on validation)"),):
        if metric not in agg[aecf][scens[0]]:
            continue
        by: dict = {"met": [], "NOT met": [], "unresolved": []}
        detail = {}
        for s in scens:
            st, ci = ece_status(agg[aecf][s][metric]["values"], ece_target(s, ece_two, ece_one))
            by[st].append(s)
            detail[s] = {"status": st, "ci": ci}
        res["ece"][metric] = {"met": by["met"], "not_met": by["NOT met"], "unresolved": by["unresolved"]}
        text = (f"AECF ECE after {label} vs its target ({100 * ece_two:.0f} % with >= 2 sensors on average, "
                f"{100 * ece_one:.0f} % with one): met (interval at or below it) in {len(by['met'])}/{len(scens)}, "
                f"NOT met (interval above it) in {len(by['NOT met'])}/{len(scens)}"
                + (f" ({_join(by['NOT met'])})" if by["NOT met"] else "")
                + f", unresolved in {len(by['unresolved'])}/{len(scens)}"
                + (f" ({_join(by['unresolved'])})" if by["unresolved"] else ""))
        if by["NOT met"]:
            worst = max(by["NOT met"], key=lambda s: detail[s]["ci"]["mean"])
            text += f"; worst {worst}: {fmt_ci(detail[worst]['ci'], unit=' %', sign=False)}"
        lines.append(text + ".")
    abl = {}
    scen = "drop_p0.5" if "drop_p0.5" in scens else high[0] if high else scens[0]
    for name in _ablations(agg, aecf):
        m_ci, r_ci, c_ci = (paired(agg, aecf, name, scen, k) for k in ("map", "ece_raw", "crr"))
        abl[name] = {"scenario": scen, "map_diff_pp": _pp(m_ci), "map_outcome": outcome(m_ci),
                     "ece_raw_diff_pp": _pp(r_ci), "crr_diff_pp": _pp(c_ci)}
        lines.append(
            f"ablation {name} at {scen}: full AECF minus ablation = mAP {fmt_ci(m_ci)} -> "
            + {"win": "full AECF is better", "loss": "the ablation is better",
               "unresolved": "no measurable effect (the interval spans 0)"}[outcome(m_ci)]
            + f"; raw ECE {fmt_ci(r_ci)} -> {_LOWER[outcome(r_ci)]}; confidence-rise rate "
            f"{fmt_ci(c_ci)} -> {_LOWER[outcome(c_ci)]}.")
    res["ablations"] = abl
    res["lines"] = lines
    return res


def experts_comparison(agg: Mapping) -> dict:
    """Per scenario: the per-pattern experts' mAP (mean, 95 % interval) and every other method
    minus the experts (paired). ``beaten_by`` = methods whose interval lies above 0 there."""
    if EXPERTS not in agg:
        return {}
    out = {}
    for scen in agg[EXPERTS]:
        row = {"map": mean_ci(agg[EXPERTS][scen]["map"]["values"]), "vs": {}, "beaten_by": []}
        for m in agg:
            if m == EXPERTS or scen not in agg[m]:
                continue
            ci = paired(agg, m, EXPERTS, scen)
            row["vs"][m] = ci
            if outcome(ci) == "win":
                row["beaten_by"].append(m)
        out[scen] = row
    return out


def experts_lines(agg: Mapping, aecf: str = "aecf") -> list[str]:
    """Where the per-pattern experts are beaten, computed from the paired intervals."""
    cmp_ = experts_comparison(agg)
    if not cmp_:
        return []
    lines = []
    if aecf in agg:
        by: dict = {"win": [], "loss": [], "unresolved": []}
        for scen, row in cmp_.items():
            if aecf in row["vs"]:
                by[outcome(row["vs"][aecf])].append(scen)
        lines.append(f"AECF minus the per-pattern experts (paired, 95 % interval): AECF above them in "
                     f"{_join(by['win'])}; below them in {_join(by['loss'])}; unresolved in {_join(by['unresolved'])}.")
    beaten = [s for s, r in cmp_.items() if r["beaten_by"]]
    lines.append("The per-pattern experts are a reference, not a bound: "
                 + ("some single model beats them (interval above 0), so they bound nothing, in "
                    + "; ".join(f"{s} ({', '.join(cmp_[s]['beaten_by'])})" for s in beaten)
                    if beaten else "no single model beats them with its interval above 0 in any scenario")
                 + ".")
    return lines


_MORE = {"win": "more", "loss": "less", "unresolved": "unresolved"}


def diagnostics_markdown(diag: Mapping, agg: Mapping, aecf: str = "aecf") -> list[str]:
    """Per-epoch table + paired comparisons of the stage-2 masking, computed from the diagnostics."""
    if not diag:
        return []
    n = len(next(iter(diag.values()))["epoch"])
    cols = sorted({0, 1, 2, 4, 9, n - 1} & set(range(n)))
    out = ["", "## Stage-2 training diagnostics: what the masking actually did (mean over seeds)", "",
           "Modalities removed per sample by the training-time masking (AECF curriculum / ModDrop), "
           "and the mean normalised gate entropy H on the full input, per epoch.", "",
           "| method | " + " | ".join(f"masked/sample ep{c + 1}" for c in cols) + " | "
           + " | ".join(f"H ep{c + 1}" for c in cols) + " |",
           "|---|" + "---|" * (2 * len(cols))]
    for m, d in diag.items():
        out.append(f"| {m} | " + " | ".join(f"{d['masked_per_sample'][c]:.3f}" for c in cols) + " | "
                   + " | ".join(f"{d['gate_entropy'][c]:.3f}" for c in cols) + " |")
    if aecf not in diag or "per_seed" not in diag[aecf]:
        return out
    a = diag[aecf]["per_seed"]

    def vs(m: str, key: str) -> dict:
        b = diag[m]["per_seed"]
        return paired_lists(b["seeds"], b[key], a["seeds"], a[key])

    mask, frac, h = (mean_ci(a[k]) for k in DIAG_KEYS)
    text = (f"Measured (mean over epochs, 95 % interval over seeds): the AECF curriculum removed "
            f"{fmt_ci(mask, 1.0, 3, ' modalities per sample', sign=False)} ({100 * frac['mean']:.1f} % of the "
            f"present ones) at mean normalised gate entropy {fmt_ci(h, 1.0, 3, '', sign=False)}")
    if "moddrop" in diag and "per_seed" in diag["moddrop"]:
        md = diag["moddrop"]["per_seed"]
        ci = paired_lists(a["seeds"], a["masked_per_sample"], md["seeds"], md["masked_per_sample"])
        text += (f"; ModDrop removed {float(np.mean(md['masked_per_sample'])):.3f} "
                 f"({100 * float(np.mean(md['drop_fraction'])):.1f} %): AECF minus ModDrop "
                 f"{fmt_ci(ci, 1.0, 3, '')} -> AECF masks "
                 + {"win": "more", "loss": "less", "unresolved": "about as much (unresolved)"}[outcome(ci)])
    out += ["", text + "."]
    others = [m for m in diag if m != aecf and m.startswith(aecf + "_") and "per_seed" in diag[m]]
    if others:
        out += ["", f"Each ablation's masking and gate entropy against AECF's (ablation minus AECF, paired over "
                    f"seeds; 'more' / 'less' = the interval lies above / below 0).", "",
                "| ablation | masked/sample | minus AECF | -> | H | minus AECF | -> |", "|---|---|---|---|---|---|---|"]
        for m in others:
            cm, ch = vs(m, "masked_per_sample"), vs(m, "gate_entropy")
            out.append(f"| {m} | {float(np.mean(diag[m]['per_seed']['masked_per_sample'])):.3f} | "
                       f"{fmt_ci(cm, 1.0, 3, '')} | {_MORE[outcome(cm)]} | "
                       f"{float(np.mean(diag[m]['per_seed']['gate_entropy'])):.3f} | {fmt_ci(ch, 1.0, 3, '')} | "
                       f"{_MORE[outcome(ch)]} |")
    return out


EXPERTS_DEFINITION = (
    f"`{EXPERTS}` (a reference row, not a method and not a bound): one attention model per presence "
    "pattern, each trained with its pattern imposed on every training sample (same epochs, optimiser "
    "and seeds as every method, no extra tuning); each test row is scored by the expert of its pattern.")


def markdown(agg: Mapping, ver: Mapping, meta: Mapping, cal_modes: Mapping | None = None,
             diag: Mapping | None = None, head: Sequence[str] = (), experts: Sequence[str] = ()) -> str:
    methods = list(agg)
    scens = list(next(iter(agg.values())))
    out = ["# AECF benchmark results", "",
           "Generated by `aecf-ros benchmark` (numbers are measured; see `results.json` for every "
           "run; `aecf-ros benchmark --report-only` regenerates this text from it). Tables: mean ± std "
           "over seeds " + ", ".join(str(s) for s in meta.get("seeds", [])) + ". Every comparison is "
           "the mean per-seed difference (paired by seed: same seed, same masks) with its 95 % "
           "Student-t interval: win = the interval lies above 0, loss = below 0, unresolved = it spans 0.", ""]
    if head:
        out += ["## Targets (paired over seeds)", ""] + list(head)
    out += ["## Setup", ""]
    for k, v in meta.get("setup", {}).items():
        out.append(f"- {k}: {v}")
    if EXPERTS in agg:
        out.append(f"- {EXPERTS_DEFINITION}")
    out += ["", "## Verdict (computed from the numbers below)", ""]
    out += [f"- {line}" for line in list(ver.get("lines", [])) + list(experts)]
    if cal_modes:
        out += ["", "## Which calibrator is the model output (chosen on VALIDATION, never on test)", "",
                "Each run fits every calibrator on the validation split under all 7 presence patterns "
                "and scores it by 2-fold cross-fitting over validation scenes (mean per-pattern held-out "
                "ECE, %); the lowest becomes the model's default (`predict(calibrated=True)`) and its "
                "output is the `map` table and the `ece_model` column.", "",
                "| method | default per seed | " + " | ".join(f"val ECE {label}" for _, label in CALIBRATORS) + " |",
                "|---|---|" + "---|" * len(CALIBRATORS)]
        keys = {"ece_raw": "none", "ece_global": "global", "ece_presence": "presence", "ece_platt": "presence_platt"}
        for m, d in cal_modes.items():
            vals = [d["validation_ece"].get(keys[k]) for k, _ in CALIBRATORS]
            out.append(f"| {m} | {', '.join(str(x) for x in d['modes'])} | "
                       + " | ".join("-" if v is None else f"{100 * v:.2f}" for v in vals) + " |")
    tables = (("Macro mAP (%) — model output (default calibrator chosen on validation)", "map", 100.0, 1),
              ("ECE (%) raw: before any calibration", "ece_raw", 100.0, 2),
              ("ECE (%) after global temperature", "ece_global", 100.0, 2),
              ("ECE (%) after presence-aware temperature", "ece_presence", 100.0, 2),
              ("ECE (%) after presence-aware Platt scaling (temperature + per-class bias per pattern)", "ece_platt", 100.0, 2),
              ("ECE (%) of the model output (default calibrator chosen on validation)", "ece_model", 100.0, 2),
              ("Confidence-rise rate (%) vs the same samples with all modalities (raw probabilities)", "crr", 100.0, 1))
    for title, metric, scale, digits in tables:
        out += ["", f"## {title}", "", "| method | " + " | ".join(scens) + " |",
                "|---|" + "---|" * len(scens)]
        for m in methods:
            label = f"{m} (reference)" if m == EXPERTS else m
            out.append(f"| {label} | " + " | ".join(_fmt(agg[m][s][metric], scale, digits) for s in scens) + " |")
    out += diagnostics_markdown(diag or {}, agg)
    out += ["", "## Plots", "", "![mAP vs drop rate](map_vs_drop.png)", "",
            "![reliability](reliability.png)", "", "![gate weights](gate_weights.png)", "",
            "## Timing", ""]
    for k, v in meta.get("timing", {}).items():
        out.append(f"- {k}: {v:.1f} s" if isinstance(v, (int, float)) and v is not None else f"- {k}: {v}")
    out.append("")
    return "\n".join(out)


def plots(agg: Mapping, runs: Sequence[Mapping], out_dir: Path, modalities: Sequence[str]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    # 1. mAP vs drop rate
    fig, ax = plt.subplots(figsize=(7, 4.5))
    scen = ["full"] + sorted([s for s in next(iter(agg.values())) if s.startswith("drop_p")],
                             key=lambda s: float(s[6:]))
    xs = [0.0] + [float(s[6:]) for s in scen[1:]]
    for m in agg:
        mean = [100 * agg[m][s]["map"]["mean"] for s in scen]
        std = [100 * agg[m][s]["map"]["std"] for s in scen]
        ax.errorbar(xs, mean, yerr=std, marker="o", capsize=3, label=m,
                    linewidth=2.5 if m == "aecf" else 1.2)
    ax.set_xlabel("i.i.d. per-modality drop probability")
    ax.set_ylabel("macro mAP (%)")
    ax.set_title("mAP vs sensor drop rate (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out_dir / "map_vs_drop.png", dpi=110)
    plt.close(fig)
    written.append("map_vs_drop.png")
    # 2. reliability diagrams (first seed of aecf and of the strongest baseline at p=0.5)
    seed0 = {}
    for r in runs:
        seed0.setdefault(r["method"], r)
    show = [m for m in ("aecf", "moddrop", "attention", "concat") if m in seed0][:3]
    scen_rel = [s for s in ("full", "drop_p0.5") if s in seed0[show[0]]["evaluation"]["scenarios"]] if show else []
    if show and scen_rel:
        fig, axes = plt.subplots(len(show), len(scen_rel), figsize=(4.2 * len(scen_rel), 3.6 * len(show)),
                                 squeeze=False)
        for i, m in enumerate(show):
            for j, s in enumerate(scen_rel):
                ax = axes[i][j]
                rel = seed0[m]["evaluation"]["scenarios"][s].get("reliability", {})
                for mode, style in (("raw", "o--"), ("global", "s:"), ("presence", "^-"),
                                    ("presence_platt", "d-")):
                    if mode not in rel:
                        continue
                    mp, fr = np.array(rel[mode]["mean_prob"]), np.array(rel[mode]["frequency"])
                    ok = np.array(rel[mode]["count"]) > 0
                    ax.plot(mp[ok], fr[ok], style, ms=3, label=mode)
                ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
                ax.set_title(f"{m} / {s}", fontsize=9)
                ax.set_xlabel("predicted probability")
                ax.set_ylabel("observed frequency")
                ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "reliability.png", dpi=100)
        plt.close(fig)
        written.append("reliability.png")
    # 3. gate weights per scenario for the gated methods
    gated = [m for m in ("aecf", "moddrop", "attention") if m in agg]
    if gated:
        scens = list(agg[gated[0]])
        fig, axes = plt.subplots(1, len(gated), figsize=(5 * len(gated), 4), squeeze=False)
        for k, m in enumerate(gated):
            ax = axes[0][k]
            bottom = np.zeros(len(scens))
            for i, mod in enumerate(modalities):
                vals = np.array([agg[m][s]["gate_mean"][i] for s in scens])
                ax.bar(range(len(scens)), vals, bottom=bottom, label=mod)
                bottom += vals
            ax.set_xticks(range(len(scens)))
            ax.set_xticklabels(scens, rotation=60, fontsize=7)
            ax.set_title(f"{m}: mean gate weight per scenario")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "gate_weights.png", dpi=100)
        plt.close(fig)
        written.append("gate_weights.png")
    return written


def nan_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_safe(v) for v in obj]
    return obj



def _check(target: str, status: str, detail: str) -> dict:
    return {"target": target, "status": status, "met": status == "met", "detail": detail}


def regime_targets(agg: Mapping, *, aecf: str = "aecf", experts: str | None = EXPERTS,
                   discriminative: bool = False, ece_two: float = 0.02, ece_one: float = 0.04) -> dict:
    """The issue-12 targets for one regime, each "met" / "NOT met" / "unresolved" from its interval.

    * per scenario: AECF minus the best baseline (highest mean mAP among :data:`BASELINES`),
      paired over seeds with its 95 % interval; "worse" = interval entirely below 0; AECF minus
      ModDrop and minus the per-pattern experts (reference) likewise;
    * full input: AECF minus the best other method: met when the interval lies above -0.5 pp;
    * ECE of the model output <= ``ece_two`` where the scenario keeps >= 2 sensors on average,
      <= ``ece_one`` otherwise: met when the interval of the mean lies at or below the target;
    * discriminative regime only: at drop_p0.5 and drop_p0.7 AECF beats ModDrop (interval above 0).
    """
    bases = [b for b in BASELINES if b in agg]
    scens = list(agg[aecf])
    out: dict = {"per_scenario": {}}
    worse_any, unresolved_any = [], []
    for scen in scens:
        best = max(bases, key=lambda b: agg[b][scen]["map"]["mean"])
        ci = paired(agg, aecf, best, scen)
        row = {"best_baseline": best, "diff_pp": _pp(ci), "outcome": outcome(ci),
               "beats": ci["beats"], "worse": ci["worse"], "n": ci["n"]}
        if "moddrop" in agg:
            md = paired(agg, aecf, "moddrop", scen)
            row["vs_moddrop_pp"] = _pp(md)
            row["beats_moddrop"] = md["beats"]
            row["moddrop_outcome"] = outcome(md)
        if experts and experts in agg and scen in agg[experts]:
            row["experts_map"] = _pp(mean_ci(agg[experts][scen]["map"]["values"]))
            ex = paired(agg, aecf, experts, scen)
            row["vs_experts_pp"] = _pp(ex)
            row["experts_outcome"] = outcome(ex)
        target = ece_target(scen, ece_two, ece_one)
        status, eci = ece_status(agg[aecf][scen]["ece_model"]["values"], target)
        row.update({"ece_model": eci["mean"], "ece_model_ci": {k: eci[k] for k in ("mean", "lo", "hi")},
                    "ece_target": target, "ece_status": status, "ece_ok": status == "met"})
        out["per_scenario"][scen] = row
        if ci["worse"]:
            worse_any.append(scen)
    checks = []
    others = [m for m in agg if m not in (experts, aecf)]
    if "full" in agg[aecf] and others:
        full_best = max(others, key=lambda m: agg[m]["full"]["map"]["mean"])
        ci = paired(agg, aecf, full_best, "full")
        o = outcome(ci, -0.005)
        checks.append(_check("full-input mAP within 0.5 pp of the best other method (interval above -0.5 pp)",
                             {"win": "met", "loss": "NOT met"}.get(o, "unresolved"),
                             f"AECF minus {full_best} {fmt_ci(ci)}"))
    checks.append(_check("in no scenario worse than the best baseline (95 % interval entirely below 0)",
                         "NOT met" if worse_any else "met",
                         "worse in: " + ", ".join(worse_any) if worse_any else "none worse"))
    rows = out["per_scenario"]
    bad = [s for s, r in rows.items() if r["ece_status"] == "NOT met"]
    unres = [s for s, r in rows.items() if r["ece_status"] == "unresolved"]
    detail = []
    if bad:
        detail.append("above target: " + ", ".join(
            f"{s} {100 * rows[s]['ece_model_ci']['mean']:.2f}% [{100 * rows[s]['ece_model_ci']['lo']:.2f}, "
            f"{100 * rows[s]['ece_model_ci']['hi']:.2f}]" for s in bad))
    if unres:
        detail.append("interval spans the target: " + ", ".join(unres))
    if not detail:
        worst = max(rows, key=lambda s: rows[s]["ece_model_ci"]["hi"])
        detail.append(f"highest upper bound {100 * rows[worst]['ece_model_ci']['hi']:.2f}% ({worst})")
    checks.append(_check(f"ECE <= {100 * ece_two:.0f} % with >= 2 sensors, <= {100 * ece_one:.0f} % with one "
                         "(model output; 95 % interval of the mean at or below the target)",
                         "NOT met" if bad else "unresolved" if unres else "met", "; ".join(detail)))
    if discriminative:
        for scen in ("drop_p0.5", "drop_p0.7"):
            if scen not in rows or "vs_moddrop_pp" not in rows[scen]:
                continue
            r = rows[scen]
            v = r["vs_moddrop_pp"]
            checks.append(_check(f"{scen}: beats tuned ModDrop (95 % interval above 0)",
                                 {"win": "met", "loss": "NOT met"}.get(r["moddrop_outcome"], "unresolved"),
                                 f"{v['mean']:+.2f} pp [{v['lo']:+.2f}, {v['hi']:+.2f}]"))
    out["checks"] = checks
    out["all_met"] = all(c["met"] for c in checks)
    return out


def sensitivity(agg: Mapping, scen: str = "drop_p0.5", bar_pp: float = 3.0) -> dict:
    """ModDrop minus attention at ``scen`` (paired over seeds): the regime can tell masking-trained
    from full-input-trained fusion apart when the interval lies above ``bar_pp``."""
    if "moddrop" not in agg or "attention" not in agg or scen not in agg["moddrop"]:
        return {}
    ci = paired(agg, "moddrop", "attention", scen)
    o = outcome(ci, bar_pp / 100.0)
    return {"scenario": scen, "moddrop_minus_attention_pp": _pp(ci), "bar_pp": bar_pp, "outcome": o,
            "discriminative": o == "win"}


def _ci_cell(d: Mapping | None, sign: bool = True) -> str:
    if not d:
        return "-"
    f = "{:+.2f}" if sign else "{:.2f}"
    if not (math.isfinite(d["lo"]) and math.isfinite(d["hi"])):
        return f.format(d["mean"])
    return f"{f.format(d['mean'])} [{f.format(d['lo'])}, {f.format(d['hi'])}]"


def targets_markdown(name: str, tgt: Mapping, sens: Mapping) -> list[str]:
    out = [f"### Regime `{name}`", ""]
    if sens:
        s = sens["moddrop_minus_attention_pp"]
        bar = sens.get("bar_pp", 3.0)
        out.append(f"Sensitivity: ModDrop minus attention at {sens['scenario']} = {s['mean']:+.2f} pp "
                   f"[95 % CI {s['lo']:+.2f}, {s['hi']:+.2f}] -> "
                   + {"win": f"the interval lies above {bar:g} pp: the regime CAN tell missing-modality training apart.",
                      "loss": f"the interval lies below {bar:g} pp: this regime does NOT test the missing-modality claim.",
                      "unresolved": f"the interval spans {bar:g} pp: unresolved whether this regime tests the "
                                    "missing-modality claim."}[sens.get("outcome", "unresolved")])
        out.append("")
    out += ["| target | met | measured |", "|---|---|---|"]
    for c in tgt["checks"]:
        out.append(f"| {c['target']} | {c.get('status', 'met' if c['met'] else 'NOT met')} | {c['detail']} |")
    has_ex = any("experts_map" in r for r in tgt["per_scenario"].values())
    out += ["", "| scenario | best baseline | AECF − best baseline (pp, 95 % CI) | AECF − ModDrop (pp, 95 % CI) "
            + ("| per-pattern experts mAP (95 % CI) | AECF − experts (pp, 95 % CI) " if has_ex else "")
            + "| AECF ECE (model, %, 95 % CI) | ECE target | ECE |",
            "|---|---|---|---|" + ("---|---|" if has_ex else "") + "---|---|---|"]
    for scen, r in tgt["per_scenario"].items():
        e = r.get("ece_model_ci") or {"mean": r["ece_model"], "lo": float("nan"), "hi": float("nan")}
        out.append(
            f"| {scen} | {r['best_baseline']} | {_ci_cell(r['diff_pp'])} | {_ci_cell(r.get('vs_moddrop_pp'))} | "
            + (f"{_ci_cell(r.get('experts_map'), sign=False)} | {_ci_cell(r.get('vs_experts_pp'))} | " if has_ex else "")
            + f"{_ci_cell(_pp(e), sign=False)} | {100 * r['ece_target']:.0f} % | {r.get('ece_status', '-')} |")
    return out + [""]


def summary_markdown(summary: Mapping, total_s: float, cfg: Mapping, total_label: str | None = None) -> str:
    """``docs/results/results.md``: every regime's sensitivity, headline mAP and targets."""
    seeds = cfg["benchmark"]["seeds"]
    out = ["# AECF benchmark: summary of every regime", "",
           "Generated by `aecf-ros benchmark` (`make bench-ml`; `make bench-report` regenerates the text "
           "from the regimes' results.json); every number is measured and every "
           "verdict computed from them. Methods are trained on the same cached embeddings with the "
           f"same presence masks, epochs and optimiser; seeds {', '.join(map(str, seeds))} "
           f"(n = {len(seeds)}). Differences are paired over seeds with their 95 % Student-t "
           "interval; \"beats\" means the interval lies above 0, \"unresolved\" that it spans 0. "
           "Per-regime details (every method, "
           "every scenario, ablations, calibration, training diagnostics, plots) are in each "
           "regime's folder.", ""]
    for name, r in summary.items():
        out += [f"## Regime `{name}`" + (" (discriminative: where one sensor dominates)" if r["discriminative"] else ""), ""]
        if r.get("about"):
            out += [r["about"], ""]
        out += [f"Details: [{name}/results.md]({name}/results.md)", ""]
        scens = ("full", "drop_p0.5", "drop_p0.7")
        out += ["| method | " + " | ".join(f"mAP {s} (%)" for s in scens) + " |", "|---|" + "---|" * len(scens)]
        for m, cells in r["headline"].items():
            label = f"{m} (reference)" if m == EXPERTS else m
            out.append(f"| {label} | " + " | ".join(_fmt(cells[s], 100.0, 2) if s in cells else "-" for s in scens) + " |")
        out.append("")
        out += targets_markdown(name, r["targets"], r["sensitivity"])[2:]
        if r.get("experts_lines"):
            out += [f"- {line}" for line in r["experts_lines"]] + [""]
        out.append(f"Regime run time: {r['seconds'] / 60:.1f} min.")
        out.append("")
    out += [f"Total `aecf-ros benchmark` time{total_label or ''}: {total_s / 60:.1f} min (stage 1 is cached under "
            f"`{cfg['cache_dir']}`; a fresh machine also trains the stage-1 encoders once per regime).", ""]
    return "\n".join(out)


def regime_report(payload: Mapping, name: str | None = None) -> dict:
    """Everything computed for one regime from its ``results.json`` (``payload``): aggregate,
    verdict, targets, sensitivity, experts lines, the ``results.md`` text and the summary entry.
    Reads only ``runs``, ``meta``, ``config`` and ``regime`` (so derived fields written by an
    older version, e.g. the legacy ``ceiling`` targets, never reach the text)."""
    runs = normalise_runs(payload["runs"])
    regime = dict(payload.get("regime") or {})
    name = regime.get("name") or name or "regime"
    rcfg = (((payload.get("config") or {}).get("benchmark") or {}).get("regimes") or {}).get(name) or {}
    discriminative = bool(regime.get("discriminative", rcfg.get("discriminative", False)))
    about = str(regime.get("about", rcfg.get("about", "")))
    agg = aggregate(runs)
    ver = verdict(agg)
    tgt = regime_targets(agg, discriminative=discriminative)
    sens = sensitivity(agg)
    exp = experts_lines(agg)
    cal_modes = calibration_modes([r for r in runs if r["method"] != EXPERTS])
    diag = training_diagnostics(runs)
    meta = payload["meta"]
    md = markdown(agg, ver, meta, cal_modes, diag, head=targets_markdown(name, tgt, sens), experts=exp)
    seconds = _num(meta.get("timing", {}).get("total"))
    summary = {"targets": tgt, "sensitivity": sens, "seconds": seconds, "discriminative": discriminative,
               "about": about, "agg": agg, "experts_lines": exp,
               "headline": {m: {s: agg[m][s]["map"] for s in ("full", "drop_p0.5", "drop_p0.7") if s in agg[m]}
                            for m in agg}}
    return {"name": name, "aggregate": agg, "verdict": ver, "targets": tgt, "sensitivity": sens,
            "experts": exp, "calibration_modes": cal_modes, "training_diagnostics": diag,
            "markdown": md, "summary": summary}
