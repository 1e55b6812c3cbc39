"""Properties of the pure AECF functions in aecf_ros.core.functional."""
import math

import pytest
import torch

from aecf_ros.core import functional as AF


def _bool(rows):
    return torch.tensor(rows, dtype=torch.bool)


# ----------------------------------------------------------------------------- masked softmax
def test_masked_softmax_gives_absent_exactly_zero_and_no_input_rows_zero():
    logits = torch.tensor([[5.0, 1.0, -2.0], [0.0, 0.0, 0.0], [1e4, 3.0, 2.0]], requires_grad=True)
    present = _bool([[True, False, True], [False, False, False], [False, True, True]])
    w = AF.masked_softmax(logits, present)
    assert torch.all(w[~present] == 0)
    assert torch.allclose(w.sum(-1), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.isfinite(w).all()
    # A huge logit on an absent modality must not steal weight (no -1e9-style leak).
    assert torch.allclose(w[2, 1:], torch.softmax(torch.tensor([3.0, 2.0]), 0))
    w.sum().backward()
    assert torch.isfinite(logits.grad).all()


# ----------------------------------------------------------------------------- gate entropy
def test_gate_entropy_hand_cases():
    weights = torch.tensor(
        [
            [1 / 3, 1 / 3, 1 / 3],  # uniform over 3 -> 1
            [0.5, 0.5, 0.0],  # uniform over 2 present -> 1
            [1.0, 0.0, 0.0],  # one-hot among 3 present -> 0
            [1.0, 0.0, 0.0],  # single present -> 0
            [0.0, 0.0, 0.0],  # nothing present -> 0, finite
            [0.75, 0.25, 0.0],  # two present, hand value
        ]
    )
    present = _bool(
        [[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 0], [0, 0, 0], [1, 1, 0]]
    )
    h = AF.gate_entropy(weights, present)
    expected_last = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    assert torch.allclose(h, torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, expected_last]), atol=1e-6)


def test_gate_entropy_gradient_finite_at_zero_weights():
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    AF.gate_entropy(w, _bool([[1, 1, 1], [0, 0, 0]])).sum().backward()
    assert torch.isfinite(w.grad).all()


