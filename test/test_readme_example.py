"""The README's "AECF on your own embeddings" loop, run exactly as printed, does what AECF claims.

The code block after the ``readme-example: own-embeddings`` marker is executed unchanged with
the names it leaves to the user (``num_classes``, ``epochs``, ``loader``) bound to small
synthetic data: six classes; the text embedding (the strongest sensor) sees every class through
a nearly clean linear map, the camera only classes 0-2 and the lidar only classes 3-5, both
noisily; each sensor is missing from 10 % of the training samples at random. Without the text
a fusion has to combine camera and lidar, which training on (mostly) complete samples never
asks for: that is what the masking curriculum is for.

Checked here, on the module the block builds:

* it learns (beats chance clearly on held-out data, with all sensors and without the text);
* the curriculum reaches the masking rate the README states, after ramping up from 0 over the
  warm-up fraction the README states (measured from the masks the module actually used);
* the same block with ``curriculum=None`` is clearly worse once the strongest sensor is removed,
  for every seed (3 seeds, margins well inside what was measured: +2.8 to +5.0 pp over 6 seeds).
"""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import aecf_ros.core
from aecf_ros.core import DEFAULT_WARMUP_FRACTION, AECFusion, CurriculumConfig
from aecf_ros.core.metrics import macro_map

README = Path(__file__).resolve().parents[1] / "README.md"
DIMS = {"camera": 512, "lidar": 256, "text": 384}
NOISE = {"camera": 3.0, "lidar": 3.0, "text": 0.3}   # text: the strongest sensor
SEES = {"camera": slice(0, 3), "lidar": slice(3, 6), "text": slice(0, 6)}  # classes each one sees
P_PRESENT = 0.9                                      # training: each sensor fails 10 % of the time
N_TRAIN, BATCH, EPOCHS, N_TEST = 2048, 128, 8, 2000
SEEDS = (0, 1, 2)
SCENARIOS = {"full": (1, 1, 1), "no_camera": (0, 1, 1), "no_lidar": (1, 0, 1), "no_text": (1, 1, 0)}


def readme_section() -> str:
    text = README.read_text()
    start = text.index("## AECF on your own embeddings")
    return text[start:text.index("\n## ", start + 1)]


def readme_block() -> str:
    section = readme_section()
    marker = section.index("readme-example: own-embeddings")
    match = re.compile(r"```python\n(.*?)```", re.S).search(section, marker)
    assert match, "the README example block is missing"
    return match.group(1)


def make_data(n, gen, maps, p_present):
    y = (torch.rand(n, 6, generator=gen) < 0.3).float()
    emb = {m: (2 * y - 1) @ maps[m] + NOISE[m] * torch.randn(n, d, generator=gen) for m, d in DIMS.items()}
    present = torch.rand(n, 3, generator=gen) < p_present
    present[~present.any(1), 0] = True
    return emb, present, y


