"""Labels of a recording: which classes are in view when, as a file beside the bag.

A label file is CSV with a header row and one row per labelled interval::

    start,end,classes
    1700000000.0,1700000004.0,person;pallet
    1700000004.0,1700000008.0,
    1700000008.0,1700000012.5,forklift

``start`` / ``end`` are bag time in seconds (the rosbag2 receive timestamps, what ``ros2 bag
info`` prints and ``/clock`` carries in a replay), read exactly (decimal, to the nanosecond).
``offset_start,offset_end,classes`` instead counts seconds from the bag's first message. An
interval is half-open, ``[start, end)``; ``classes`` is a ``;``-separated list of class names
in view (empty: none of the classes is in view, a labelled negative). Time not covered by any
row is unlabelled and never becomes a sample. Rows may come in any order but must not overlap.
Lines starting with ``#`` are comments.

A class list file (``classes.txt``: one name per line, ``#`` comments) fixes the label order of
every multi-hot vector (dataset, model head); without one the order is first appearance.

Errors (:class:`LabelError`) name the file and line: a start not before its end, an interval
outside the bag (more than 1 s before its first or after its last message), overlapping intervals, a class not in the class list, a file without rows.
"""
from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["LabelError", "Interval", "LabelTrack", "read_class_list", "write_class_list", "read_labels",
           "write_labels", "seconds_to_ns", "ns_to_seconds"]

ABSOLUTE = ("start", "end", "classes")
RELATIVE = ("offset_start", "offset_end", "classes")
#: an interval may reach this far past the bag's first / last message (the last scene of a
#: recording lasts beyond its last message); further out is an error
SLACK_NS = 1_000_000_000


class LabelError(ValueError):
    """A label or class list file that cannot be used (the message names file and line)."""


def seconds_to_ns(text: str) -> int:
    """``"1700000000.25"`` -> 1700000000250000000, exactly (no float rounding)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number of seconds")
    return int((value * 1_000_000_000).to_integral_value())


def ns_to_seconds(ns: int) -> str:
    """1700000000250000000 -> ``"1700000000.250000000"`` (exact, the inverse of :func:`seconds_to_ns`)."""
    sign = "-" if ns < 0 else ""
    s, frac = divmod(abs(int(ns)), 1_000_000_000)
    return f"{sign}{s}.{frac:09d}"


@dataclass(frozen=True)
class Interval:
    start_ns: int
    end_ns: int
    classes: tuple[str, ...]
    line: int = 0


def read_class_list(path: str | Path) -> list[str]:
    """Class names, one per line, in label order."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise LabelError(f"{path}: cannot read the class list ({exc.strerror or exc})") from None
    names: list[str] = []
    for i, raw in enumerate(lines, 1):
        name = raw.strip()
        if not name or name.startswith("#"):
            continue
        if ";" in name or "," in name:
            raise LabelError(f"{path}:{i}: class name {name!r} may not contain ';' or ','")
        if name in names:
            raise LabelError(f"{path}:{i}: class {name!r} is listed twice")
        names.append(name)
    if not names:
        raise LabelError(f"{path}: the class list is empty")
    return names


def write_class_list(path: str | Path, names: Sequence[str]) -> Path:
    path = Path(path)
    path.write_text("".join(f"{n}\n" for n in names))
    return path


def write_labels(path: str | Path, intervals: Sequence[Interval]) -> Path:
    """Write intervals as an absolute-time label file."""
    path = Path(path)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(ABSOLUTE)
        for iv in intervals:
            w.writerow([ns_to_seconds(iv.start_ns), ns_to_seconds(iv.end_ns), ";".join(iv.classes)])
    return path


