"""Camera image -> embedding.

One preprocessing path for training and run time: ``resize_image`` (any H x W -> the encoder's
input size) then ``preprocess_image`` (scale + normalise to a float tensor). ``SceneArrays``
stores images after ``resize_image``; resizing an image that already has the target size
returns it unchanged, so both paths give identical tensors.

``CameraEncoder`` is a small CNN trained with the fusion model. ``TorchScriptImageEncoder``
wraps a user's own TorchScript image encoder (e.g. an exported CLIP/ResNet trunk).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from aecf_ros.encoders.torchscript import EncoderLoadError, load_scripted

__all__ = ["INPUT_SIZE", "IMAGENET_MEAN", "IMAGENET_STD", "EncoderLoadError", "resize_image",
           "preprocess_image", "CameraEncoder", "TorchScriptImageEncoder"]

INPUT_SIZE: tuple[int, int] = (96, 128)  # (height, width), 4:3 like the scene camera
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3 RGB, got shape {tuple(rgb.shape)}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"image is empty: shape {tuple(rgb.shape)}")


def resize_image(rgb: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """uint8[H, W, 3] -> uint8[h, w, 3] with ``size = (h, w)``; unchanged if already that size.

    Area interpolation when shrinking (no aliasing of thin structures such as wheels and
    mesh), linear when enlarging (INTER_AREA is undefined-looking for 1x1 inputs).
    """
    _check_rgb(rgb)
    h, w = int(size[0]), int(size[1])
    if rgb.shape[:2] == (h, w):
        return rgb
    shrink = rgb.shape[0] >= h and rgb.shape[1] >= w
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def preprocess_image(rgb: np.ndarray, size: tuple[int, int] = INPUT_SIZE,
                     mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """RGB uint8[H, W, 3] (any H, W >= 1) -> float32 Tensor[3, h, w], normalised per channel.

    Raises ValueError for a non-uint8 array or a channel count other than 3 (grayscale, RGBA):
    converting those is the caller's job (``runtime.conversions``), because guessing here would
    hide a wrong camera encoding.
    """
    small = resize_image(rgb, size)
    x = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1).to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def _block(c_in: int, c_out: int) -> nn.Sequential:
    groups = 8 if c_out % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                         nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                         nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True))


class CameraEncoder(nn.Module):
    """Small CNN: Tensor[B, 3, h, w] (``preprocess_image`` output) -> Tensor[B, embed_dim].

    Four stride-2 stages (width, 2w, 4w, 4w channels; GroupNorm so batch size 1 at run time
    behaves like training), then global average + max pooling and a linear projection.
    Any input size works (global pooling); ``input_size`` is what ``preprocess`` produces.
    """

    def __init__(self, embed_dim: int = 128, width: int = 32, input_size: tuple[int, int] = INPUT_SIZE):
        super().__init__()
        if embed_dim < 1 or width < 1:
            raise ValueError(f"embed_dim and width must be >= 1, got {embed_dim}, {width}")
        self.out_dim = int(embed_dim)
        self.width = int(width)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        chans = [width, 2 * width, 4 * width, 4 * width]
        self.features = nn.Sequential(*[_block(a, b) for a, b in zip([3] + chans[:-1], chans)])
        self.proj = nn.Linear(2 * chans[-1], embed_dim)

    @property
    def encoder_id(self) -> str:
        h, w = self.input_size
        return f"camera-cnn4-w{self.width}-{h}x{w}-d{self.out_dim}"

    def preprocess(self, rgb: np.ndarray) -> Tensor:
        return preprocess_image(rgb, self.input_size)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected Tensor[B, 3, h, w], got shape {tuple(images.shape)}")
        return self._embed(images)

    def _embed(self, images: Tensor) -> Tensor:
        f = self.features(images)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.proj(pooled)

    def frozen_for_inference(self) -> "torch.jit.ScriptModule":
        """A frozen TorchScript trace of this encoder's current weights for batch-1 inference:
        the same outputs (measured bit-identical on CPU), ~25 % faster a frame on CPU (the
        weights become constants, so the convolutions skip per-call weight reordering). It does
        not follow later weight changes: make a new one after training or loading weights."""
        was = self.training
        self.eval()
        try:
            example = torch.zeros(1, 3, *self.input_size, device=next(self.parameters()).device)
            with torch.no_grad(), warnings.catch_warnings():
                # TracerWarning from GroupNorm's batch-size check: a constant at the fixed input size
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(_Embed(self), example, check_trace=False)
                return torch.jit.freeze(traced.eval())
        finally:
            self.train(was)


class _Embed(nn.Module):
    """``CameraEncoder._embed`` as a module of its own (what :meth:`frozen_for_inference` traces)."""

    def __init__(self, encoder: "CameraEncoder"):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: Tensor) -> Tensor:
        return self.encoder._embed(images)


class TorchScriptImageEncoder(nn.Module):
    """A user's TorchScript image encoder: Tensor[B, 3, h, w] -> Tensor[B, D].

    The file is loaded with ``torch.jit.load`` on CPU and probed with one zero image of
    ``input_size`` to learn ``out_dim``; outputs shaped [B, D, 1, 1] are flattened. Any
    problem (missing file, not TorchScript, a forward that fails or returns something other
    than one [1, D] tensor) raises ``EncoderLoadError`` naming the file. The network is frozen
    (eval mode, no gradients), as a pre-trained trunk usually is: ``aecf-ros train`` does not
    fine-tune it. ``path`` (resolved) and ``sha256`` (of the file's bytes) identify it; the
    model bundle records both instead of the weights.
    """

    frozen = True  # aecf_ros.model / stage 1: not trained, not saved in the bundle

    def __init__(self, path: str | Path, input_size: tuple[int, int] = (224, 224),
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        module, self.path, self.sha256 = load_scripted(path, "image")
        self.net = module
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        try:
            with torch.no_grad():
                probe = self._flatten(module(torch.zeros(1, 3, *self.input_size)))
        except Exception as exc:
            raise EncoderLoadError(
                f"{self.path}: forward on a zero image Tensor[1, 3, {self.input_size[0]}, {self.input_size[1]}] "
                f"failed: {exc}") from exc
        if not torch.isfinite(probe).all():
            raise EncoderLoadError(f"{self.path}: output on a zero image is not finite")
        self.out_dim = int(probe.shape[1])
        self._hash = self.sha256[:12]

    @staticmethod
    def _flatten(out) -> Tensor:
        if not isinstance(out, Tensor):
            raise EncoderLoadError(f"expected the module to return one Tensor, got {type(out).__name__}")
        if out.dim() == 4 and out.shape[2:] == (1, 1):
            out = out.flatten(1)
        if out.dim() != 2:
            raise EncoderLoadError(f"expected output Tensor[B, D], got shape {tuple(out.shape)}")
        return out

    @property
    def encoder_id(self) -> str:
        h, w = self.input_size
        return f"torchscript-{self._hash}-{h}x{w}-d{self.out_dim}"

    def preprocess(self, rgb: np.ndarray) -> Tensor:
        return preprocess_image(rgb, self.input_size, self.mean, self.std)

    def train(self, mode: bool = True):  # frozen trunk: keep its BatchNorm/Dropout in eval
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            return self._flatten(self.net(images)).to(torch.float32)
