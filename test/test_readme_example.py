"""The README's "AECF on your own embeddings" loop, run exactly as printed, learns.

The code block after the ``readme-example: own-embeddings`` marker is executed unchanged with
the names it leaves to the user (``num_classes``, ``epochs``, ``loader``) bound to small
synthetic data: three modalities that each see the multi-label truth through their own noisy
linear map, one of them dominant, with random missing sensors. It must beat chance clearly on
held-out data, with all sensors and with the dominant one missing.
"""
import re
from pathlib import Path

import numpy as np
import torch

from aecf_ros.core.metrics import macro_map

README = Path(__file__).resolve().parents[1] / "README.md"
DIMS = {"camera": 512, "lidar": 256, "text": 384}
NOISE = {"camera": 3.0, "lidar": 3.0, "text": 0.8}  # text dominates


def readme_block() -> str:
    text = README.read_text()
    marker = text.index("readme-example: own-embeddings")
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, marker)
    assert match, "the README example block is missing"
    return match.group(1)


def make_data(n, gen, maps):
    y = (torch.rand(n, 6, generator=gen) < 0.3).float()
    emb = {m: (2 * y - 1) @ maps[m] + NOISE[m] * torch.randn(n, d, generator=gen) for m, d in DIMS.items()}
    present = torch.rand(n, 3, generator=gen) < 0.8
    empty = ~present.any(1)
    present[empty, 0] = True
    return emb, present, y


def test_readme_training_loop_runs_as_printed_and_learns():
    code = readme_block()
    assert "AECFusion(" in code and "AECFObjective()" in code and "fusion.step()" in code
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    maps = {m: torch.randn(6, d, generator=gen) / d ** 0.5 * 4 for m, d in DIMS.items()}
    emb, present, y = make_data(2048, gen, maps)
    loader = [({m: e[i:i + 128] for m, e in emb.items()}, present[i:i + 128], y[i:i + 128])
              for i in range(0, 2048, 128)]
    scope = {"num_classes": 6, "epochs": 8, "loader": loader}
    exec(compile(code, str(README), "exec"), scope)
    fusion, head = scope["fusion"], scope["head"]
    assert scope["probs"].shape == (128, 6)
    assert fusion.training_mask_calls > 0  # the curriculum ran
    test_emb, _, test_y = make_data(1000, gen, maps)
    chance = float(test_y.mean())
    fusion.eval()
    with torch.no_grad():
        for present, floor in ((torch.ones(1000, 3, dtype=torch.bool), 0.85),
                               (torch.tensor([True, True, False]).expand(1000, 3), 0.55)):
            p = torch.sigmoid(head(fusion(test_emb, present).fused))
            score = macro_map(p.numpy(), test_y.numpy())
            assert np.isfinite(score) and score > max(floor, chance + 0.2), (present[0].tolist(), score)
