"""Training/evaluation pipeline on the tiny config: end to end, resume, DDP (gloo, 2 processes),
identical masks for every method, metrics wiring, user feature files. Real small models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aecf_ros.cli import main as cli_main
from aecf_ros.core.calibration import expected_calibration_error
from aecf_ros.core.metrics import macro_map
from aecf_ros.model import load_model
from aecf_ros.train.config import METHODS, load_config
from aecf_ros.train.distributed import DistContext
from aecf_ros.train.evaluation import METRICS, evaluate_model
from aecf_ros.train.pipeline import Checkpointer, embedding_only_model, reset_fusion_head
from aecf_ros.train.scenarios import scenario_mask, scenario_names
from aecf_ros.train.stage2 import EmbeddingSet, train_fusion

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "config" / "train_tiny.yaml")
SCENARIOS = scenario_names()


def _tiny_args(tmp: Path, *extra: str) -> list[str]:
    return ["--config", TINY, "--set", f"workdir={tmp / 'work'}", "--set", f"cache_dir={tmp / 'cache'}",
            *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    out = tmp / "model.pt"
    rc = cli_main(["train", *_tiny_args(tmp), "--out", str(out), "--json", str(tmp / "summary.json")])
    assert rc == 0 and out.is_file()
    return tmp, out


def _synthetic_set(n=300, dims=(8, 6, 5), c=4, seed=0) -> EmbeddingSet:
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, c, generator=g) < 0.3).float()
    mods = ("camera", "lidar", "text")
    emb = {}
    for m, d in zip(mods, dims):
        w = torch.randn(c, d, generator=g)
        emb[m] = y @ w + 0.8 * torch.randn(n, d, generator=g)
    return EmbeddingSet(emb, y, torch.ones(n, 3, dtype=torch.bool), mods)


def test_scenario_masks():
    names = scenario_names()
    assert names == ["full", "no_camera", "no_lidar", "no_text", "only_camera", "only_lidar",
                     "only_text", "drop_p0.1", "drop_p0.3", "drop_p0.5", "drop_p0.7"]
    for name in names:
        a = scenario_mask(name, 5000, seed=3)
        assert a.any(axis=1).all(), name  # at least one modality kept
        assert np.array_equal(a, scenario_mask(name, 5000, seed=3))  # deterministic
    for p in (0.1, 0.3, 0.5, 0.7):
        m = scenario_mask(f"drop_p{p:g}", 20000, seed=0)
        # P(kept) = (1-p) + p^3/3 (an all-dropped row gets one modality back)
        assert abs(m.mean() - ((1 - p) + p ** 3 / 3)) < 0.01
    assert not np.array_equal(scenario_mask("drop_p0.5", 100, seed=0), scenario_mask("drop_p0.5", 100, seed=1))


def test_every_method_gets_the_same_masks():
    cfg = load_config(TINY)
    data = _synthetic_set()
    dims = {m: t.shape[1] for m, t in data.embeddings.items()}
    names = [f"c{i}" for i in range(4)]
    digests, rates = set(), []
    for method in METHODS:
        model = embedding_only_model(cfg, data.modalities, dims, names, method)
        ev = evaluate_model(model, data, seed=7, reliability=False)
        digests.add(ev["mask_digest"])
        rates.append([ev["scenarios"][s]["present_rate"] for s in SCENARIOS])
    assert len(digests) == 1
    assert all(r == rates[0] for r in rates)
    other = evaluate_model(model, data, seed=8, reliability=False)
    assert other["mask_digest"] not in digests


def test_metrics_wiring():
    cfg = load_config(TINY)
    data = _synthetic_set()
    dims = {m: t.shape[1] for m, t in data.embeddings.items()}
    model = embedding_only_model(cfg, data.modalities, dims, [f"c{i}" for i in range(4)], "aecf")
    model.calibrator.set_global(2.0)
    model.calibrator.set_presence({"111": 0.5, "100": 3.0})
    ev = evaluate_model(model, data, seed=0)["scenarios"]
    for name in ("full", "only_camera", "drop_p0.5"):
        present = torch.from_numpy(scenario_mask(name, len(data), data.modalities, 0))
        cal, _ = model.predict(data.embeddings, present, calibrated=True)
        raw, _ = model.predict(data.embeddings, present, calibrated=False)
        glob, _ = model.predict(data.embeddings, present, calibrated="global")
        assert ev[name]["map"] == pytest.approx(macro_map(cal.numpy(), data.labels.numpy()))
        assert ev[name]["map_raw"] == pytest.approx(macro_map(raw.numpy(), data.labels.numpy()))
        assert ev[name]["ece_raw"] == pytest.approx(expected_calibration_error(raw, data.labels))
        assert ev[name]["ece_global"] == pytest.approx(expected_calibration_error(glob, data.labels))
        pres, _ = model.predict(data.embeddings, present, calibrated="presence")
        platt, _ = model.predict(data.embeddings, present, calibrated="presence_platt")
        assert ev[name]["ece_presence"] == pytest.approx(expected_calibration_error(pres, data.labels))
        assert ev[name]["ece_platt"] == pytest.approx(expected_calibration_error(platt, data.labels))
        assert ev[name]["ece_model"] == pytest.approx(expected_calibration_error(cal, data.labels))
    assert ev["full"]["crr"] == 0.0
    assert ev["only_camera"]["ece_presence"] != ev["only_camera"]["ece_global"]
    # the model output ("map") follows the calibrator's default mode, whichever it is
    model.calibrator.set_platt({"100": (1.0, -2.0)})
    model.calibrator.set_default_mode("presence_platt")
    ev2 = evaluate_model(model, data, seed=0, reliability=False)
    assert ev2["calibration_mode"] == "presence_platt"
    present = torch.from_numpy(scenario_mask("only_camera", len(data), data.modalities, 0))
    platt, _ = model.predict(data.embeddings, present, calibrated="presence_platt")
    assert ev2["scenarios"]["only_camera"]["ece_model"] == pytest.approx(expected_calibration_error(platt, data.labels))
    assert ev2["scenarios"]["only_camera"]["ece_platt"] != ev["only_camera"]["ece_platt"]


def test_calibrator_default_is_chosen_on_validation_by_held_out_ece():
    """A per-pattern bias (what sensor loss does to a fusion model) makes the cross-fitted
    validation ECE of the Platt scaler the lowest, so it becomes predict()'s default; on
    already calibrated logits the extra parameters buy nothing and a simpler mode wins."""
    from aecf_ros.model import Calibrator
    from aecf_ros.train.scenarios import all_patterns

    g = torch.Generator().manual_seed(0)
    n, c = 600, 5
    pats = torch.tensor(all_patterns(3), dtype=torch.bool)
    present = pats.repeat(n, 1)
    groups = torch.arange(n).repeat_interleave(len(pats))
    true = 2.0 * torch.randn(len(present), c, generator=g) - 1.0
    labels = (torch.rand(len(present), c, generator=g) < torch.sigmoid(true)).double()
    shift = torch.tensor([0.0 if p.all() else (1.5 if p[1] else -1.2) for p in present])
    cal = Calibrator(3, num_classes=c).fit(true + shift[:, None], labels, present, groups=groups)
    assert cal.default_mode == "presence_platt"
    ece = cal.validation_ece_dict()
    assert ece["presence_platt"] < 0.5 * ece["presence"] and ece["presence"] <= ece["none"] + 0.01
    calibrated = Calibrator(3, num_classes=c).fit(true, labels, present, groups=groups)
    assert calibrated.default_mode != "presence_platt" or (
        calibrated.validation_ece_dict()["presence_platt"] <= min(calibrated.validation_ece_dict().values()))
    with pytest.raises(ValueError, match="groups"):
        Calibrator(3, num_classes=c).fit(true, labels, present, groups=groups[:5])


def test_stage1_lr_warms_up_then_decays():
    """The warm-up is what keeps Adam's first sign-like steps from collapsing the camera CNN."""
    from aecf_ros.train.stage1 import stage1_lr_factor

    assert stage1_lr_factor(0, 1000, 100) == pytest.approx(0.01, rel=1e-3)
    assert stage1_lr_factor(49, 1000, 100) == pytest.approx(0.5 * 0.5 * (1 + np.cos(np.pi * 49 / 1000)))
    assert stage1_lr_factor(99, 1000, 100) == pytest.approx(0.5 * (1 + np.cos(np.pi * 99 / 1000)))
    assert stage1_lr_factor(0, 1000, 0) == 1.0 and stage1_lr_factor(1000, 1000, 100) == pytest.approx(0.0)
    assert load_config(str(REPO / "config" / "train.yaml"))["stage1"]["warmup_steps"] >= 0


