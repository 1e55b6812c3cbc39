"""AECFusion and baseline fusion modules: the FusionOutput contract and AECF behaviour."""
import pytest
import torch

from aecf_ros.core import (
    FUSION_METHODS,
    AECFusion,
    AttentionFusion,
    ConcatFusion,
    CurriculumConfig,
    FusionOutput,
    build_fusion,
    objective_flags,
)
from aecf_ros.core.baselines import moddrop_mask

DIMS = {"camera": 12, "lidar": 6, "text": 5}
PRESENT = torch.tensor(
    [[1, 1, 1], [1, 0, 0], [0, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]], dtype=torch.bool
)


def _inputs(batch=6, seed=0, dims=DIMS, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(batch, d, generator=gen).to(dtype) for k, d in dims.items()}


def _aecf(**kw):
    torch.manual_seed(0)
    kw.setdefault("curriculum", CurriculumConfig(rule="entropy", base_rate=1.0, warmup_steps=0))
    return AECFusion(DIMS, 16, gate_hidden=8, **kw)


def _check_contract(out: FusionOutput, present: torch.Tensor, embed_dim=16):
    b, m = present.shape
    assert out.fused.shape == (b, embed_dim) and out.weights.shape == (b, m)
    assert out.entropy.shape == (b,) and out.no_input.dtype == torch.bool
    assert torch.equal(out.present, present)
    assert torch.isfinite(out.fused.float()).all() and torch.isfinite(out.weights.float()).all()
    assert torch.all(out.weights[~present] == 0), "absent modality got non-zero weight"
    sums = out.weights.float().sum(-1)
    assert torch.allclose(sums[present.any(-1)], torch.ones(()), atol=1e-2)
    assert torch.equal(out.no_input, ~present.any(-1))
    assert torch.all(out.fused[out.no_input] == 0)
    assert torch.all(out.entropy[present.sum(-1) <= 1] == 0)
    assert torch.all((out.entropy >= 0) & (out.entropy <= 1))
    assert len(out.projections) == m


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("method", FUSION_METHODS)
def test_every_method_meets_the_fusion_contract_in_eval(method):
    torch.manual_seed(0)
    fusion = build_fusion(method, DIMS, 16).eval()
    assert fusion.modalities == tuple(DIMS)
    _check_contract(fusion(_inputs(), PRESENT), PRESENT)


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_nan_in_absent_modality_never_reaches_output(method):
    torch.manual_seed(0)
    fusion = build_fusion(method, DIMS, 16).eval()
    x = _inputs()
    clean = fusion(x, PRESENT)
    dirty_x = {k: torch.where(PRESENT[:, i : i + 1], v, torch.full_like(v, float("nan")))
               for i, (k, v) in enumerate(x.items())}
    dirty = fusion(dirty_x, PRESENT)
    assert torch.equal(clean.fused, dirty.fused) and torch.equal(clean.weights, dirty.weights)


@pytest.mark.parametrize("method", ["aecf", "concat", "mean", "moddrop"])
def test_nan_in_absent_modality_gives_finite_training_gradients(method):
    torch.manual_seed(0)
    fusion = build_fusion(method, DIMS, 16).train()
    x = {k: torch.where(PRESENT[:, i : i + 1], v, torch.full_like(v, float("nan")))
         for i, (k, v) in enumerate(_inputs().items())}
    out = fusion(x, PRESENT)
    (out.fused.pow(2).sum() + sum(z.sum() for z in out.projections.values())).backward()
    for name, p in fusion.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_absent_modality_values_do_not_change_output_or_weights():
    fusion = _aecf().eval()
    x = _inputs()
    y = dict(x, lidar=x["lidar"] * 100 + 7)  # lidar absent in rows 1, 2, 5
    a, b = fusion(x, PRESENT), fusion(y, PRESENT)
    rows = ~PRESENT[:, 1]
    assert torch.equal(a.fused[rows], b.fused[rows]) and torch.equal(a.weights[rows], b.weights[rows])


