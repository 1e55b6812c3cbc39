"""The perception model bundle: encoders + fusion + multi-label head + calibrator in one file.

``PerceptionModel`` is what every consumer of a trained model uses (the ROS nodes, ``aecf-ros
evaluate``, the demo). It holds

* ``camera_encoder`` (small CNN), ``lidar_encoder`` (PointNet) - trained in stage 1, saved;
  or a user's TorchScript file (``{type: torchscript, path: ...}``, see
  :mod:`aecf_ros.encoders.torchscript`) - frozen, NOT saved: the bundle records its path and
  the sha256 of the file (``encoder_files``), ``load_model`` reloads it and refuses a file whose
  hash differs;
* ``text_encoder`` - frozen (packaged MiniLM or the hashing encoder), NOT saved: it is recreated
  from its name in the config, and its id in ``encoder_ids`` lets a fusion node reject text
  embeddings produced by a different text model;
* ``fusion`` - any method of :func:`aecf_ros.core.baselines.build_fusion` (AECF or a baseline);
* ``head`` - linear (``head.hidden == 0``) or one-hidden-layer MLP giving one logit per class;
* ``calibrator`` - a global temperature, a per-presence-pattern temperature and a
  per-presence-pattern Platt scaler (temperature + per-class bias), fitted on validation data
  with simulated sensor drops; the default mode is the one with the lowest held-out ECE on
  validation (:class:`Calibrator`).

Each ``encode_<modality>(raw)`` call runs the encoder's own preprocessing
(``preprocess_image`` / ``preprocess_points`` + ``collate_points`` / the text encoder's tokenizer):
the exact code path used when the training embeddings were cached, so there is one path only.

File format (``save_model`` / ``load_model``): ONE ``torch.save`` file holding only plain
dicts, lists, strings, numbers and tensors, so it loads with ``torch.load(weights_only=True)``
(no pickled code runs when a file is opened)::

    {"format": "aecf_ros.model", "format_version": 2,
     "config": {...build_model config...}, "class_names": [...], "modalities": [...],
     "state_dicts": {"camera_encoder": ..., "lidar_encoder": ..., "fusion": ..., "head": ...,
                     "calibrator": ...},
     "calibration": {"default_mode": "presence_platt", "validation_ece": {mode: float},
                     "global_temperature": float, "presence_temperatures": {"101": T, ...},
                     "presence_platt": {"101": {"temperature": T, "bias": [C floats]}, ...}},
     "encoder_ids": {"camera": "...", "lidar": "...", "text": "..."},
     "encoder_files": {"camera": {"path": "/abs/trunk.pt", "sha256": "..."}},  # TorchScript only
     "embedding_dims": {...}, "metadata": {...training command, settings, metrics...}}

``load_model`` raises :class:`ModelLoadError` (a ``RuntimeError``) with a one-line reason for a
missing, truncated, corrupt or incompatible file; it never lets a raw torch traceback escape.

The package, one idea a file: ``config`` (configurations and merging), ``factories`` (encoder,
fusion and head constructors), ``calibrator`` (:class:`Calibrator`), ``ids`` (encoder ids),
``perception`` (:class:`PerceptionModel`, ``build_model``), ``bundle`` (the file format,
``save_model`` / ``load_model``), ``errors`` (:class:`ModelLoadError`).
"""
from aecf_ros.model.bundle import (DEFAULT_MODEL_PATH, FORMAT_NAME, FORMAT_VERSION, load_model,
                                   locate_encoder_file, model_payload, read_model_file, save_model)
from aecf_ros.model.calibrator import Calibrator
from aecf_ros.model.config import default_model_config, merge_config, merge_model_config, small_model_config
from aecf_ros.model.errors import ModelLoadError
from aecf_ros.model.factories import (build_camera_encoder, build_fusion_from_config, build_head,
                                      build_lidar_encoder, build_text_encoder)
from aecf_ros.model.ids import is_file_backed
from aecf_ros.model.perception import PerceptionModel, build_model, resolve_device

__all__ = [
    "DEFAULT_MODEL_PATH", "FORMAT_NAME", "FORMAT_VERSION", "Calibrator", "ModelLoadError", "PerceptionModel",
    "build_camera_encoder", "build_fusion_from_config", "build_head", "build_lidar_encoder", "build_model",
    "build_text_encoder", "default_model_config", "is_file_backed", "load_model", "locate_encoder_file",
    "merge_config", "merge_model_config", "model_payload", "read_model_file", "resolve_device", "save_model",
    "small_model_config",
]