def test_config_merge_recurses_into_mappings_and_replaces_everything_else(tmp_path):
    """One merge (aecf_ros.model.config.merge_config) for model configs, the training config,
    sweep specs and benchmark regimes: mappings merge, lists / scalars / None replace, no aliasing."""
    from aecf_ros.model.config import merge_config

    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": {"k": 1}}
    over = {"a": {"y": [3]}, "b": None, "c": 5, "d": {"n": 1}}
    out = merge_config(base, over)
    assert out == {"a": {"x": 1, "y": [3]}, "b": None, "c": 5, "d": {"n": 1}}
    out["a"]["y"].append(4)
    out["d"]["n"] = 2
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": {"k": 1}} and over["a"]["y"] == [3] and over["d"] == {"n": 1}
    same = merge_config(base, None)
    assert same == base and same is not base and same["a"] is not base["a"]
    path = tmp_path / "c.yaml"
    path.write_text("evaluate: {drop_rates: [0.5]}\nstage2: {epochs: 1}\n")
    cfg = load_config(path)
    assert cfg["evaluate"]["drop_rates"] == [0.5] and cfg["evaluate"]["ece_bins"] == 15
    assert cfg["stage2"]["epochs"] == 1 and cfg["stage2"]["batch_size"] == 128


def test_stage2_history_records_what_the_masking_did():
    cfg = load_config(TINY)
    cfg["stage2"]["epochs"] = 2
    data = _synthetic_set(200)
    dims = {m: t.shape[1] for m, t in data.embeddings.items()}
    seen = {}
    for method in ("mean", "moddrop"):
        m = embedding_only_model(cfg, data.modalities, dims, [f"c{i}" for i in range(4)], method)
        reset_fusion_head(m, method, 0)
        hist = train_fusion(m, data, cfg["stage2"], seed=0)
        seen[method] = hist["epochs"][-1]
        assert 0.0 <= seen[method]["gate_entropy"] <= 1.0
    assert seen["mean"]["masked_per_sample"] == 0.0            # no training-time masking
    assert 0.5 < seen["moddrop"]["masked_per_sample"] < 1.3     # p = 0.3 of 3 modalities
    assert seen["moddrop"]["drop_fraction"] == pytest.approx(0.3, abs=0.1)


