"""Stage 1: train the camera CNN and the lidar PointNet on generated scenes, cache embeddings.

Protocol (fair to every fusion method, sized for a 2-core CPU):

* Scenes come from ``aecf_ros.data.scenes`` stream ``data.seed`` in four DISJOINT index ranges:
  ``encoder`` (stage-1 training), ``train`` (stage-2 fusion training), ``val`` (calibration),
  ``test`` (evaluation). Stage 2 therefore trains on embeddings of scenes the encoders never saw,
  exactly like the val/test embeddings (no over-confident in-sample embeddings).
* Each encoder gets its own linear multi-label head; loss = BCE(camera head) + BCE(lidar head);
  AdamW (``lr`` for the camera, ``lr_lidar`` for the lidar), linear warm-up over
  ``warmup_steps`` optimiser steps then cosine decay, ``stage1.seed``, label-preserving
  augmentation (image flip, cloud rotation/mirror; ``stage1.augment``).
  Why the warm-up (measured, 2000 scenes, batch 32, no augmentation): Adam's first updates are
  ~lr per weight in the sign of the gradient, and the first gradients all say "lower every
  logit towards the class prior". At lr 2e-3 without warm-up that coherent push moves the CNN's
  conv weights (init std ~0.02-0.04) by about their own size within 25 steps: the pooled
  camera features stop varying between images (std across a batch 0.23 -> 0.012), 19 of 64
  last-stage channels die (zero on every pixel of every image) and the CNN stays on the
  predict-the-prior plateau (val mAP 0.25 = chance after 600 steps). Not the normalisation
  (BatchNorm or no norm: same), not the pooling (average only: same), not the init (Kaiming:
  same), not the head bias (prior-initialised: same). A 300-step linear warm-up at the same
  lr 2e-3 learns: val mAP 0.33 / 0.38 / 0.41 after 300 / 600 / 1200 steps (lr 4e-4 without
  warm-up: 0.32 after 600). End to end (30 epochs, 4000 scenes, augmentation, weight decay
  0.05) lr 2e-3 + 300 warm-up steps gave only_camera mAP 43.0 vs 44.3 for lr 4e-4 without
  warm-up, so config/train.yaml keeps 4e-4 (small enough per step to survive the coherent
  first updates) with ``warmup_steps: 0``. The text encoder is frozen (MiniLM or hashing).
* A user's TorchScript encoder (``model.camera`` / ``model.lidar`` ``{type: torchscript, ...}``)
  is FROZEN: it is not fine-tuned (it is usually a pre-trained trunk, a stage-1 head trained on
  ~3000 synthetic scenes would only overfit it, and not fine-tuning keeps its embeddings
  identical to the file the user ships to the robot, so the file's sha256 identifies them).
  Stage 1 skips it entirely (no forward passes, no head); if both camera and lidar are
  TorchScript, stage 1 trains nothing and only embeds. Its embeddings are cached like the
  others; the cache key includes the sha256 of the file's bytes (a replaced file re-embeds)
  and the cache stores no weights for it.
* Every sample goes through the encoders' own ``preprocess`` (the run-time path).
* The embeddings of the train/val/test splits plus the trained encoder weights are cached in
  ``<cache_dir>/emb-<key>.pt``; the key hashes every setting that changes them (data, encoder
  config, TorchScript encoder file contents, stage-1 config, format version), so any change
  re-trains and nothing stale is reused.
  Under torchrun rank 0 computes and writes the cache; the other ranks wait and read it.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from aecf_ros.model import PerceptionModel, is_file_backed
from aecf_ros.train.distributed import DistContext, epoch_range, seeded_loader
from aecf_ros.train.common import EmbeddingSet, loop_state, resume_loop, stage1_lr_factor  # noqa: F401  (stage1_lr_factor re-exported)

CACHE_VERSION = 1
SPLITS = ("encoder", "train", "val", "test")


def split_ranges(data_cfg: Mapping) -> dict[str, tuple[int, int]]:
    """Scene index range ``(start, n)`` of every split (disjoint, in this order)."""
    out, start = {}, 0
    for split, key in (("encoder", "n_encoder"), ("train", "n_train"), ("val", "n_val"),
                       ("test", "n_test")):
        n = int(data_cfg[key])
        out[split] = (start, n)
        start += n
    return out


def scene_config(data_cfg: Mapping):
    from aecf_ros.data.scenes import SceneConfig

    return SceneConfig(**dict(data_cfg.get("scene") or {}))


def build_split(data_cfg: Mapping, split: str, model: PerceptionModel):
    """SceneArrays of one split, already reduced by the encoders' size steps."""
    start, n = split_ranges(data_cfg)[split]
    return _scene_arrays(data_cfg, model, n, seed=int(data_cfg["seed"]), start=start)


