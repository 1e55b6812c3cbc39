"""``aecf-ros evaluate``: score a model (or every method on a feature file) under sensor drops.

Scenarios (see :mod:`aecf_ros.train.scenarios`): ``full``; ``no_<m>`` (one modality missing);
``only_<m>`` (each pair missing); ``drop_p0.1/0.3/0.5/0.7`` (i.i.d. per-modality drop, at
least one kept, seeded by ``--scenario-seed``). Every model/method evaluated with the same seed
gets the SAME presence mask per scenario (``mask_digest`` in the JSON proves it). Metrics per
scenario: macro mAP, ECE before temperature scaling / after the global temperature / after the
presence-aware temperature (both fitted on validation with simulated drops at training time),
and the confidence-rise rate (see :mod:`aecf_ros.train.evaluation`).

Usage::

    aecf-ros evaluate --model aecf_ros/models/default.pt --json build/eval.json
        # re-generates the model's own held-out test scenes (recorded in its metadata) and
        # encodes them with the model's encoders (the run-time preprocessing path)
    aecf-ros evaluate --model M --features feats.npz --json out.json
        # evaluate M on a user feature file (modalities and widths must match M)
    aecf-ros evaluate --features feats.npz --json out.json [--methods aecf,moddrop] [--seeds 0,1,2]
        # the stage-2 protocol on the file itself: train every method on split "train"
        # (seeded 60/20/20 split when the file has none), calibrate on "val", score "test"
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aecf_ros.apps.train import add_common_arguments, start_run
from aecf_ros.train.config import METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model bundle (default: the shipped default model)")
    parser.add_argument("--features", help="user .npz feature file (see aecf_ros.data.features)")
    parser.add_argument("--dataset", metavar="DIR",
                        help="a dataset of the robot's bags (aecf-ros dataset): its test part, per recorded "
                             "presence pattern and per drop scenario; the model must have its encoders")
    parser.add_argument("--json", required=True, help="write the results here")
    parser.add_argument("--scenario-seed", type=int, help="seed of the drop masks (config: 0)")
    parser.add_argument("--n-test", type=int, help="number of generated test scenes (default: "
                        "the model's own test split)")
    parser.add_argument("--methods", help="comma list for --features without --model "
                        f"(default all: {','.join(METHODS)})")
    parser.add_argument("--seeds", default="0", help="comma list of stage-2 seeds (--features)")
    add_common_arguments(parser)


def features_to_sets(path: str, modalities=None, seed: int = 0):
    """FeatureSet -> dict split -> EmbeddingSet (+ class names)."""
    from aecf_ros.data.features import load_features
    from aecf_ros.train.stage2 import EmbeddingSet

    fs = load_features(path)
    mods = tuple(modalities or fs.modalities)
    missing = [m for m in mods if m not in fs.embeddings]
    if missing:
        raise ValueError(f"{path} has no embeddings for modalities {missing} (has {fs.modalities})")
    full = EmbeddingSet({m: torch.from_numpy(fs.embeddings[m]).float() for m in mods},
                        torch.from_numpy(fs.labels.astype(np.float32)),
                        torch.from_numpy(np.stack([fs.present[m] for m in mods], axis=1)),
                        mods, {"source": str(path)})
    if fs.split is not None and {"train", "val", "test"} <= set(fs.split.tolist()):
        sets = {s: full.subset(np.flatnonzero(fs.split == s)) for s in ("train", "val", "test")}
    else:
        perm = np.random.default_rng(seed).permutation(len(full))
        a, b = int(0.6 * len(full)), int(0.8 * len(full))
        sets = {"train": full.subset(np.sort(perm[:a])), "val": full.subset(np.sort(perm[a:b])),
                "test": full.subset(np.sort(perm[b:]))}
    if fs.split is not None and "test" in set(fs.split.tolist()):
        sets["all_test"] = full.subset(np.flatnonzero(fs.split == "test"))
    else:
        sets["all_test"] = full
    names = fs.class_names or [f"class_{i}" for i in range(full.labels.shape[1])]
    return sets, names


def generated_test_set(model, n_test: int | None = None):
    """The model's held-out test scenes (from its metadata), encoded by its own encoders."""
    from aecf_ros.train.arrays import build_arrays
    from aecf_ros.train.stage1 import encode_arrays, scene_config
    from aecf_ros.train.stage2 import EmbeddingSet

    meta = getattr(model, "metadata", {}) or {}
    tc = meta.get("train_config") or {}
    data_cfg = tc.get("data") or {"seed": 1234, "scene": {}}
    start, n = (meta.get("data_splits") or {}).get("test", [100000, 1000])
    if n_test is not None:
        n = int(n_test)
    cam = model.camera_encoder
    arrays = build_arrays(int(n), seed=int(data_cfg.get("seed", 1234)), config=scene_config(data_cfg),
                          start=int(start), image_size=tuple(cam.input_size),
                          max_points=getattr(model.lidar_encoder, "max_points", None))
    emb = encode_arrays(model, arrays)
    labels = torch.from_numpy(arrays.labels.astype(np.float32))
    return EmbeddingSet(emb, labels, torch.ones(len(arrays), 3, dtype=torch.bool),
                        tuple(model.modalities), {"scenes": [int(start), int(n)],
                                                  "data_seed": int(data_cfg.get("seed", 1234))})