def test_no_input_rows_finite_zero_flagged_with_finite_gradients():
    fusion = _aecf().eval()
    x = {k: v.requires_grad_() for k, v in _inputs().items()}
    out = fusion(x, torch.zeros(6, 3, dtype=torch.bool))
    assert out.no_input.all() and torch.all(out.fused == 0) and torch.all(out.weights == 0)
    assert torch.all(out.entropy == 0)
    (out.fused.sum() + out.weights.sum() + out.entropy.sum()).backward()
    for p in fusion.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", ["aecf", "concat", "mean"])
def test_half_precision_contract_including_no_input_rows(dtype, method):
    torch.manual_seed(0)
    fusion = build_fusion(method, DIMS, 16).to(dtype).eval()
    try:
        with torch.inference_mode():
            out = fusion(_inputs(dtype=dtype), PRESENT)
    except RuntimeError as exc:  # pragma: no cover - depends on CPU kernels available
        pytest.skip(f"{dtype} not supported on this CPU build: {exc}")
    assert out.fused.dtype == dtype and out.weights.dtype == dtype
    _check_contract(out, PRESENT)


def test_single_modality_and_arbitrary_dims():
    fusion = AECFusion({"imu": 3}, 8, curriculum=CurriculumConfig())
    out = fusion({"imu": torch.randn(4, 3)}, torch.tensor([[1], [0], [1], [1]], dtype=torch.bool))
    assert torch.equal(out.weights.squeeze(1), torch.tensor([1.0, 0.0, 1.0, 1.0]))
    assert torch.all(out.entropy == 0) and out.no_input.tolist() == [False, True, False, False]
    five = {f"m{i}": i + 1 for i in range(5)}
    out5 = AECFusion(five, 4)({k: torch.randn(2, d) for k, d in five.items()})
    assert out5.weights.shape == (2, 5) and torch.allclose(out5.weights.sum(-1), torch.ones(2))


def test_gate_gradient_reaches_gate_parameters_through_fused_output():
    fusion = _aecf(curriculum=None)
    fusion(_inputs(), PRESENT).fused.pow(2).sum().backward()
    assert fusion.gate[0].weight.grad.abs().sum() > 0
    assert fusion.modality_logit_bias.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- curriculum
def _confident_gate_fusion(**cfg):
    fusion = _aecf(curriculum=CurriculumConfig(rule="entropy", base_rate=1.0, warmup_steps=cfg.pop("warmup_steps", 0), **cfg))
    fusion.set_gate_prior(bias={"camera": 12.0})  # gate ~one-hot on camera -> entropy ~0 -> mask prob ~1
    return fusion


def test_training_mask_is_what_the_output_is_computed_from():
    fusion = _confident_gate_fusion()
    fusion.generator = torch.Generator().manual_seed(0)
    x = _inputs()
    full = torch.ones(6, 3, dtype=torch.bool)
    fusion.train()
    out = fusion(x, full)
    assert not torch.equal(out.present, full), "curriculum masked nothing"
    assert torch.all(out.present.sum(-1) >= 1)
    changed = (out.present != full).any(-1)
    with torch.no_grad():
        fusion.eval()
        reference = fusion(x, out.present)  # same masked set, no curriculum
        unmasked = fusion(x, full)
    assert torch.allclose(out.fused, reference.fused, atol=1e-6)
    assert torch.allclose(out.weights, reference.weights, atol=1e-6)
    assert torch.all(out.weights[~out.present] == 0)
    assert (out.fused[changed] - unmasked.fused[changed]).abs().amax() > 1e-3


def test_dominant_modality_is_the_one_masked_in_training():
    fusion = _confident_gate_fusion(min_present=2)
    fusion.generator = torch.Generator().manual_seed(0)
    out = fusion.train()(_inputs(batch=64, seed=1), torch.ones(64, 3, dtype=torch.bool))
    # with min_present=2, exactly one modality goes, and it is (almost always) the camera
    assert torch.all(out.present.sum(-1) == 2)
    assert (~out.present[:, 0]).float().mean() > 0.9


def test_curriculum_false_or_eval_mode_gives_deterministic_full_set_output():
    fusion = _confident_gate_fusion()
    x = _inputs()
    fusion.train()
    forced_off = fusion(x, PRESENT, curriculum=False)
    fusion.eval()
    a, b = fusion(x, PRESENT), fusion(x, PRESENT)
    assert torch.equal(a.fused, b.fused) and torch.equal(a.present, PRESENT)
    assert torch.equal(forced_off.present, PRESENT) and torch.allclose(forced_off.fused, a.fused)