def _scene_arrays(data_cfg: Mapping, model: PerceptionModel, n: int, *, seed: int, start: int):
    from aecf_ros.train.arrays import build_arrays

    size = getattr(model.camera_encoder, "input_size", None)
    max_points = getattr(model.lidar_encoder, "max_points", None)
    return build_arrays(n, seed=seed, config=scene_config(data_cfg), start=start,
                        image_size=tuple(size) if size else None, max_points=max_points)


def final_test_spec(cfg: Mapping) -> dict | None:
    """``benchmark.final_test`` as ``{"seed", "n"}``, or None when not configured.

    The final test split is a scene stream of its OWN seed (never ``data.seed``, whose test range
    is the development split that design and selection looked at); ``make bench-ml`` reports it
    and nothing else reads it."""
    spec = (cfg.get("benchmark") or {}).get("final_test")
    if not spec:
        return None
    seed, n = int(spec["seed"]), int(spec["n"])
    if seed == int(cfg["data"]["seed"]):
        raise ValueError(f"benchmark.final_test.seed {seed} is data.seed: the final test split has to "
                         "be a scene stream never used for design (choose another seed)")
    if n < 1:
        raise ValueError(f"benchmark.final_test.n has to be >= 1, but got {n}")
    return {"seed": seed, "n": n}


def final_test_set(model: PerceptionModel, cfg: Mapping, *, log=print) -> EmbeddingSet | None:
    """Embeddings of the final test split (:func:`final_test_spec`) under the stage-1 encoders
    that ``model`` holds now (call after :func:`prepare_embeddings`); cached beside the stage-1
    cache, keyed by it. None when ``benchmark.final_test`` is not configured."""
    spec = final_test_spec(cfg)
    if spec is None:
        return None
    path = cache_path(cfg).with_name(f"final-{cache_key(cfg)}-seed{spec['seed']}-n{spec['n']}.pt")
    emb = load_cache(path)
    if emb is None:
        t0 = time.perf_counter()
        arr = _scene_arrays(cfg["data"], model, spec["n"], seed=spec["seed"], start=0)
        emb = encode_arrays(model, arr)
        emb["labels"] = torch.from_numpy(arr.labels.astype(np.uint8))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(emb, tmp)
        os.replace(tmp, path)
        log(f"[stage1] embedded the final test split ({spec['n']} scenes, stream seed {spec['seed']}) "
            f"in {time.perf_counter() - t0:.1f}s -> {path}")
    out = split_set({"splits": {"final_test": emb}}, "final_test", model.modalities)
    out.meta.update({"stream_seed": spec["seed"]})
    return out


class _ArraysDataset(Dataset):
    def __init__(self, arrays):
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays)

    def __getitem__(self, i):
        return i


