"""Rewrite build-machine paths hard-coded in the ROS 2 wheels' exported CMake files.

The kilted wheels on PyPI were built under /opt/python/cp311-cp311 and their ``*.cmake`` files
name that Python's include dir and numpy's include dir. Message generation with cmake needs
them to point at this venv's own Python and numpy instead. Idempotent.
"""
import pathlib
import re
import sys
import sysconfig

import numpy


def main() -> int:
    prefix = pathlib.Path(sys.prefix)
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    replacements = [
        (re.compile(r"/opt/python/cp311-cp311/include/python3\.11"), py_include),
        (re.compile(r"/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/_core/include"), np_include),
        (re.compile(r"[^;\"\s]*/site-packages/numpy/_core/include"), np_include),
    ]
    changed = 0
    for path in (prefix / "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        if "/opt/python/cp311" not in text:
            continue
        new = text
        for pattern, value in replacements:
            new = pattern.sub(value, new)
        if new != text:
            path.write_text(new, errors="surrogateescape")
            changed += 1
    leftovers = [p for p in (prefix / "share").rglob("*.cmake") if "/opt/python/cp311" in p.read_text(errors="ignore")]
    print(f"fix_wheel_cmake: rewrote {changed} file(s); python include {py_include}; numpy include {np_include}")
    if leftovers:
        print("fix_wheel_cmake: still naming /opt/python:", *leftovers, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