def test_stage2_sets_the_training_length_so_the_warmup_is_the_same_fraction_for_any_data_size():
    import warnings

    cfg = load_config(TINY)
    cfg["stage2"]["epochs"] = 2
    cfg["model"]["fusion"]["curriculum"] = {}  # the library default: warmup_fraction 0.435
    for n in (200, 400):  # 6 / 12 steps per epoch (batch 32, last partial batch dropped)
        data = _synthetic_set(n)
        dims = {m: t.shape[1] for m, t in data.embeddings.items()}
        m = embedding_only_model(cfg, data.modalities, dims, [f"c{i}" for i in range(4)], "aecf")
        reset_fusion_head(m, "aecf", 0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # no "no training length" warning
            hist = train_fusion(m, data, cfg["stage2"], seed=0)
        total = 2 * (n // 32)
        assert hist["steps"] == total and m.fusion.training_steps == total
        assert m.fusion.warmup_length() == round(0.435 * total)


def test_train_then_evaluate_end_to_end(trained, tmp_path):
    tmp, out = trained
    model = load_model(out, device="cpu")
    assert model.method == "aecf"
    meta = model.metadata
    assert "aecf-ros train" in meta["command"] and meta["train_config"]["seed"] == 0
    assert set(meta["test_metrics"]) == set(SCENARIOS)
    js = tmp_path / "eval.json"
    assert cli_main(["evaluate", "--model", str(out), "--json", str(js), "--config", TINY]) == 0
    res = json.loads(js.read_text())
    assert set(res["scenarios"]) == set(SCENARIOS)
    for name, row in res["scenarios"].items():
        for metric in METRICS:
            assert np.isfinite(row[metric]), (name, metric)
    # the evaluate command re-encodes the same held-out scenes: same numbers as at training time
    assert res["scenarios"]["full"]["map"] == pytest.approx(meta["test_metrics"]["full"]["map"], abs=1e-4)
    # chance level: an uninformative score has AP = class prevalence
    chance = res["chance_map"]
    assert 0.1 < chance < 0.5
    assert res["scenarios"]["full"]["map"] > chance + 0.03
    assert res["scenarios"]["only_text"]["map"] > chance


def test_resume_gives_identical_weights(tmp_path):
    cfg = load_config(TINY)
    cfg["stage2"]["epochs"] = 4
    data = _synthetic_set(200)
    dims = {m: t.shape[1] for m, t in data.embeddings.items()}
    names = [f"c{i}" for i in range(4)]
    dist = DistContext()

    def fresh():
        m = embedding_only_model(cfg, data.modalities, dims, names, "aecf")
        reset_fusion_head(m, "aecf", 0)
        return m

    straight = fresh()
    train_fusion(straight, data, cfg["stage2"], seed=0)
    ck = Checkpointer(tmp_path, cfg, dist, resume=False)
    part = fresh()
    short = dict(cfg["stage2"])

    def save(st):
        if st["epoch"] == 2:
            st = dict(st, fusion=part.fusion.state_dict(), head=part.head.state_dict())
            ck.save("stage2", st)
            raise KeyboardInterrupt  # "killed" after epoch 2

    with pytest.raises(KeyboardInterrupt):
        train_fusion(part, data, short, seed=0, on_epoch_end=save)
    ck2 = Checkpointer(tmp_path, cfg, dist, resume=True)
    state = ck2.load("stage2")
    resumed = fresh()
    resumed.fusion.load_state_dict(state["fusion"])
    resumed.head.load_state_dict(state["head"])
    train_fusion(resumed, data, cfg["stage2"], seed=0, state=state)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6, equal_nan=True)  # validation_ece: NaN = not measured
    cfg2 = dict(cfg, seed=5)
    with pytest.raises(SystemExit, match="different configuration"):
        Checkpointer(tmp_path, cfg2, dist, resume=True)


@pytest.mark.slow
def test_ddp_gloo_two_processes(tmp_path):
    out_dir = tmp_path / "out"
    out = out_dir / "model.pt"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    import socket

    with socket.socket() as sock:  # a free port (torchrun's static rendezvous needs a real one)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={port}",
           "-m", "aecf_ros.cli", "train", *_tiny_args(tmp_path), "--out", str(out), "--device", "cpu",
           "--set", "stage2.epochs=3"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert log.count("rank 0 wrote model bundle") == 1, log[-4000:]
    assert "world_size=2 backend=gloo" in log
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.pt"]  # written once, no temp files
    meta = load_model(out, device="cpu").metadata
    assert meta["world_size"] == 2
    ranks = sorted(meta["ranks"], key=lambda r: r["rank"])
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["stage2_steps"] > 0 for r in ranks)
    assert ranks[0]["stage2_steps"] == ranks[1]["stage2_steps"]  # DistributedSampler shards


def test_evaluate_on_user_feature_file(tmp_path):
    data = _synthetic_set(400, dims=(8, 6, 5))
    split = np.array(["train"] * 240 + ["val"] * 80 + ["test"] * 80)
    f = tmp_path / "feats.npz"
    present_text = np.ones(400, bool)
    present_text[::5] = False
    np.savez(f, emb_image=data.embeddings["camera"].numpy(), emb_text=data.embeddings["text"].numpy(),
             present_text=present_text, labels=data.labels.numpy().astype(np.uint8), split=split)
    js = tmp_path / "out.json"
    rc = cli_main(["evaluate", "--features", str(f), "--json", str(js), "--config", TINY,
                   "--methods", "mean,aecf", "--seeds", "0"])
    assert rc == 0
    res = json.loads(js.read_text())
    assert res["modalities"] == ["image", "text"]
    assert [r["method"] for r in res["runs"]] == ["mean", "aecf"]
    assert res["runs"][0]["mask_digest"] == res["runs"][1]["mask_digest"]
    scen = res["runs"][1]["scenarios"]
    assert set(scen) == {"full", "no_image", "no_text", "drop_p0.1", "drop_p0.3", "drop_p0.5", "drop_p0.7"}
    assert scen["full"]["map"] > 0.5