def test_warmup_ramps_masking_from_zero():
    fusion = _confident_gate_fusion(warmup_steps=10).train()
    full = torch.ones(32, 3, dtype=torch.bool)
    x = _inputs(batch=32)
    assert torch.equal(fusion(x, full).present, full), "masked during step 0 of warm-up"
    assert fusion.warmup_factor() == 0.0
    for _ in range(5):
        fusion.step()
    assert fusion.warmup_factor() == 0.5
    fusion.set_step(10)
    assert fusion.warmup_factor() == 1.0
    assert not torch.equal(fusion(x, full).present, full)
    with pytest.raises(ValueError, match="step"):
        fusion.set_step(-1)


def test_uncertain_gate_is_masked_less_than_confident_gate():
    x, full = _inputs(batch=256), torch.ones(256, 3, dtype=torch.bool)
    confident = _confident_gate_fusion().train()
    uncertain = _aecf(curriculum=CurriculumConfig(rule="entropy", base_rate=1.0, warmup_steps=0)).train()
    uncertain.set_gate_prior(temperature=100.0)  # ~uniform gate -> entropy ~1 -> mask prob ~0
    torch.manual_seed(0)
    dropped_conf = (~confident(x, full).present).sum()
    dropped_unc = (~uncertain(x, full).present).sum()
    assert dropped_conf > 5 * dropped_unc + 50


def test_inference_runs_no_training_only_work():
    fusion = _confident_gate_fusion().eval()
    x = _inputs()
    rng_before = torch.get_rng_state()
    with torch.inference_mode():
        fusion(x, PRESENT)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert fusion.training_mask_calls == 0
    fusion.train()(x, PRESENT)  # control: the counter does see training masking
    assert fusion.training_mask_calls == 1
    assert not torch.equal(torch.get_rng_state(), rng_before)


# ----------------------------------------------------------------------------- gate prior knobs
def test_gate_prior_temperature_and_bias_change_weights():
    fusion = _aecf().eval()
    x, full = _inputs(), torch.ones(6, 3, dtype=torch.bool)
    base = fusion(x, full)
    fusion.set_gate_prior(bias={"lidar": -5.0})
    assert torch.all(fusion(x, full).weights[:, 1] < base.weights[:, 1])
    fusion.set_gate_prior(bias={"lidar": 0.0}, temperature=1000.0)
    flat = fusion(x, full)
    assert torch.allclose(flat.weights, torch.full((6, 3), 1 / 3), atol=1e-3)
    assert torch.all(flat.entropy > base.entropy - 1e-6)
    state = fusion.state_dict()
    assert state["gate_temperature"].item() == 1000.0 and "gate_prior_bias" in state


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"bias": {"radar": 1.0}}, "radar"),
        ({"bias": {"lidar": float("inf")}}, "lidar"),
    ],
)
def test_gate_prior_rejects_bad_values(kw, match):
    fusion = _aecf()
    with pytest.raises(ValueError, match=match):
        fusion.set_gate_prior(**kw)
    assert fusion.gate_temperature.item() == 1.0 and torch.all(fusion.gate_prior_bias == 0)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("method", ["aecf", "concat", "mean"])
def test_input_validation_names_the_problem(method):
    fusion = build_fusion(method, DIMS, 16)
    x = _inputs()
    with pytest.raises(ValueError, match="lidar"):
        fusion({k: v for k, v in x.items() if k != "lidar"}, PRESENT)
    with pytest.raises(ValueError, match="camera"):
        fusion(dict(x, camera=torch.randn(6, 11)), PRESENT)
    with pytest.raises(ValueError, match="text"):
        fusion(dict(x, text=torch.randn(5, 5)), PRESENT)
    with pytest.raises(ValueError, match="radar"):
        fusion(dict(x, radar=torch.randn(6, 2)), PRESENT)
    with pytest.raises(ValueError, match="present"):
        fusion(x, PRESENT[:, :2])
    with pytest.raises(ValueError, match="present"):
        fusion(x, PRESENT.float())


