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
