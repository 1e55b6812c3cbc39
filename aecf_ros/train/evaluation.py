"""Scenario evaluation of a model on cached embeddings (shared by evaluate and benchmark).

For every scenario of :mod:`aecf_ros.train.scenarios` the presence mask comes from
``scenario_mask(name, N, modalities, seed)`` ANDed with what each sample really has (all True
for generated scenes), so every method evaluated with the same seed sees identical masks.
Per scenario (keys of the returned dict):

* ``map``           macro mAP of the model's output (its calibrator's default mode, chosen on
  VALIDATION by held-out ECE; ``calibration_mode`` at the top level names it);
* ``map_raw``       macro mAP before any temperature scaling;
* ``ece_raw``       ECE (multi-label, 15 bins) before temperature scaling;
* ``ece_global``    ECE after the global temperature;
* ``ece_presence``  ECE after the presence-aware temperature (fitted on validation with
  simulated drops);
* ``ece_platt``     ECE after the presence-aware Platt scaler (temperature + per-class bias per
  presence pattern, fitted on the same validation rows);
* ``ece_model``     ECE of the model's output (the default mode);
* ``crr`` / ``crr_presence``  confidence-rise rate: fraction of (sample, class) entries whose
  confidence max(p, 1-p) rises when the scenario removes modalities, relative to the same
  samples with all their modalities (raw / model-output probabilities; 0 for ``full``);
* ``gate_mean``     mean gate weight per modality, ``entropy_mean`` mean normalised entropy;
* ``chance_map`` (top level) the mAP of an uninformative scorer (mean class prevalence);
* ``present_rate``  fraction of present entries per modality (identical across methods).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from aecf_ros.core.calibration import expected_calibration_error, reliability_curve
from aecf_ros.core.metrics import confidence_rise_rate, macro_map
from aecf_ros.model import PerceptionModel
from aecf_ros.train.scenarios import scenario_mask, scenario_names
from aecf_ros.train.stage2 import EmbeddingSet, compute_logits

METRICS = ("map", "map_raw", "ece_raw", "ece_global", "ece_presence", "ece_platt", "ece_model",
           "crr", "crr_presence")
RELIABILITY_SCENARIOS = ("full", "drop_p0.5", "only_text")


def scenario_masks(data: EmbeddingSet, names, seed: int) -> dict[str, torch.Tensor]:
    """Scenario -> Bool[N, M]; depends only on (names, N, modalities, seed, data.present)."""
    out = {}
    for name in names:
        mask = torch.from_numpy(scenario_mask(name, len(data), data.modalities, seed))
        out[name] = mask & data.present.bool()
    return out


def mask_digest(masks: dict[str, torch.Tensor]) -> str:
    """Short hash of all scenario masks (recorded so identical masks across methods are visible)."""
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(masks[name].numpy().astype(np.uint8).tobytes())
    return h.hexdigest()[:16]


def evaluate_model(model: PerceptionModel, data: EmbeddingSet, *, seed: int = 0,
                   drop_rates=(0.1, 0.3, 0.5, 0.7), n_bins: int = 15,
                   reliability: bool = True) -> dict:
    """Scores of ``model`` on ``data`` for every scenario; see the module docstring."""
    names = scenario_names(data.modalities, drop_rates)
    masks = scenario_masks(data, names, seed)
    labels = data.labels.float()
    cal = model.calibrator
    full_logits, _, _ = compute_logits(model, data, data.present.bool())
    full_present = data.present.bool()

    dev = next(cal.parameters(), next(cal.buffers(), None)).device

    def probs(logits, present, mode):
        with torch.no_grad():
            return torch.sigmoid(cal(logits.to(dev), present.to(dev), mode)).cpu()

    full_raw = probs(full_logits, full_present, "none")
    mode = cal.default_mode
    full_cal = probs(full_logits, full_present, mode)
    prevalence = labels.mean(0)
    chance = float(prevalence[prevalence > 0].mean()) if bool((prevalence > 0).any()) else float("nan")
    result: dict = {"scenarios": {}, "mask_digest": mask_digest(masks), "n": len(data),
                    "chance_map": chance, "calibration_mode": mode,
                    "seed": int(seed), "modalities": list(data.modalities)}
    for name in names:
        present = masks[name]
        logits, weights, entropy = compute_logits(model, data, present)
        p_raw = probs(logits, present, "none")
        p_glob = probs(logits, present, "global")
        p_pres = probs(logits, present, "presence")
        p_platt = probs(logits, present, "presence_platt")
        p_model = {"none": p_raw, "global": p_glob, "presence": p_pres,
                   "presence_platt": p_platt}.get(mode)
        if p_model is None:  # a calibrator with modes of its own (the per-pattern experts)
            p_model = probs(logits, present, mode)
        row = {
            "map": macro_map(p_model.numpy(), labels.numpy()),
            "map_raw": macro_map(p_raw.numpy(), labels.numpy()),
            "ece_raw": expected_calibration_error(p_raw, labels, n_bins),
            "ece_global": expected_calibration_error(p_glob, labels, n_bins),
            "ece_presence": expected_calibration_error(p_pres, labels, n_bins),
            "ece_platt": expected_calibration_error(p_platt, labels, n_bins),
            "ece_model": expected_calibration_error(p_model, labels, n_bins),
            "crr": confidence_rise_rate(full_raw, p_raw),
            "crr_presence": confidence_rise_rate(full_cal, p_model),
            "gate_mean": weights.mean(0).tolist(),
            "entropy_mean": float(entropy.mean()),
            "present_rate": present.float().mean(0).tolist(),
        }
        if reliability and name in RELIABILITY_SCENARIOS:
            row["reliability"] = {
                mode: {k: np.nan_to_num(v, nan=-1.0).tolist() for k, v in
                       reliability_curve(p, labels, n_bins).items()}
                for mode, p in (("raw", p_raw), ("global", p_glob), ("presence", p_pres),
                                ("presence_platt", p_platt))}
        result["scenarios"][name] = row
    return result


def presence_patterns(model: PerceptionModel, data: EmbeddingSet, n_bins: int = 15, min_rows: int = 1) -> dict:
    """Scores per RECORDED presence pattern (``camera+lidar``: the rows where exactly those
    sensors were present), under that presence, as the model's output: what the robot's own
    sensor failures cost. ``{pattern: {"n", "map", "ece_model"}}``, most frequent first."""
    present = data.present.bool()
    logits, _, _ = compute_logits(model, data, present)
    cal = model.calibrator
    dev = next(cal.parameters(), next(cal.buffers(), None)).device
    with torch.no_grad():
        probs = torch.sigmoid(cal(logits.to(dev), present.to(dev), cal.default_mode)).cpu()
    labels = data.labels.float()
    keys = ["+".join(m for m, p in zip(data.modalities, row) if p) or "none" for row in present.tolist()]
    out = {}
    for key in sorted(set(keys), key=lambda k: -keys.count(k)):
        rows = torch.tensor([i for i, k in enumerate(keys) if k == key])
        if len(rows) < min_rows:
            continue
        out[key] = {"n": int(len(rows)), "map": macro_map(probs[rows].numpy(), labels[rows].numpy()),
                    "ece_model": expected_calibration_error(probs[rows], labels[rows], n_bins)}
    return out
