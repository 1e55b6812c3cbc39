"""Pre-extracted embeddings in one ``.npz`` file, e.g. MS-COCO CLIP image + caption embeddings
as used in the AECF paper, or embeddings recorded from the robot's own encoder nodes.

File layout (``numpy.savez``; loaded with ``allow_pickle=False``, so no object arrays):

``emb_<modality>``      float[N, D_m]  one per modality (at least one), e.g. ``emb_image``,
                        ``emb_text``; modality names are the part after ``emb_``
``present_<modality>``  bool[N]        optional; False marks a row whose sensor was missing
                        (its embedding values are ignored and may be NaN; they load as 0).
                        Without it every row counts as present.
``labels``              {0,1}[N, C]    multi-hot ground truth (required)
``class_names``         str[C]         optional
``split``               str[N]         optional, e.g. "train" / "val" / "test"

``load_features`` validates everything and raises ``ValueError`` naming the file and the key:
wrong rank, mismatched N, non-finite values in present rows, labels other than 0/1, unknown
``present_`` keys, or a missing ``labels`` / ``emb_*``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


@dataclass
class FeatureSet:
    """Validated features: ``embeddings[m]`` float32[N, D_m], ``present[m]`` bool[N],
    ``labels`` uint8[N, C], optional ``class_names`` (C) and ``split`` (N)."""

    embeddings: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    labels: np.ndarray
    class_names: list[str] | None = None
    split: np.ndarray | None = None
    source: str = field(default="")

    @property
    def modalities(self) -> list[str]:
        return list(self.embeddings)

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(e.shape[1]) for m, e in self.embeddings.items()}

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, rows: np.ndarray | Sequence[int] | str) -> "FeatureSet":
        """Rows by index / boolean mask, or by split name (``fs.subset("train")``)."""
        if isinstance(rows, str):
            if self.split is None:
                raise ValueError(f"{self.source or 'feature set'} has no split array; cannot select {rows!r}")
            rows = self.split == rows
        idx = np.asarray(rows)
        return FeatureSet({m: e[idx] for m, e in self.embeddings.items()},
                          {m: p[idx] for m, p in self.present.items()}, self.labels[idx],
                          self.class_names, None if self.split is None else self.split[idx], self.source)


def _validate(embeddings: Mapping[str, np.ndarray], labels, present: Mapping[str, np.ndarray] | None,
              class_names, split, where: str) -> FeatureSet:
    def fail(msg: str):
        raise ValueError(f"{where}: {msg}")

    if labels is None:
        fail("missing 'labels' [N, C] multi-hot array")
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] < 1:
        fail(f"'labels' must be [N, C], got shape {labels.shape}")
    if labels.dtype.kind not in "biuf":
        fail(f"'labels' must be numeric 0/1, got dtype {labels.dtype}")
    if not np.isin(labels, (0, 1)).all():
        fail("'labels' must contain only 0 and 1")
    n = labels.shape[0]
    if not embeddings:
        fail("no embeddings (expected at least one 'emb_<modality>' array)")
    present = dict(present or {})
    unknown = sorted(set(present) - set(embeddings))
    if unknown:
        fail(f"present_ keys without a matching emb_ array: {unknown}")
    embs, pres = {}, {}
    for m, e in embeddings.items():
        e = np.asarray(e)
        if e.ndim != 2 or e.shape[1] < 1:
            fail(f"'emb_{m}' must be [N, D], got shape {e.shape}")
        if e.dtype.kind not in "fiu":
            fail(f"'emb_{m}' must be a float array, got dtype {e.dtype}")
        if e.shape[0] != n:
            fail(f"'emb_{m}' has {e.shape[0]} rows but 'labels' has {n}")
        p = present.get(m)
        if p is None:
            p = np.ones(n, bool)
        else:
            p = np.asarray(p)
            if p.shape != (n,) or p.dtype.kind not in "bui":
                fail(f"'present_{m}' must be bool [{n}], got shape {p.shape} dtype {p.dtype}")
            p = p.astype(bool)
        e = e.astype(np.float32)
        finite = np.isfinite(e).all(axis=1)
        bad = np.flatnonzero(p & ~finite)
        if bad.size:
            fail(f"'emb_{m}' has non-finite values in {bad.size} present rows (first: row {bad[0]})")
        if (~finite).any():
            e = e.copy()
            e[~finite] = 0.0  # absent rows: values are meaningless, keep them finite
        embs[m], pres[m] = e, p
    names = None
    if class_names is not None:
        names = [str(c) for c in np.asarray(class_names).reshape(-1)]
        if len(names) != labels.shape[1]:
            fail(f"'class_names' has {len(names)} entries but 'labels' has {labels.shape[1]} columns")
    if split is not None:
        split = np.asarray(split).astype(str)
        if split.shape != (n,):
            fail(f"'split' must be [{n}], got shape {split.shape}")
    return FeatureSet(embs, pres, labels.astype(np.uint8), names, split, where)


def load_features(path: str | Path) -> FeatureSet:
    """Load and validate an ``.npz`` feature file (layout in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"feature file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:  # zip errors, pickled object arrays, truncation
        raise ValueError(f"{path}: not a readable .npz feature file ({exc})") from exc
    embeddings = {k[len("emb_"):]: v for k, v in data.items() if k.startswith("emb_")}
    present = {k[len("present_"):]: v for k, v in data.items() if k.startswith("present_")}
    return _validate(embeddings, data.get("labels"), present, data.get("class_names"), data.get("split"), str(path))


def save_features(path: str | Path, embeddings: Mapping[str, np.ndarray], labels: np.ndarray,
                  present: Mapping[str, np.ndarray] | None = None, class_names: Sequence[str] | None = None,
                  split: Sequence[str] | np.ndarray | None = None, compress: bool = False,
                  extra: Mapping[str, np.ndarray] | None = None) -> Path:
    """Validate and write a feature file; returns the path written. ``extra``: more per-row
    arrays stored as they are (e.g. ``stamps_ns``), ignored by :func:`load_features`."""
    path = Path(path)
    fs = _validate(embeddings, labels, present, class_names, split, str(path))
    for key, value in (extra or {}).items():
        if key.startswith(("emb_", "present_")) or key in ("labels", "class_names", "split"):
            raise ValueError(f"{path}: extra array {key!r} would shadow a feature array")
        if np.asarray(value).shape[:1] != (len(fs),):
            raise ValueError(f"{path}: extra array {key!r} must have {len(fs)} rows")
    arrays: dict[str, np.ndarray] = {"labels": fs.labels}
    for m in fs.modalities:
        if not m or not m.replace("_", "").isalnum():
            raise ValueError(f"{path}: modality name {m!r} must be alphanumeric/underscore")
        arrays[f"emb_{m}"] = fs.embeddings[m]
        if present is not None and m in present:
            arrays[f"present_{m}"] = fs.present[m]
    if fs.class_names is not None:
        arrays["class_names"] = np.asarray(fs.class_names, dtype=str)
    if fs.split is not None:
        arrays["split"] = fs.split
    arrays.update({k: np.asarray(v) for k, v in (extra or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # a file handle stops numpy appending ".npz" to the name
        (np.savez_compressed if compress else np.savez)(fh, **arrays)
    return path