def test_gate_entropy_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        AF.gate_entropy(torch.ones(2, 3), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        AF.gate_entropy(torch.ones(2, 3), torch.ones(2, 3))


def test_binary_confidence_is_max_p_1_minus_p_and_rejects_non_tensors():
    assert torch.allclose(AF.binary_confidence(torch.tensor([0.2, 0.5, 0.9])), torch.tensor([0.8, 0.5, 0.9]))
    with pytest.raises(ValueError, match="probs must be a Tensor, but got list"):
        AF.binary_confidence([0.5])


# ----------------------------------------------------------------------------- curriculum
def test_mask_probability_decreases_with_entropy_and_scales_with_warmup():
    h = torch.linspace(0, 1, 11)
    p = AF.curriculum_mask_probability(h, base_rate=0.6, warmup_factor=1.0)
    assert torch.all(p[1:] < p[:-1])  # strictly monotone decreasing
    assert p[0].item() == pytest.approx(0.6) and p[-1].item() == pytest.approx(0.0)
    half = AF.curriculum_mask_probability(h, base_rate=0.6, warmup_factor=0.5)
    assert torch.allclose(half, p / 2)
    assert torch.all(AF.curriculum_mask_probability(h, 0.6, 0.0) == 0)


@pytest.mark.parametrize("kw,match", [({"base_rate": 1.5}, "base_rate"), ({"warmup_factor": -0.1}, "warmup_factor")])
def test_mask_probability_rejects_bad_rates(kw, match):
    args = {"base_rate": 0.5, "warmup_factor": 1.0, **kw}
    with pytest.raises(ValueError, match=match):
        AF.curriculum_mask_probability(torch.zeros(3), **args)


def test_sample_mask_respects_min_present_and_never_adds_modalities():
    gen = torch.Generator().manual_seed(0)
    present = torch.rand(2000, 4, generator=gen) < 0.7
    weights = AF.masked_softmax(torch.randn(2000, 4, generator=gen), present)
    prob = torch.ones(2000)  # drop as much as allowed
    for min_present in (1, 2):
        mask = AF.sample_curriculum_mask(present, weights, prob, min_present, generator=gen)
        assert not torch.any(mask & ~present), "an absent modality became present"
        n_before, n_after = present.sum(-1), mask.sum(-1)
        assert torch.all(n_after >= torch.minimum(n_before, torch.tensor(min_present)))
        # with prob 1 exactly min_present remain where there were more
        assert torch.all(n_after[n_before > min_present] == min_present)


def test_sample_mask_zero_probability_keeps_everything():
    present = _bool([[1, 1, 1], [1, 0, 1]])
    mask = AF.sample_curriculum_mask(present, torch.full((2, 3), 1 / 3), torch.zeros(2), 1)
    assert torch.equal(mask, present)


def test_sample_mask_drops_dominant_modality_more_often():
    gen = torch.Generator().manual_seed(1)
    n = 4000
    present = torch.ones(n, 3, dtype=torch.bool)
    weights = torch.tensor([0.7, 0.2, 0.1]).expand(n, 3)
    mask = AF.sample_curriculum_mask(present, weights, torch.full((n,), 0.5), 1, generator=gen)
    drop_rate = (~mask).float().mean(0)
    assert drop_rate[0] > drop_rate[1] + 0.1 > drop_rate[2] + 0.1
    # the number dropped follows Binomial(2, 0.5): mean 1
    assert (~mask).sum(-1).float().mean().item() == pytest.approx(1.0, abs=0.06)


def test_sample_mask_is_detached_and_reproducible():
    w = torch.full((4, 3), 1 / 3, requires_grad=True)
    present = torch.ones(4, 3, dtype=torch.bool)
    a = AF.sample_curriculum_mask(present, w, torch.full((4,), 0.9), 1, torch.Generator().manual_seed(5))
    b = AF.sample_curriculum_mask(present, w, torch.full((4,), 0.9), 1, torch.Generator().manual_seed(5))
    assert not a.requires_grad and a.dtype == torch.bool
    assert torch.equal(a, b)


def test_sample_mask_rejects_bad_arguments():
    present = torch.ones(2, 3, dtype=torch.bool)
    w = torch.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="min_present"):
        AF.sample_curriculum_mask(present, w, torch.zeros(2), -1)
    with pytest.raises(ValueError, match="mask_prob"):
        AF.sample_curriculum_mask(present, w, torch.zeros(3), 1)


# ----------------------------------------------------------------------------- entropy regulariser
def _tiny_gate():
    torch.manual_seed(0)
    gate = torch.nn.Linear(4, 3)
    with torch.no_grad():
        gate.bias.copy_(torch.tensor([3.0, 0.0, -1.0]))  # start near-collapsed onto modality 0
    return gate


def test_entropy_regulariser_has_gradient_and_descent_raises_entropy():
    gate = _tiny_gate()
    x = torch.randn(32, 4)
    present = torch.ones(32, 3, dtype=torch.bool)
    opt = torch.optim.SGD(gate.parameters(), lr=0.5)

    def entropy_now():
        return AF.gate_entropy(AF.masked_softmax(gate(x), present), present).mean().item()

    start = entropy_now()
    for _ in range(20):
        opt.zero_grad()
        loss = AF.entropy_regulariser(AF.masked_softmax(gate(x), present), present, 1.0)
        loss.backward()
        assert gate.bias.grad.abs().sum() > 0 and gate.weight.grad.abs().sum() > 0
        opt.step()
    assert entropy_now() > start + 0.2


def test_entropy_regulariser_adaptive_pushes_low_entropy_rows_harder():
    weights = torch.tensor([[0.98, 0.01, 0.01], [0.4, 0.3, 0.3]])
    present = torch.ones(2, 3, dtype=torch.bool)
    h = AF.gate_entropy(weights, present)
    fixed = AF.entropy_regulariser(weights, present, 1.0, adaptive=False)
    adaptive = AF.entropy_regulariser(weights, present, 1.0, adaptive=True)
    assert fixed.item() == pytest.approx(-h.mean().item(), abs=1e-6)
    assert adaptive.item() == pytest.approx(-((2 - h) * h).mean().item(), abs=1e-6)
    # per-row coefficient (2 - H) is larger for the collapsed row
    assert (2 - h[0]) > (2 - h[1])


