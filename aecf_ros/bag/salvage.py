"""Reading what a bag's data file cut short still holds (a recording that never closed its file).

``rosbags`` refuses such a file when it opens it: an mcap file without its footer and summary
("File end magic is invalid"), a sqlite3 file shorter than its header says ("database disk image
is malformed"). Both still hold every message written before the cut:

* mcap: the records are read one after another from the start (schemas, channels, chunks and the
  message records inside them) until the file ends inside a record. A chunk whose checksum is set
  and wrong ends the read too.
* sqlite3: SQLite reads a short file when ``writable_schema`` is on (it then trusts the file
  size, not the header); the messages are read in the order they were written (rowid) until
  SQLite reports the first missing page.

:class:`SalvagedStorage` offers what :class:`~aecf_ros.bag.bag_io.BagReader` uses of a
``rosbags`` reader; its ``messages`` always ends with an error saying where the file was cut, so
every tool reports the bag as truncated (``bag/damage.py``). Single-file bags only; the bag
directory's ``metadata.yaml`` must still be readable (otherwise ``ros2 bag reindex`` first).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

MCAP_MAGIC = b"\x89MCAP0\r\n"


class CutShort(RuntimeError):
    """Where the salvaged read of a cut file ended."""


@dataclass(frozen=True)
class Connection:
    id: int
    topic: str
    msgtype: str


@dataclass(frozen=True)
class TopicCount:
    msgtype: str
    msgcount: int


class SalvagedStorage:
    """A cut-short data file, read as far as it goes (``topics``, ``connections``,
    ``start_time``, ``end_time`` and ``messages(connections)`` like a ``rosbags`` reader)."""

    def __init__(self, data_file: Path):
        self.data_file = Path(data_file)
        self.size = self.data_file.stat().st_size
        self.connections: list[Connection] = []
        self.topics: dict[str, TopicCount] = {}
        self.start_time, self.end_time = 0, 0
        counts: dict[int, int] = {}
        first, last = None, None
        for conn, t, _ in self._scan(with_data=False):
            counts[conn.id] = counts.get(conn.id, 0) + 1
            first = t if first is None else min(first, t)
            last = t if last is None else max(last, t)
        if not self.connections or first is None:
            raise CutShort(f"no message is readable in {self.data_file}")
        self.start_time, self.end_time = first, last + 1  # end exclusive, as rosbags reports it
        self.topics = {c.topic: TopicCount(c.msgtype, counts.get(c.id, 0)) for c in self.connections}

    def messages(self, connections=None) -> Iterator[tuple[Connection, int, bytes]]:
        wanted = None if connections is None else {c.id for c in connections}
        for conn, t, raw in self._scan(with_data=True):
            if wanted is None or conn.id in wanted:
                yield conn, t, raw
        raise CutShort(self._cut)

    def close(self) -> None:
        pass

    # -- storage formats --------------------------------------------------------------------------
    _cut = "cut short"

    def _scan(self, with_data: bool) -> Iterator[tuple[Connection, int, Optional[bytes]]]:
        if self.data_file.suffix == ".mcap":
            yield from self._scan_mcap()
        else:
            yield from self._scan_sqlite(with_data)

    def _scan_sqlite(self, with_data: bool):
        import sqlite3

        db = sqlite3.connect(f"file:{self.data_file}?immutable=1&mode=ro", uri=True)
        try:
            db.execute("PRAGMA writable_schema=ON")  # trust the file's size, not the header's page count
            by_id = {}
            try:
                for cid, name, msgtype in db.execute("SELECT id, name, type FROM topics ORDER BY id"):
                    by_id[cid] = Connection(int(cid), str(name), str(msgtype))
            except sqlite3.Error as exc:
                raise CutShort(f"the topics table of {self.data_file} is unreadable: {exc}") from None
            self.connections = list(by_id.values())
            # one row per query: the sqlite3 module steps a cursor one row ahead, so a scan would
            # lose the last readable row to the error of the next one
            query = (f"SELECT id, topic_id, timestamp, {'data' if with_data else 'NULL'} FROM messages "
                     f"WHERE id > ? ORDER BY id LIMIT 1")
            read, last_id = 0, -1
            while True:
                try:
                    row = db.execute(query, (last_id,)).fetchone()
                except sqlite3.Error as exc:
                    self._cut = (f"{self.data_file.name} is cut short ({self.size} bytes): SQLite stopped after "
                                 f"{read} messages: {exc}")
                    return
                if row is None:
                    break
                last_id, cid, t, raw = row
                read += 1
                if cid in by_id:
                    yield by_id[cid], int(t), raw
            self._cut = f"{self.data_file.name} is cut short ({self.size} bytes): its index is missing"
        finally:
            db.close()

    def _scan_mcap(self):
        from rosbags.rosbag2.storage_mcap import DECOMPRESSORS

        schemas: dict[int, str] = {}
        channels: dict[int, Connection] = {}
        self.connections = []

        def record(op: int, body: bytes):
            """Messages of one record (and the schemas / channels it declares)."""
            if op == 0x03:  # schema: id, name, encoding, data
                sid, = struct.unpack_from("<H", body, 0)
                n, = struct.unpack_from("<I", body, 2)
                schemas[sid] = body[6:6 + n].decode()
            elif op == 0x04:  # channel: id, schema id, topic, message encoding, metadata
                cid, sid = struct.unpack_from("<HH", body, 0)
                n, = struct.unpack_from("<I", body, 4)
                conn = Connection(cid, body[8:8 + n].decode(), schemas.get(sid, "?"))
                if cid not in channels:
                    channels[cid] = conn
                    self.connections.append(conn)
            elif op == 0x05:  # message: channel id, sequence, log time, publish time, data
                cid, _, log_time, _ = struct.unpack_from("<HIQQ", body, 0)
                if cid in channels:
                    yield channels[cid], int(log_time), body[22:]
            elif op == 0x06:  # chunk: start, end, uncompressed size, crc, compression, records
                _, _, size, crc = struct.unpack_from("<QQQI", body, 0)
                n, = struct.unpack_from("<I", body, 28)
                compression = body[32:32 + n].decode()
                length, = struct.unpack_from("<Q", body, 32 + n)
                data = body[40 + n:40 + n + length]
                if compression not in DECOMPRESSORS:
                    raise CutShort(f"unsupported chunk compression {compression!r}")
                raw = DECOMPRESSORS[compression](data, size)
                if crc:
                    from binascii import crc32

                    if crc32(raw) != crc:
                        raise CutShort("a chunk's checksum does not match")
                inner = []
                for inner_op, inner_body in _records(raw):
                    inner.extend(record(inner_op, inner_body))
                yield from sorted(inner, key=lambda m: m[1])  # a chunk is yielded in time order

        with open(self.data_file, "rb") as fh:
            if fh.read(8) != MCAP_MAGIC:
                raise CutShort(f"{self.data_file} is not an mcap file")
            start, end = 8, 8  # the record being read; the end of the last one read whole
            try:
                for op, body, start in _file_records(fh, start):
                    if op in (0x02, 0x0F):  # footer / data end: the file was not cut after all
                        break
                    yield from record(op, body)
                    end = start + 9 + len(body)
            except (CutShort, struct.error, ValueError, UnicodeDecodeError) as exc:
                self._cut = f"{self.data_file.name} is damaged in the record at byte {start} of {self.size}: {exc}"
                return
            self._cut = (f"{self.data_file.name} is cut short ({self.size} bytes, no footer): read up to byte "
                         f"{end}")


def _records(data: bytes):
    """(opcode, body) of the records packed in ``data`` (a chunk's content)."""
    i = 0
    while i + 9 <= len(data):
        op = data[i]
        n, = struct.unpack_from("<Q", data, i + 1)
        if i + 9 + n > len(data):
            raise CutShort("a record runs past the end of its chunk")
        yield op, data[i + 9:i + 9 + n]
        i += 9 + n


def _file_records(fh: BinaryIO, offset: int):
    """(opcode, body, offset of the record) of the file's records from ``offset``, until one is
    incomplete (the record the cut went through)."""
    while True:
        head = fh.read(9)
        if len(head) < 9:
            return
        op = head[0]
        n, = struct.unpack_from("<Q", head, 1)
        body = fh.read(n)
        if len(body) < n:
            return
        yield op, body, offset
        offset += 9 + n


def salvage(bag_dir: Path, storage: str) -> Optional[SalvagedStorage]:
    """The cut-short data file of a single-file bag, or None when it holds nothing readable."""
    suffix = {"mcap": ".mcap", "sqlite3": ".db3"}.get(storage)
    files = sorted(Path(bag_dir).glob(f"*{suffix}")) if suffix else []
    if len(files) != 1:
        return None
    try:
        return SalvagedStorage(files[0])
    except Exception:  # noqa: BLE001 - not a cut file of its format (garbage, another file): the open error stands
        return None
