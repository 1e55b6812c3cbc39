"""build_encoder: one registry for every modality's encoder."""
import pytest
import torch

from aecf_ros.encoders import DEFAULT_DIMS, MODALITIES, build_encoder
from aecf_ros.encoders.camera import CameraEncoder
from aecf_ros.encoders.lidar import LidarEncoder


def test_defaults_and_specs_build_the_right_encoders():
    assert set(DEFAULT_DIMS) == set(MODALITIES)
    cam = build_encoder("camera")
    assert isinstance(cam, CameraEncoder) and cam.out_dim == DEFAULT_DIMS["camera"]
    lidar = build_encoder("lidar", {"embed_dim": 24, "width": 8})
    assert isinstance(lidar, LidarEncoder) and lidar.out_dim == 24 and lidar.encoder_id == "lidar-pointnet-w8-p2048-d24"
    text = build_encoder("text", {"name": "hashing", "dim": 32})
    assert text.dim == 32 and text.encode(["a bin"]).shape == (1, 32)
    assert build_encoder("text", "hashing").dim == 256


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_spec(tmp_path):
    path = tmp_path / "id.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())).save(str(path))
    enc = build_encoder("camera", {"type": "torchscript", "path": str(path), "input_size": [32, 32]})
    assert enc.out_dim == 3


def test_unknown_modality_or_type_is_rejected():
    with pytest.raises(ValueError, match="unknown modality"):
        build_encoder("radar")
    with pytest.raises(ValueError, match="unknown lidar encoder type"):
        build_encoder("lidar", "voxelnet")
