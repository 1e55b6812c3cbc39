"""``aecf-ros benchmark``: every fusion method x several seeds on the SAME embeddings and masks.

Protocol: stage 1 once (camera CNN + PointNet, ``stage1.seed``; cached), then for every method
in ``benchmark.methods`` and every seed in ``benchmark.seeds``: fresh fusion + head (seeded),
identical stage-2 training (epochs, optimiser, batch order, AECF objective terms per
``objective_flags``), calibration on validation with simulated drops, evaluation on the test
split under every scenario with the same masks (``evaluate.scenario_seed``).

Writes to ``--out`` (default ``docs/results``): ``results.md`` (tables + a verdict computed from
the numbers), ``results.json`` (every run + aggregates), ``map_vs_drop.png``,
``reliability.png``, ``gate_weights.png``. ``make bench-ml`` runs it with config/train.yaml.
``results.md`` is rendered from ``results.json`` alone (:func:`aecf_ros.train.report.regime_report`),
so ``--report-only`` (``make bench-report``) regenerates every regime's text and the summary from
the JSON already there, with no training.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aecf_ros.apps.train import add_common_arguments, start_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="docs/results", help="output folder (default %(default)s)")
    parser.add_argument("--methods", help="comma list (config: benchmark.methods)")
    parser.add_argument("--seeds", help="comma list of stage-2 seeds (config: benchmark.seeds)")
    parser.add_argument("--regimes", help="comma list of regimes to run (config: benchmark.regimes; default all)")
    parser.add_argument("--summary-only", action="store_true",
                        help="rebuild --out/results.md from the regimes' results.json already there "
                             "(e.g. after running regimes in parallel processes)")
    parser.add_argument("--report-only", action="store_true",
                        help="regenerate every regime's results.md and --out/results.md from the "
                             "results.json already there (no training, no plots)")
    add_common_arguments(parser)


def run(args) -> int:
    from aecf_ros.model.config import merge_config
    from aecf_ros.train import report

    t_start = time.perf_counter()
    if getattr(args, "report_only", False):
        return report_only(args)
    extra = []
    if args.methods:
        extra.append(f"benchmark.methods=[{args.methods}]")
    if args.seeds:
        extra.append(f"benchmark.seeds=[{args.seeds}]")
    if getattr(args, "regimes", None):
        extra.append(f"benchmark.only_regimes=[{args.regimes}]")
    started = start_run("benchmark", args, extra)
    if started is None:
        return 2
    cfg, dist = started
    if dist.enabled:
        print("aecf-ros benchmark runs in one process (use `aecf-ros train` under torchrun)",
              file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    bench = cfg["benchmark"]
    regimes = dict(bench.get("regimes") or {"standard": {}})
    only = bench.get("only_regimes")
    if only:
        unknown = set(only) - set(regimes)
        if unknown:
            print(f"unknown regime(s) {sorted(unknown)}; configured: {sorted(regimes)}", file=sys.stderr)
            return 2
        regimes = {k: v for k, v in regimes.items() if k in only}
    summary = {}
    if getattr(args, "summary_only", False):
        for name, regime in regimes.items():
            path = out_dir / name / "results.json"
            if not path.is_file():
                print(f"--summary-only: {path} missing (run that regime first)", file=sys.stderr)
                return 2
            summary[name] = regime_summary(json.loads(path.read_text()), regime or {}, name)
        total = sum(r["seconds"] for r in summary.values())
        (out_dir / "results.md").write_text(report.summary_markdown(summary, total, cfg))
        print(f"[bench] rebuilt {out_dir}/results.md from {', '.join(summary)}")
        return 0
    for name, regime in regimes.items():
        override = {"data": {"scene": dict((regime or {}).get("scene") or {})}}
        if (regime or {}).get("moddrop_p") is not None:  # ModDrop tuned per regime on validation
            override["model"] = {"fusion": {"moddrop_p": float(regime["moddrop_p"])}}
        rcfg = merge_config(cfg, override)
        print(f"[bench] regime {name}: scene overrides {rcfg['data']['scene'] or 'none'}", flush=True)
        summary[name] = run_regime(rcfg, args, dist, out_dir / name, name,
                                   discriminative=bool((regime or {}).get("discriminative", False)),
                                   about=str((regime or {}).get("about", "")),
                                   tuning=str((regime or {}).get("moddrop_tuning", "")))
    total = time.perf_counter() - t_start
    (out_dir / "results.md").write_text(report.summary_markdown(summary, total, cfg))
    print(f"[bench] wrote {out_dir}/results.md and per-regime folders in {total:.1f}s")
    return 0


def regime_render(payload: dict, regime: dict, name: str | None = None) -> dict:
    """:func:`aecf_ros.train.report.regime_report` of one regime's written results.json; a JSON
    written before the ``regime`` key existed takes the regime's flags from the config."""
    from aecf_ros.train import report

    payload = {**payload, "regime": {"name": name, "discriminative": bool(regime.get("discriminative", False)),
                                     "about": str(regime.get("about", "")), **(payload.get("regime") or {})}}
    return report.regime_report(payload, name)


