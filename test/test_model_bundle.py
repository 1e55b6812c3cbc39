"""PerceptionModel bundle: build, encode, predict, save/load round trip and every load failure."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from aecf_ros.model import (
    FORMAT_VERSION, ModelLoadError, PerceptionModel, build_model, load_model, model_payload,
    save_model,
)


@pytest.fixture(scope="module")
def model() -> PerceptionModel:
    torch.manual_seed(0)
    m = build_model()
    m.calibrator.set_global(1.7)
    m.calibrator.set_presence({"111": 1.2, "100": 2.5})
    return m.eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "model.pt"
    save_model(model, path, extra={"command": "test", "seed": 0})
    return path


def _raw_inputs(seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    points = rng.normal(size=(500, 4)).astype(np.float32)
    return rgb, points, "a person next to a car"


def _embed(model, seed=0):
    rgb, pts, text = _raw_inputs(seed)
    return {"camera": model.encode_camera(rgb), "lidar": model.encode_lidar(pts),
            "text": model.encode_text(text)}


def test_encoders_give_declared_dims(model):
    emb = _embed(model)
    for m, t in emb.items():
        assert t.shape == (model.embedding_dims[m],), m
        assert torch.isfinite(t).all()
    assert model.modalities == ("camera", "lidar", "text")
    assert set(model.encoder_ids) == set(model.modalities)


def test_predict_shapes_and_missing_modalities(model):
    emb = {m: t.unsqueeze(0).repeat(4, 1) for m, t in _embed(model).items()}
    present = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.bool)
    probs, out = model.predict(emb, present)
    assert probs.shape == (4, len(model.class_names))
    assert ((probs >= 0) & (probs <= 1)).all()
    assert (out.weights[~present] == 0).all()
    raw, _ = model.predict(emb, present, calibrated=False)
    assert not torch.allclose(raw, probs)  # calibration applied
    # absent rows may hold garbage: the result must not depend on it
    emb2 = dict(emb)
    emb2["camera"] = emb["camera"].clone()
    emb2["camera"][2:] = 1e6
    probs2, _ = model.predict(emb2, present)
    assert torch.allclose(probs[2:], probs2[2:], atol=1e-6)


def test_round_trip_is_exact(model, saved):
    loaded = load_model(saved, device="cpu")
    assert loaded.class_names == model.class_names
    assert loaded.encoder_ids == model.encoder_ids
    assert loaded.metadata["command"] == "test"
    assert loaded.calibrator.presence_dict() == pytest.approx(model.calibrator.presence_dict())
    rgb, pts, text = _raw_inputs(1)
    assert torch.equal(loaded.encode_camera(rgb), model.encode_camera(rgb))
    assert torch.equal(loaded.encode_lidar(pts), model.encode_lidar(pts))
    emb = {m: t.unsqueeze(0) for m, t in _embed(model, 2).items()}
    present = torch.tensor([[True, False, True]])
    a, _ = model.predict(emb, present)
    b, _ = loaded.predict(emb, present)
    assert torch.allclose(a, b)


def test_file_is_weights_only_safe(saved):
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    assert "text_encoder" not in payload["state_dicts"]  # frozen, recreated by name


def test_encoder_id_changes_with_weights(model):
    other = build_model()
    with torch.no_grad():
        for p in other.camera_encoder.parameters():
            p.add_(0.01)
    assert other.refresh_encoder_ids()["camera"] != model.encoder_ids["camera"]
    assert other.encoder_ids["camera"].startswith(other.camera_encoder.encoder_id + "@")


def test_auto_device_loads(saved):
    loaded = load_model(saved, device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert loaded.device.type == expected


# ------------------------------------------------------------------------- failure modes
def _load_fails(path, match):
    with pytest.raises(ModelLoadError, match=match) as info:
        load_model(path, device="cpu")
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, ModelLoadError)
    return str(info.value)


def test_missing_file(tmp_path):
    _load_fails(tmp_path / "nope.pt", "not found")


def test_directory_is_rejected(tmp_path):
    _load_fails(tmp_path, "not a file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    _load_fails(p, "empty")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_truncated_file(saved, tmp_path, fraction):
    data = saved.read_bytes()
    p = tmp_path / "trunc.pt"
    p.write_bytes(data[: int(len(data) * fraction)])
    _load_fails(p, "truncated|corrupt")


def test_random_bytes(tmp_path):
    p = tmp_path / "random.pt"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    _load_fails(p, "truncated|corrupt")


def test_flipped_bytes_inside_archive(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 64):
        data[i] ^= 0xFF
    p = tmp_path / "flipped.pt"
    p.write_bytes(bytes(data))
    _load_fails(p, "corrupt|truncated|incompatible")


class Unsafe:
    """Any class outside torch's weights_only allow-list."""


def test_unsafe_pickle_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"format": "aecf_ros.model", "obj": Unsafe()}, p)
    _load_fails(p, "corrupt or unsafe")


def test_other_torch_file(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, p)
    _load_fails(p, "not an aecf_ros model")


def test_future_format_version(model, tmp_path):
    payload = model_payload(model)
    payload["format_version"] = FORMAT_VERSION + 1
    p = tmp_path / "future.pt"
    torch.save(payload, p)
    _load_fails(p, "format version")


def test_architecture_mismatch(model, tmp_path):
    payload = model_payload(model)
    payload["config"]["head"]["hidden"] = 7  # weights no longer fit
    p = tmp_path / "mismatch.pt"
    torch.save(payload, p)
    _load_fails(p, "incompatible")


def test_unknown_fusion_method(model, tmp_path):
    payload = model_payload(model)
    payload["config"]["fusion"]["method"] = "does_not_exist"
    p = tmp_path / "method.pt"
    torch.save(payload, p)
    _load_fails(p, "incompatible")