def run(args) -> int:
    from aecf_ros.model import ModelLoadError, load_model
    from aecf_ros.train.evaluation import evaluate_model

    started = start_run("evaluate", args)
    if started is None:
        return 2
    cfg, dist = started
    manifest = None
    if args.dataset:
        from aecf_ros.data.dataset_files import FEATURES, load_dataset

        if args.features:
            print("aecf-ros evaluate: give --dataset or --features, not both", file=sys.stderr)
            return 2
        try:
            manifest, _ = load_dataset(args.dataset)
        except ValueError as exc:
            print(f"aecf-ros evaluate: {exc}", file=sys.stderr)
            return 2
        args.features = str(Path(args.dataset) / FEATURES)
    ev_cfg = cfg["evaluate"]
    seed = int(args.scenario_seed if args.scenario_seed is not None else ev_cfg["scenario_seed"])
    rates = tuple(ev_cfg["drop_rates"])
    t0 = time.perf_counter()
    out: dict = {"scenario_seed": seed, "drop_rates": list(rates)}
    try:
        if args.model or not args.features:
            try:
                model = load_model(args.model, device=str(dist.device))
            except ModelLoadError as exc:
                print(f"aecf-ros evaluate: {exc}", file=sys.stderr)
                return 2
            if manifest is not None:
                from aecf_ros.train.from_dataset import DatasetMismatch, check_model_matches

                try:
                    check_model_matches(model, manifest, args.model or "the default model")
                except DatasetMismatch as exc:
                    print(f"aecf-ros evaluate: {exc}", file=sys.stderr)
                    return 2
                if list(model.class_names) != list(manifest["class_names"]):
                    print(f"aecf-ros evaluate: {args.model} predicts other classes than the dataset's "
                          f"({len(model.class_names)} vs {len(manifest['class_names'])})", file=sys.stderr)
                    return 2
            if args.features:
                sets, _ = features_to_sets(args.features, model.modalities)
                data = sets["all_test"]
                for m in model.modalities:
                    if data.embeddings[m].shape[1] != model.embedding_dims[m]:
                        print(f"aecf-ros evaluate: {args.features}: {m} embeddings are "
                              f"{data.embeddings[m].shape[1]}-d, the model expects "
                              f"{model.embedding_dims[m]}-d", file=sys.stderr)
                        return 2
                out["data"] = {"features": str(args.features), "rows": len(data)}
            else:
                data = generated_test_set(model, args.n_test)
                out["data"] = {"generated": data.meta}
            ev = evaluate_model(model, data, seed=seed, drop_rates=rates,
                                n_bins=int(ev_cfg["ece_bins"]))
            out.update({"model": str(args.model or "default"), "method": model.method,
                        "encoder_ids": model.encoder_ids, **ev})
            _print_table({model.method: ev["scenarios"]})
            if manifest is not None:
                from aecf_ros.train.evaluation import presence_patterns

                out["dataset"] = str(args.dataset)
                out["recorded_patterns"] = presence_patterns(model, data, int(ev_cfg["ece_bins"]))
                print("recorded presence patterns (test part, as the robot had them):")
                for key, r in out["recorded_patterns"].items():
                    print(f"  {key:30s} n {r['n']:6d}  mAP {r['map']:.4f}  ECE {r['ece_model']:.4f}")
        else:
            from aecf_ros.train.pipeline import embedding_only_model, run_methods

            sets, names = features_to_sets(args.features, None, seed=int(cfg["seed"]))
            methods = args.methods.split(",") if args.methods else list(METHODS)
            seeds = [int(s) for s in str(args.seeds).split(",")]
            train = sets["train"]
            dims = {m: int(t.shape[1]) for m, t in train.embeddings.items()}
            results = run_methods(
                lambda meth: embedding_only_model(cfg, train.modalities, dims, names, meth),
                train, sets["val"], sets["test"], cfg, methods, seeds, dist=dist,
                progress=bool(cfg.get("progress")))
            out.update({"features": str(args.features), "modalities": list(train.modalities),
                        "splits": {k: len(v) for k, v in sets.items() if k != "all_test"},
                        "runs": [{"method": r["method"], "seed": r["seed"],
                                  "calibration": r["calibration"],
                                  "scenarios": r["evaluation"]["scenarios"],
                                  "mask_digest": r["evaluation"]["mask_digest"]} for r in results]})
            _print_table({f"{r['method']}/s{r['seed']}": r["evaluation"]["scenarios"] for r in results})
    except ValueError as exc:
        print(f"aecf-ros evaluate: {exc}", file=sys.stderr)
        return 2
    finally:
        dist.shutdown()
    out["seconds"] = time.perf_counter() - t0
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    print(f"[evaluate] wrote {args.json} ({out['seconds']:.1f}s)")
    return 0


def _print_table(rows: dict) -> None:
    for label, scen in rows.items():
        print(f"{label}:")
        for name, r in scen.items():
            print(f"  {name:14s} mAP {r['map']:.4f}  ECE raw {r['ece_raw']:.4f} global "
                  f"{r['ece_global']:.4f} presence {r['ece_presence']:.4f} presence-Platt "
                  f"{r['ece_platt']:.4f}  CRR {r['crr']:.3f}")
