"""A dataset directory made from a robot's bags (``aecf-ros dataset``) and how it is split.

Layout of ``DIR``:

``dataset.json``   the manifest (:data:`FORMAT`): sensors (name, kind, encoder family, topic,
                   embedding width), the encoder ids and the bundle they came from, the class
                   names, the fusion parameters the presence rule ran under, the split (how, and
                   every bag's or block's part), one report per bag, and the sha256 of
                   ``features.npz``
``features.npz``   the samples in the :mod:`aecf_ros.data.features` layout (``emb_<sensor>``,
                   ``present_<sensor>``, ``labels``, ``class_names``, ``split``) plus
                   ``stamps_ns`` int64[N] (bag time of each sample) and ``bag`` int[N] (index
                   into the manifest's ``bags``): ``aecf-ros evaluate --features`` reads it as is
``shards/``        one ``.npz`` + ``.json`` per bag, named by a hash of the bag's content and of
                   everything that shapes its samples (encoders, parameters, labels): a re-run
                   only extracts bags it has not seen

Splits never cut through correlated time: ``bags`` puts whole bags in train / val / test (named
with ``--test-bag`` / ``--val-bag``, else a seeded draw); ``blocks`` cuts each bag into blocks
of ``block_s`` seconds, draws the blocks' parts (seeded), and drops the samples within
``gap_s`` after a boundary where the part changes (the previous block's scene is still in
view there).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from aecf_ros.data.features import FeatureSet, load_features

FORMAT = "aecf_ros.dataset"
FORMAT_VERSION = 1
MANIFEST = "dataset.json"
FEATURES = "features.npz"
SPLITS = ("train", "val", "test")
GAP = "gap"  # samples of no part (next to a block boundary)

__all__ = ["FORMAT", "MANIFEST", "FEATURES", "split_bags", "split_blocks", "file_sha256", "load_dataset",
           "write_manifest"]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _counts(n: int, val: float, test: float, what: str = "bag") -> tuple[int, int]:
    """(val, test) parts of ``n`` items: each at least 1 when its fraction is > 0 and n >= 3."""
    n_test = max(1, round(test * n)) if test > 0 else 0
    n_val = max(1, round(val * n)) if val > 0 else 0
    if n_test + n_val >= n:
        hint = ("record more bags, name the parts (--test-bag / --val-bag) or split by time blocks "
                "(--split blocks)" if what == "bag" else "use shorter blocks (--block) or record more")
        raise ValueError(f"{n} {what}(s) cannot be split into train / val / test "
                         f"(val {val:g}, test {test:g}): {hint}")
    return n_val, n_test


def split_bags(bag_ids: Sequence[str], seed: int = 0, val: float = 0.2, test: float = 0.2,
               fixed: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """bag id -> part. ``fixed`` names some bags' parts; the others are drawn (seeded): when
    ``fixed`` names a test bag no further test bags are drawn, the same for val."""
    fixed = dict(fixed or {})
    bad = {b: p for b, p in fixed.items() if p not in SPLITS or b not in bag_ids}
    if bad:
        raise ValueError(f"cannot assign {bad}: parts are {SPLITS}, bags {list(bag_ids)}")
    rest = [b for b in bag_ids if b not in fixed]
    want_val = 0.0 if "val" in fixed.values() else val
    want_test = 0.0 if "test" in fixed.values() else test
    out = dict(fixed)
    if rest:
        order = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
        if want_val or want_test:
            total = len(bag_ids)
            n_val, n_test = _counts(total, want_val, want_test)
            n_val, n_test = min(n_val, len(order)), min(n_test, max(0, len(order) - n_val))
        else:
            n_val = n_test = 0
        for i, b in enumerate(order):
            out[b] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    missing = [p for p in SPLITS if p not in out.values()]
    if missing:
        raise ValueError(f"no bag for {', '.join(missing)} ({len(bag_ids)} bag(s)); name them "
                         f"(--test-bag / --val-bag), record more bags, or use --split blocks")
    return {b: out[b] for b in bag_ids}


def split_blocks(bag_index: np.ndarray, stamps_ns: np.ndarray, bag_starts_ns: Sequence[int], block_s: float,
                 gap_s: float, seed: int = 0, val: float = 0.2, test: float = 0.2) -> tuple[np.ndarray, dict]:
    """Per sample: its part (or :data:`GAP`), and ``{"bag:block": part}`` for the manifest."""
    if not block_s > 0:
        raise ValueError(f"block length must be > 0 s, got {block_s}")
    block_ns = int(round(block_s * 1e9))
    starts = np.asarray(bag_starts_ns, np.int64)[bag_index]
    block = (np.asarray(stamps_ns, np.int64) - starts) // block_ns
    keys = sorted(set(zip(bag_index.tolist(), block.tolist())))
    if not keys:
        return np.zeros(0, "<U5"), {}
    n_val, n_test = _counts(len(keys), val, test, "time block")
    order = np.random.default_rng(seed).permutation(len(keys))
    part = {}
    for rank, i in enumerate(order):
        part[keys[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    out = np.array([part[(b, k)] for b, k in zip(bag_index.tolist(), block.tolist())], dtype="<U5")
    gap_ns = int(round(gap_s * 1e9))
    if gap_ns > 0:
        into = np.asarray(stamps_ns, np.int64) - starts - block * block_ns  # ns since the block began
        prev = np.array([part.get((b, k - 1), p) for b, k, p in zip(bag_index.tolist(), block.tolist(), out)])
        out[(into < gap_ns) & (prev != out)] = GAP
    return out, {f"{b}:{k}": p for (b, k), p in part.items()}


def write_manifest(directory: str | Path, manifest: Mapping) -> Path:
    path = Path(directory) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}, indent=1))
    tmp.replace(path)
    return path


def load_dataset(directory: str | Path) -> tuple[dict, FeatureSet]:
    """(manifest, features) of a dataset directory, checked against each other."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ValueError(f"{directory} is not a dataset directory (no {MANIFEST}; make one with aecf-ros dataset)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from None
    if manifest.get("format") != FORMAT or int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: not an {FORMAT} manifest of version <= {FORMAT_VERSION}")
    features = directory / FEATURES
    if not features.is_file():
        raise ValueError(f"{directory}: {FEATURES} is missing")
    if manifest.get("features_sha256") and file_sha256(features) != manifest["features_sha256"]:
        raise ValueError(f"{features} does not match {MANIFEST} (changed after it was written): rebuild the dataset")
    fs = load_features(features)
    names = [s["name"] for s in manifest["sensors"]]
    if fs.modalities != names:
        raise ValueError(f"{features} has sensors {fs.modalities}, {MANIFEST} declares {names}")
    if fs.class_names != list(manifest["class_names"]):
        raise ValueError(f"{features} and {MANIFEST} disagree on the class names")
    return manifest, fs
