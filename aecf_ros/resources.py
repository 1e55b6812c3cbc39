"""Where the package's data files (``config/``, ``launch/``) are: source tree or install space.

Installed commands (``aecf-ros train / evaluate / sweep / run``) must find ``config/train.yaml``
wherever the package lives: the source tree (``python -m`` from a clone), a colcon install
(``<prefix>/share/aecf_ros``, found through the ament index) or a venv install by the Makefile
(``<sys.prefix>/share/aecf_ros``). Imports nothing of aecf_ros; ``ament_index_python`` is optional.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "aecf_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dirs() -> list[Path]:
    """Candidate roots, first match wins: the source tree (a clone with package.xml next to this
    package), the ament index's share dir, then ``sys.prefix/share/aecf_ros``."""
    roots: list[Path] = []
    if (SOURCE_ROOT / "package.xml").is_file():
        roots.append(SOURCE_ROOT)
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            roots.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, ValueError, LookupError, OSError):  # OSError: no AMENT_PREFIX_PATH
            pass
    except ImportError:
        for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
            if prefix and (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file():
                roots.append(Path(prefix) / "share" / PACKAGE)
    roots.append(Path(sys.prefix) / "share" / PACKAGE)
    return roots


def package_file(*parts: str) -> Path:
    """The first existing ``<root>/<parts...>``; if none exists, the install-space path (so the
    caller's "not found" error names where it should be)."""
    roots = share_dirs()
    for root in roots:
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    return roots[-1].joinpath(*parts)
