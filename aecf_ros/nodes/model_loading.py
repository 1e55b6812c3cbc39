"""Loading a node's model bundle from its parameters, with the torch thread count set first."""
from __future__ import annotations

import os
import re
from typing import Optional

from aecf_ros.graph import DEFAULT_MODEL

#: torch.load(weights_only=True), which every bundle is read with, arrived in torch 1.13
MIN_TORCH = (1, 13)


def torch_version_problem(version: str, minimum: tuple[int, int] = MIN_TORCH) -> Optional[str]:
    """Why torch ``version`` (``torch.__version__``: ``"2.13.0+cpu"``, ``"1.12.1+cu113"``,
    ``"1.13.0a0+git..."``) cannot load the model bundles, or None when it can. A version
    string that does not start with ``major.minor`` is not judged (None)."""
    match = re.match(r"\s*(\d+)\.(\d+)", str(version))
    if not match:
        return None
    if (int(match.group(1)), int(match.group(2))) >= minimum:
        return None
    need = ".".join(map(str, minimum))
    return (f"torch {version} is too old: aecf_ros needs torch >= {need} (model bundles are read with "
            f"torch.load(weights_only=True), new in {need}); install a newer torch, e.g. a wheel from "
            f"pytorch.org into the venv the nodes run in (README: Install on a robot)")


def check_torch_version() -> None:
    """Raise ModelLoadError (configure fails with this reason, logged) for a torch that is too old."""
    import torch

    from aecf_ros.model import ModelLoadError

    problem = torch_version_problem(torch.__version__)
    if problem:
        raise ModelLoadError(problem)


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


def resolve_device_rule(requested: str, warn) -> str:
    """THE device rule of every node and tool: ``auto`` is CUDA when available, else CPU with one
    ``warn(...)``; an explicit ``cuda`` / ``cuda:N`` that is not there raises ModelLoadError (the
    node's configure fails with that reason and it stays unconfigured); ``cpu`` is ``cpu``."""
    import torch

    from aecf_ros.model import ModelLoadError

    name = (requested or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        warn("device auto: CUDA is not available, running on CPU")
        return "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {requested!r} requested but CUDA is not available on this "
                                 f"machine (torch {torch.__version__}); use device:=cpu or device:=auto")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {requested!r} requested but only {torch.cuda.device_count()} "
                                 f"CUDA device(s) exist")
    return name


def load_model_from_params(node, parts=None):
    """Load the bundle named by ``model_path`` on ``device``; raises ModelLoadError.

    ``parts``: the encoders to build (``["camera"]``; ``[]`` for the fusion node), see
    :func:`aecf_ros.model.load_model`: each node holds only its part of the bundle."""
    from aecf_ros.model import load_model

    check_torch_version()
    configure_torch_threads()
    path = str(node.get_parameter("model_path").value or "")
    device = resolve_device_rule(str(node.get_parameter("device").value or "auto"),
                                 node.get_logger().warning)
    model = load_model(None if path in ("", DEFAULT_MODEL) else path, device, parts=parts)
    model.prepare_inference()  # the nodes only run inference: frozen fast paths (same outputs)
    return model