def test_tampered_weights_detected(model, tmp_path):
    payload = model_payload(model)
    sd = payload["state_dicts"]["camera_encoder"]
    key = next(iter(sd))
    sd[key] = sd[key] + 1.0
    p = tmp_path / "tampered.pt"
    torch.save(payload, p)
    _load_fails(p, "hash")


def test_missing_section(model, tmp_path):
    payload = model_payload(model)
    del payload["state_dicts"]
    p = tmp_path / "nosec.pt"
    torch.save(payload, p)
    _load_fails(p, "incompatible")


def test_embedding_only_model_round_trip(tmp_path):
    """A model without encoders (trained on a user feature file) saves and loads too."""
    cfg = {"modalities": ["image", "text"], "input_dims": {"image": 12, "text": 7},
           "camera": None, "lidar": None, "text": None, "class_names": ["a", "b", "c"],
           "fusion": {"method": "moddrop", "embed_dim": 8, "gate_hidden": 8},
           "head": {"hidden": 0, "dropout": 0.0}}
    m = build_model(cfg)
    assert m.modalities == ("image", "text") and m.encoder_ids == {}
    p = save_model(m, tmp_path / "emb.pt")
    loaded = load_model(p, device="cpu")
    emb = {"image": torch.randn(3, 12), "text": torch.randn(3, 7)}
    present = torch.tensor([[1, 1], [1, 0], [0, 1]], dtype=torch.bool)
    assert torch.allclose(m.predict(emb, present)[0], loaded.predict(emb, present)[0])
    with pytest.raises(RuntimeError, match="no camera encoder"):
        loaded.encode_camera(np.zeros((8, 8, 3), np.uint8))


# ------------------------------------------------------------------- calibrator (format 2)
def test_platt_calibrator_and_default_mode_round_trip(tmp_path):
    torch.manual_seed(1)
    m = build_model().eval()
    c = len(m.class_names)
    m.calibrator.set_platt({"111": (1.3, [0.2] * c), "100": (2.0, -0.7)})
    m.calibrator.set_default_mode("presence_platt")
    p = save_model(m, tmp_path / "platt.pt")
    loaded = load_model(p, device="cpu")
    assert loaded.calibrator.default_mode == "presence_platt"
    assert loaded.calibrator.platt_dict() == m.calibrator.platt_dict()
    emb = {k: t.unsqueeze(0).repeat(2, 1) for k, t in _embed(m).items()}
    present = torch.tensor([[True, True, True], [True, False, False]])
    default, _ = loaded.predict(emb, present)                     # calibrated=True
    platt, _ = loaded.predict(emb, present, calibrated="presence_platt")
    raw, _ = loaded.predict(emb, present, calibrated=False)
    assert torch.equal(default, platt)
    expected = torch.sigmoid(torch.logit(raw[1].double()) / 2.0 - 0.7).float()
    torch.testing.assert_close(platt[1], expected, atol=1e-5, rtol=1e-4)
    assert torch.load(p, weights_only=True)["calibration"]["default_mode"] == "presence_platt"
    with pytest.raises(ValueError, match="calibration mode"):
        loaded.predict(emb, present, calibrated="bogus")


def _format1_payload(model):
    """What a format-1 bundle (before the Platt scaler existed) contains."""
    payload = model_payload(model)
    payload["format_version"] = 1
    cal = payload["state_dicts"]["calibrator"]
    for key in [k for k in cal if k.startswith("platt_scaler.") or k in ("default_mode_index", "validation_ece")]:
        del cal[key]
    payload["calibration"] = {"global_temperature": 1.7, "presence_temperatures": {"111": 1.2}}
    return payload


def test_format1_bundle_without_platt_still_loads_with_presence_temperatures(model, tmp_path):
    p = tmp_path / "v1.pt"
    torch.save(_format1_payload(model), p)
    loaded = load_model(p, device="cpu")
    assert loaded.calibrator.default_mode == "presence"
    assert not bool(loaded.calibrator.platt_scaler.fitted)
    assert loaded.calibrator.presence_dict() == pytest.approx(model.calibrator.presence_dict())
    emb = {k: t.unsqueeze(0) for k, t in _embed(model).items()}
    present = torch.tensor([[True, False, False]])
    a, _ = loaded.predict(emb, present)
    b, _ = model.predict(emb, present, calibrated="presence")
    torch.testing.assert_close(a, b)


def test_calibrator_missing_an_old_key_is_a_clear_load_error(model, tmp_path):
    payload = _format1_payload(model)
    del payload["state_dicts"]["calibrator"]["presence_scaler.temperatures"]
    p = tmp_path / "broken_cal.pt"
    torch.save(payload, p)
    _load_fails(p, "incompatible: weights for calibrator")


def test_bundle_saved_before_presence_tokens_loads_without_them(model, tmp_path):
    """A bundle whose fusion config predates ``presence_tokens`` (no key, no ``missing_token``
    weights) was trained without the tokens: it loads, rebuilt without them, with its outputs."""
    payload = model_payload(model)
    assert payload["config"]["fusion"]["presence_tokens"] is True  # new bundles record the choice
    del payload["config"]["fusion"]["presence_tokens"]
    del payload["state_dicts"]["fusion"]["missing_token"]
    p = tmp_path / "old.pt"
    torch.save(payload, p)
    old = load_model(p, "cpu")
    assert old.fusion.presence_tokens is False and not hasattr(old.fusion, "missing_token")


def test_shipped_default_model_loads():
    from aecf_ros.model import DEFAULT_MODEL_PATH

    m = load_model(DEFAULT_MODEL_PATH, "cpu")
    assert set(m.modalities) == {"camera", "lidar", "text"}
