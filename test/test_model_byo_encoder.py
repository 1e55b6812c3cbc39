"""Bring your own encoder, end to end: a real scripted TorchScript image trunk written to tmp_path
-> ``aecf-ros train`` with ``model.camera: {type: torchscript, ...}`` -> bundle -> ``load_model``
-> ``encode_camera`` / ``aecf-ros evaluate``; a swapped or missing trunk file is refused; the
file can be relocated. Plus a TorchScript lidar encoder (points[B, N, 4], mask[B, N])."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aecf_ros.cli import main as cli_main
from aecf_ros.data.scenes import generate_scene
from aecf_ros.encoders.camera import TorchScriptImageEncoder, preprocess_image
from aecf_ros.encoders.lidar import TorchScriptPointEncoder, collate_points, preprocess_points
from aecf_ros.model import (ModelLoadError, build_model, load_model, read_model_file, save_model,
                            small_model_config)
from aecf_ros.train.config import load_config, model_config
from aecf_ros.train.stage1 import cache_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "config" / "train_tiny.yaml")
TRUNK_DIM = 24
INPUT_SIZE = (48, 64)  # (H, W): not square, so a swapped H/W would show


class _Trunk(nn.Module):
    """Conv -> ReLU -> global average pool -> Linear(D): a stand-in for a user's image trunk."""

    def __init__(self, dim: int = TRUNK_DIM):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, dim)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


class _PointTrunk(nn.Module):
    """Masked-mean PointNet-ish lidar encoder taking (points[B, N, 4], mask[B, N])."""

    def __init__(self, dim: int = 10):
        super().__init__()
        self.mlp = nn.Linear(4, dim)

    def forward(self, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.mlp(points)) * mask.unsqueeze(-1).to(points.dtype)
        return f.sum(1) / mask.sum(1, keepdim=True).clamp(min=1).to(points.dtype)