class _Collate:
    """Indices -> (images[B,3,h,w], points[B,N,4], mask[B,N], labels[B,C]) via the encoders'
    own preprocess functions (identical to run time), then label-preserving training
    augmentation when ``augment``: random horizontal image flip; random rotation of the cloud
    about the vertical axis plus a random left/right mirror (labels are scene-level sets)."""

    def __init__(self, arrays, model: PerceptionModel, augment: bool = False, seed: int = 0,
                 camera: bool = True, lidar: bool = True):
        self.arrays, self.model, self.augment = arrays, model, augment
        self.camera, self.lidar = camera, lidar  # False: that input is None (frozen encoder)
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, idx):
        from aecf_ros.encoders.lidar import collate_points

        a = self.arrays
        images = pts = mask = None
        if self.camera:
            images = torch.stack([self.model.camera_encoder.preprocess(a.images[i]) for i in idx])
        if self.lidar:
            pts, mask = collate_points([self.model.lidar_encoder.preprocess(a.points_of(i)) for i in idx])
        labels = torch.from_numpy(a.labels[np.asarray(idx)].astype(np.float32))
        if self.augment:  # same random draws whatever is skipped (reproducible streams)
            b = len(idx)
            flip = torch.rand(b, generator=self.gen) < 0.5
            theta = torch.rand(b, generator=self.gen) * 2 * math.pi
            mirror = torch.where(torch.rand(b, generator=self.gen) < 0.5, -1.0, 1.0)[:, None]
            if images is not None:
                images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            if pts is not None:
                c, s_ = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
                x, y = pts[..., 0].clone(), pts[..., 1].clone()
                pts[..., 0] = c * x - s_ * y
                pts[..., 1] = mirror * (s_ * x + c * y)
        return images, pts, mask, labels


