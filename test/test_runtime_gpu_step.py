"""The GPU fusion path: CPU behaviour unchanged, CPU refused clearly; on CUDA (gpu-marked, run by
``make bench-gpu``) the CUDA-graph float16 step matches float32 eager and the engine uses it."""
import numpy as np
import pytest
import torch

from aecf_ros.core.baselines import build_fusion

DIMS = {"camera": 16, "lidar": 16, "text": 16}


def test_cuda_step_refuses_cpu():
    from aecf_ros.runtime.gpu_step import CudaFusionStep

    with pytest.raises(ValueError, match="CUDA"):
        CudaFusionStep(build_fusion("aecf", DIMS, 8), torch.nn.Linear(8, 3), list(DIMS), DIMS, "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("graph", [False, True])
def test_cuda_graph_half_step_matches_float32(graph):
    from aecf_ros.runtime.gpu_step import CudaFusionStep

    torch.manual_seed(0)
    fusion, head = build_fusion("aecf", DIMS, 8).eval(), torch.nn.Linear(8, 3).eval()
    step = CudaFusionStep(fusion, head, list(DIMS), DIMS, "cuda", "float16", cuda_graph=graph)
    rng = np.random.default_rng(0)
    for present in ([True, True, True], [True, False, True], [False, True, False]):
        emb = {m: rng.normal(size=d).astype(np.float32) for m, d in DIMS.items()}
        logits, w, _ = step({m: e if p else None for (m, e), p in zip(emb.items(), present)}, present)
        with torch.inference_mode():
            x = {m: torch.from_numpy(e).unsqueeze(0) if p else torch.zeros(1, DIMS[m])
                 for (m, e), p in zip(emb.items(), present)}
            out = fusion(x, torch.tensor([present]))
            ref = head(out.fused)
        assert torch.allclose(logits.cpu(), ref, atol=2e-2)
        assert np.allclose(w, out.weights[0].numpy(), atol=2e-2)
        assert all(w[i] == 0 for i, p in enumerate(present) if not p)


def test_engine_refuses_cuda_step_on_cpu_model_and_cpu_path_unchanged():
    from aecf_ros.model import build_model
    from aecf_ros.runtime.fusion_engine import FusionEngine

    model = build_model().eval()
    engine = FusionEngine(model)
    with pytest.raises(ValueError, match="CUDA"):
        engine.enable_cuda_step()
    assert engine._cuda_step is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_engine_on_cuda_uses_graph_step_and_matches_cpu():
    from aecf_ros.model import build_model
    from aecf_ros.runtime.fusion_engine import FusionEngine

    torch.manual_seed(0)
    cpu = build_model().eval()
    gpu = build_model().eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    engines = [FusionEngine(cpu), FusionEngine(gpu)]
    assert engines[1].enable_cuda_step().startswith(("cuda graph", "eager"))
    rng = np.random.default_rng(0)
    for m in cpu.modalities:
        e = rng.normal(size=cpu.embedding_dims[m])
        for eng in engines:
            assert eng.submit(m, e, 1.0, 1.0) is None
    a, b = (eng.step(1.0).output for eng in engines)
    assert np.allclose(a.scores, b.scores, atol=2e-2) and np.allclose(a.weights, b.weights, atol=2e-2)
