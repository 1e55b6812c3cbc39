"""AECFObjective: the terms act, the ablation switches switch them off, and training converges."""

import pytest
import torch

from aecf_ros.core import AECFObjective, AECFusion, CurriculumConfig, build_fusion, objective_flags

DIMS = {"camera": 10, "lidar": 6, "text": 4}


def _batch(n=32, seed=0, classes=4):
    gen = torch.Generator().manual_seed(seed)
    targets = (torch.rand(n, classes, generator=gen) < 0.4).float()
    emb = {k: torch.randn(n, d, generator=gen) for k, d in DIMS.items()}
    return emb, targets


def _setup(method="aecf", **objective_kw):
    torch.manual_seed(0)
    fusion = build_fusion(method, DIMS, 16,
                          **({"curriculum": CurriculumConfig(rule="entropy", base_rate=1.0, warmup_steps=0)} if method.startswith("aecf") and method != "aecf_no_curriculum" else {}))
    head = torch.nn.Linear(16, 4)
    objective = AECFObjective(**objective_flags(method), **objective_kw)
    return fusion, head, objective


def _losses(fusion, head, objective, emb, targets, present=None, step=None):
    out_full = fusion(emb, present, curriculum=False)
    out_sub = fusion(emb, present)
    return objective(out_sub, out_full, head(out_sub.fused), head(out_full.fused), targets, step=step)


def test_objective_returns_all_terms_and_total_is_their_sum():
    fusion, head, objective = _setup()
    fusion.set_gate_prior(bias={"camera": 8.0})  # confident gate -> the curriculum really masks
    emb, targets = _batch()
    losses = _losses(fusion.train(), head, objective, emb, targets)
    assert set(losses) == {"total", "task", "entropy", "infonce", "calibration", "distillation"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    summed = (losses["task"] + losses["entropy"] + losses["infonce"] + losses["calibration"]
              + losses["distillation"])
    assert torch.allclose(losses["total"], summed)
    assert losses["entropy"] < 0 and losses["infonce"] > 0 and losses["calibration"] >= 0
    assert losses["distillation"] > 0


@pytest.mark.parametrize("flag,key", [("use_entropy", "entropy"), ("use_infonce", "infonce"),
                                      ("use_calibration", "calibration"),
                                      ("use_distillation", "distillation")])
def test_each_switch_removes_its_term(flag, key):
    fusion, head, _ = _setup()
    fusion.set_gate_prior(bias={"camera": 8.0})
    emb, targets = _batch()
    on = _losses(fusion.train(), head, AECFObjective(calibration_coef=5.0), emb, targets)
    torch.manual_seed(0)
    off = _losses(fusion, head, AECFObjective(calibration_coef=5.0, **{flag: False}), emb, targets)
    assert off[key].item() == 0.0 and not off[key].requires_grad
    assert on[key].item() != 0.0


def test_entropy_term_gradient_reaches_gate_parameters():
    fusion, head, _ = _setup()
    objective = AECFObjective(use_infonce=False, use_calibration=False)
    emb, targets = _batch()
    out = fusion.eval()(emb)
    losses = objective(out, out, head(out.fused), head(out.fused), targets)
    grad = torch.autograd.grad(losses["entropy"], fusion.gate[0].weight)[0]
    assert grad.abs().sum() > 0


def test_calibration_term_only_counts_rows_that_lost_a_modality():
    fusion, head, objective = _setup(calibration_coef=1.0)
    emb, targets = _batch()
    out = fusion.eval()(emb)
    logits = head(out.fused)
    # same output as subset and full: no rows changed -> zero penalty even with a confident subset
    assert objective(out, out, logits + 10, logits, targets)["calibration"].item() == 0.0
    dropped = out._replace(present=out.present.clone())
    dropped.present[:, 0] = False
    assert objective(dropped, out, logits + 10, logits, targets)["calibration"].item() > 0.0


def test_entropy_schedule_and_validation():
    objective = AECFObjective(entropy_coef=0.1, entropy_coef_end=0.0, schedule_steps=10)
    assert objective.entropy_coefficient(0) == pytest.approx(0.1)
    assert objective.entropy_coefficient(5) == pytest.approx(0.05)
    assert objective.entropy_coefficient(20) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="entropy_coef"):
        AECFObjective(entropy_coef=-1.0)
    with pytest.raises(ValueError, match="schedule_steps"):
        AECFObjective(entropy_coef_end=0.0)
    fusion, head, objective = _setup()
    emb, targets = _batch()
    out = fusion(emb)
    with pytest.raises(ValueError, match="targets"):
        objective(out, out, head(out.fused), head(out.fused), targets[:, :3])


def test_tiny_training_run_reduces_loss_with_all_aecf_terms():
    """3 synthetic modalities that each see the 4-label truth through a different noisy map."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    maps = {k: torch.randn(4, d, generator=gen) for k, d in DIMS.items()}
    noise = {"camera": 0.3, "lidar": 0.6, "text": 1.0}

    def batch(n=64):
        y = (torch.rand(n, 4, generator=gen) < 0.5).float()
        emb = {k: (2 * y - 1) @ maps[k] + noise[k] * torch.randn(n, DIMS[k], generator=gen) for k in DIMS}
        present = torch.rand(n, 3, generator=gen) < 0.85
        return emb, y, present

    fusion = AECFusion(DIMS, 16, gate_hidden=8, curriculum=CurriculumConfig(warmup_steps=50))
    head = torch.nn.Linear(16, 4)
    objective = AECFObjective(entropy_coef=0.05, entropy_coef_end=0.01, schedule_steps=200)
    opt = torch.optim.Adam(list(fusion.parameters()) + list(head.parameters()), lr=1e-2)
    fusion.train()
    task_history = []
    for step in range(200):
        emb, y, present = batch()
        losses = _losses(fusion, head, objective, emb, y, present, step=step)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        fusion.step()
        task_history.append(losses["task"].item())
    first, last = sum(task_history[:20]) / 20, sum(task_history[-20:]) / 20
    assert last < 0.5 * first, (first, last)
    # and the trained model predicts with any single sensor better than chance
    fusion.eval()
    emb, y, _ = batch(256)
    for m in range(3):
        only = torch.zeros(256, 3, dtype=torch.bool)
        only[:, m] = True
        with torch.no_grad():
            acc = ((head(fusion(emb, only).fused) > 0).float() == y).float().mean()
        assert acc > 0.7, (m, acc)