class UnimodalHeads(nn.Module):
    """Camera + lidar encoders, each with a linear multi-label head (stage-1 objective).

    A file-backed (TorchScript, frozen) encoder is left out: its attribute and head are None
    and its input must be None."""

    def __init__(self, model: PerceptionModel):
        super().__init__()
        c = len(model.class_names)
        cam, lid = model.camera_encoder, model.lidar_encoder
        self.camera = None if is_file_backed(cam) else cam
        self.lidar = None if is_file_backed(lid) else lid
        self.camera_head = nn.Linear(model.embedding_dims["camera"], c) if self.camera is not None else None
        self.lidar_head = nn.Linear(model.embedding_dims["lidar"], c) if self.lidar is not None else None

    def heads(self) -> list[nn.Module]:
        return [h for h in (self.camera_head, self.lidar_head) if h is not None]

    def forward(self, images, pts, mask):
        lc = self.camera_head(self.camera(images)) if images is not None else None
        ll = self.lidar_head(self.lidar(pts, mask)) if pts is not None else None
        return lc, ll


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def train_encoders(model: PerceptionModel, arrays, cfg: Mapping, *, dist: DistContext,
                   progress: bool = False, state: dict | None = None,
                   on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train ``model.camera_encoder`` / ``model.lidar_encoder`` in place; returns the history."""
    from tqdm import tqdm

    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    dev = dist.device
    net = UnimodalHeads(model).to(dev)
    use_cam, use_lid = net.camera is not None, net.lidar is not None
    history: dict = {"epochs": [], "steps": 0, "rank": dist.rank, "samples_seen": 0,
                     "frozen": [m for m, used in (("camera", use_cam), ("lidar", use_lid)) if not used]}
    if not (use_cam or use_lid):  # both encoders are user TorchScript files: nothing to train
        model.eval()
        return history
    torch.manual_seed(seed)  # heads initialised identically on every rank
    for lin in net.heads():
        lin.reset_parameters()
    train_cam = use_cam and _trainable(net.camera)
    train_lid = use_lid and _trainable(net.lidar)
    ddp: nn.Module = net
    if dist.enabled:
        ddp = nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=not (use_cam and use_lid and train_cam and train_lid))
    params = [p for p in net.parameters() if p.requires_grad]
    lr_cam = float(cfg["lr"])
    lr_lid = float(cfg.get("lr_lidar") or lr_cam)
    cam_params = [p for m in (net.camera, net.camera_head) if m is not None for p in m.parameters()
                  if p.requires_grad]
    lid_params = [p for m in (net.lidar, net.lidar_head) if m is not None for p in m.parameters()
                  if p.requires_grad]
    groups = [g for g in ({"params": cam_params, "lr": lr_cam}, {"params": lid_params, "lr": lr_lid})
              if g["params"]]
    opt = torch.optim.AdamW(groups, lr=lr_cam, weight_decay=float(cfg["weight_decay"]))
    ds = _ArraysDataset(arrays)
    collate = _Collate(arrays, model, bool(cfg.get("augment", True)), seed * 7919 + dist.rank,
                       camera=use_cam, lidar=use_lid)
    loader, sampler, gen = seeded_loader(ds, cfg["batch_size"], seed, dist, collate_fn=collate)
    epochs = int(cfg["epochs"])
    total = max(1, epochs * len(loader))
    warmup = int(cfg.get("warmup_steps", 0) or 0)
    if warmup < 0:
        raise ValueError(f"stage1.warmup_steps must be >= 0, got {warmup}")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: stage1_lr_factor(s, total, warmup))
    start = 0
    if state:
        net.load_state_dict(state["net"])
        start, history = resume_loop(state, opt, sched, gen)
        collate.gen.set_state(state["augment_rng"])
    bce = nn.BCEWithLogitsLoss()
    bar = tqdm(total=epochs, initial=start, desc="stage1 encoders", unit="ep",
               disable=not (progress and dist.is_main), leave=False)
    for epoch in epoch_range(sampler, start, epochs):
        ddp.train()
        t0 = time.perf_counter()
        sums = {"camera": 0.0, "lidar": 0.0}
        n = 0
        for images, pts, mask, y in loader:
            images, pts, mask, y = (t.to(dev) if t is not None else None for t in (images, pts, mask, y))
            lc, ll = ddp(images, pts, mask)
            zero = y.new_zeros(())
            loss_c = bce(lc, y) if lc is not None else zero
            loss_l = bce(ll, y) if ll is not None else zero
            loss = (loss_c if train_cam else 0.0 * loss_c) + (loss_l if train_lid else 0.0 * loss_l)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            sums["camera"] += float(loss_c.detach())
            sums["lidar"] += float(loss_l.detach())
            n += 1
            history["steps"] += 1
            history["samples_seen"] += int(y.shape[0])
        rec = {"epoch": epoch + 1, "seconds": time.perf_counter() - t0,
               "bce_camera": sums["camera"] / max(n, 1) if use_cam else None,
               "bce_lidar": sums["lidar"] / max(n, 1) if use_lid else None}
        history["epochs"].append(rec)
        bar.update(1)
        bar.set_postfix({k: f"{rec[f'bce_{m}']:.3f}" for k, m in (("cam", "camera"), ("lidar", "lidar"))
                         if rec[f"bce_{m}"] is not None})
        if on_epoch_end is not None:
            on_epoch_end(loop_state(epoch + 1, opt, sched, gen, history, net=net.state_dict(),
                                    augment_rng=collate.gen.get_state()))
    bar.close()
    model.eval()
    return history


@torch.no_grad()
def encode_arrays(model: PerceptionModel, arrays, batch_size: int = 64) -> dict[str, Tensor]:
    """Embeddings of every scene of ``arrays`` (camera/lidar/text, float32 CPU tensors)."""
    from aecf_ros.encoders.lidar import collate_points

    model.eval()
    dev = model.device
    cam, lid, txt = [], [], []
    for s in range(0, len(arrays), batch_size):
        idx = range(s, min(s + batch_size, len(arrays)))
        images = torch.stack([model.camera_encoder.preprocess(arrays.images[i]) for i in idx])
        cam.append(model.camera_encoder(images.to(dev)).float().cpu())
        pts, mask = collate_points([model.lidar_encoder.preprocess(arrays.points_of(i)) for i in idx])
        lid.append(model.lidar_encoder(pts.to(dev), mask.to(dev)).float().cpu())
        out = model.text_encoder.encode([arrays.texts[i] for i in idx])
        txt.append(torch.as_tensor(out).float().cpu())
    return {"camera": torch.cat(cam), "lidar": torch.cat(lid), "text": torch.cat(txt)}


def cache_key(cfg: Mapping) -> str:
    """Hash of everything that changes stage-1 weights or embeddings."""
    from aecf_ros.train.config import model_config

    mc = model_config(cfg)
    # a zero warm-up trains exactly like a config without the key: same cache
    stage1 = {k: v for k, v in dict(cfg["stage1"]).items() if not (k == "warmup_steps" and not v)}
    material = {"v": CACHE_VERSION, "data": cfg["data"], "camera": mc["camera"],
                "lidar": mc["lidar"], "text": mc["text"], "stage1": stage1,
                "class_names": list(mc["class_names"])}
    files = {m: _spec_file_hash(mc[m]) for m in ("camera", "lidar")}
    files = {m: h for m, h in files.items() if h is not None}
    if files:  # TorchScript encoders: keyed by content (a replaced file re-embeds), not path
        material["files"] = files
        for m in files:
            material[m] = {k: v for k, v in dict(mc[m]).items() if k != "path"}
    blob = json.dumps(material, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _spec_file_hash(spec) -> str | None:
    """sha256 of the file of a ``{type: torchscript, path: ...}`` encoder spec, else None."""
    if not isinstance(spec, Mapping) or spec.get("type") != "torchscript" or not spec.get("path"):
        return None
    from aecf_ros.encoders.torchscript import file_sha256

    try:
        return file_sha256(Path(str(spec["path"])).expanduser())
    except OSError:
        return f"unreadable:{spec['path']}"


def cache_path(cfg: Mapping) -> Path:
    return Path(cfg["cache_dir"]) / f"emb-{cache_key(cfg)}.pt"


def split_set(cache: Mapping, split: str, modalities=("camera", "lidar", "text")) -> EmbeddingSet:
    d = cache["splits"][split]
    labels = d["labels"].float()
    return EmbeddingSet({m: d[m].float() for m in modalities}, labels,
                        torch.ones(labels.shape[0], len(modalities), dtype=torch.bool),
                        tuple(modalities), {"split": split})


def load_cache(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a broken cache is simply rebuilt
        return None


def prepare_embeddings(model: PerceptionModel, cfg: Mapping, *, dist: DistContext,
                       progress: bool = False, checkpoint=None, log=print) -> dict:
    """Stage 1 (or a cache hit): trains the encoders in ``model`` and returns the cache dict
    ``{"encoders": {...state dicts}, "splits": {split: {camera, lidar, text, labels}},
    "stage1": history, "key": ...}``; the model's encoders hold the cached weights after."""
    path = cache_path(cfg)
    cache = load_cache(path)
    if cache is None:
        log(f"[stage1] no embedding cache at {path}: training encoders")
        t0 = time.perf_counter()
        arrays = build_split(cfg["data"], "encoder", model)
        log(f"[stage1] generated {len(arrays)} encoder-training scenes in {time.perf_counter() - t0:.1f}s")
        state = checkpoint.load("stage1") if checkpoint else None
        history = train_encoders(
            model, arrays, cfg["stage1"], dist=dist, progress=progress, state=state,
            on_epoch_end=(lambda st: checkpoint.save("stage1", st)) if checkpoint else None)
        history["seconds"] = sum(e["seconds"] for e in history["epochs"])
        histories = dist.all_gather_object({"rank": dist.rank, "steps": history["steps"],
                                            "samples_seen": history["samples_seen"]})
        history["ranks"] = histories
        if dist.is_main:
            splits = {}
            for split in ("train", "val", "test"):
                t1 = time.perf_counter()
                arr = build_split(cfg["data"], split, model)
                emb = encode_arrays(model, arr)
                emb["labels"] = torch.from_numpy(arr.labels.astype(np.uint8))
                splits[split] = emb
                log(f"[stage1] embedded {split} ({len(arr)} scenes) in {time.perf_counter() - t1:.1f}s")
            trained = {name: getattr(model, name) for name in ("camera_encoder", "lidar_encoder")
                       if not is_file_backed(getattr(model, name))}
            cache = {"key": cache_key(cfg), "version": CACHE_VERSION,
                     "encoders": {name: {k: v.cpu() for k, v in enc.state_dict().items()}
                                  for name, enc in trained.items()},
                     "splits": splits, "stage1": _plain_history(history)}
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            torch.save(cache, tmp)
            os.replace(tmp, path)
            log(f"[stage1] cached embeddings at {path}")
        dist.barrier()
        if not dist.is_main:
            cache = load_cache(path)
            if cache is None:
                raise RuntimeError(f"rank {dist.rank}: embedding cache {path} missing after barrier")
    else:
        log(f"[stage1] using cached encoders + embeddings {path}")
    for name in ("camera_encoder", "lidar_encoder"):
        if not is_file_backed(getattr(model, name)):  # file-backed: the file IS the weights
            getattr(model, name).load_state_dict(cache["encoders"][name])
    model.refresh_encoder_ids()
    return cache


def _plain_history(h):
    return json.loads(json.dumps(h, default=float))
