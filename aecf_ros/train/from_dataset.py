"""Training on a dataset made from a robot's bags (``aecf-ros train --dataset DIR``).

The dataset holds embeddings made by a known set of encoders (its manifest records their ids
and the bundle they came from). The model trained here keeps exactly those encoders, so the
encoder nodes of the robot compute what the fusion was trained on; only fusion + head +
calibrator are trained (stage 2, the AECF objective with the config's settings). The
recorded presence is the floor: the curriculum's simulated drops come on top of the drops the
robot really had. The calibrator is fitted on the dataset's validation part, the test part is
scored once at the end, and the bundle records the dataset (sensors, classes, split, bags).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np
import torch

from aecf_ros.data.dataset_files import load_dataset
from aecf_ros.data.features import FeatureSet
from aecf_ros.model import PerceptionModel
from aecf_ros.train.common import EmbeddingSet

__all__ = ["DatasetMismatch", "dataset_sets", "dataset_model", "check_model_matches", "train_on_dataset"]


class DatasetMismatch(ValueError):
    """A model whose sensors, encoders or classes are not the dataset's."""


def dataset_sets(fs: FeatureSet) -> dict[str, EmbeddingSet]:
    """split name -> EmbeddingSet of the dataset's rows of that split."""
    mods = tuple(fs.modalities)
    out = {}
    for part in ("train", "val", "test"):
        rows = np.flatnonzero(fs.split == part) if fs.split is not None else np.zeros(0, int)
        if rows.size == 0:
            raise ValueError(f"{fs.source}: the dataset has no {part} samples")
        out[part] = EmbeddingSet({m: torch.from_numpy(fs.embeddings[m][rows]).float() for m in mods},
                                 torch.from_numpy(fs.labels[rows].astype(np.float32)),
                                 torch.from_numpy(np.stack([fs.present[m][rows] for m in mods], axis=1)),
                                 mods, {"split": part, "source": fs.source})
    return out


def check_model_matches(model: PerceptionModel, manifest: Mapping, what: str = "the model") -> None:
    """DatasetMismatch unless ``model`` has the dataset's sensors, embedding widths, encoders
    and (for a trained head) classes."""
    sensors = [s["name"] for s in manifest["sensors"]]
    if list(model.modalities) != sensors:
        raise DatasetMismatch(f"{what} has sensors {list(model.modalities)}, the dataset {sensors}")
    for s in manifest["sensors"]:
        if int(model.embedding_dims[s["name"]]) != int(s["dim"]):
            raise DatasetMismatch(f"{what}'s {s['name']} embeddings are {model.embedding_dims[s['name']]}-d, "
                                  f"the dataset's {s['dim']}-d")
    ids, want = dict(model.encoder_ids), dict(manifest["encoder_ids"])
    differ = [m for m in sensors if ids.get(m) != want.get(m)]
    if differ:
        raise DatasetMismatch(
            f"{what}'s encoders for {differ} are not the ones the dataset was embedded with "
            f"({', '.join(f'{m}: {ids.get(m)} vs {want.get(m)}' for m in differ)}); embed the bags with "
            f"this model (aecf-ros dataset --model ...) or use the dataset's ({manifest.get('encoder_model')})")


def dataset_model(manifest: Mapping, fusion_config: Mapping, head_config: Mapping,
                  encoder_model: Optional[str] = None) -> PerceptionModel:
    """An untrained fusion + head for the dataset's sensors and classes over the encoders the
    dataset was embedded with (``encoder_model``: where they are, default the manifest's)."""
    from aecf_ros.model import load_model
    from aecf_ros.train.sensor_set import sensor_model

    spec = encoder_model or manifest.get("encoder_model") or "default"
    source = load_model(None if spec == "default" else spec, device="cpu")
    families = {s["name"]: s["family"] for s in manifest["sensors"]}
    model = sensor_model(source, families, class_names=list(manifest["class_names"]),
                         fusion=dict(fusion_config), head=dict(head_config))
    check_model_matches(model, manifest, f"the encoder model {spec}")
    return model


def train_on_dataset(directory: str | Path, cfg: Mapping, *, dist, init: Optional[str] = None,
                     log: Callable[[str], None] = print) -> tuple[PerceptionModel, dict]:
    """Stage 2 + calibration + test evaluation on the dataset; ``init``: a bundle of the same
    sensors, encoders and classes whose fusion + head start the training (fine-tuning)."""
    from aecf_ros.model import load_model
    from aecf_ros.train.config import model_config
    from aecf_ros.train.pipeline import summarise_eval, train_stage2_and_eval
    from aecf_ros.train.stage2 import set_seed

    manifest, fs = load_dataset(directory)
    sets = dataset_sets(fs)
    method = cfg["model"]["fusion"]["method"]
    seed = int(cfg["seed"])
    set_seed(seed)
    mc = model_config(cfg)
    start = None
    if init:
        start = load_model(init, device="cpu")
        check_model_matches(start, manifest, f"--init {init}")
        if list(start.class_names) != list(manifest["class_names"]):
            raise DatasetMismatch(f"--init {init} predicts {len(start.class_names)} classes "
                                  f"({', '.join(start.class_names[:5])}, ...), the dataset has "
                                  f"{', '.join(manifest['class_names'][:5])}, ...")
        mc["fusion"] = dict(start.config["fusion"])
        mc["head"] = dict(start.config.get("head", {}))
    model = dataset_model(manifest, mc["fusion"], mc.get("head", {}), init)
    model.to(dist.device)
    log(f"[dataset] {directory}: sensors {', '.join(model.modalities)}; {len(model.class_names)} classes; "
        f"train {len(sets['train'])} val {len(sets['val'])} test {len(sets['test'])}; recorded presence "
        + ", ".join(f"{m} {100 * float(sets['train'].present[:, i].float().mean()):.0f}%"
                    for i, m in enumerate(model.modalities)))
    res = train_stage2_and_eval(model, method, seed, sets["train"], sets["val"], sets["test"], cfg, dist=dist,
                                progress=bool(cfg.get("progress", True)), init=start)
    summary = {
        "method": method, "seed": seed, "world_size": dist.world_size,
        "stage2": {"seconds": res["train_seconds"], "epochs": res["history"]["epochs"][-1:]},
        "calibration": res["calibration"],
        "test": summarise_eval(res["evaluation"]) if "evaluation" in res else None,
        "evaluation": res.get("evaluation"),
        "dataset": {"path": str(directory), "features_sha256": manifest.get("features_sha256"),
                    "sensors": manifest["sensors"], "encoder_ids": manifest["encoder_ids"],
                    "class_names": manifest["class_names"], "split": manifest["split"],
                    "split_counts": manifest.get("split_counts"),
                    "bags": [{"id": b.get("id"), "split": b.get("split"), "samples": b.get("samples")}
                             for b in manifest["bags"]]},
        "seconds": res["train_seconds"],
    }
    return model, summary