def _script(module: nn.Module, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    for p in module.parameters():  # deterministic weights per seed
        nn.init.normal_(p, std=0.3)
    torch.jit.script(module.eval()).save(str(path))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _camera_spec(path: Path) -> str:
    return f"model.camera={{type: torchscript, path: {path}, input_size: [{INPUT_SIZE[0]}, {INPUT_SIZE[1]}]}}"


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
    """Train the tiny config with the user trunk (through the CLI, as a user would)."""
    tmp = tmp_path_factory.mktemp("byo")
    trunk = _script(_Trunk(), tmp / "trunk.pt")
    out = tmp / "bundle" / "model.pt"
    rc = cli_main(["train", "--config", TINY, "--set", _camera_spec(trunk),
                   "--set", f"workdir={tmp / 'work'}", "--set", f"cache_dir={tmp / 'cache'}",
                   "--set", "data.n_encoder=32", "--set", "data.n_train=160", "--set", "data.n_val=48",
                   "--set", "data.n_test=48", "--set", "stage2.epochs=4",
                   "--out", str(out), "--json", str(tmp / "summary.json"), "--no-progress"])
    assert rc == 0 and out.is_file()
    return tmp, trunk, out


def test_a_different_encoder_type_replaces_the_default_section(tmp_path):
    trunk = tmp_path / "t.pt"
    cfg = load_config(TINY, [_camera_spec(trunk)])
    assert model_config(cfg)["camera"] == {"type": "torchscript", "path": str(trunk),
                                           "input_size": list(INPUT_SIZE)}
    # same type still merges key by key; text by name: a new name drops the old name's keys
    assert model_config(load_config(TINY, ["model.camera={width: 4}"]))["camera"] == {"embed_dim": 64, "width": 4}
    assert model_config(load_config(TINY, ["model.text={name: minilm}"]))["text"] == {"name": "minilm"}
    cam = build_model({"camera": {"type": "torchscript", "path": str(_script(_Trunk(7), trunk)),
                                  "input_size": [32, 32]}, "text": {"name": "hashing", "dim": 8}}).camera_encoder
    assert isinstance(cam, TorchScriptImageEncoder) and cam.out_dim == 7


def test_bundle_holds_the_user_trunk_and_encodes_with_it(byo):
    tmp, trunk, out = byo
    sha = _sha(trunk)
    payload = read_model_file(out)
    assert payload["encoder_files"] == {"camera": {"path": str(trunk.resolve()), "sha256": sha}}
    assert payload["config"]["camera"] == {"type": "torchscript", "path": str(trunk.resolve()),
                                           "input_size": list(INPUT_SIZE)}
    assert "camera_encoder" not in payload["state_dicts"]  # the file is the weights
    assert payload["embedding_dims"]["camera"] == TRUNK_DIM
    summary = json.loads((tmp / "summary.json").read_text())
    assert summary["stage1"]["history"]["frozen"] == ["camera"]  # stage 1 did not touch it

    model = load_model(out, device="cpu")
    assert isinstance(model.camera_encoder, TorchScriptImageEncoder)
    assert model.embedding_dims["camera"] == TRUNK_DIM
    assert sha in model.encoder_ids["camera"] and model.encoder_ids == payload["encoder_ids"]

    rgb = generate_scene(5, seed=99).image  # a real generated scene image, 240 x 320
    assert rgb.shape[:2] != INPUT_SIZE
    emb = model.encode_camera(rgb)
    ref = torch.jit.load(str(trunk))(preprocess_image(rgb, INPUT_SIZE).unsqueeze(0))[0]
    assert emb.shape == (TRUNK_DIM,)
    torch.testing.assert_close(emb, ref, rtol=0, atol=1e-6)
    # and the fusion consumes it
    emb_all = {"camera": emb, "lidar": model.encode_lidar(generate_scene(5, seed=99).points),
               "text": model.encode_text("a car and a cyclist")}
    probs, _ = model.predict(emb_all, torch.ones(3, dtype=torch.bool))
    assert probs.shape == (1, len(model.class_names)) and torch.isfinite(probs).all()


def test_evaluate_works_on_the_bundle(byo, tmp_path):
    _, trunk, out = byo
    rc = cli_main(["evaluate", "--model", str(out), "--json", str(tmp_path / "ev.json"),
                   "--n-test", "32", "--no-progress", "--device", "cpu"])
    assert rc == 0
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert _sha(trunk) in ev["encoder_ids"]["camera"]
    assert np.isfinite(ev["scenarios"]["full"]["map"])


def test_a_swapped_trunk_file_is_refused(byo):
    _, trunk, out = byo
    original = trunk.read_bytes()
    try:  # same architecture and output width, other weights: only the hash tells
        _script(_Trunk(), trunk, seed=1)
        with pytest.raises(ModelLoadError, match="changed since training"):
            load_model(out, device="cpu")
    finally:
        trunk.write_bytes(original)
    assert load_model(out, device="cpu").embedding_dims["camera"] == TRUNK_DIM


def test_a_missing_trunk_file_is_refused_and_can_be_relocated(byo, tmp_path):
    _, trunk, out = byo
    moved = tmp_path / "elsewhere" / "my_trunk.pt"
    moved.parent.mkdir()
    shutil.move(trunk, moved)
    try:
        with pytest.raises(ModelLoadError, match="encoder file not found"):
            load_model(out, device="cpu")
        model = load_model(out, device="cpu", encoder_paths={"camera": moved})
        assert model.camera_encoder.path == moved.resolve()
        other = _script(_Trunk(), tmp_path / "other.pt", seed=2)
        with pytest.raises(ModelLoadError, match="changed since training"):
            load_model(out, device="cpu", encoder_paths={"camera": other})
        with pytest.raises(ModelLoadError, match="encoder_paths names"):
            load_model(out, device="cpu", encoder_paths={"lidar": moved})
        # a copy with the recorded name next to the bundle is found without any option
        beside = out.parent / trunk.name
        shutil.copy(moved, beside)
        try:
            assert load_model(out, device="cpu").camera_encoder.path == beside.resolve()
        finally:
            beside.unlink()
    finally:
        shutil.move(moved, trunk)


def test_embedding_cache_is_keyed_by_the_trunk_content(tmp_path):
    a = _script(_Trunk(), tmp_path / "a.pt")
    b = tmp_path / "b" / "a.pt"
    b.parent.mkdir()
    shutil.copy(a, b)
    key = cache_key(load_config(TINY, [_camera_spec(a)]))
    assert cache_key(load_config(TINY, [_camera_spec(b)])) == key  # moved, same bytes: cache hit
    _script(_Trunk(), b, seed=3)
    assert cache_key(load_config(TINY, [_camera_spec(b)])) != key  # new weights: re-embed


def test_torchscript_lidar_encoder_round_trip(tmp_path):
    path = _script(_PointTrunk(10), tmp_path / "points.pt")
    cfg = small_model_config()
    cfg["lidar"] = {"type": "torchscript", "path": str(path), "max_points": 128}
    model = build_model(cfg)
    assert isinstance(model.lidar_encoder, TorchScriptPointEncoder) and model.embedding_dims["lidar"] == 10
    bundle = save_model(model, tmp_path / "m.pt")
    loaded = load_model(bundle, device="cpu")
    assert _sha(path) in loaded.encoder_ids["lidar"]
    cloud = generate_scene(3, seed=7).points
    pts, mask = collate_points([preprocess_points(cloud, 128)])
    torch.testing.assert_close(loaded.encode_lidar(cloud), torch.jit.load(str(path))(pts, mask)[0],
                               rtol=0, atol=1e-6)
    _script(_PointTrunk(10), path, seed=4)
    with pytest.raises(ModelLoadError, match="changed since training"):
        load_model(bundle, device="cpu")
    path.unlink()
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(bundle, device="cpu")
