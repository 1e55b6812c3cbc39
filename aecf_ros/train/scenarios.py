"""Sensor-drop evaluation scenarios and their presence masks.

A scenario is a name; :func:`scenario_mask` turns it into a Bool[N, M] presence mask that depends
ONLY on (scenario, N, modalities, seed) - never on the method - so every fusion method is scored
on exactly the same inputs. Scenarios (M = 3, modalities camera/lidar/text):

* ``full``                      every modality present;
* ``no_<m>``                    one modality missing for every sample (3 scenarios);
* ``only_<m>``                  two modalities missing, i.e. each pair missing (3 scenarios);
* ``drop_p0.1`` ... ``drop_p0.7`` i.i.d. per-modality drop with probability p; a sample that
  lost every modality keeps one, chosen uniformly at random (seeded), so at least one survives.
"""
from __future__ import annotations

import hashlib
import itertools
from typing import Sequence

import numpy as np

DROP_RATES: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)


def scenario_names(modalities: Sequence[str] = ("camera", "lidar", "text"),
                   drop_rates: Sequence[float] = DROP_RATES) -> list[str]:
    names = ["full"]
    names += [f"no_{m}" for m in modalities]
    if len(modalities) > 2:
        for keep in modalities:
            names.append(f"only_{keep}")
    names += [f"drop_p{p:g}" for p in drop_rates]
    return names


def drop_rate(name: str) -> float | None:
    """The i.i.d. drop probability of a ``drop_p*`` scenario, else None."""
    return float(name[len("drop_p"):]) if name.startswith("drop_p") else None


def _rng(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def iid_drop_mask(n: int, m: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Bool[n, m]: each entry dropped with prob p, then one modality restored in empty rows."""
    present = rng.random((n, m)) >= p
    empty = ~present.any(axis=1)
    keep = rng.integers(0, m, size=n)
    present[np.flatnonzero(empty), keep[empty]] = True
    return present


def scenario_mask(name: str, n: int, modalities: Sequence[str] = ("camera", "lidar", "text"),
                  seed: int = 0) -> np.ndarray:
    """Bool[n, M] presence mask of a scenario (deterministic in name, n, modalities, seed)."""
    mods = list(modalities)
    m = len(mods)
    if name == "full":
        return np.ones((n, m), dtype=bool)
    if name.startswith("no_") and name[3:] in mods:
        mask = np.ones((n, m), dtype=bool)
        mask[:, mods.index(name[3:])] = False
        return mask
    if name.startswith("only_") and name[5:] in mods:
        mask = np.zeros((n, m), dtype=bool)
        mask[:, mods.index(name[5:])] = True
        return mask
    p = drop_rate(name)
    if p is not None:
        return iid_drop_mask(n, m, p, _rng(seed, name))
    raise ValueError(f"unknown scenario {name!r}; known: {', '.join(scenario_names(mods))}")


def all_patterns(m: int = 3) -> list[tuple[bool, ...]]:
    """Every non-empty presence pattern (2^m - 1 of them)."""
    return [p for p in itertools.product([True, False], repeat=m) if any(p)]