def test_constructor_validation():
    with pytest.raises(ValueError, match="input_dims"):
        AECFusion({}, 8)
    with pytest.raises(ValueError, match="lidar"):
        AECFusion({"lidar": 0}, 8)
    with pytest.raises(ValueError, match="embed_dim"):
        AECFusion(DIMS, -1)
    with pytest.raises(ValueError, match="base_rate"):
        CurriculumConfig(rule="entropy", base_rate=2.0)
    with pytest.raises(ValueError, match="moddrop_p"):
        AttentionFusion(DIMS, 8, moddrop_p=1.5)
    with pytest.raises(ValueError, match="unknown fusion method 'foo'"):
        build_fusion("foo", DIMS)


def test_curriculum_true_without_config_is_an_error():
    with pytest.raises(ValueError, match="curriculum"):
        _aecf(curriculum=None)(_inputs(), PRESENT, curriculum=True)


# ----------------------------------------------------------------------------- baselines
def test_moddrop_drops_in_training_keeps_at_least_one_and_never_adds():
    gen = torch.Generator().manual_seed(0)
    present = torch.rand(1000, 3, generator=gen) < 0.8
    mask = moddrop_mask(present, 0.9, generator=gen)
    assert not torch.any(mask & ~present)
    assert torch.all(mask.any(-1) == present.any(-1))
    assert (~mask & present).float().sum() > 0.5 * present.float().sum()
    fusion = build_fusion("moddrop", DIMS, 16, moddrop_p=0.9).train()
    out = fusion(_inputs(batch=64), torch.ones(64, 3, dtype=torch.bool))
    assert out.present.sum() < 64 * 3 and torch.all(out.present.any(-1))
    assert torch.equal(fusion.eval()(_inputs(batch=64), torch.ones(64, 3, dtype=torch.bool)).present,
                       torch.ones(64, 3, dtype=torch.bool))


def test_concat_uses_presence_flags_and_reports_uniform_weights():
    torch.manual_seed(0)
    fusion = ConcatFusion(DIMS, 16).eval()
    x = _inputs()
    out = fusion(x, PRESENT)
    assert torch.allclose(out.weights[0], torch.full((3,), 1 / 3))
    assert torch.allclose(out.weights[3], torch.tensor([0.0, 0.5, 0.5]))
    assert torch.allclose(out.entropy[0], torch.tensor(1.0))


def test_objective_flags_per_method():
    assert objective_flags("aecf") == {"use_entropy": True, "use_infonce": True, "use_calibration": True,
                                       "use_distillation": True}
    assert objective_flags("aecf_no_entropy")["use_entropy"] is False
    assert objective_flags("aecf_no_calibration")["use_calibration"] is False
    assert objective_flags("aecf_no_distillation")["use_distillation"] is False
    assert objective_flags("aecf_no_presence") == objective_flags("aecf")
    assert build_fusion("aecf_no_presence", DIMS).presence_tokens is False
    assert build_fusion("aecf", DIMS).presence_tokens is True
    assert build_fusion("aecf_entropy_rule", DIMS).curriculum.rule == "entropy"
    assert build_fusion("aecf", DIMS).curriculum.rule == "rank"
    assert objective_flags("aecf_no_curriculum") == objective_flags("aecf")
    assert not any(objective_flags("moddrop").values())
    assert build_fusion("aecf_no_curriculum", DIMS).curriculum is None
    assert build_fusion("aecf_no_entropy", DIMS).curriculum is not None
    with pytest.raises(ValueError, match="bar"):
        objective_flags("bar")


# ----------------------------------------------------------------------------- deployment paths
def test_compiled_fullgraph_eval_matches_eager():
    fusion = _aecf().eval()
    x = _inputs()
    compiled = torch.compile(fusion, fullgraph=True, backend="aot_eager")
    with torch.inference_mode():
        eager = fusion(x, PRESENT)
        out = compiled(x, PRESENT)
    assert torch.allclose(out.fused, eager.fused, atol=1e-6)
    assert torch.equal(out.weights, eager.weights) and torch.equal(out.no_input, eager.no_input)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_contract(dtype):
    fusion = _aecf().to("cuda", dtype).eval()
    x = {k: v.to("cuda", dtype) for k, v in _inputs().items()}
    present = PRESENT.cuda()
    with torch.inference_mode():
        out = fusion(x, present)
    _check_contract(out, present)
    fusion.train()
    fusion.generator = torch.Generator(device="cpu").manual_seed(0)
    fusion.set_gate_prior(bias={"camera": 12.0})
    out_train = fusion(x, present)
    assert out_train.present.device.type == "cuda"
    assert torch.all(out_train.weights[~out_train.present] == 0)


