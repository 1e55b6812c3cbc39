"""The training pipeline shared by ``aecf-ros train`` and ``aecf-ros benchmark``.

:func:`train_pipeline` = stage 1 (or embedding-cache hit) -> stage 2 for one fusion method ->
calibration on validation with simulated drops -> test-set scenario evaluation; returns the
trained :class:`~aecf_ros.model.PerceptionModel` and a JSON-able summary. Resumable through
:class:`Checkpointer` (``<workdir>/checkpoint.pt``, written by rank 0 after every epoch).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

import torch

from aecf_ros.model import PerceptionModel, build_fusion_from_config, build_head
from aecf_ros.train.config import model_config
from aecf_ros.train.distributed import DistContext
from aecf_ros.train.evaluation import evaluate_model
from aecf_ros.train.stage1 import cache_path, prepare_embeddings, split_ranges, split_set
from aecf_ros.train.stage2 import EmbeddingSet, calibrate, set_seed, train_fusion


def config_hash(cfg: Mapping) -> str:
    keep = {k: v for k, v in cfg.items() if k not in ("progress", "out", "threads", "device")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpointer:
    """``<workdir>/checkpoint.pt``: ``{"config_hash", "stage1": state, "stage2": state}``.

    Only rank 0 writes (atomically); every rank reads on resume. A checkpoint of a different
    configuration is refused (resuming it would silently mix two runs).
    """

    def __init__(self, workdir: str | Path, cfg: Mapping, dist: DistContext, resume: bool):
        self.path = Path(workdir) / "checkpoint.pt"
        self.dist = dist
        self.hash = config_hash(cfg)
        self.data: dict = {"config_hash": self.hash}
        if resume and self.path.is_file():
            data = torch.load(self.path, map_location="cpu", weights_only=True)
            if data.get("config_hash") != self.hash:
                raise SystemExit(f"--resume: {self.path} belongs to a different configuration "
                                 f"(hash {data.get('config_hash')} != {self.hash}); remove it or "
                                 f"use the original settings")
            self.data = data
        elif not resume and dist.is_main and self.path.is_file():
            self.path.unlink()

    def load(self, stage: str) -> dict | None:
        return self.data.get(stage)

    def save(self, stage: str, state: dict) -> None:
        self.data[stage] = state
        if self.dist.is_main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            torch.save(self.data, tmp)
            os.replace(tmp, self.path)

    def clear(self) -> None:
        if self.dist.is_main and self.path.is_file():
            self.path.unlink()


def build_untrained(cfg: Mapping, method: str | None = None) -> PerceptionModel:
    mc = model_config(cfg)
    if method:
        mc["fusion"]["method"] = method
    torch.manual_seed(int(cfg["stage1"].get("seed", 0)))
    return PerceptionModel(mc)


def reset_fusion_head(model: PerceptionModel, method: str, seed: int) -> None:
    """Fresh fusion + head + calibrator for ``method``, initialised from ``seed`` (so every
    method starts from its own seeded init, independent of what ran before)."""
    from aecf_ros.model import Calibrator

    model.config["fusion"]["method"] = method
    torch.manual_seed(seed)
    model.fusion = build_fusion_from_config(model.config["fusion"],
                                            {m: model.embedding_dims[m] for m in model.modalities})
    hc = model.config.get("head", {})
    model.head = build_head(model.fusion_dim, len(model.class_names), int(hc.get("hidden", 0)),
                            float(hc.get("dropout", 0.0)))
    model.calibrator = Calibrator(len(model.modalities), num_classes=len(model.class_names))


def summarise_eval(ev: Mapping) -> dict:
    keys = ("map", "ece_raw", "ece_global", "ece_presence", "ece_platt", "ece_model", "crr")
    return {name: {k: round(float(row[k]), 5) for k in keys}
            for name, row in ev["scenarios"].items()}


def train_stage2_and_eval(model: PerceptionModel, method: str, seed: int, train: EmbeddingSet,
                          val: EmbeddingSet, test: EmbeddingSet | None, cfg: Mapping, *,
                          dist: DistContext, progress: bool, checkpoint: Checkpointer | None = None,
                          desc: str = "stage2", init: PerceptionModel | None = None) -> dict:
    """Stage 2 + calibration (+ test evaluation on rank 0). Returns a summary dict. ``init``: a
    model of the same shape whose fusion + head weights start the training (fine-tuning)."""
    reset_fusion_head(model, method, seed)
    if init is not None:
        model.fusion.load_state_dict(init.fusion.state_dict())
        model.head.load_state_dict(init.head.state_dict())
    model.to(dist.device)
    state = checkpoint.load("stage2") if checkpoint else None
    if state is not None:
        model.fusion.load_state_dict(state["fusion"])
        model.head.load_state_dict(state["head"])

    def on_epoch_end(st: dict) -> None:
        if checkpoint is not None:
            st = dict(st)
            st["fusion"] = {k: v.cpu() for k, v in model.fusion.state_dict().items()}
            st["head"] = {k: v.cpu() for k, v in model.head.state_dict().items()}
            checkpoint.save("stage2", st)

    t0 = time.perf_counter()
    hist = train_fusion(model, train, cfg["stage2"], seed=seed, dist=dist, progress=progress,
                        state=state, on_epoch_end=on_epoch_end, desc=desc)
    train_s = time.perf_counter() - t0
    cal = calibrate(model, val)
    out = {"method": method, "seed": seed, "train_seconds": train_s, "history": hist,
           "calibration": cal}
    if test is not None and dist.is_main:
        ev_cfg = cfg["evaluate"]
        out["evaluation"] = evaluate_model(model, test, seed=int(ev_cfg["scenario_seed"]),
                                           drop_rates=tuple(ev_cfg["drop_rates"]),
                                           n_bins=int(ev_cfg["ece_bins"]))
    return out


def environment_info() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "cuda": torch.cuda.is_available()}


def train_pipeline(cfg: Mapping, *, dist: DistContext, resume: bool = False,
                   log: Callable[[str], None] = print) -> tuple[PerceptionModel, dict]:
    """Stage 1 + stage 2 (``cfg.model.fusion.method``, seed ``cfg.seed``) + calibration +
    evaluation. Returns (model, summary); nothing is written except cache and checkpoint."""
    t_start = time.perf_counter()
    progress = bool(cfg.get("progress", True))
    method = cfg["model"]["fusion"]["method"]
    seed = int(cfg["seed"])
    set_seed(seed)
    ckpt = Checkpointer(cfg["workdir"], cfg, dist, resume)
    model = build_untrained(cfg, method)
    model.to(dist.device)
    t0 = time.perf_counter()
    cache = prepare_embeddings(model, cfg, dist=dist, progress=progress, checkpoint=ckpt, log=log)
    stage1_s = time.perf_counter() - t0
    if cfg.get("sensors"):  # a declared sensor set (aecf-ros train --params robot.yaml)
        from aecf_ros.train.sensor_set import sensor_model, sensor_split
        from aecf_ros.train.stage1 import build_split

        model = sensor_model(model, cfg["sensors"])
        train, val, test = (sensor_split(model, build_split(cfg["data"], s, model), s) for s in ("train", "val", "test"))
        log(f"[stage1] embedded the declared sensors {', '.join(model.modalities)}")
    else:
        train, val, test = (split_set(cache, s, model.modalities) for s in ("train", "val", "test"))
    log(f"[stage2] method={method} seed={seed} train={len(train)} val={len(val)} test={len(test)}")
    res = train_stage2_and_eval(model, method, seed, train, val, test, cfg, dist=dist,
                                progress=progress, checkpoint=ckpt)
    ranks = dist.all_gather_object({"rank": dist.rank, "stage2_steps": res["history"]["steps"],
                                    "device": str(dist.device)})
    summary = {
        "method": method, "seed": seed, "world_size": dist.world_size,
        "backend": dist.backend, "ranks": ranks,
        "stage1": {"seconds": stage1_s, "cache": str(cache_path(cfg)),
                   "history": cache.get("stage1", {})},
        "stage2": {"seconds": res["train_seconds"], "epochs": res["history"]["epochs"][-1:]},
        "calibration": res["calibration"],
        "test": summarise_eval(res["evaluation"]) if "evaluation" in res else None,
        "evaluation": res.get("evaluation"),
        "splits": {k: list(v) for k, v in split_ranges(cfg["data"]).items()},
        "seconds": time.perf_counter() - t_start,
    }
    ckpt.clear()
    return model, summary


def bundle_metadata(cfg: Mapping, summary: Mapping, command: str) -> dict:
    """What goes into the model bundle's ``metadata`` (git-independent settings + results)."""
    return {
        "command": command,
        "train_config": cfg,
        "data_splits": summary.get("splits"),
        "method": summary.get("method"), "seed": summary.get("seed"),
        "world_size": summary.get("world_size"), "ranks": summary.get("ranks"),
        "calibration": summary.get("calibration"),
        "test_metrics": summary.get("test"),
        "seconds": summary.get("seconds"),
        "environment": environment_info(),
        "created_unix": int(time.time()),
    }


