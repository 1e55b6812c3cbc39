"""Damaged copies of a real bag, the way a robot losing power leaves them (for the damage tests).

* :func:`damaged_copy`: chosen messages torn (:func:`tear`: the second half of the bytes lost) or
  zeroed (:func:`zero`: every byte 0), everything else as recorded; topics may be renamed.
* :func:`corrupt_mcap_chunk`: one chunk of an mcap file gets a checksum (as rosbag2's writer
  stores one) and then a flipped byte: the reader fails at that chunk.
* :func:`zero_sqlite_pages`: pages in the middle of a sqlite3 file zeroed: "database disk image
  is malformed" when the read gets there.
* :func:`cut_file`: the data file cut short (a recording that never closed its file).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Mapping

TORN = "torn"
ZEROED = "zeroed"


def tear(raw: bytes) -> bytes:
    """A torn write: the message's second half never reached the disk."""
    return raw[: len(raw) // 2]


def zero(raw: bytes) -> bytes:
    """A zeroed block: the message's bytes are all 0 (same length)."""
    return bytes(len(raw))


def data_file(bag: Path) -> Path:
    return next(p for p in Path(bag).iterdir() if p.suffix in (".mcap", ".db3"))


def read_all(bag) -> list[tuple[str, str, int, bytes]]:
    from aecf_ros.bag.bag_io import BagReader

    with BagReader(bag) as reader:
        return list(reader.messages())


def iter_messages(bag):
    """The bag's messages as the package's reader yields them (raises where a damaged file fails)."""
    from aecf_ros.bag.bag_io import BagReader

    with BagReader(bag) as reader:
        yield from reader.messages()


def damaged_copy(src, dst, damage: Mapping[str, Mapping[int, str]] = (), *,
                 change: Callable[[str, str, int, bytes], bytes] | None = None,
                 rename: Mapping[str, str] = ()) -> dict[str, dict[str, int]]:
    """``src`` rewritten to ``dst`` (same storage), ``damage[topic][index]`` (index counts per topic)
    applied: :data:`TORN` or :data:`ZEROED`; ``change(topic, msgtype, index, raw)`` for anything
    else; ``rename`` maps recorded topic names to new ones (the damage keys use the old names).

    Returns what the damage rule must count: new topic name -> {reason: messages}."""
    from rosbags.rosbag2 import Reader, Writer

    from aecf_ros.bag.bag_io import storage_plugin, typestore
    from aecf_ros.bag.damage import UNDESERIALIZABLE
    from aecf_ros.bag.damage import ZEROED as ZEROED_REASON

    damage, rename = dict(damage or {}), dict(rename or {})
    storage = "mcap" if data_file(src).suffix == ".mcap" else "sqlite3"
    store, seen, expected = typestore(), {}, {}
    with Reader(src) as reader, Writer(dst, version=8, storage_plugin=storage_plugin(storage)) as writer:
        conns = {c.id: writer.add_connection(rename.get(c.topic, c.topic), c.msgtype, typestore=store)
                 for c in reader.connections}
        for conn, t, raw in reader.messages():
            i = seen[conn.topic] = seen.get(conn.topic, -1) + 1
            raw = bytes(raw)
            what = damage.get(conn.topic, {}).get(i)
            if what is not None:
                raw = {TORN: tear, ZEROED: zero}[what](raw)
                reason = {TORN: UNDESERIALIZABLE, ZEROED: ZEROED_REASON}[what]
                counts = expected.setdefault(rename.get(conn.topic, conn.topic), {})
                counts[reason] = counts.get(reason, 0) + 1
            if change is not None:
                raw = change(conn.topic, conn.msgtype, i, raw)
            writer.write(conns[conn.id], t, raw)
    for extra in ("labels.csv", "classes.txt"):
        if (Path(src) / extra).is_file():
            shutil.copy(Path(src) / extra, Path(dst) / extra)
    return expected


def corrupt_mcap_chunk(src, dst, chunk: int = -2) -> int:
    """Copy of the mcap bag ``src`` whose ``chunk``-th chunk (default: the one before last) is
    damaged: its checksum is set (crc32 of its bytes, as rosbag2 writes it; rosbags writes none)
    and one byte of its data flipped. Returns the bag time (ns) where that chunk starts: the
    reader yields every message before it and fails there."""
    import struct
    from binascii import crc32

    from rosbags.rosbag2.storage_mcap import McapReader

    shutil.copytree(src, dst)
    path = data_file(dst)
    reader = McapReader(path)
    reader.open()
    info = reader.chunks[chunk]
    reader.close()
    data = bytearray(path.read_bytes())
    # chunk record: opcode (1) + length (8) + start, end, uncompressed size (3 x 8) + crc (4)
    # + compression string (4 + n) + compressed size (8) + the records
    crc_at = info.chunk_start_offset + 9 + 24
    records_at = info.chunk_start_offset + 9 + 40 + len(info.compression)
    assert info.compression == "", "the flip below assumes uncompressed chunks (rosbags' default)"
    struct.pack_into("<I", data, crc_at, crc32(bytes(data[records_at:records_at + info.uncompressed_size])))
    data[records_at + info.uncompressed_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return int(info.message_start_time)


def zero_sqlite_pages(src, dst, at_fraction: float = 0.5, pages: int = 4) -> None:
    """Copy of the sqlite3 bag ``src`` with ``pages`` database pages zeroed from ``at_fraction`` of
    the file on (a power loss that left blocks of zeros)."""
    shutil.copytree(src, dst)
    path = data_file(dst)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536  # the sqlite3 header's page size
    start = int(len(data) * at_fraction) // page * page
    data[start:start + pages * page] = bytes(pages * page)
    path.write_bytes(bytes(data))


def cut_file(src, dst, fraction: float) -> None:
    """Copy of ``src`` whose data file keeps only its first ``fraction`` of bytes."""
    shutil.copytree(src, dst)
    path = data_file(dst)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
