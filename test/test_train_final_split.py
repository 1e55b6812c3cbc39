"""Issue 19 item 1: the reported test split is a scene stream of its own seed, used once.

`aecf-ros benchmark` evaluates on ``benchmark.final_test`` (never on data.seed's test range, the
development split that design and selection looked at), refuses a final seed equal to data.seed,
and applies each regime's own validation-tuned ModDrop p. Real tiny models."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from aecf_ros.cli import main as cli_main
from aecf_ros.train.config import load_config
from aecf_ros.train.distributed import DistContext
from aecf_ros.train.pipeline import build_untrained
from aecf_ros.train.stage1 import final_test_set, final_test_spec, prepare_embeddings, split_set

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "config" / "train_tiny.yaml")


def test_final_split_is_its_own_stream_cached_and_never_data_seed(tmp_path):
    cfg = load_config(TINY, [f"cache_dir={tmp_path / 'cache'}", "benchmark.final_test={seed: 77, n: 40}"])
    model = build_untrained(cfg)
    cache = prepare_embeddings(model, cfg, dist=DistContext(), log=lambda *_: None)
    final = final_test_set(model, cfg, log=lambda *_: None)
    dev = split_set(cache, "test", model.modalities)
    assert len(final) == 40 and final.meta["stream_seed"] == 77
    # different scenes from the development split (other stream), same encoders and width
    assert final.embeddings["camera"].shape[1] == dev.embeddings["camera"].shape[1]
    assert not torch.allclose(final.embeddings["camera"][:5], dev.embeddings["camera"][:5])
    # cached: a second call reads the file, same numbers
    files = list((tmp_path / "cache").glob("final-*-seed77-n40.pt"))
    assert len(files) == 1
    again = final_test_set(model, cfg, log=lambda *_: None)
    assert torch.equal(again.labels, final.labels)
    assert final_test_spec(load_config(TINY, [])) is None  # not configured: nothing changes
    with pytest.raises(ValueError, match="data.seed"):
        final_test_spec(load_config(TINY, ["benchmark.final_test={seed: 1234, n: 40}"]))


def test_benchmark_reports_the_final_split_with_each_regimes_moddrop_p(tmp_path):
    out = tmp_path / "results"
    rc = cli_main(["benchmark", "--config", TINY, "--out", str(out), "--no-progress",
                   "--methods", "moddrop,aecf", "--seeds", "0",
                   "--set", f"workdir={tmp_path / 'work'}", "--set", f"cache_dir={tmp_path / 'cache'}",
                   "--set", "stage2.epochs=1", "--set", "data.n_train=160",
                   "--set", "benchmark.final_test={seed: 77, n: 48}",
                   "--set", "benchmark.regimes={a: {scene: {}, moddrop_p: 0.55, "
                            "moddrop_tuning: 'chosen on validation'}}"])
    assert rc == 0
    data = json.loads((out / "a" / "results.json").read_text())
    assert {r["evaluation"]["n"] for r in data["runs"]} == {48}  # not the 96 development scenes
    assert data["config"]["model"]["fusion"]["moddrop_p"] == pytest.approx(0.55)
    setup = data["meta"]["setup"]
    assert setup["test split"].startswith("FINAL: 48 scenes of stream seed 77")
    assert "ModDrop p = 0.55: chosen on validation" in setup["tuning"]
    assert "development" in setup["data"]
    assert "FINAL: 48 scenes" in (out / "a" / "results.md").read_text()
