"""``aecf-ros sweep``: equal-budget hyper-parameter selection on validation, then a test comparison.

Examples::

    aecf-ros sweep                                        # config/train.yaml + config/sweep.yaml
    aecf-ros sweep --out docs/results/sweep               # (make bench-sweep)
    aecf-ros sweep --config config/train_tiny.yaml --sweep my_sweep.yaml --out /tmp/sweep

Stage 1 runs once (or hits the embedding cache), then :func:`aecf_ros.train.sweep.run_sweep`:
every method of the sweep spec gets the same number of configurations, each is scored on the
VALIDATION split only, the best of each method is retrained with the final seeds and evaluated
on TEST with the standard protocol. Writes ``sweep.json`` and ``sweep.md`` (rendered from the
JSON as written) to ``--out``; ``--report-only`` re-renders ``sweep.md`` from the ``sweep.json``
already there, with no training (``make bench-report``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aecf_ros.apps.train import add_common_arguments, config_from_args, setup_runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from aecf_ros.train.sweep import DEFAULT_SWEEP_PATH

    parser.add_argument("--out", default="docs/results/sweep", help="output folder (default %(default)s)")
    parser.add_argument("--sweep", default=str(DEFAULT_SWEEP_PATH),
                        help="sweep spec YAML (default: %(default)s)")
    parser.add_argument("--regime", help="a benchmark regime of the training config (benchmark.regimes): "
                                         "its scene overrides are applied (default: the config's data as is)")
    parser.add_argument("--report-only", action="store_true",
                        help="regenerate --out/sweep.md from the sweep.json already there (no training)")
    add_common_arguments(parser)


def report_only(out_dir: Path) -> int:
    from aecf_ros.train import sweep as S

    path = out_dir / "sweep.json"
    if not path.is_file():
        print(f"aecf-ros sweep --report-only: {path} missing (run the sweep first)", file=sys.stderr)
        return 2
    (out_dir / "sweep.md").write_text(S.report_from_json(json.loads(path.read_text())))
    print(f"[sweep] regenerated {out_dir}/sweep.md from sweep.json")
    return 0


def run(args) -> int:
    from aecf_ros.apps.train import format_command
    from aecf_ros.train import sweep as S
    from aecf_ros.train.report import nan_safe
    from aecf_ros.train.pipeline import build_untrained, environment_info
    from aecf_ros.train.stage1 import prepare_embeddings, split_set

    if getattr(args, "report_only", False):
        return report_only(Path(args.out))
    t_start = time.perf_counter()
    for attr in ("sweep", "config"):
        try:  # record repository-relative paths
            setattr(args, attr, str(Path(getattr(args, attr)).resolve().relative_to(Path.cwd().resolve())))
        except ValueError:
            pass
    try:
        cfg = config_from_args(args)
        if args.regime:
            regimes = cfg["benchmark"].get("regimes") or {}
            if args.regime not in regimes:
                raise ValueError(f"unknown regime {args.regime!r}; configured: {sorted(regimes)}")
            from aecf_ros.model.config import merge_config

            scene = dict((regimes[args.regime] or {}).get("scene") or {})
            cfg = merge_config(cfg, {"data": {"scene": scene}})
        spec = S.parse_sweep(S.load_sweep(args.sweep), cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"aecf-ros sweep: {exc}", file=sys.stderr)
        return 2
    dist = setup_runtime(cfg)
    if dist.enabled:
        print("aecf-ros sweep runs in one process", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"[sweep] budget {spec['budget']} per method: "
          + ", ".join(f"{m} {len(c)}" for m, c in spec["configs"].items()) + f"; device={dist.device}", flush=True)
    model = build_untrained(cfg)
    model.to(dist.device)
    t0 = time.perf_counter()
    cache = prepare_embeddings(model, cfg, dist=dist, progress=bool(cfg.get("progress", True)))
    stage1_s = time.perf_counter() - t0
    train, val, test = (split_set(cache, s, model.modalities) for s in ("train", "val", "test"))
    result = S.run_sweep(lambda method: model, train, val, test, cfg, spec, dist=dist)
    total = time.perf_counter() - t_start
    env = environment_info()
    n_runs = sum(len(c) for c in spec["configs"].values()) * len(spec["selection"]["seeds"])
    meta = {
        "setup": {
            "command": format_command("sweep", args),
            "data": f"generated scenes, stream seed {cfg['data']['seed']}: {cfg['data']['n_train']} "
                    f"fusion-training / {cfg['data']['n_val']} validation / {cfg['data']['n_test']} test scenes "
                    f"(disjoint); stage-1 embeddings shared by every run",
            "stage 2": f"{cfg['stage2']['epochs']} epochs, batch {cfg['stage2']['batch_size']}, AdamW lr "
                       f"{cfg['stage2']['lr']} cosine, identical for every run; everything not swept as in "
                       f"{args.config}",
            "runs": f"{n_runs} selection runs + {len(result['final_runs'])} final runs",
            "device": f"{dist.device} ({env['platform']}, torch {env['torch']}, {cfg.get('threads')} threads)",
        },
        "timing": {"stage 1 (0 if cached)": stage1_s, "selection (validation)": result["timing"]["selection_s"],
                   "final (test)": result["timing"]["final_s"], "total wall time": total},
    }
    payload = {"config": cfg, "sweep_spec": {k: v for k, v in spec.items()}, "meta": meta, **result}
    text = json.dumps(nan_safe(payload), indent=1, default=float)
    (out_dir / "sweep.json").write_text(text)
    (out_dir / "sweep.md").write_text(S.report_from_json(json.loads(text)))  # = what --report-only writes
    print("\n".join(["[sweep] verdict:"] + [f"  {line}" for line in result["verdict"]["lines"]]))
    print(f"[sweep] wrote {out_dir}/sweep.md, sweep.json in {total:.1f}s")
    return 0