def regime_summary(payload: dict, regime: dict, name: str | None = None) -> dict:
    """The summary entry of one regime from its written results.json (recomputed from its runs)."""
    return regime_render(payload, regime, name)["summary"]


def report_only(args) -> int:
    """``--report-only``: every configured regime's results.md (+ the summary) from its results.json."""
    from aecf_ros.apps.train import config_from_args
    from aecf_ros.train import report

    extra = [f"benchmark.only_regimes=[{args.regimes}]"] if getattr(args, "regimes", None) else []
    try:
        cfg = config_from_args(args, extra)
    except (ValueError, FileNotFoundError) as exc:
        print(f"aecf-ros benchmark: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    regimes = dict(cfg["benchmark"].get("regimes") or {"standard": {}})
    only = cfg["benchmark"].get("only_regimes")
    if only:
        regimes = {k: v for k, v in regimes.items() if k in only}
    summary, first = {}, None
    for name, regime in regimes.items():
        path = out_dir / name / "results.json"
        if not path.is_file():
            print(f"--report-only: {path} missing (run that regime first)", file=sys.stderr)
            return 2
        payload = json.loads(path.read_text())
        first = first or payload
        rep = regime_render(payload, regime or {}, name)
        summary[name] = rep["summary"]
        (out_dir / name / "results.md").write_text(rep["markdown"])
        print(f"[bench] regenerated {out_dir / name / 'results.md'} from its results.json")
    total = sum(r["seconds"] for r in summary.values())
    run_cfg = {**cfg, "benchmark": {**cfg["benchmark"], "seeds": first["config"]["benchmark"]["seeds"]},
               "cache_dir": first["config"].get("cache_dir", cfg["cache_dir"])}
    (out_dir / "results.md").write_text(report.summary_markdown(summary, total, run_cfg,
                                                                " (sum of the regimes' run times)"))
    print(f"[bench] regenerated {out_dir}/results.md from {', '.join(summary)}")
    return 0


def run_regime(cfg, args, dist, out_dir: Path, name: str, *, discriminative: bool, about: str,
               tuning: str = "") -> dict:
    """Every method x seed (+ the per-pattern experts) on one regime's embeddings; writes
    ``out_dir/{results.md, results.json, *.png}`` and returns the regime's targets."""
    from aecf_ros.apps.train import format_command
    from aecf_ros.train import report
    from aecf_ros.train.per_pattern_experts import PER_PATTERN_EXPERTS, enabled, train_per_pattern_experts
    from aecf_ros.train.pipeline import (build_untrained, embedding_only_model, environment_info,
                                         run_methods)
    from aecf_ros.train.stage1 import cache_path, final_test_set, prepare_embeddings, split_set

    t_start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = bool(cfg.get("progress", True))
    methods = list(cfg["benchmark"]["methods"])
    seeds = [int(s) for s in cfg["benchmark"]["seeds"]]
    print(f"[bench] {name}: methods={methods} seeds={seeds} device={dist.device}", flush=True)

    model = build_untrained(cfg)
    model.to(dist.device)
    t0 = time.perf_counter()
    cache = prepare_embeddings(model, cfg, dist=dist, progress=progress)
    stage1_s = time.perf_counter() - t0
    train, val, test = (split_set(cache, s, model.modalities) for s in ("train", "val", "test"))
    final = final_test_set(model, cfg)
    if final is not None:  # the reported split; data.seed's test range is the development split
        test = final
    t1 = time.perf_counter()
    runs = run_methods(lambda method: model, train, val, test, cfg, methods, seeds, dist=dist,
                       progress=progress)
    with_experts = enabled(cfg["benchmark"])
    if with_experts:
        def fresh(method):
            return embedding_only_model(cfg, model.modalities, model.embedding_dims,
                                        model.class_names, method).to(dist.device)
        for seed in seeds:
            res = train_per_pattern_experts(fresh, train, val, test, cfg, seed, dist=dist)
            ev = res["evaluation"]["scenarios"]
            print(f"[bench] {PER_PATTERN_EXPERTS:20s} seed {seed}: full mAP {ev['full']['map']:.4f}  p0.5 mAP "
                  f"{ev['drop_p0.5']['map']:.4f}  ({res['seconds']:.1f}s)", flush=True)
            runs.append(res)
    stage2_s = time.perf_counter() - t1
    digests = {r["evaluation"]["mask_digest"] for r in runs}
    assert len(digests) == 1, "scenario masks differ between runs"
    total = time.perf_counter() - t_start
    st1 = cache.get("stage1", {})
    meta = {
        "seeds": seeds,
        "setup": {
            "regime": f"{name}: {about}" if about else name,
            "command": format_command("benchmark", args),
            "data": f"generated scenes, stream seed {cfg['data']['seed']}, scene overrides "
                    f"{cfg['data']['scene'] or 'none'}: {cfg['data']['n_encoder']} "
                    f"encoder-training / {cfg['data']['n_train']} fusion-training / "
                    f"{cfg['data']['n_val']} validation / {cfg['data']['n_test']} development scenes (disjoint)",
            "test split": (f"FINAL: {len(test)} scenes of stream seed {test.meta['stream_seed']}, never used "
                           "to design or choose anything (regimes, AECF defaults and sweeps used "
                           "train/validation and the development split)" if final is not None else
                           "the development split (benchmark.final_test not configured)"),
            "tuning": (f"ModDrop p = {cfg['model']['fusion'].get('moddrop_p')}: {tuning}. AECF: the "
                       "library defaults (CurriculumConfig/AECFObjective), chosen by the same sweep"
                       if tuning else f"ModDrop p = {cfg['model']['fusion'].get('moddrop_p')} (config)"),
            "encoders": f"camera {cfg['model'].get('camera') or 'default'}, lidar "
                        f"{cfg['model'].get('lidar') or 'default'} trained once in stage 1 "
                        f"({cfg['stage1']['epochs']} epochs, seed {cfg['stage1'].get('seed', 0)}); "
                        f"text {model.encoder_ids['text']} frozen",
            "stage 2": f"{cfg['stage2']['epochs']} epochs, batch {cfg['stage2']['batch_size']}, AdamW "
                       f"lr {cfg['stage2']['lr']} cosine, identical for every method",
            "scenario masks": f"seed {cfg['evaluate']['scenario_seed']}, digest {digests.pop()} "
                              f"(identical for all {len(runs)} runs)",
            "chance mAP (mean class prevalence of the test split)":
                f"{100 * runs[0]['evaluation']['chance_map']:.1f}",
            "device": f"{dist.device} ({environment_info()['platform']}, torch {environment_info()['torch']}, "
                      f"{cfg.get('threads')} threads)",
        },
        "timing": {"stage 1 incl. scene generation + embedding (0 if cached)": stage1_s,
                   "stage 2, all runs": stage2_s, "total": total,
                   "stage 1 as originally measured when the cache was built": st1.get("seconds", float("nan"))},
    }
    slim = []
    for r in runs:
        r = dict(r)
        if r["seed"] != seeds[0]:
            r["evaluation"] = {**r["evaluation"], "scenarios": {
                k: {kk: vv for kk, vv in v.items() if kk != "reliability"}
                for k, v in r["evaluation"]["scenarios"].items()}}
        slim.append(r)
    payload = {"config": cfg, "meta": meta, "regime": {"name": name, "discriminative": discriminative, "about": about},
               "runs": slim, "cache": str(cache_path(cfg)), "stage1_history": st1}
    # everything derived (verdict, targets, text) is computed from the JSON as written, so
    # ``--report-only`` regenerates the same results.md from results.json
    rep = report.regime_report(json.loads(json.dumps(report.nan_safe(payload), default=float)), name)
    agg, tgt = rep["aggregate"], rep["targets"]
    payload.update({k: rep[k] for k in ("verdict", "targets", "sensitivity", "aggregate", "calibration_modes",
                                        "training_diagnostics")})
    written = report.plots(agg, runs, out_dir, model.modalities)
    (out_dir / "results.json").write_text(json.dumps(report.nan_safe(payload), indent=1, default=float))
    (out_dir / "results.md").write_text(rep["markdown"])
    print("\n".join([f"[bench] {name} targets:"] + [
        f"  {c['status']}: {c['target']} ({c['detail']})" for c in tgt["checks"]]))
    print(f"[bench] wrote {out_dir}/results.md, results.json, {', '.join(written)} in {total:.1f}s")
    return {**rep["summary"], "seconds": total,
            "methods": methods + ([PER_PATTERN_EXPERTS] if with_experts else [])}