class RecordingAECFusion(AECFusion):
    """AECFusion that keeps, for every training-mode call with the curriculum on, the step, the
    presence it was given and the presence it actually used (``out.present``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.record = []

    def forward(self, embeddings, present=None, *, curriculum=None):
        out = super().forward(embeddings, present, curriculum=curriculum)
        if self.training and curriculum is None and self.curriculum is not None:
            self.record.append((self.curriculum_step, present.clone(), out.present.clone()))
        return out


def run_example(seed: int, with_curriculum: bool) -> dict:
    code = readme_block()
    if not with_curriculum:
        assert code.count("embed_dim=128)") == 1
        code = code.replace("embed_dim=128)", "embed_dim=128, curriculum=None)")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    maps = {}
    for m, d in DIMS.items():
        maps[m] = torch.zeros(6, d)
        maps[m][SEES[m]] = torch.randn(6, d, generator=gen)[SEES[m]] / d ** 0.5 * 4
    emb, present, y = make_data(N_TRAIN, gen, maps, P_PRESENT)
    loader = [({m: e[i:i + BATCH] for m, e in emb.items()}, present[i:i + BATCH], y[i:i + BATCH])
              for i in range(0, N_TRAIN, BATCH)]
    scope = {"num_classes": 6, "epochs": EPOCHS, "loader": loader}
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*no training length")  # the block sets it
        mp.setattr(aecf_ros.core, "AECFusion", RecordingAECFusion)  # what the block imports
        exec(compile(code, str(README), "exec"), scope)
    fusion, head = scope["fusion"], scope["head"]
    assert isinstance(fusion, RecordingAECFusion)
    test_emb, _, test_y = make_data(N_TEST, gen, maps, 1.0)
    fusion.eval()
    scores = {}
    with torch.no_grad():
        for name, mask in SCENARIOS.items():
            p = torch.sigmoid(head(fusion(test_emb, torch.tensor(mask, dtype=torch.bool).expand(N_TEST, 3)).fused))
            scores[name] = macro_map(p.numpy(), test_y.numpy())
    return {"scope": scope, "fusion": fusion, "scores": scores, "chance": float(test_y.mean())}


@pytest.fixture(scope="module")
def runs():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is ~6x faster than 2 on a busy 2-core machine
    try:
        return {(seed, cur): run_example(seed, cur) for seed in SEEDS for cur in (True, False)}
    finally:
        torch.set_num_threads(threads)


def test_readme_block_calls_what_the_docs_say():
    code = readme_block()
    assert "AECFusion(" in code and "AECFObjective()" in code and "fusion.step()" in code
    assert "fusion.set_training_length(epochs * len(loader))" in code


def test_readme_training_loop_runs_as_printed_and_learns(runs):
    res = runs[(0, True)]
    assert res["scope"]["probs"].shape == (BATCH, 6)
    assert res["fusion"].training_mask_calls > 0  # the curriculum ran
    for name, floor in (("full", 0.9), ("no_text", 0.7)):
        score = res["scores"][name]
        assert np.isfinite(score) and score > max(floor, res["chance"] + 0.3), (name, score)


def test_curriculum_reaches_the_masking_rate_the_readme_states(runs):
    section = readme_section()
    stated_rate = float(re.search(r"\*\*(\d\.\d+) on average\*\*", section).group(1))
    stated_warmup = float(re.search(r"over the first (\d+(?:\.\d+)?) % of training", section).group(1))
    cfg = CurriculumConfig()
    assert stated_rate == pytest.approx((cfg.min_rate + cfg.max_rate) / 2)  # the rank rule's mean
    assert stated_warmup == pytest.approx(100 * cfg.warmup_fraction) and cfg.warmup_fraction == DEFAULT_WARMUP_FRACTION

    fusion = runs[(0, True)]["fusion"]
    total = EPOCHS * (N_TRAIN // BATCH)
    assert fusion.training_steps == total  # the block told the module how long training is
    warmup = fusion.warmup_length()
    assert warmup == round(stated_warmup / 100 * total)  # 56 of 128 steps
    # per step: each eligible sample's share of its maskable sensors (beyond min_present) that
    # the curriculum removed, averaged over the batch (expected value: the per-sample drop
    # probability, whose batch mean the rank rule fixes)
    steps, rates = [], []
    for step, given, used in fusion.record:
        maskable = given.sum(1) - cfg.min_present
        eligible = maskable > 0
        removed = (given & ~used).sum(1)
        rates.append(float((removed[eligible] / maskable[eligible]).mean()))
        steps.append(step)
    steps, rates = np.array(steps), np.array(rates)
    assert len(steps) == total and steps[0] == 0
    assert rates[0] == 0.0  # the ramp starts at 0
    after = rates[steps >= warmup]
    assert after.mean() == pytest.approx(stated_rate, abs=0.03), after.mean()  # ~9000 samples
    ramp = rates[steps < warmup] - stated_rate * steps[steps < warmup] / warmup
    assert abs(ramp.mean()) < 0.03, ramp.mean()  # linear from 0 to the stated rate
    assert rates[steps < warmup // 4].mean() < 0.25 * stated_rate  # little masking early on


def test_curriculum_beats_no_curriculum_when_the_strongest_sensor_is_removed(runs):
    gains = []
    for seed in SEEDS:
        aecf, plain = runs[(seed, True)]["scores"], runs[(seed, False)]["scores"]
        # text is the strongest sensor: removing it hurts the model trained without the curriculum most
        assert plain["no_text"] < min(plain["no_camera"], plain["no_lidar"]) - 0.05, plain
        gains.append(aecf["no_text"] - plain["no_text"])
        assert aecf["full"] > plain["full"] - 0.01, (seed, aecf["full"], plain["full"])  # no price on full input
    assert min(gains) > 0.01, gains  # every seed: measured +2.8 to +5.0 pp
    assert np.mean(gains) > 0.02, gains
