"""Single-process / torchrun (DistributedDataParallel) plumbing for ``aecf-ros train``.

``torchrun --nproc_per_node=N -m aecf_ros.cli train ...`` (or ``python -m torch.distributed.run``)
sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; :func:`init_distributed` reads
them and joins the process group: backend ``nccl`` when the run uses CUDA (one GPU per local
rank), ``gloo`` on CPU. Multi-node works the same way (torchrun ``--nnodes`` / ``--rdzv-*``).
Without those variables everything is a no-op world of size 1.

Rules the training code follows: every rank builds the same data (seeded) and reads its shard
through ``DistributedSampler``; only rank 0 writes files (embedding cache, checkpoints, the model
bundle) and the others wait at a barrier.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def all_gather_object(self, obj) -> list:
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def all_reduce_mean(self, value: float) -> float:
        if not self.enabled:
            return float(value)
        t = torch.tensor([float(value)], device=self.device if self.backend == "nccl" else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU."""
    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available")
        if name == "cuda":
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device(name)


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group if launched by torchrun, else a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, dev, None)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=10))
    return DistContext(rank, world, local_rank, dev, backend)


def seeded_loader(ds, batch_size: int, seed: int, ctx: DistContext, collate_fn=None):
    """The training DataLoader both stages use: seeded shuffle, this rank's shard under DDP.

    Returns ``(loader, sampler, generator)``: ``sampler`` is the DistributedSampler (iterate
    :func:`epoch_range` so its ``set_epoch`` is called every epoch) or None in one process, where
    ``generator`` orders the batches (checkpoints save its state). The last partial batch is
    dropped when there is more than one.
    """
    from torch.utils.data import DataLoader, DistributedSampler

    batch_size = int(batch_size)
    sampler = DistributedSampler(ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=seed) if ctx.enabled else None
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                        generator=gen if sampler is None else None, collate_fn=collate_fn,
                        drop_last=len(ds) > batch_size)
    return loader, sampler, gen


def epoch_range(sampler, start: int, stop: int):
    """The epochs ``start .. stop - 1`` of a training loop; before each, the DistributedSampler of
    :func:`seeded_loader` (if any) is told the epoch, so every epoch gets its own shuffle."""
    for epoch in range(start, stop):
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield epoch
