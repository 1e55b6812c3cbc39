"""Batch-1 fusion + head on CUDA in half precision, replayed from a captured CUDA graph.

:class:`CudaFusionStep` keeps half-precision copies of a fusion module and its head on the GPU,
static input buffers (``[1, D_m]`` per modality, ``present[1, M]``), and a ``torch.cuda.CUDAGraph``
of one forward: a step is three small host->device copies, one graph replay and one device->host
copy of the logits / gate weights / entropy, instead of ~100 kernel launches from Python. If the
capture fails (an op that cannot be captured), it falls back to eager half precision and says so
in :attr:`mode`. Calibration stays with the caller, in float32.

CPU is never touched: nothing here runs unless the caller built it for a CUDA device. ROS-free;
imports torch only (``tools/bench_gpu.py`` uses it with a bare fusion + head).
"""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import numpy as np

__all__ = ["CudaFusionStep"]


class CudaFusionStep:
    def __init__(self, fusion, head, modalities: Sequence[str], dims: Mapping[str, int], device="cuda",
                 dtype: str = "float16", cuda_graph: bool = True, warmup: int = 3):
        import torch

        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ValueError(f"CudaFusionStep needs a CUDA device, got {self.device}")
        self.dtype = getattr(torch, dtype)
        self.modalities = list(modalities)
        self.fusion = copy.deepcopy(fusion).to(self.device, self.dtype).eval()
        self.head = copy.deepcopy(head).to(self.device, self.dtype).eval()
        self.emb = {m: torch.zeros(1, int(dims[m]), device=self.device, dtype=self.dtype) for m in self.modalities}
        self.present = torch.ones(1, len(self.modalities), device=self.device, dtype=torch.bool)
        self._host = {m: torch.zeros(1, int(dims[m]), dtype=torch.float32).pin_memory() for m in self.modalities}
        self._host_present = torch.zeros(1, len(self.modalities), dtype=torch.bool).pin_memory()
        self.graph = None
        self.mode = f"eager {dtype}"
        self.capture_error = None
        if cuda_graph:
            try:
                self._capture(warmup)
                self.mode = f"cuda graph {dtype}"
            except Exception as exc:  # noqa: BLE001 - fall back, say why
                self.graph = None
                self.capture_error = f"{type(exc).__name__}: {exc}"
                torch.cuda.synchronize(self.device)

    def _forward(self):
        out = self.fusion(self.emb, self.present)
        return self.head(out.fused), out.weights, out.entropy

    def _capture(self, warmup: int) -> None:
        import torch

        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(max(1, warmup)):
                self._forward()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.static_out = self._forward()

    def __call__(self, embeddings: Mapping[str, np.ndarray | None], present: Sequence[bool]):
        """``(logits float32[1, C] on the device, weights float32 numpy [M], entropy float)``;
        ``embeddings[m]`` float32[D_m] or None where absent."""
        import torch

        with torch.inference_mode():
            for m in self.modalities:
                e = embeddings.get(m)
                h = self._host[m]
                if e is None:
                    h.zero_()
                else:
                    h[0].copy_(torch.from_numpy(np.asarray(e, dtype=np.float32)))
                self.emb[m].copy_(h, non_blocking=True)
            self._host_present[0] = torch.tensor(list(present), dtype=torch.bool)
            self.present.copy_(self._host_present, non_blocking=True)
            if self.graph is not None:
                self.graph.replay()
                logits, weights, entropy = self.static_out
            else:
                logits, weights, entropy = self._forward()
            logits = logits.float().clone()
            w = weights[0].float().cpu().numpy()
            ent = float(entropy[0]) if entropy is not None else 0.0
        return logits, w, ent
