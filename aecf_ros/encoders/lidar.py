"""Lidar point cloud -> embedding (PointNet-style).

One preprocessing path for training and run time:
``select_points`` (clean + deterministic subsample, metric units) then ``normalise_points``
(metric -> network scale); ``preprocess_points`` does both. ``SceneArrays`` stores points after
``select_points``; running ``select_points`` again on those is a no-op, so both paths give
identical tensors.

Input convention: sensor frame, metres, columns x, y, z[, intensity[, anything else]];
intensity in [0, 1] (pass ``intensity_scale=1/255`` for 8-bit intensities).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

MAX_POINTS: int = 2048
RANGE_SCALE_M: float = 30.0  # metres mapped to 1.0 (the scene lidar's maximum range)
_MAX_ABS_COORD = 4.0  # after scaling: points beyond 4 x range are clamped, not allowed to blow up


def select_points(points, max_points: int = MAX_POINTS, rng: np.random.Generator | None = None) -> np.ndarray:
    """float[N, >=3] -> float32[n, 4] (x, y, z, intensity), metric, n <= max_points.

    Rows with a non-finite x, y or z are dropped; a missing or non-finite intensity becomes 0;
    extra columns (ring, time) are ignored. Above ``max_points`` a uniform subset is kept in the
    original order, drawn from ``rng`` (default: a fresh generator seeded 0, so the same cloud
    always gives the same subset).
    """
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise ValueError(f"points must be an array [N, >=3] (x, y, z[, intensity]), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"points must be numeric, got dtype {arr.dtype}")
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    out = np.zeros((arr.shape[0], 4), np.float32)
    out[:, : min(4, arr.shape[1])] = arr[:, :4]
    out = out[np.isfinite(out[:, :3]).all(axis=1)]
    bad_intensity = ~np.isfinite(out[:, 3])
    if bad_intensity.any():
        out[bad_intensity, 3] = 0.0
    if len(out) > max_points:
        rng = rng if rng is not None else np.random.default_rng(0)
        out = out[np.sort(rng.choice(len(out), size=max_points, replace=False))]
    return out


def normalise_points(points: np.ndarray, range_scale_m: float = RANGE_SCALE_M,
                     intensity_scale: float = 1.0) -> Tensor:
    """Metric float32[n, 4] -> Tensor[n, 4]: xyz / range_scale_m (clamped to +-4), intensity
    * intensity_scale clipped to [0, 1]."""
    if range_scale_m <= 0:
        raise ValueError(f"range_scale_m must be > 0, got {range_scale_m}")
    x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).clone()
    x[:, :3] = (x[:, :3] / range_scale_m).clamp_(-_MAX_ABS_COORD, _MAX_ABS_COORD)
    x[:, 3] = (x[:, 3] * intensity_scale).clamp_(0.0, 1.0)
    return x


def preprocess_points(points, max_points: int = MAX_POINTS, rng: np.random.Generator | None = None,
                      range_scale_m: float = RANGE_SCALE_M, intensity_scale: float = 1.0) -> Tensor:
    """float[N, >=3] -> float32 Tensor[n, 4] ready for ``LidarEncoder`` (n may be 0)."""
    return normalise_points(select_points(points, max_points, rng), range_scale_m, intensity_scale)


def collate_points(clouds: Sequence) -> tuple[Tensor, Tensor]:
    """List of Tensor[n_i, 4] -> (Tensor[B, N, 4] zero-padded, BoolTensor[B, N] valid mask).

    N = max(n_i, 1), so a batch of empty clouds still has a defined shape.
    """
    if len(clouds) == 0:
        raise ValueError("collate_points needs at least one cloud")
    tensors = [c if isinstance(c, Tensor) else torch.as_tensor(np.asarray(c), dtype=torch.float32) for c in clouds]
    for t in tensors:
        if t.dim() != 2 or t.shape[1] != 4:
            raise ValueError(f"each cloud must be Tensor[n, 4], got shape {tuple(t.shape)}")
    n = max(1, max(int(t.shape[0]) for t in tensors))
    batch = torch.zeros(len(tensors), n, 4, dtype=torch.float32)
    mask = torch.zeros(len(tensors), n, dtype=torch.bool)
    for i, t in enumerate(tensors):
        batch[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return batch, mask


def masked_max_mean(features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Symmetric pooling over valid points.

    features Tensor[B, N, F], mask BoolTensor[B, N] -> (max Tensor[B, F], mean Tensor[B, F],
    count Tensor[B]). Rows without a valid point give max = mean = 0.
    """
    m = mask.unsqueeze(-1)
    count = mask.sum(dim=1)
    has_points = (count > 0).unsqueeze(-1)
    fmax = features.masked_fill(~m, float("-inf")).amax(dim=1)
    fmax = torch.where(has_points, fmax, torch.zeros_like(fmax))
    fmean = (features * m).sum(dim=1) / count.clamp(min=1).unsqueeze(-1).to(features.dtype)
    return fmax, fmean, count