def test_entropy_regulariser_ignores_single_modality_rows_and_stays_attached():
    w = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = AF.entropy_regulariser(w, _bool([[1, 0]]), 0.1)
    assert loss.item() == 0 and loss.requires_grad
    with pytest.raises(ValueError, match="coefficient"):
        AF.entropy_regulariser(w, _bool([[1, 0]]), -1.0)


def test_entropy_coefficient_schedule_is_linear_and_clamped():
    assert AF.entropy_coefficient_schedule(0, 100, 0.1, 0.01) == pytest.approx(0.1)
    assert AF.entropy_coefficient_schedule(50, 100, 0.1, 0.01) == pytest.approx(0.055)
    assert AF.entropy_coefficient_schedule(500, 100, 0.1, 0.01) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="total_steps"):
        AF.entropy_coefficient_schedule(0, 0, 0.1, 0.01)


# ----------------------------------------------------------------------------- InfoNCE
def test_info_nce_lower_for_aligned_than_shuffled_pairs():
    torch.manual_seed(0)
    base = torch.randn(16, 8)
    present = torch.ones(16, 2, dtype=torch.bool)
    aligned = AF.info_nce({"a": base, "b": base + 0.05 * torch.randn(16, 8)}, present, 0.1)
    shuffled = AF.info_nce({"a": base, "b": base[torch.randperm(16)]}, present, 0.1)
    assert aligned < shuffled - 1.0


def test_info_nce_gives_projection_gradients_and_uses_only_jointly_present_samples():
    torch.manual_seed(0)
    proj = torch.nn.Linear(4, 8)
    x = torch.randn(10, 4)
    za, zb = proj(x), torch.randn(10, 8)
    present = torch.ones(10, 2, dtype=torch.bool)
    present[:5, 1] = False
    loss = AF.info_nce({"a": za, "b": zb}, present, 0.2)
    loss.backward()
    assert proj.weight.grad.abs().sum() > 0
    # garbage in the rows where b is absent must not change the loss
    zb2 = zb.clone()
    zb2[:5] = 1e3
    assert torch.allclose(AF.info_nce({"a": za, "b": zb2}, present, 0.2), loss)


def test_info_nce_zero_with_graph_when_no_valid_pair():
    za = torch.randn(3, 4, requires_grad=True)
    zb = torch.randn(3, 4, requires_grad=True)
    loss = AF.info_nce({"a": za, "b": zb}, _bool([[1, 0], [0, 1], [1, 0]]), 0.1)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    with pytest.raises(ValueError, match="temperature"):
        AF.info_nce({"a": za, "b": zb}, _bool([[1, 1]] * 3), 0.0)
    with pytest.raises(ValueError, match="columns"):
        AF.info_nce({"a": za}, _bool([[1, 1]] * 3), 0.1)


# ----------------------------------------------------------------------------- calibration penalty
def test_calibration_penalty_zero_when_subset_less_confident_positive_when_more():
    full = torch.tensor([[3.0, -3.0]])
    less = torch.tensor([[1.0, -0.5]])
    more = torch.tensor([[5.0, -6.0]], requires_grad=True)
    assert AF.subset_calibration_penalty(less, full).item() == 0.0
    pen = AF.subset_calibration_penalty(more, full)
    s = torch.sigmoid
    expected = ((s(torch.tensor(5.0)) - s(torch.tensor(3.0))) + (s(torch.tensor(6.0)) - s(torch.tensor(3.0)))) / 2
    assert pen.item() == pytest.approx(expected.item(), rel=1e-5)
    pen.backward()
    assert more.grad.abs().sum() > 0


