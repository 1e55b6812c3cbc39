"""Loading a node's model bundle from its parameters, with the torch thread count set first."""
from __future__ import annotations

import os

from aecf_ros.graph import DEFAULT_MODEL


def configure_torch_threads() -> int:
    """One intra-op thread per process unless ``AECF_TORCH_THREADS`` says otherwise.

    Batch-1 inference of these small networks gains nothing from more threads, and on a busy
    2-core machine torch's default (one thread per core, spin-waiting) was measured 30-50x
    slower (default camera encoder ~100 ms vs ~2 ms a frame) as the nodes' threads fight.
    """
    import torch

    threads = int(os.environ.get("AECF_TORCH_THREADS", "1") or 1)
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def load_model_from_params(node):
    """Load the bundle named by ``model_path`` on ``device``; raises ModelLoadError."""
    from aecf_ros.model import load_model

    configure_torch_threads()
    path = str(node.get_parameter("model_path").value or "")
    device = str(node.get_parameter("device").value or "auto")
    return load_model(None if path in ("", DEFAULT_MODEL) else path, device)
