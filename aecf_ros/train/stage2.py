"""Stage 2: train fusion + head on cached (frozen) stage-1 embeddings, then calibrate.

Every method (see :data:`aecf_ros.train.config.METHODS`) goes through the SAME loop: same cached
embeddings, epochs, batch order (seeded), AdamW + cosine schedule, and the AECF objective with the
terms :func:`aecf_ros.core.baselines.objective_flags` switches on for that method (baselines:
task BCE only). Per step the fusion runs twice in one forward call: on the training-time subset
(AECF curriculum / ModDrop masking, identity for the other methods) and on the full available
set; the objective gets both (see :class:`aecf_ros.core.losses.AECFObjective`).

Calibration (:func:`calibrate`): the validation split is replicated under every non-empty
presence pattern (simulated drops); a global temperature, one temperature per pattern and one
Platt scaler (temperature + per-class bias) per pattern are fitted on those logits, and the
default mode is chosen by held-out ECE on validation (:class:`aecf_ros.model.Calibrator`).

Training diagnostics per epoch (history ``epochs[i]``): ``masked_per_sample`` = modalities the
training-time masking (AECF curriculum / ModDrop) actually removed per sample, averaged over
the epoch; ``drop_fraction`` = the same as a fraction of the present modalities;
``gate_entropy`` = mean normalised gate entropy on the full available set (what the curriculum
ranks: the default ``rule="rank"`` masks a sample more the lower its entropy within the batch).
"""
from __future__ import annotations

import time
from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from aecf_ros.model import PerceptionModel
from aecf_ros.train.common import EmbeddingSet, loop_state, resume_loop, stage1_lr_factor  # noqa: F401  (EmbeddingSet re-exported)
from aecf_ros.train.distributed import DistContext, epoch_range, seeded_loader
from aecf_ros.train.scenarios import all_patterns


class FusionHead(nn.Module):
    """fusion + head in ONE forward (so DistributedDataParallel sees one forward per backward)."""

    def __init__(self, model: PerceptionModel):
        super().__init__()
        self.fusion = model.fusion
        self.head = model.head

    def forward(self, emb: Mapping[str, Tensor], present: Tensor):
        out_sub = self.fusion(emb, present)                    # training-time masking if any
        out_full = self.fusion(emb, present, curriculum=False)  # full available set
        return self.head(out_sub.fused), out_sub, self.head(out_full.fused), out_full


def build_objective(method: str, objective_cfg: Mapping | None = None):
    from aecf_ros.core.baselines import objective_flags
    from aecf_ros.core.losses import AECFObjective

    kw = dict(objective_cfg or {})
    kw.update(objective_flags(method))
    return AECFObjective(**kw)


def _curriculum_step(fusion: nn.Module) -> int:
    return int(getattr(fusion, "curriculum_step", 0))


