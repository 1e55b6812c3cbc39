"""Lidar preprocessing and the PointNet encoder: any point count, NaNs, order invariance."""
import numpy as np
import pytest
import torch

from aecf_ros.encoders.lidar import (MAX_POINTS, LidarEncoder, collate_points, masked_max_mean,
                                     preprocess_points, select_points)


def _cloud(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-20, 20, (n, 3)), rng.uniform(0, 1, (n, 1))], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return LidarEncoder(embed_dim=32, width=16).eval()


def test_non_finite_rows_are_dropped_and_missing_intensity_is_zero():
    pts = np.array([[1, 2, 3], [np.nan, 0, 0], [0, np.inf, 0], [4, 5, 6]], np.float64)
    out = preprocess_points(pts)
    assert out.shape == (2, 4)
    torch.testing.assert_close(out[:, 3], torch.zeros(2))
    with_bad_intensity = np.array([[1, 1, 1, np.nan]], np.float32)
    assert preprocess_points(with_bad_intensity)[0, 3] == 0


def test_extra_columns_are_ignored_and_range_is_normalised():
    pts = np.array([[30.0, -15.0, 0.0, 0.5, 7.0, 123.0]])
    out = preprocess_points(pts)
    torch.testing.assert_close(out, torch.tensor([[1.0, -0.5, 0.0, 0.5]]))
    assert preprocess_points(np.array([[1e9, 0, 0, 9.0]]))[0].tolist() == [4.0, 0.0, 0.0, 1.0]


def test_subsample_is_deterministic_order_preserving_and_bounded():
    pts = _cloud(10_000)
    a, b = select_points(pts, 512), select_points(pts, 512)
    assert a.shape == (512, 4) and np.array_equal(a, b)
    rows = {tuple(r) for r in pts}
    assert all(tuple(r) in rows for r in a)
    idx = [int(np.flatnonzero((pts == r).all(axis=1))[0]) for r in a[:20]]
    assert idx == sorted(idx)
    assert preprocess_points(pts).shape == (MAX_POINTS, 4)
    assert not np.array_equal(select_points(pts, 512, np.random.default_rng(1)), a)


@pytest.mark.parametrize("bad", [np.zeros((5, 2)), np.zeros(5), np.zeros((2, 3, 4)), np.array([["a", "b", "c"]])])
def test_bad_point_arrays_are_rejected(bad):
    with pytest.raises(ValueError):
        preprocess_points(bad)


def test_collate_pads_and_masks_including_empty_clouds():
    clouds = [preprocess_points(np.zeros((0, 3))), preprocess_points(_cloud(1)), preprocess_points(_cloud(5))]
    batch, mask = collate_points(clouds)
    assert batch.shape == (3, 5, 4) and mask.shape == (3, 5)
    assert mask.sum(dim=1).tolist() == [0, 1, 5]
    batch, mask = collate_points([torch.zeros(0, 4)])
    assert batch.shape == (1, 1, 4) and not mask.any()


@pytest.mark.parametrize("n", [0, 1, 2, 3000])
def test_encoder_handles_any_point_count(encoder, n):
    batch, mask = collate_points([encoder.preprocess(_cloud(n))])
    out = encoder(batch, mask)
    assert out.shape == (1, 32) and torch.isfinite(out).all()


def test_empty_cloud_gives_a_defined_output_with_finite_gradients():
    enc = LidarEncoder(embed_dim=8, width=8)
    batch, mask = collate_points([torch.zeros(0, 4), preprocess_points(_cloud(10))])
    out = enc(batch, mask)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
    again, _ = collate_points([torch.zeros(0, 4)])
    torch.testing.assert_close(enc(again, torch.zeros(1, 1, dtype=torch.bool)), out[:1])


def test_encoder_is_invariant_to_point_order(encoder):
    pts = preprocess_points(_cloud(500))
    perm = torch.randperm(len(pts), generator=torch.Generator().manual_seed(0))
    a = encoder(*collate_points([pts]))
    b = encoder(*collate_points([pts[perm]]))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_encoder_is_invariant_to_padding(encoder):
    small, big = preprocess_points(_cloud(7, seed=1)), preprocess_points(_cloud(300, seed=2))
    alone = encoder(*collate_points([small]))
    batched = encoder(*collate_points([small, big]))
    torch.testing.assert_close(alone[0], batched[0], rtol=1e-5, atol=1e-6)


def test_masked_pooling_ignores_padding_values():
    feats = torch.tensor([[[1.0], [5.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    fmax, fmean, count = masked_max_mean(feats, mask)
    assert fmax.item() == 5.0 and fmean.item() == 3.0 and count.item() == 2
