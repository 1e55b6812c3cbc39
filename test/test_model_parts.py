"""Each node loads only its part of the bundle: an encoder node its encoder, the fusion node
fusion + head + calibrator; the ids the fusion node checks and its predictions are unchanged."""
import numpy as np
import pytest
import torch

from test_nodes_support import make_model_file


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("parts"))


def test_encoder_part_builds_only_its_encoder(bundle):
    from aecf_ros.model import load_model

    path, full = bundle
    for modality in full.modalities:
        part = load_model(path, "cpu", parts=[modality])
        assert set(part.encoders()) == {modality}
        assert part.encoder_ids == full.encoder_ids
        raw = {"camera": np.zeros((96, 128, 3), np.uint8), "lidar": np.zeros((64, 4), np.float32),
               "text": "a person next to a car"}[modality]
        assert torch.allclose(part.encode(modality, raw), full.encode(modality, raw))
        with pytest.raises(RuntimeError, match="no .* encoder"):
            part.encode(next(m for m in full.modalities if m != modality), raw)


def test_fusion_part_has_no_encoder_and_predicts_the_same(bundle):
    from aecf_ros.model import load_model

    path, full = bundle
    fusion = load_model(path, "cpu", parts=[])
    assert fusion.encoders() == {} and fusion.encoder_ids == full.encoder_ids
    assert fusion.embedding_dims == full.embedding_dims
    g = torch.Generator().manual_seed(0)
    emb = {m: torch.randn(4, d, generator=g) for m, d in full.embedding_dims.items()}
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=torch.bool)
    (p_full, _), (p_part, _) = full.predict(emb, present), fusion.predict(emb, present)
    assert torch.allclose(p_full, p_part)


def test_nodes_hold_only_their_part(bundle, rclpy_context):
    from rclpy.parameter import Parameter

    from aecf_ros.nodes.fusion_node import FusionNode
    from aecf_ros.nodes.lidar_encoder import LidarEncoderNode

    path, _ = bundle
    overrides = [Parameter("model_path", value=str(path)), Parameter("device", value="cpu")]
    nodes = [FusionNode(context=rclpy_context, parameter_overrides=overrides),
             LidarEncoderNode("lidar_encoder", context=rclpy_context, parameter_overrides=overrides)]
    try:
        for node in nodes:
            assert node.load_model()
        assert nodes[0].model.encoders() == {}
        assert set(nodes[1].model.encoders()) == {"lidar"}
    finally:
        for node in nodes:
            node.destroy_node()