def read_labels(path: str | Path, class_names: Optional[Sequence[str]] = None, *,
                bag_start_ns: Optional[int] = None, bag_end_ns: Optional[int] = None) -> "LabelTrack":
    """Parse and check a label file against the bag's span ``[bag_start_ns, bag_end_ns]`` and
    ``class_names`` (None: the classes in order of first appearance)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise LabelError(f"{path}: cannot read the label file ({exc.strerror or exc})") from None
    rows = [(i, r) for i, r in enumerate(csv.reader(text.splitlines()), 1)
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise LabelError(f"{path}: no header and no labelled intervals")
    line0, header = rows[0]
    header = tuple(h.strip() for h in header)
    if header not in (ABSOLUTE, RELATIVE):
        raise LabelError(f"{path}:{line0}: header must be '{','.join(ABSOLUTE)}' (bag time, s) or "
                         f"'{','.join(RELATIVE)}' (s from the bag start), got {','.join(header)!r}")
    relative = header == RELATIVE
    if relative and bag_start_ns is None:
        raise LabelError(f"{path}: offsets need the bag's start time")
    known = list(class_names) if class_names is not None else None
    seen: list[str] = []
    intervals: list[Interval] = []
    for line, row in rows[1:]:
        if len(row) != 3:
            raise LabelError(f"{path}:{line}: expected 3 columns (start, end, classes), got {len(row)}")
        try:
            a, b = seconds_to_ns(row[0]), seconds_to_ns(row[1])
        except ValueError as exc:
            raise LabelError(f"{path}:{line}: {exc}") from None
        if relative:
            a, b = a + bag_start_ns, b + bag_start_ns
        if not a < b:
            raise LabelError(f"{path}:{line}: start {row[0].strip()} is not before end {row[1].strip()}")
        if bag_start_ns is not None and bag_end_ns is not None and (
                a < bag_start_ns - SLACK_NS or b > bag_end_ns + SLACK_NS):
            raise LabelError(f"{path}:{line}: interval [{ns_to_seconds(a)}, {ns_to_seconds(b)}) lies outside "
                             f"the bag [{ns_to_seconds(bag_start_ns)}, {ns_to_seconds(bag_end_ns)}] "
                             f"(labels of another bag? offsets given as bag time?)")
        classes = tuple(c.strip() for c in row[2].split(";") if c.strip())
        if len(set(classes)) != len(classes):
            raise LabelError(f"{path}:{line}: a class is listed twice in {row[2]!r}")
        for c in classes:
            if known is not None and c not in known:
                raise LabelError(f"{path}:{line}: unknown class {c!r} (the class list has "
                                 f"{', '.join(known[:8])}{', ...' if len(known) > 8 else ''})")
            if c not in seen:
                seen.append(c)
        intervals.append(Interval(a, b, classes, line))
    if not intervals:
        raise LabelError(f"{path}: the label set is empty (a header, no intervals)")
    intervals.sort(key=lambda iv: iv.start_ns)
    for prev, cur in zip(intervals, intervals[1:]):
        if cur.start_ns < prev.end_ns:
            raise LabelError(f"{path}:{cur.line}: interval starting {ns_to_seconds(cur.start_ns)} overlaps the one "
                             f"of line {prev.line} (ends {ns_to_seconds(prev.end_ns)})")
    return LabelTrack(intervals, known if known is not None else seen, str(path))


class LabelTrack:
    """Labelled intervals of one bag; :meth:`at` answers the labels in force at an instant."""

    def __init__(self, intervals: Sequence[Interval], class_names: Sequence[str], source: str = ""):
        self.intervals = sorted(intervals, key=lambda iv: iv.start_ns)
        self.class_names = list(class_names)
        self.source = source
        self._starts = [iv.start_ns for iv in self.intervals]
        index = {c: i for i, c in enumerate(self.class_names)}
        self._vectors = []
        for iv in self.intervals:
            v = np.zeros(len(self.class_names), np.uint8)
            v[[index[c] for c in iv.classes]] = 1
            self._vectors.append(v)

    def __len__(self) -> int:
        return len(self.intervals)

    def at(self, t_ns: int) -> Optional[np.ndarray]:
        """uint8[C] multi-hot of the interval containing ``t_ns``; None where unlabelled."""
        i = bisect.bisect_right(self._starts, t_ns) - 1
        if i >= 0 and t_ns < self.intervals[i].end_ns:
            return self._vectors[i]
        return None

    def labelled_seconds(self) -> float:
        return sum(iv.end_ns - iv.start_ns for iv in self.intervals) / 1e9