# ---------------------------------------------------------------- numeric safety (issue 11.1)
@pytest.mark.parametrize("big", [1e3, 1e12, 1e20, 1e30, 3e38])
def test_projection_is_finite_and_exact_for_huge_finite_inputs(big):
    """LN(Wx+b) in float64 is the reference; float32 used to overflow (1e30 -> NaN, 1e20 -> 0)."""
    from aecf_ros.core.fusion import ModalityProjection

    torch.manual_seed(0)
    proj = ModalityProjection(16, 8)
    x = torch.randn(4, 16)
    x[0, 3] = big
    x[1] *= big / 10.0
    out = proj(x)
    assert torch.isfinite(out).all()
    ref = proj.double()
    x64 = x.double()
    expected = ref.act(ref.norm(x64 @ ref.linear.weight.t() + ref.linear.bias))
    assert torch.allclose(out.double(), expected, atol=1e-4)


def test_fusion_stays_finite_and_unchanged_elsewhere_with_a_1e30_element():
    torch.manual_seed(0)
    fusion = AECFusion({"a": 8, "b": 4, "c": 6}, 16).eval()
    emb = {"a": torch.randn(5, 8), "b": torch.randn(5, 4), "c": torch.randn(5, 6)}
    clean = fusion(emb)
    emb["a"][2, 1] = 1e30
    out = fusion(emb)
    assert torch.isfinite(out.fused).all() and torch.isfinite(out.weights).all()
    keep = torch.tensor([0, 1, 3, 4])
    assert torch.allclose(out.fused[keep], clean.fused[keep])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_embedding_row_is_treated_as_absent(bad):
    torch.manual_seed(0)
    fusion = AECFusion({"a": 8, "b": 4}, 16).eval()
    emb = {"a": torch.randn(3, 8), "b": torch.randn(3, 4)}
    emb["a"][1, 0] = bad
    out = fusion(emb)
    assert out.present.tolist() == [[True, True], [False, True], [True, True]]
    assert out.weights[1].tolist() == [0.0, 1.0]
    only_b = fusion(emb, torch.tensor([[True, True], [False, True], [True, True]]))
    assert torch.equal(out.fused, only_b.fused)
    assert torch.isfinite(out.fused).all()


def test_half_precision_projection_stays_finite_at_the_input_limit():
    from aecf_ros.core import INPUT_ABS_LIMIT
    from aecf_ros.core.fusion import ModalityProjection

    torch.manual_seed(0)
    proj = ModalityProjection(384, 64)
    x = torch.randn(2, 384) * INPUT_ABS_LIMIT / 4
    x[0, 0] = INPUT_ABS_LIMIT
    ref = proj(x)
    half = proj.half()(x.half())
    assert torch.isfinite(half).all()
    assert torch.allclose(half.float(), ref, atol=5e-2)


# ---------------------------------------------------------------- recommended defaults (issue 12)
def test_default_aecfusion_has_the_rank_curriculum_and_presence_tokens():
    fusion = AECFusion({"a": 4, "b": 4, "c": 4}, 8)
    assert fusion.curriculum == CurriculumConfig() and fusion.curriculum.rule == "rank"
    assert fusion.presence_tokens and fusion.missing_token.shape == (3, 8)
    assert AECFusion({"a": 4}, 8, curriculum=None).curriculum is None