def embedding_only_model(cfg: Mapping, modalities, dims: Mapping[str, int], class_names,
                         method: str) -> PerceptionModel:
    """A PerceptionModel without encoders (fusion + head + calibrator over given embeddings)."""
    mc = model_config(cfg)
    mc.update({"modalities": list(modalities), "input_dims": {m: int(dims[m]) for m in modalities},
               "camera": None, "lidar": None, "text": None, "class_names": list(class_names)})
    mc["fusion"]["method"] = method
    return PerceptionModel(mc)


def run_methods(make_model: Callable[[str], PerceptionModel], train: EmbeddingSet, val: EmbeddingSet,
                test: EmbeddingSet, cfg: Mapping, methods, seeds, *, dist: DistContext,
                progress: bool = False, log: Callable[[str], None] = print,
                on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Stage 2 + calibration + evaluation for every (method, seed) on the SAME embeddings and
    the SAME scenario masks (scenario seed ``cfg.evaluate.scenario_seed``)."""
    results = []
    for method in methods:
        model = make_model(method)
        for seed in seeds:
            t0 = time.perf_counter()
            res = train_stage2_and_eval(model, method, int(seed), train, val, test, cfg, dist=dist,
                                        progress=progress, desc=f"seed {seed}")
            res["seconds"] = time.perf_counter() - t0
            res["history"] = {
                "epochs": res["history"]["epochs"][-1:], "steps": res["history"]["steps"],
                "diagnostics": [{k: e[k] for k in ("epoch", "masked_per_sample", "drop_fraction",
                                                   "gate_entropy") if k in e}
                                for e in res["history"]["epochs"]]}
            ev = res.get("evaluation", {}).get("scenarios", {})
            if ev:
                log(f"[bench] {method:20s} seed {seed}: full mAP {ev['full']['map']:.4f}  "
                    f"p0.5 mAP {ev.get('drop_p0.5', {}).get('map', float('nan')):.4f}  "
                    f"ECE(pres) full {ev['full']['ece_presence']:.4f}  ({res['seconds']:.1f}s)")
            results.append(res)
            if on_result is not None:
                on_result(res)
    return results