class LidarEncoder(nn.Module):
    """PointNet-style encoder: (Tensor[B, N, 4], BoolTensor[B, N]) -> Tensor[B, embed_dim].

    A shared per-point MLP on (x, y, z, intensity, horizontal range) followed by masked max and
    mean pooling and the log point count (sparsity says something about range and size), then
    an MLP head. Symmetric pooling makes the output invariant to point order and to padding;
    0 valid points gives a finite output (the head applied to zero features). No BatchNorm
    over points, so padded rows can never leak into statistics.
    """

    def __init__(self, embed_dim: int = 128, width: int = 64, max_points: int = MAX_POINTS):
        super().__init__()
        if embed_dim < 1 or width < 1:
            raise ValueError(f"embed_dim and width must be >= 1, got {embed_dim}, {width}")
        self.out_dim = int(embed_dim)
        self.width = int(width)
        self.max_points = int(max_points)
        self.point_mlp = nn.Sequential(nn.Linear(5, width), nn.ReLU(inplace=True),
                                       nn.Linear(width, 2 * width), nn.ReLU(inplace=True),
                                       nn.Linear(2 * width, 4 * width))
        self.head = nn.Sequential(nn.Linear(8 * width + 1, 2 * width), nn.ReLU(inplace=True),
                                  nn.Linear(2 * width, embed_dim))

    @property
    def encoder_id(self) -> str:
        return f"lidar-pointnet-w{self.width}-p{self.max_points}-d{self.out_dim}"

    def preprocess(self, points) -> Tensor:
        return preprocess_points(points, self.max_points)

    def forward(self, points: Tensor, mask: Tensor | None = None) -> Tensor:
        if points.dim() != 3 or points.shape[2] != 4:
            raise ValueError(f"expected points Tensor[B, N, 4], got shape {tuple(points.shape)}")
        if mask is None:
            mask = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
        elif mask.shape != points.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match points {tuple(points.shape[:2])}")
        mask = mask.bool()
        rng = torch.linalg.vector_norm(points[..., :2], dim=-1, keepdim=True)
        feats = self.point_mlp(torch.cat([points, rng], dim=-1))
        fmax, fmean, count = masked_max_mean(feats, mask)
        density = torch.log1p(count.to(points.dtype)).unsqueeze(-1) / math.log1p(self.max_points)
        return self.head(torch.cat([fmax, fmean, density], dim=-1))


class TorchScriptPointEncoder(nn.Module):
    """A user's TorchScript point-cloud encoder: ``(points Tensor[B, N, 4], mask BoolTensor[B, N])
    -> Tensor[B, D]``.

    Its input is what :func:`preprocess_points` + :func:`collate_points` produce (x, y, z scaled
    by ``range_scale_m`` and clamped, intensity in [0, 1], zero-padded rows with ``mask`` False),
    at most ``max_points`` points per cloud. Probed at load with a 2-cloud batch (one with 8
    points, one empty) to learn ``out_dim``; frozen like :class:`~aecf_ros.encoders.camera.
    TorchScriptImageEncoder` (not trained by ``aecf-ros train``, recorded in the bundle by path
    + sha256). ``EncoderLoadError`` names the file on any problem.
    """

    frozen = True

    def __init__(self, path, max_points: int = MAX_POINTS):
        super().__init__()
        from aecf_ros.encoders.torchscript import EncoderLoadError, load_scripted

        module, self.path, self.sha256 = load_scripted(path, "point-cloud")
        self.net = module
        self.max_points = int(max_points)
        pts = torch.zeros(2, 8, 4)
        mask = torch.zeros(2, 8, dtype=torch.bool)
        mask[0] = True
        try:
            with torch.no_grad():
                out = module(pts, mask)
        except Exception as exc:
            raise EncoderLoadError(f"{self.path}: forward on (Tensor[2, 8, 4], BoolTensor[2, 8]) "
                                   f"failed: {exc}") from exc
        if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise EncoderLoadError(f"{self.path}: expected output Tensor[B, D], got {got}")
        if not torch.isfinite(out).all():
            raise EncoderLoadError(f"{self.path}: output on the probe clouds is not finite")
        self.out_dim = int(out.shape[1])

    @property
    def encoder_id(self) -> str:
        return f"lidar-torchscript-{self.sha256[:12]}-p{self.max_points}-d{self.out_dim}"

    def preprocess(self, points) -> Tensor:
        return preprocess_points(points, self.max_points)

    def train(self, mode: bool = True):  # frozen: keep its BatchNorm/Dropout in eval
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, points: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            mask = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
        with torch.no_grad():
            return self.net(points, mask.bool()).to(torch.float32)