def test_calibration_penalty_does_not_push_the_full_prediction():
    full = torch.tensor([[1.0]], requires_grad=True)
    sub = torch.tensor([[4.0]], requires_grad=True)
    AF.subset_calibration_penalty(sub, full).backward()
    assert sub.grad.abs().sum() > 0
    assert full.grad is None or full.grad.abs().sum() == 0


def test_calibration_penalty_row_mask_and_validation():
    full = torch.zeros(2, 1)
    sub = torch.tensor([[4.0], [0.0]])
    assert AF.subset_calibration_penalty(sub, full, row_mask=_bool([False, True])).item() == 0.0
    assert AF.subset_calibration_penalty(sub, full, row_mask=_bool([True, False])).item() > 0.4
    with pytest.raises(ValueError, match="same shape"):
        AF.subset_calibration_penalty(torch.zeros(2, 2), torch.zeros(2, 3))


# ---------------------------------------------------------------- rank curriculum, distillation
def test_ranked_probability_orders_by_confidence_and_keeps_its_mean_rate():
    h = torch.tensor([0.99, 0.90, 0.95, 0.97, 0.50])
    eligible = torch.ones(5, dtype=torch.bool)
    p = AF.ranked_mask_probability(h, eligible, 0.2, 0.6)
    # the least uncertain sample (0.50) gets max_rate, the most uncertain (0.99) min_rate
    assert p[4].item() == pytest.approx(0.6) and p[0].item() == pytest.approx(0.2)
    assert torch.argsort(p).tolist() == torch.argsort(-h).tolist()
    assert p.mean().item() == pytest.approx(0.4)
    # a near-uniform gate everywhere (the regulariser's effect) does not switch it off
    flat = AF.ranked_mask_probability(torch.tensor([0.999, 0.998, 0.997, 0.996]),
                                      torch.ones(4, dtype=torch.bool), 0.2, 0.6)
    assert flat.mean().item() == pytest.approx(0.4)
    assert AF.curriculum_mask_probability(torch.tensor([0.999, 0.998]), 0.5).max() < 0.01


def test_ranked_probability_ignores_ineligible_rows_and_ties_share_a_rank():
    h = torch.tensor([0.0, 0.3, 0.3, 0.9])
    eligible = torch.tensor([False, True, True, True])
    p = AF.ranked_mask_probability(h, eligible, 0.0, 1.0, warmup_factor=0.5)
    assert p[0] == 0
    assert p[1] == p[2] and p[1].item() == pytest.approx(0.5 * 0.75)
    assert p[3].item() == pytest.approx(0.0)
    single = AF.ranked_mask_probability(torch.tensor([0.4]), torch.tensor([True]), 0.2, 0.6)
    assert single.item() == pytest.approx(0.4)


@pytest.mark.parametrize("kw,match", [({"min_rate": 0.7, "max_rate": 0.2}, "min_rate"),
                                      ({"max_rate": 1.2}, "max_rate"),
                                      ({"warmup_factor": -1.0}, "warmup_factor")])
def test_ranked_probability_rejects_bad_rates(kw, match):
    args = {"min_rate": 0.2, "max_rate": 0.6, **kw}
    with pytest.raises(ValueError, match=match):
        AF.ranked_mask_probability(torch.zeros(3), torch.ones(3, dtype=torch.bool), **args)


def test_subset_distillation_is_zero_at_agreement_and_pulls_only_the_subset():
    full = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    same = full.detach().clone().requires_grad_(True)
    assert AF.subset_distillation(same, full).item() == pytest.approx(0.0, abs=1e-6)
    sub = torch.tensor([[-2.0, 1.0], [0.5, 3.0]], requires_grad=True)
    loss = AF.subset_distillation(sub, full)
    assert loss.item() > 0.1
    loss.backward()
    assert full.grad is None  # the teacher is detached
    # gradient pushes the subset logit toward the teacher's
    assert sub.grad[0, 0] < 0 and sub.grad[0, 1] > 0
    assert sub.grad[1].abs().max() < 1e-6
    only_second = AF.subset_distillation(sub, full, row_mask=torch.tensor([False, True]))
    assert only_second.item() == pytest.approx(0.0, abs=1e-6)