def test_rank_curriculum_masks_at_its_mean_rate_even_with_a_uniform_gate():
    torch.manual_seed(0)
    cfg = CurriculumConfig(min_rate=0.2, max_rate=0.7, warmup_steps=0)
    fusion = AECFusion({"a": 4, "b": 4, "c": 4}, 8, curriculum=cfg).train()
    # a uniform gate: entropy 1 everywhere, so the absolute rule would mask nothing
    for p in fusion.gate.parameters():
        torch.nn.init.zeros_(p)
    emb = {k: torch.randn(4000, 4) for k in "abc"}
    present = torch.ones(4000, 3, dtype=torch.bool)
    out = fusion(emb, present)
    dropped = (~out.present).sum(-1).float()
    # Binomial(n_present - 1 = 2, p) per row with mean p 0.45: 0.9 modalities a row
    assert dropped.mean().item() == pytest.approx(2 * 0.45, abs=0.06)
    assert out.present.sum(-1).min() >= 1
    legacy = AECFusion({"a": 4, "b": 4, "c": 4}, 8,
                       curriculum=CurriculumConfig(rule="entropy", base_rate=1.0, warmup_steps=0)).train()
    for p in legacy.gate.parameters():
        torch.nn.init.zeros_(p)
    assert (~legacy(emb, present).present).sum().item() == 0


def test_presence_tokens_mark_the_missing_modality_in_the_fused_vector():
    torch.manual_seed(0)
    fusion = AECFusion({"a": 4, "b": 4}, 8, curriculum=None).eval()
    with torch.no_grad():
        fusion.missing_token.copy_(torch.arange(16.0).view(2, 8))
    emb = {"a": torch.randn(3, 4), "b": torch.randn(3, 4)}
    present = torch.tensor([[True, True], [True, False], [False, False]])
    out = fusion(emb, present)
    plain = AECFusion({"a": 4, "b": 4}, 8, curriculum=None, presence_tokens=False).eval()
    plain.load_state_dict({k: v for k, v in fusion.state_dict().items() if k != "missing_token"})
    ref = plain(emb, present)
    assert torch.allclose(out.fused[0], ref.fused[0])
    assert torch.allclose(out.fused[1], ref.fused[1] + fusion.missing_token[1])
    assert torch.equal(out.fused[2], torch.zeros(8))  # no input stays exactly zero


def test_core_reexports_exactly_the_names_its_all_lists():
    """``aecf_ros.core.__all__`` is built from the modules' lists: each name must also be imported."""
    import aecf_ros.core as core

    assert len(set(core.__all__)) == len(core.__all__)
    assert [n for n in core.__all__ if not hasattr(core, n)] == []
    assert {"AECFusion", "CurriculumConfig", "AECFObjective", "PresencePlattScaler", "FUSION_METHODS"} <= set(core.__all__)
    assert not {"moddrop_mask", "presence_pattern_index", "FusionBase"} & set(core.__all__)


# ----------------------------------------------------------------------------- uniform-mask control
def _masked_by_rule(rule, n=4000, seed=0):
    """Modalities removed per sample and per modality by one training forward of an AECFusion
    whose gate leans hard on the camera (gate bias +6)."""
    torch.manual_seed(seed)
    fusion = AECFusion(DIMS, 16, gate_hidden=8, generator=torch.Generator().manual_seed(seed),
                       curriculum=CurriculumConfig(rule=rule, min_rate=0.2, max_rate=0.8, warmup_steps=0))
    fusion.set_gate_prior(bias={"camera": 6.0})
    present = torch.ones(n, 3, dtype=torch.bool)
    out = fusion.train()(_inputs(batch=n, seed=seed), present)
    removed = (present & ~out.present).float()
    return removed.sum(-1).mean().item(), removed.mean(0)


def test_uniform_rule_masks_as_much_as_rank_but_ignores_the_gate():
    # rank: mean rate (0.2 + 0.8) / 2 = 0.5 over the 2 droppable of 3 sensors -> 1.0 per sample,
    # the camera (the gate's favourite) removed far more often than the others
    rank_mean, rank_per = _masked_by_rule("rank")
    uni_mean, uni_per = _masked_by_rule("uniform")
    assert abs(rank_mean - 1.0) < 0.05 and abs(uni_mean - 1.0) < 0.05
    assert rank_per[0] > 2 * rank_per[1:].max()
    assert (uni_per.max() - uni_per.min()).item() < 0.04  # each sensor 1/3 of the removals
    assert build_fusion("aecf_uniform_mask", DIMS).curriculum.rule == "uniform"
    assert objective_flags("aecf_uniform_mask") == objective_flags("aecf")
