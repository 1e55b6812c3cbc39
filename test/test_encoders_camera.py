"""Camera preprocessing and encoders: odd image sizes, bad inputs, TorchScript loading."""
import numpy as np
import pytest
import torch
from torch import nn

from aecf_ros.encoders.camera import (INPUT_SIZE, CameraEncoder, EncoderLoadError, TorchScriptImageEncoder,
                                      preprocess_image, resize_image)


@pytest.mark.parametrize("shape", [(240, 320, 3), (1, 1, 3), (3000, 4000, 3), (4000, 3000, 3), (7, 1000, 3)])
def test_any_image_size_becomes_the_encoder_input(shape):
    rgb = np.full(shape, 200, np.uint8)
    x = preprocess_image(rgb)
    assert x.shape == (3, *INPUT_SIZE) and x.dtype == torch.float32
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("bad", [
    np.zeros((240, 320), np.uint8),            # grayscale
    np.zeros((240, 320, 1), np.uint8),         # single channel
    np.zeros((240, 320, 4), np.uint8),         # RGBA
    np.zeros((240, 320, 3), np.float32),       # float image
    np.zeros((0, 320, 3), np.uint8),           # empty
])
def test_wrong_channels_or_dtype_are_rejected(bad):
    with pytest.raises(ValueError):
        preprocess_image(bad)


def test_non_array_is_rejected():
    with pytest.raises(ValueError, match="numpy array"):
        preprocess_image([[[0, 0, 0]]])


def test_resizing_an_already_resized_image_changes_nothing():
    rgb = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    small = resize_image(rgb)
    assert resize_image(small) is small
    assert preprocess_image(small).equal(preprocess_image(rgb))


def test_camera_encoder_output_shape_and_id():
    enc = CameraEncoder(embed_dim=32, width=8).eval()
    assert enc.out_dim == 32 and "d32" in enc.encoder_id
    batch = torch.stack([enc.preprocess(np.zeros((1, 1, 3), np.uint8)),
                         enc.preprocess(np.full((480, 640, 3), 255, np.uint8))])
    out = enc(batch)
    assert out.shape == (2, 32) and torch.isfinite(out).all()
    single = enc(batch[:1])  # GroupNorm: a batch of one gives the same row
    torch.testing.assert_close(single, out[:1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        enc(torch.zeros(1, 1, 96, 128))


class _TinyTrunk(nn.Module):
    def __init__(self, d: int = 12, keep_spatial: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, d, 3, stride=4)
        self.keep_spatial = keep_spatial

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.adaptive_avg_pool2d(self.conv(x), 1)
        return y if self.keep_spatial else y.flatten(1)


class _TupleOut(nn.Module):
    def forward(self, x: torch.Tensor):
        return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))


def _script(module, path):
    torch.jit.script(module).save(str(path))
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("keep_spatial", [False, True])
def test_torchscript_encoder_probes_its_output_dim(tmp_path, keep_spatial):
    path = _script(_TinyTrunk(12, keep_spatial), tmp_path / "trunk.pt")
    enc = TorchScriptImageEncoder(path, input_size=(64, 64))
    assert enc.out_dim == 12 and enc.encoder_id.startswith("torchscript-") and enc.encoder_id.endswith("d12")
    x = enc.preprocess(np.zeros((240, 320, 3), np.uint8))
    assert x.shape == (3, 64, 64)
    assert enc(x.unsqueeze(0)).shape == (1, 12)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bad_torchscript_files_raise_a_clear_error(tmp_path):
    with pytest.raises(EncoderLoadError, match="not found"):
        TorchScriptImageEncoder(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a zip archive")
    with pytest.raises(EncoderLoadError, match="not a loadable TorchScript"):
        TorchScriptImageEncoder(junk)
    with pytest.raises(EncoderLoadError, match="one Tensor"):
        TorchScriptImageEncoder(_script(_TupleOut(), tmp_path / "tuple.pt"), input_size=(32, 32))
    assert issubclass(EncoderLoadError, ValueError)


def test_prepared_inference_gives_the_same_embeddings_and_follows_weight_changes():
    """PerceptionModel.prepare_inference (what the nodes call after loading): the frozen camera
    trace gives the eager module's embedding exactly; training or loading weights drops it, so a
    stale trace can never answer."""
    import torch

    from aecf_ros.model import build_model

    torch.manual_seed(0)
    model = build_model({}).eval()
    rgb = np.random.default_rng(1).integers(0, 255, (120, 160, 3)).astype(np.uint8)
    eager = model.encode_camera(rgb).clone()
    assert model.prepare_inference() == ["camera"]
    assert "_camera_inference" in model.__dict__
    torch.testing.assert_close(model.encode_camera(rgb), eager, rtol=0, atol=1e-6)
    # new weights: the trace is dropped, the answer follows the new weights
    state = {k: v + 0.01 if k.startswith("camera_encoder.proj") else v for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert "_camera_inference" not in model.__dict__
    moved = model.encode_camera(rgb)
    assert not torch.allclose(moved, eager)
    model.prepare_inference()
    torch.testing.assert_close(model.encode_camera(rgb), moved, rtol=0, atol=1e-6)
    model.train()
    assert "_camera_inference" not in model.__dict__
