"""Training a model for a declared sensor set on the simulated scenes (``aecf-ros train --params``).

Stage 1 trains the encoder families (camera CNN, lidar PointNet) on the scenes as today. Each
declared sensor then gets its own embeddings: every image sensor sees its own window of the
scene (:mod:`aecf_ros.data.views`; two cameras see different objects), pointcloud and text
sensors the scene's cloud and caption. Stage 2 trains fusion + head + calibrator for the
declared names, and the bundle's sensors are those names (sensors of one kind share the
family's encoder weights).
"""
from __future__ import annotations

from typing import Mapping

import torch

from aecf_ros.data.views import camera_view, camera_windows
from aecf_ros.model import PerceptionModel
from aecf_ros.train.common import EmbeddingSet

__all__ = ["sensor_model", "sensor_embeddings", "sensor_split"]


def sensor_model(trained: PerceptionModel, families: Mapping[str, str | None], *, class_names=None,
                 fusion: Mapping | None = None, head: Mapping | None = None) -> PerceptionModel:
    """A model for the declared sensors (``{name: encoder family}``, declaration order) holding
    ``trained``'s stage-1 encoder weights; ``class_names`` / ``fusion`` / ``head``: settings
    of its (fresh) head and fusion instead of ``trained``'s."""
    unsupported = [n for n, f in families.items() if f is None]
    if unsupported:
        raise ValueError(f"sensors {unsupported} are of a kind the simulator cannot render (embedding): "
                         f"train on your own recordings instead")
    config = dict(trained.config)
    config["modalities"] = list(families)
    config["sensor_families"] = dict(families)
    for key, value in (("class_names", class_names), ("fusion", fusion), ("head", head)):
        if value is not None:
            config[key] = list(value) if key == "class_names" else dict(value)
    model = PerceptionModel(config)
    for name in ("camera_encoder", "lidar_encoder"):
        mine, theirs = getattr(model, name), getattr(trained, name)
        if mine is not None and theirs is not None:
            mine.load_state_dict(theirs.state_dict())
    model.refresh_encoder_ids()
    return model.to(trained.device)


@torch.no_grad()
def sensor_embeddings(model: PerceptionModel, arrays, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Per declared sensor: Tensor[N, D] of every scene of ``arrays``."""
    from aecf_ros.train.stage1 import encode_arrays

    model.eval()
    families = model.sensor_families
    full = encode_arrays(model, arrays, batch_size) if model.lidar_encoder is not None \
        and model.text_encoder is not None else None
    cameras = [n for n in model.modalities if families[n] == "camera"]
    windows = dict(zip(cameras, camera_windows(len(cameras)))) if cameras else {}
    out: dict[str, torch.Tensor] = {}
    for name in model.modalities:
        family = families[name]
        if family == "camera":
            chunks = []
            for s in range(0, len(arrays), batch_size):
                idx = range(s, min(s + batch_size, len(arrays)))
                images = torch.stack([model.camera_encoder.preprocess(camera_view(arrays.images[i], windows[name]))
                                      for i in idx])
                chunks.append(model.camera_encoder(images.to(model.device)).float().cpu())
            out[name] = torch.cat(chunks)
        elif full is not None:
            out[name] = full[family]
        else:
            out[name] = _family_embeddings(model, arrays, family, batch_size)
    return out


def _family_embeddings(model: PerceptionModel, arrays, family: str, batch_size: int) -> torch.Tensor:
    from aecf_ros.encoders.lidar import collate_points

    chunks = []
    for s in range(0, len(arrays), batch_size):
        idx = range(s, min(s + batch_size, len(arrays)))
        if family == "lidar":
            pts, mask = collate_points([model.lidar_encoder.preprocess(arrays.points_of(i)) for i in idx])
            chunks.append(model.lidar_encoder(pts.to(model.device), mask.to(model.device)).float().cpu())
        else:
            chunks.append(torch.as_tensor(model.text_encoder.encode([arrays.texts[i] for i in idx])).float().cpu())
    return torch.cat(chunks)


def sensor_split(model: PerceptionModel, arrays, split: str) -> EmbeddingSet:
    labels = torch.from_numpy(arrays.labels.astype("float32"))
    emb = sensor_embeddings(model, arrays)
    return EmbeddingSet(emb, labels, torch.ones(len(arrays), len(model.modalities), dtype=torch.bool),
                        tuple(model.modalities), {"split": split})
