"""The AECF curriculum warm-up is scale-free: a fraction of training, whatever the data size.

``CurriculumConfig(warmup_fraction=0.435)`` (the default) + ``AECFusion.set_training_length``;
``warmup_steps`` stays an explicit override for old configs and bundles.
"""
import warnings

import pytest
import torch

from aecf_ros.core import (DEFAULT_WARMUP_FRACTION, REFERENCE_TRAINING_STEPS, AECFusion, CurriculumConfig,
                           build_fusion)
from aecf_ros.model import build_model, load_model, save_model
from aecf_ros.model.config import small_model_config
from aecf_ros.model.factories import build_fusion_from_config

DIMS = {"camera": 12, "lidar": 6, "text": 5}


def _fusion(**cfg) -> AECFusion:
    torch.manual_seed(0)
    return AECFusion(DIMS, 16, gate_hidden=8, curriculum=CurriculumConfig(**cfg))


def _inputs(batch=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(batch, d, generator=gen) for k, d in DIMS.items()}


def _end_of_warmup(fusion: AECFusion, total: int) -> int:
    """The first step at which warmup_factor() reaches 1, found by walking the steps."""
    for s in range(total + 1):
        fusion.set_step(s)
        if fusion.warmup_factor() == 1.0:
            return s
    raise AssertionError("the warm-up never ended")


@pytest.mark.parametrize("total", [100, 10000])
def test_warmup_ends_at_the_same_fraction_of_training_for_any_length(total):
    fusion = _fusion()
    fusion.set_training_length(total)
    end = _end_of_warmup(fusion, total)
    assert end == fusion.warmup_length()
    assert abs(end / total - DEFAULT_WARMUP_FRACTION) <= 1.0 / total  # same fraction, to one step
    # the ramp is linear in the FRACTION of training done: a quarter of the warm-up -> 0.25
    fusion.set_step(end // 4)
    assert fusion.warmup_factor() == pytest.approx(0.25, abs=1.0 / end + 1e-9)
    fusion.set_step(0)
    assert fusion.warmup_factor() == 0.0


@pytest.mark.parametrize("rule", ["rank", "entropy", "uniform"])
def test_every_rule_uses_the_fraction_warmup(rule):
    fusion = _fusion(rule=rule)
    fusion.set_training_length(1000)
    assert fusion.warmup_length() == 435
    fusion.set_step(435 // 2)
    assert fusion.warmup_factor() == pytest.approx(0.5, abs=0.01)


def test_same_fraction_means_the_same_curve_for_100_and_10000_steps():
    short, long_ = _fusion(), _fusion()
    short.set_training_length(100)
    long_.set_training_length(10000)
    for frac in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 1.0):
        short.set_step(round(frac * 100))
        long_.set_step(round(frac * 10000))
        assert short.warmup_factor() == pytest.approx(long_.warmup_factor(), abs=0.03), frac


def test_default_reproduces_the_benchmarks_300_of_690_step_schedule_exactly():
    # config/train.yaml stage 2: 30 epochs x floor(3000 / 128) = 23 steps (drop_last) = 690
    assert REFERENCE_TRAINING_STEPS == 30 * (3000 // 128)
    assert CurriculumConfig().warmup_length(690) == 300
    fusion = _fusion()
    fusion.set_training_length(690)
    for s in range(0, 700):
        fusion.set_step(s)
        assert fusion.warmup_factor() == min(1.0, s / 300)  # the old warmup_steps=300 formula, bit for bit


def test_warmup_steps_override_ignores_the_training_length():
    fusion = _fusion(warmup_steps=10)
    for total in (None, 7, 100000):
        if total is not None:
            fusion.set_training_length(total)
        assert fusion.warmup_length() == 10
        fusion.set_step(5)
        assert fusion.warmup_factor() == 0.5
        fusion.set_step(10)
        assert fusion.warmup_factor() == 1.0
    assert CurriculumConfig(warmup_steps=0).warmup_length(50) == 0
    nowarm = _fusion(warmup_steps=0)
    assert nowarm.warmup_factor() == 1.0


def test_zero_fraction_means_no_warmup_and_no_warning():
    fusion = _fusion(warmup_fraction=0.0).train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fusion.warmup_length() == 0 and fusion.warmup_factor() == 1.0
        fusion(_inputs(), torch.ones(32, 3, dtype=torch.bool))


def test_short_training_keeps_at_least_one_warmup_step():
    assert CurriculumConfig().warmup_length(1) == 1
    assert CurriculumConfig(warmup_fraction=1.0).warmup_length(40) == 40
    assert CurriculumConfig(warmup_fraction=0.5).warmup_length(5) == 3  # 2.5 rounds half up


def test_no_training_length_assumes_the_benchmark_length_and_warns_once():
    fusion = _fusion().train()
    x, full = _inputs(), torch.ones(32, 3, dtype=torch.bool)
    with pytest.warns(UserWarning, match=r"set_training_length"):
        fusion(x, full)
    assert fusion.warmup_length() == 300  # 0.435 of the assumed 690 steps, the old default
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per module, not once per step
        fusion(x, full)
        fusion.set_training_length(50)
        assert fusion.warmup_length() == 22  # round(0.435 * 50)


def test_eval_and_forced_off_need_no_training_length():
    fusion = _fusion()
    x, full = _inputs(), torch.ones(32, 3, dtype=torch.bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fusion.eval()(x, full)
        fusion.train()(x, full, curriculum=False)


def test_masking_starts_at_zero_and_reaches_full_rate_at_the_end_of_the_warmup():
    fusion = _fusion()
    fusion.generator = torch.Generator().manual_seed(0)
    fusion.set_gate_prior(bias={"camera": 8.0})  # confident gate
    fusion.set_training_length(200)  # warm-up 87 steps
    fusion.train()
    x, full = _inputs(256), torch.ones(256, 3, dtype=torch.bool)
    fusion.set_step(0)
    assert torch.equal(fusion(x, full).present, full)
    fusion.set_step(fusion.warmup_length())
    removed = (~fusion(x, full).present).sum() / (2 * 256)  # 2 maskable sensors per sample
    assert float(removed) == pytest.approx(0.6, abs=0.06)  # (min_rate + max_rate) / 2


@pytest.mark.parametrize("kw,match", [
    ({"warmup_fraction": -0.1}, "warmup_fraction"), ({"warmup_fraction": 1.5}, "warmup_fraction"),
    ({"warmup_fraction": True}, "warmup_fraction"), ({"warmup_fraction": "0.4"}, "warmup_fraction"),
    ({"warmup_fraction": float("nan")}, "warmup_fraction"),
    ({"warmup_steps": -1}, "warmup_steps"), ({"warmup_steps": 2.5}, "warmup_steps"),
    ({"warmup_steps": True}, "warmup_steps"),
])
def test_config_rejects_bad_warmup(kw, match):
    with pytest.raises(ValueError, match=match):
        CurriculumConfig(**kw)


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, None, "100"])
def test_set_training_length_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="total_steps has to be a positive int"):
        _fusion().set_training_length(bad)
    with pytest.raises(ValueError, match="total_steps"):
        CurriculumConfig().warmup_length(bad)


