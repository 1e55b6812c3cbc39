"""Damaged bags: the one rule ``evaluate-bag``, ``replay`` and ``dataset`` apply to what they read.

A robot that loses power while recording leaves two kinds of damage:

* damaged messages: bytes that cannot be deserialized (a torn write: the message was cut or
  garbled) or that are all zero (blocks the file system zeroed). Each is skipped and counted per
  topic under its reason (:data:`UNDESERIALIZABLE`, :data:`ZEROED`); the first of each reason on a
  topic is logged; the run goes on with the next message.
* damage of the file itself found while reading (sqlite3 "database disk image is malformed", an
  mcap chunk whose checksum or records are wrong): reading ends there; everything before it has
  been used, and :attr:`BagDamage.truncated` says what stopped it.

A bag that cannot even be opened (a file cut short, without a readable index or footer) is not
handled here: :class:`~aecf_ros.bag.bag_io.BagReader` raises :class:`BagError` when it opens.

The check is the subscribers' own: rclpy deserializes the bytes (what every node does with a
message it takes). A message that deserializes is handed back, so a caller that needs it pays once.
Replay and the offline graph (``apps/bag_graph.py``) both check what the drop plan lets through,
at the same point of ``bag/schedule.planned_messages``' output, so their counts agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional

from aecf_ros.bag.bag_io import BagError, deserialize

UNDESERIALIZABLE = "undeserializable"  # the bytes are not a message of the topic's type
ZEROED = "zeroed"  # every byte is zero (a zeroed block; rclpy would read an empty message from it)
REASONS = (UNDESERIALIZABLE, ZEROED)

#: CDR encapsulation header of every message rclpy writes on a little-endian machine
#: (representation id CDR_LE = 0x0001, options 0); zero is CDR big-endian, so a zero header alone
#: is not damage: the whole payload must be zero
_ZERO_HEADER = b"\0\0\0\0"


def is_zeroed(raw: bytes) -> bool:
    """True when every byte of ``raw`` is zero (at least the 4-byte encapsulation header)."""
    # the usual case costs one 4-byte compare; only a zero header pays for the full scan
    return raw[:4] == _ZERO_HEADER and raw.count(0) == len(raw)


@dataclass
class BagDamage:
    """What one read of a bag found damaged."""

    #: topic -> reason (:data:`REASONS`) -> messages skipped
    messages: dict = field(default_factory=dict)
    #: the reader's error when the file itself is damaged (read up to it); '' = read to its end
    truncated: str = ""
    #: bag time of the last message read before that damage (None: none was read, or no damage)
    truncated_after_ns: Optional[int] = None

    def count(self, topic: str, reason: str) -> int:
        return self.messages.get(topic, {}).get(reason, 0)

    @property
    def skipped(self) -> int:
        return sum(n for reasons in self.messages.values() for n in reasons.values())

    def as_dict(self) -> dict:
        return {"messages": {t: dict(r) for t, r in self.messages.items()}, "truncated": self.truncated,
                "truncated_after_ns": self.truncated_after_ns}

    def summary_lines(self, start_ns: Optional[int] = None) -> list[str]:
        """One line per damaged topic, then where the read stopped (nothing when undamaged);
        ``start_ns`` (the bag's start) turns the stop into seconds of bag."""
        lines = [f"{topic}: skipped " + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
                 for topic, reasons in sorted(self.messages.items())]
        if self.truncated:
            where = ""
            if self.truncated_after_ns is not None and start_ns is not None:
                where = f" after {(self.truncated_after_ns - start_ns) / 1e9:.2f} s of bag"
            lines.append(f"bag file damaged: read up to the damage{where} ({self.truncated})")
        return lines


class DamageFilter:
    """Applies the rule to one read of a bag; ``damage`` holds the counts.

    ``readable(messages)`` wraps a :meth:`BagReader.messages` iterator and ends it at damage of the
    file; ``message(topic, msgtype, raw)`` is the deserialized message, or None for a damaged one
    (counted, and logged the first time per topic and reason).
    """

    def __init__(self, log: Callable[[str], None] = print, damage: Optional[BagDamage] = None):
        self.log = log
        self.damage = damage if damage is not None else BagDamage()

    def readable(self, messages: Iterable[tuple[str, str, int, bytes]]) -> Iterator[tuple[str, str, int, bytes]]:
        """``(topic, msgtype, timestamp_ns, raw)`` of a bag read, ended at damage of the file."""
        last_ns = None
        try:
            for item in messages:
                last_ns = item[2]
                yield item
        except BagError as exc:
            self.damage.truncated_after_ns = last_ns
            if not self.damage.truncated:  # a looping replay meets the same damage every pass
                self.log(f"warning: {exc}; read up to the damage")
            self.damage.truncated = str(exc)

    def message(self, topic: str, msgtype: str, raw: bytes) -> Optional[Any]:
        if is_zeroed(raw):
            self.skip(topic, ZEROED, f"all {len(raw)} bytes are zero")
            return None
        try:
            return deserialize(raw, msgtype)
        except BagError as exc:
            self.skip(topic, UNDESERIALIZABLE, str(exc))
            return None

    def skip(self, topic: str, reason: str, detail: str) -> None:
        """Count one damaged message of ``topic`` under ``reason`` (logged the first time)."""
        reasons = self.damage.messages.setdefault(topic, {})
        reasons[reason] = reasons.get(reason, 0) + 1
        if reasons[reason] == 1:
            self.log(f"warning: {topic}: skipping damaged messages ({reason}: {detail}); "
                     f"further {reason} ones on this topic are counted, not logged")