def train_fusion(model: PerceptionModel, train: EmbeddingSet, cfg: Mapping, *, seed: int,
                 dist: DistContext | None = None, progress: bool = False,
                 state: dict | None = None,
                 on_epoch_end: Callable[[dict], None] | None = None,
                 desc: str = "stage2") -> dict:
    """Train ``model.fusion`` + ``model.head`` in place. Returns the history dict.

    ``cfg``: ``epochs, batch_size, lr, weight_decay, objective`` (AECFObjective kwargs).
    The fusion is told the training length (``set_training_length(epochs * steps per epoch)``),
    so the AECF curriculum warm-up is ``warmup_fraction`` of this training whatever the data size.
    ``state`` resumes from a dict given earlier to ``on_epoch_end`` (epoch, optimiser,
    scheduler, RNG, curriculum step, history); ``on_epoch_end(state)`` is called on every rank
    after each epoch (the caller saves it on rank 0).
    """
    from tqdm import tqdm

    dist = dist or DistContext()
    dev = dist.device
    method = model.method
    epochs = int(cfg["epochs"])
    objective = build_objective(method, cfg.get("objective"))
    torch.manual_seed(seed * 1000 + dist.rank)  # curriculum / moddrop / dropout randomness
    for enc in model.encoders().values():  # embeddings are cached: encoders stay frozen
        for p in enc.parameters():
            p.requires_grad_(False)
    model.to(dev)
    net: nn.Module = FusionHead(model)
    if dist.enabled:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=True)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    ds = TensorDataset(*train.tensors())
    loader, sampler, gen = seeded_loader(ds, cfg["batch_size"], seed, dist)
    total_steps = max(1, epochs * len(loader))
    if hasattr(model.fusion, "set_training_length"):
        # the AECF curriculum warm-up is a fraction of THIS training (benchmark: 30 x 23 = 690
        # steps, warm-up 300); rank-local under DDP, like the LR schedule
        model.fusion.set_training_length(total_steps)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: stage1_lr_factor(s, total_steps))  # cosine
    history: dict = {"method": method, "epochs": [], "steps": 0, "rank": dist.rank}
    start_epoch = 0
    if state:
        start_epoch, history = resume_loop(state, opt, sched, gen)
        torch.set_rng_state(state["torch_rng"])
        if hasattr(model.fusion, "set_step"):
            model.fusion.set_step(int(state["curriculum_step"]))
    mods = model.modalities
    bar = tqdm(total=epochs, initial=start_epoch, desc=f"{desc} {method}", unit="ep",
               disable=not (progress and dist.is_main), leave=False)
    for epoch in epoch_range(sampler, start_epoch, epochs):
        net.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        n_batches = 0
        for batch in loader:
            batch = [t.to(dev, non_blocking=True) for t in batch]
            emb = {m: batch[i] for i, m in enumerate(mods)}
            y, present = batch[len(mods)], batch[len(mods) + 1].bool()
            logits_sub, out_sub, logits_full, out_full = net(emb, present)
            losses = objective(out_sub, out_full, logits_sub, logits_full, y,
                               step=_curriculum_step(model.fusion))
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            if hasattr(model.fusion, "step"):
                model.fusion.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            with torch.no_grad():
                removed = (present & ~out_sub.present).sum(1).float()
                diag = {"masked_per_sample": float(removed.mean()),
                        "drop_fraction": float(removed.sum() / present.sum().clamp(min=1)),
                        "gate_entropy": float(out_full.entropy.float().mean())}
            for k, v in diag.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1
            history["steps"] += 1
        record = {"epoch": epoch + 1, "seconds": time.perf_counter() - t0,
                  **{k: v / max(n_batches, 1) for k, v in sums.items()}}
        record["total_all_ranks"] = dist.all_reduce_mean(record.get("total", 0.0))
        history["epochs"].append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['total_all_ranks']:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(loop_state(epoch + 1, opt, sched, gen, history, torch_rng=torch.get_rng_state(),
                                    curriculum_step=_curriculum_step(model.fusion)))
    bar.close()
    model.eval()
    return history


@torch.no_grad()
def compute_logits(model: PerceptionModel, data: EmbeddingSet, present: Tensor,
                   batch_size: int = 4096):
    """Raw head logits[N, C] and FusionOutput pieces (weights, entropy) under a presence mask."""
    model.eval()
    dev = model.device
    logits, weights, entropy = [], [], []
    present = torch.as_tensor(present).bool()
    for s in range(0, len(data), batch_size):
        emb = {m: data.embeddings[m][s:s + batch_size].to(dev) for m in model.modalities}
        pres = present[s:s + batch_size].to(dev)
        lg, out = model(emb, pres, curriculum=False)
        logits.append(lg.float().cpu())
        weights.append(out.weights.float().cpu())
        entropy.append(out.entropy.float().cpu())
    return torch.cat(logits), torch.cat(weights), torch.cat(entropy)


def simulated_drop_set(data: EmbeddingSet, return_index: bool = False):
    """Every sample under every non-empty presence pattern (intersected with what it has).

    Returns ``(rows, present)``, plus ``sample_index`` LongTensor[rows] (which sample of
    ``data`` each row replicates) when ``return_index``."""
    pats = torch.tensor(all_patterns(len(data.modalities)), dtype=torch.bool)  # [P, M]
    n, p = len(data), pats.shape[0]
    idx = torch.arange(n).repeat_interleave(p)
    rep = data.subset(idx)
    present = pats.repeat(n, 1) & rep.present
    keep = present.any(-1)
    out = rep.subset(torch.nonzero(keep).flatten()), present[keep]
    return (*out, idx[keep]) if return_index else out


def calibrate(model: PerceptionModel, val: EmbeddingSet) -> dict:
    """Fit the model's calibrator on validation data with simulated drops and pick its default
    mode by held-out validation ECE (2 folds over validation samples); returns a summary."""
    rep, present, sample = simulated_drop_set(val, return_index=True)
    logits, _, _ = compute_logits(model, rep, present)
    model.calibrator.fit(logits, rep.labels, present, groups=sample, select=True)
    return {**model.calibrator.summary(), "fit_rows": int(len(rep))}


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
