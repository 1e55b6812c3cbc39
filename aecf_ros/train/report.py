"""Benchmark aggregation, the honest verdict, ``results.md`` and the PNG plots.

Everything printed in the verdict is computed from the aggregated numbers; nothing is
hand-written. "Seed spread" = the larger of the two methods' standard deviations over seeds.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

BASELINES = ("concat", "mean", "attention", "moddrop")
TABLE_METRICS = ("map", "ece_raw", "ece_global", "ece_presence", "ece_platt", "ece_model", "crr")
CALIBRATORS = (("ece_raw", "raw (no calibration)"), ("ece_global", "global temperature"),
               ("ece_presence", "presence-aware temperature"),
               ("ece_platt", "presence-aware Platt (temperature + per-class bias)"))


def aggregate(runs: Sequence[Mapping]) -> dict:
    """runs -> {method: {scenario: {metric: {"mean", "std", "n", "values"}}}}."""
    out: dict = {}
    by_method: dict = {}
    for r in runs:
        by_method.setdefault(r["method"], []).append(r)
    for method, rs in by_method.items():
        out[method] = {}
        for scen in rs[0]["evaluation"]["scenarios"]:
            out[method][scen] = {}
            for metric in TABLE_METRICS + ("map_raw", "crr_presence", "entropy_mean"):
                vals = [float(r["evaluation"]["scenarios"][scen][metric]) for r in rs]
                out[method][scen][metric] = {
                    "mean": float(np.mean(vals)),
                    "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                    "n": len(vals), "values": vals}
            gates = np.array([r["evaluation"]["scenarios"][scen]["gate_mean"] for r in rs])
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
    """method -> per-epoch means over seeds of masked_per_sample / drop_fraction / gate_entropy."""
    by: dict = {}
    for r in runs:
        diag = r.get("history", {}).get("diagnostics") or []
        if diag and "masked_per_sample" in diag[0]:
            by.setdefault(r["method"], []).append(diag)
    out = {}
    for method, ds in by.items():
        n = min(len(d) for d in ds)
        out[method] = {k: [float(np.mean([d[i][k] for d in ds])) for i in range(n)]
                       for k in ("masked_per_sample", "drop_fraction", "gate_entropy")}
        out[method]["epoch"] = list(range(1, n + 1))
    return out


def diagnostics_markdown(diag: Mapping, agg: Mapping) -> list[str]:
    """Table + a paragraph computed from the stage-2 diagnostics (why the ablations act as they do)."""
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
    lines = []
    if "aecf" in diag:
        a = diag["aecf"]
        mean_mask = float(np.mean(a["masked_per_sample"]))
        mean_frac = float(np.mean(a["drop_fraction"]))
        mean_h = float(np.mean(a["gate_entropy"]))
        text = (f"Measured: over stage 2 the AECF curriculum removed on average {mean_mask:.3f} of "
                f"3 modalities per sample ({100 * mean_frac:.1f} % of the present ones) while the "
                f"mean normalised gate entropy was {mean_h:.3f}; its masking probability is "
                f"base_rate x (1 - H), so a near-uniform gate (H close to 1) masks almost nothing")
        if "moddrop" in diag:
            md = diag["moddrop"]
            text += (f", whereas ModDrop removed {float(np.mean(md['masked_per_sample'])):.3f} per sample "
                     f"({100 * float(np.mean(md['drop_fraction'])):.1f} %)")
        text += "."
        lines.append(text)
        if "aecf_no_curriculum" in agg and "drop_p0.5" in agg["aecf"]:
            d = 100 * (agg["aecf"]["drop_p0.5"]["map"]["mean"] - agg["aecf_no_curriculum"]["drop_p0.5"]["map"]["mean"])
            s = max(agg["aecf"]["drop_p0.5"]["map"]["std"], agg["aecf_no_curriculum"]["drop_p0.5"]["map"]["std"]) * 100
            lines.append(f"Removing the curriculum changes drop_p0.5 mAP by {-d:+.2f} pp (seed spread {s:.2f} pp)"
                         + (": within the spread, as expected when the curriculum masks so little."
                            if abs(d) <= s else "."))
        if "aecf_no_entropy" in diag:
            e = diag["aecf_no_entropy"]
            lines.append(f"Without the entropy regulariser the gate entropy is {float(np.mean(e['gate_entropy'])):.3f} "
                         f"and the curriculum removes {float(np.mean(e['masked_per_sample'])):.3f} modalities "
                         f"per sample: the regulariser pushes H up and so switches its own curriculum off.")
        if "aecf_no_calibration" in diag and "aecf_no_calibration" in agg and "drop_p0.5" in agg["aecf"]:
            c = diag["aecf_no_calibration"]
            a5, c5 = agg["aecf"]["drop_p0.5"], agg["aecf_no_calibration"]["drop_p0.5"]
            line = (f"aecf_no_calibration masks {float(np.mean(c['masked_per_sample'])):.3f} per sample at "
                    f"H = {float(np.mean(c['gate_entropy'])):.3f}, like AECF, so it differs only by the "
                    f"subset-calibration loss term: at drop_p0.5 that term changes raw ECE by "
                    f"{100 * (a5['ece_raw']['mean'] - c5['ece_raw']['mean']):+.2f} pp")
            if "ece_platt" in a5:
                line += (f" but ECE after the post-hoc presence-aware Platt scaler by only "
                         f"{100 * (a5['ece_platt']['mean'] - c5['ece_platt']['mean']):+.2f} pp: the "
                         f"validation-fitted calibrator does the same job after training")
            lines.append(line + ".")
    if lines:
        out += ["", " ".join(lines)]
    return out


def verdict(agg: Mapping, aecf: str = "aecf", ece_target: float = 0.02) -> dict:
    """Answers to the three questions, computed from ``agg``."""
    res: dict = {"aecf_method": aecf, "baselines": [b for b in BASELINES if b in agg]}
    if aecf not in agg or not res["baselines"]:
        res["lines"] = ["AECF or every baseline missing from the benchmark: no verdict."]
        return res
    lines = []
    high = [s for s in agg[aecf] if s.startswith("drop_p") and float(s[6:]) >= 0.5]
    wins = {}
    for scen in high:
        best = max(res["baselines"], key=lambda b: agg[b][scen]["map"]["mean"])
        a, b = agg[aecf][scen]["map"], agg[best][scen]["map"]
        diff = a["mean"] - b["mean"]
        spread = max(a["std"], b["std"])
        win = diff > spread
        wins[scen] = {"strongest_baseline": best, "diff_pp": 100 * diff, "spread_pp": 100 * spread,
                      "beats_by_more_than_spread": bool(win)}
        lines.append(
            f"{scen}: AECF mAP {100 * a['mean']:.2f} ± {100 * a['std']:.2f} vs strongest baseline "
            f"{best} {100 * b['mean']:.2f} ± {100 * b['std']:.2f}: difference {100 * diff:+.2f} pp, "
            f"seed spread {100 * spread:.2f} pp -> "
            + ("AECF WINS by more than the seed spread." if win else "AECF does NOT beat it by more than the seed spread."))
    res["high_drop"] = wins
    best_full = max(res["baselines"], key=lambda b: agg[b]["full"]["map"]["mean"])
    d_full = agg[aecf]["full"]["map"]["mean"] - agg[best_full]["full"]["map"]["mean"]
    within = d_full >= -0.005
    res["full"] = {"strongest_baseline": best_full, "diff_pp": 100 * d_full, "within_0.5pp": bool(within)}
    lines.append(
        f"full (all modalities): AECF {100 * agg[aecf]['full']['map']['mean']:.2f} vs {best_full} "
        f"{100 * agg[best_full]['full']['map']['mean']:.2f} ({100 * d_full:+.2f} pp) -> "
        + ("within 0.5 pp (or better)." if within else "MORE than 0.5 pp worse."))
    res["ece"] = {}
    for metric, label in CALIBRATORS[1:] + (("ece_model", "the model's default calibrator (chosen on validation)"),):
        if metric not in next(iter(agg[aecf].values())):
            continue
        bad = {s: agg[aecf][s][metric]["mean"] for s in agg[aecf] if agg[aecf][s][metric]["mean"] > ece_target}
        res["ece"][metric] = {"target": ece_target, "all_ok": not bad, "above_target": bad,
                              "max": max(agg[aecf][s][metric]["mean"] for s in agg[aecf])}
        if bad:
            worst = max(bad, key=bad.get)
            lines.append(f"AECF ECE after {label} is NOT <= {ece_target} everywhere: {len(bad)}/{len(agg[aecf])} "
                         f"scenarios above it (worst {worst}: {bad[worst]:.4f}).")
        else:
            lines.append(f"AECF ECE after {label} is <= {ece_target} in every scenario "
                         f"(max {res['ece'][metric]['max']:.4f}).")
    # ablations: which component matters at p = 0.5
    abl = {}
    scen = "drop_p0.5" if "drop_p0.5" in agg[aecf] else high[0] if high else "full"
    for name in ("aecf_no_curriculum", "aecf_no_entropy", "aecf_no_calibration"):
        if name in agg:
            abl[name] = {
                "map_diff_pp": 100 * (agg[aecf][scen]["map"]["mean"] - agg[name][scen]["map"]["mean"]),
                "crr_diff": agg[aecf][scen]["crr"]["mean"] - agg[name][scen]["crr"]["mean"],
                "ece_raw_diff": agg[aecf][scen]["ece_raw"]["mean"] - agg[name][scen]["ece_raw"]["mean"]}
            lines.append(
                f"ablation {name} at {scen}: full AECF minus ablation = "
                f"{abl[name]['map_diff_pp']:+.2f} pp mAP, {abl[name]['crr_diff']:+.3f} confidence-rise rate, "
                f"{abl[name]['ece_raw_diff']:+.4f} raw ECE.")
    res["ablations"] = abl
    res["lines"] = lines
    return res


def _fmt(cell: Mapping, scale: float = 100.0, digits: int = 1) -> str:
    return f"{scale * cell['mean']:.{digits}f} ± {scale * cell['std']:.{digits}f}"


def markdown(agg: Mapping, ver: Mapping, meta: Mapping, cal_modes: Mapping | None = None,
             diag: Mapping | None = None) -> str:
    methods = list(agg)
    scens = list(next(iter(agg.values())))
    out = ["# AECF benchmark results", "",
           "Generated by `aecf-ros benchmark` (numbers are measured; see `results.json` for every "
           "run). Mean ± std over seeds " + ", ".join(str(s) for s in meta.get("seeds", [])) + ".", ""]
    out += ["## Setup", ""]
    for k, v in meta.get("setup", {}).items():
        out.append(f"- {k}: {v}")
    out += ["", "## Verdict (computed from the numbers below)", ""]
    out += [f"- {line}" for line in ver.get("lines", [])]
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
            out.append(f"| {m} | " + " | ".join(_fmt(agg[m][s][metric], scale, digits) for s in scens) + " |")
    out += diagnostics_markdown(diag or {}, agg)
    out += ["", "## Plots", "", "![mAP vs drop rate](map_vs_drop.png)", "",
            "![reliability](reliability.png)", "", "![gate weights](gate_weights.png)", "",
            "## Timing", ""]
    for k, v in meta.get("timing", {}).items():
        out.append(f"- {k}: {v:.1f} s" if isinstance(v, (int, float)) else f"- {k}: {v}")
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


# ----------------------------------------------------------------------------- paired verdicts
# two-sided 95 % Student-t quantiles t_{0.975, df}, df = 1..30 (beyond: 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def paired_ci(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of the per-seed differences ``a_s - b_s`` with its two-sided 95 % t interval.

    ``a`` and ``b`` are the same seeds of two methods (same data, masks, batch order), so the
    difference is paired. ``beats`` = the interval lies entirely above 0, ``worse`` = entirely
    below 0."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = int(d.size)
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        half = float("nan")
    else:
        t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
        half = float(t * d.std(ddof=1) / math.sqrt(n))
    lo, hi = mean - half, mean + half
    return {"mean": mean, "lo": lo, "hi": hi, "n": n,
            "beats": bool(n >= 2 and lo > 0), "worse": bool(n >= 2 and hi < 0)}


def _values(agg: Mapping, method: str, scen: str, metric: str = "map") -> list[float]:
    return list(agg[method][scen][metric]["values"])


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


def regime_targets(agg: Mapping, *, aecf: str = "aecf", ceiling: str | None = None,
                   discriminative: bool = False, ece_two: float = 0.02, ece_one: float = 0.04) -> dict:
    """The issue-12 targets for one regime, each met / not met, computed from ``agg``.

    * per scenario: AECF minus the best baseline (highest mean mAP among :data:`BASELINES`),
      paired over seeds with its 95 % interval; "worse" = interval entirely below 0;
    * full input: AECF within 0.5 pp of the best method (mean);
    * ECE of the model output <= ``ece_two`` where the scenario keeps >= 2 sensors on average,
      <= ``ece_one`` otherwise;
    * discriminative regime only: at drop_p0.5 and drop_p0.7 AECF beats ModDrop (interval above
      0) and closes at least half of the ModDrop -> ceiling gap (mean).
    """
    bases = [b for b in BASELINES if b in agg]
    scens = list(agg[aecf])
    out: dict = {"per_scenario": {}, "lines": []}
    worse_any = []
    for scen in scens:
        best = max(bases, key=lambda b: agg[b][scen]["map"]["mean"])
        ci = paired_ci(_values(agg, aecf, scen), _values(agg, best, scen))
        row = {"best_baseline": best, "diff_pp": {k: 100 * ci[k] for k in ("mean", "lo", "hi")},
               "beats": ci["beats"], "worse": ci["worse"], "n": ci["n"]}
        if "moddrop" in agg:
            md = paired_ci(_values(agg, aecf, scen), _values(agg, "moddrop", scen))
            row["vs_moddrop_pp"] = {k: 100 * md[k] for k in ("mean", "lo", "hi")}
            row["beats_moddrop"] = md["beats"]
        if ceiling and ceiling in agg:
            c = agg[ceiling][scen]["map"]["mean"]
            m = agg["moddrop"][scen]["map"]["mean"] if "moddrop" in agg else float("nan")
            a = agg[aecf][scen]["map"]["mean"]
            gap = c - m
            row["ceiling_map"] = 100 * c
            row["gap_closed"] = float((a - m) / gap) if gap > 1e-6 else float("nan")
        ece = agg[aecf][scen]["ece_model"]["mean"]
        target = ece_two if mean_present(scen) >= 2 else ece_one
        row["ece_model"] = ece
        row["ece_target"] = target
        row["ece_ok"] = bool(ece <= target)
        out["per_scenario"][scen] = row
        if ci["worse"]:
            worse_any.append(scen)
    checks = []
    full_best = max([m for m in agg if m != ceiling], key=lambda m: agg[m]["full"]["map"]["mean"])
    d_full = 100 * (agg[aecf]["full"]["map"]["mean"] - agg[full_best]["full"]["map"]["mean"])
    checks.append(("full-input mAP within 0.5 pp of the best method",
                   d_full >= -0.5, f"AECF {d_full:+.2f} pp vs {full_best}"))
    checks.append(("in no scenario worse than the best baseline (95 % interval entirely below 0)",
                   not worse_any, "worse in: " + ", ".join(worse_any) if worse_any else "none worse"))
    bad_ece = [s for s, r in out["per_scenario"].items() if not r["ece_ok"]]
    checks.append(("ECE <= 0.02 with >= 2 sensors, <= 0.04 with one (model output)",
                   not bad_ece, ("above target: " + ", ".join(
                       f"{s} {100 * out['per_scenario'][s]['ece_model']:.2f}%" for s in bad_ece))
                   if bad_ece else f"max {100 * max(r['ece_model'] for r in out['per_scenario'].values()):.2f}%"))
    if discriminative:
        for scen in ("drop_p0.5", "drop_p0.7"):
            if scen not in out["per_scenario"] or "vs_moddrop_pp" not in out["per_scenario"][scen]:
                continue
            r = out["per_scenario"][scen]
            v = r["vs_moddrop_pp"]
            checks.append((f"{scen}: beats tuned ModDrop (95 % interval above 0)", r["beats_moddrop"],
                           f"{v['mean']:+.2f} pp [{v['lo']:+.2f}, {v['hi']:+.2f}]"))
            if "gap_closed" in r:
                checks.append((f"{scen}: closes >= half of the ModDrop -> ceiling gap",
                               bool(r["gap_closed"] >= 0.5),
                               f"closed {100 * r['gap_closed']:.0f} % (ceiling {r['ceiling_map']:.2f})"))
    out["checks"] = [{"target": t, "met": bool(ok), "detail": d} for t, ok, d in checks]
    out["all_met"] = all(c["met"] for c in out["checks"])
    return out


def sensitivity(agg: Mapping, scen: str = "drop_p0.5") -> dict:
    """ModDrop minus attention at ``scen`` (paired over seeds): >= 3 pp = the regime can tell
    masking-trained from full-input-trained fusion apart."""
    if "moddrop" not in agg or "attention" not in agg or scen not in agg["moddrop"]:
        return {}
    ci = paired_ci(_values(agg, "moddrop", scen), _values(agg, "attention", scen))
    return {"scenario": scen, "moddrop_minus_attention_pp": {k: 100 * ci[k] for k in ("mean", "lo", "hi")},
            "discriminative": bool(100 * ci["mean"] >= 3.0)}


def targets_markdown(name: str, tgt: Mapping, sens: Mapping) -> list[str]:
    out = [f"### Regime `{name}`", ""]
    if sens:
        s = sens["moddrop_minus_attention_pp"]
        out.append(f"Sensitivity: ModDrop minus attention at {sens['scenario']} = {s['mean']:+.2f} pp "
                   f"[95 % CI {s['lo']:+.2f}, {s['hi']:+.2f}] -> "
                   + ("the regime CAN tell missing-modality training apart (>= 3 pp)."
                      if sens["discriminative"] else
                      "below 3 pp: this regime does NOT test the missing-modality claim."))
        out.append("")
    out += ["| target | met | measured |", "|---|---|---|"]
    for c in tgt["checks"]:
        out.append(f"| {c['target']} | {'met' if c['met'] else 'NOT met'} | {c['detail']} |")
    out += ["", "| scenario | best baseline | AECF − best baseline (pp, 95 % CI) | AECF − ModDrop (pp, 95 % CI) "
            "| ceiling mAP | gap closed | AECF ECE (model) | ECE target |", "|---|---|---|---|---|---|---|---|"]
    for scen, r in tgt["per_scenario"].items():
        d = r["diff_pp"]
        v = r.get("vs_moddrop_pp")
        out.append(
            f"| {scen} | {r['best_baseline']} | {d['mean']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}] | "
            + (f"{v['mean']:+.2f} [{v['lo']:+.2f}, {v['hi']:+.2f}]" if v else "-") + " | "
            + (f"{r['ceiling_map']:.2f}" if "ceiling_map" in r else "-") + " | "
            + (f"{100 * r['gap_closed']:.0f} %" if "gap_closed" in r and math.isfinite(r["gap_closed"]) else "-")
            + f" | {100 * r['ece_model']:.2f} % | {100 * r['ece_target']:.0f} % |")
    return out + [""]


def summary_markdown(summary: Mapping, total_s: float, cfg: Mapping) -> str:
    """``docs/results/results.md``: every regime's sensitivity, headline mAP and targets."""
    seeds = cfg["benchmark"]["seeds"]
    out = ["# AECF benchmark: summary of every regime", "",
           "Generated by `aecf-ros benchmark` (`make bench-ml`); every number is measured and every "
           "verdict computed from them. Methods are trained on the same cached embeddings with the "
           f"same presence masks, epochs and optimiser; seeds {', '.join(map(str, seeds))} "
           f"(n = {len(seeds)}). Differences are paired over seeds with their 95 % Student-t "
           "interval; \"beats\" means the interval lies above 0. Per-regime details (every method, "
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
            out.append(f"| {m} | " + " | ".join(_fmt(cells[s], 100.0, 2) if s in cells else "-" for s in scens) + " |")
        out.append("")
        out += targets_markdown(name, r["targets"], r["sensitivity"])[2:]
        out.append(f"Regime run time: {r['seconds'] / 60:.1f} min.")
        out.append("")
    out += [f"Total `aecf-ros benchmark` time: {total_s / 60:.1f} min (stage 1 is cached under "
            f"`{cfg['cache_dir']}`; a fresh machine also trains the stage-1 encoders once per regime).", ""]
    return "\n".join(out)
