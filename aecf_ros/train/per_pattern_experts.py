"""Per-pattern experts: one model per presence pattern, the row's pattern picks the model.

A REFERENCE, not a bound: for every non-empty presence pattern (7 for camera/lidar/text) an
``attention`` fusion + head is trained with that pattern imposed on EVERY training sample (no
masking, same epochs, optimiser and seed as every method, no extra tuning) and calibrated on
validation the standard way. At test time each row is routed to the expert of its own pattern.
The experts are untuned plain attention models trained as long as every other method, so a
single model trained for missing sensors can beat them (the benchmark measures where it does,
``aecf_ros.train.report.experts_lines``); they are called "per-pattern experts", never a ceiling.
:class:`PatternRouter` gives the routed ensemble the interface
:func:`aecf_ros.train.evaluation.evaluate_model` scores (``model(emb, present)``,
``calibrator(logits, present, mode)``), so the experts get exactly the same metrics and masks.

Results written before the rename call the method ``ceiling_per_pattern`` and the config key
``benchmark.ceiling``: :data:`LEGACY_NAMES` / :func:`enabled` still read them.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from aecf_ros.train.common import EmbeddingSet
from aecf_ros.train.scenarios import all_patterns

PER_PATTERN_EXPERTS = "per_pattern_experts"
LEGACY_NAMES = ("ceiling_per_pattern",)  # the method's name in results written before the rename


def canonical_method(name: str) -> str:
    """``name`` with a legacy per-pattern-experts name mapped to :data:`PER_PATTERN_EXPERTS`."""
    return PER_PATTERN_EXPERTS if name in LEGACY_NAMES else name


def enabled(bench_cfg: Mapping) -> bool:
    """``benchmark.per_pattern_experts`` (default true); a config that only has the legacy
    ``benchmark.ceiling`` key is read through it."""
    if "per_pattern_experts" in bench_cfg:
        return bool(bench_cfg["per_pattern_experts"])
    return bool(bench_cfg.get("ceiling", True))


def with_pattern(data: EmbeddingSet, pattern: tuple[bool, ...]) -> EmbeddingSet:
    """``data`` with ``pattern`` imposed on every sample (ANDed with what each sample has)."""
    mask = torch.tensor(pattern, dtype=torch.bool).expand(len(data), -1) & data.present.bool()
    return EmbeddingSet(dict(data.embeddings), data.labels, mask.clone(), data.modalities, dict(data.meta))


class _RoutedCalibrator(nn.Module):
    """Each row's logits go through the calibrator of the model of its pattern."""

    default_mode = "routed"  # each expert's own default (chosen on validation)

    def __init__(self, router: "PatternRouter"):
        super().__init__()
        self._router = [router]  # not a submodule (no parameter cycle)
        self.dummy = nn.Parameter(torch.zeros(()), requires_grad=False)  # a device for callers

    def forward(self, logits: Tensor, present: Tensor, mode: str | None = None) -> Tensor:
        router = self._router[0]
        out = torch.empty_like(logits)
        for key, rows in router.groups(present):
            cal = router.models[key].calibrator
            sub_mode = None if mode in (None, "routed") else mode
            out[rows] = cal(logits[rows], present[rows], sub_mode)
        return out


class PatternRouter(nn.Module):
    """Routes each row to the model trained for its presence pattern (see module docstring)."""

    def __init__(self, models: Mapping[tuple[bool, ...], nn.Module], modalities):
        super().__init__()
        self.models = {tuple(bool(v) for v in k): m for k, m in models.items()}
        self._modules_list = nn.ModuleList(list(self.models.values()))
        self.modalities = tuple(modalities)
        self.calibrator = _RoutedCalibrator(self)

    @property
    def device(self) -> torch.device:
        return self.calibrator.dummy.device

    def groups(self, present: Tensor):
        keys = [tuple(bool(v) for v in row) for row in present.cpu().tolist()]
        by: dict[tuple[bool, ...], list[int]] = {}
        for i, k in enumerate(keys):
            by.setdefault(k, []).append(i)
        for key, rows in by.items():
            if key not in self.models:
                raise ValueError(f"no per-pattern expert for presence pattern {key}")
            yield key, torch.tensor(rows, dtype=torch.long, device=present.device)

    def forward(self, embeddings: Mapping[str, Tensor], present: Tensor, **_):
        n = present.shape[0]
        logits = weights = entropy = None
        for key, rows in self.groups(present):
            emb = {m: embeddings[m][rows] for m in self.modalities}
            lg, out = self.models[key](emb, present[rows], curriculum=False)
            if logits is None:
                logits = lg.new_empty(n, lg.shape[1])
                weights = out.weights.new_zeros(n, out.weights.shape[1])
                entropy = out.entropy.new_zeros(n)
            logits[rows], weights[rows], entropy[rows] = lg, out.weights, out.entropy
        return logits, SimpleNamespace(weights=weights, entropy=entropy)


def train_per_pattern_experts(make_model: Callable[[str], nn.Module], train: EmbeddingSet, val: EmbeddingSet,
                  test: EmbeddingSet, cfg: Mapping, seed: int, *, dist, progress: bool = False) -> dict:
    """Train the 7 experts with ``seed`` and evaluate the routed ensemble on ``test``.

    ``make_model("attention")`` must return a fresh embedding-level model for each pattern.
    Returns a run dict shaped like :func:`aecf_ros.train.pipeline.train_stage2_and_eval`'s."""
    import time

    from aecf_ros.train.evaluation import evaluate_model
    from aecf_ros.train.pipeline import train_stage2_and_eval

    t0 = time.perf_counter()
    models, train_s = {}, 0.0
    for pattern in all_patterns(len(train.modalities)):
        model = make_model("attention")
        res = train_stage2_and_eval(model, "attention", seed, with_pattern(train, pattern),
                                    with_pattern(val, pattern), None, cfg, dist=dist,
                                    progress=progress, desc=f"expert {pattern}")
        train_s += res["train_seconds"]
        models[pattern] = model.eval()
    router = PatternRouter(models, train.modalities).to(dist.device)
    ev_cfg = cfg["evaluate"]
    evaluation = evaluate_model(router, test, seed=int(ev_cfg["scenario_seed"]),
                                drop_rates=tuple(ev_cfg["drop_rates"]), n_bins=int(ev_cfg["ece_bins"]))
    return {"method": PER_PATTERN_EXPERTS, "seed": seed, "train_seconds": train_s, "evaluation": evaluation,
            "calibration": {"default_mode": "routed"}, "seconds": time.perf_counter() - t0,
            "history": {"epochs": [], "steps": 0, "diagnostics": []}}