def test_no_curriculum_has_no_warmup():
    fusion = AECFusion(DIMS, 16, curriculum=None)
    fusion.set_training_length(10)
    assert fusion.warmup_length() == 0 and fusion.warmup_factor() == 1.0


def test_ablations_keep_the_fraction_warmup():
    for method in ("aecf", "aecf_entropy_rule", "aecf_no_presence"):
        fusion = build_fusion(method, DIMS, 16)
        assert fusion.curriculum.warmup_steps is None
        assert fusion.curriculum.warmup_fraction == DEFAULT_WARMUP_FRACTION


@pytest.mark.parametrize("curriculum,expect", [
    ({"warmup_steps": 300}, (300, 300)),       # an old bundle's explicit setting wins
    ({"warmup_steps": 10, "min_rate": 0.2}, (10, 10)),
    ({}, (300, 22)),                           # {} = the defaults: 0.435 of training
    ({"warmup_fraction": 0.2}, (138, 10)),
])
def test_config_dicts_of_old_and_new_bundles_build(curriculum, expect):
    fusion = build_fusion_from_config({"method": "aecf", "embed_dim": 16, "curriculum": curriculum}, DIMS)
    fusion.set_training_length(690)
    assert fusion.warmup_length() == expect[0]
    fusion.set_training_length(50)
    assert fusion.warmup_length() == expect[1]


def test_bundle_saved_with_warmup_steps_loads(tmp_path):
    cfg = small_model_config()
    cfg["fusion"]["curriculum"] = {"warmup_steps": 300, "min_rate": 0.3, "max_rate": 0.9}  # an old bundle
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = save_model(model, tmp_path / "old.pt")
    loaded = load_model(path, device="cpu")
    assert loaded.fusion.curriculum.warmup_steps == 300
    loaded.fusion.set_training_length(10000)
    assert loaded.fusion.warmup_length() == 300  # what it was trained with
    for name, value in model.state_dict().items():
        other = loaded.state_dict()[name]
        assert torch.equal(value, other) or (value.isnan().all() and other.isnan().all()), name  # unfitted ECE: NaN
