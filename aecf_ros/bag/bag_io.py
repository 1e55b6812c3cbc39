"""Reading and writing rosbag2 bags with ``rosbags`` (no ROS install needed), with clear errors.

Bags written here are ordinary rosbag2 bags (metadata.yaml version 8 by default, the newest Humble
reads too; 9 on request: apps/make_bag.BAG_VERSIONS; sqlite3 or mcap storage,
message definitions and RIHS01 type hashes from rosbags' ROS 2 Kilted type store, which match
what rclpy's type support reports): ``ros2 bag info/play`` reads them on a robot.
Serialization is CDR, identical to rclpy's, so replay publishes the stored bytes as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

class BagError(RuntimeError):
    """A bag that cannot be read or written (message names the file and the cause)."""


def typestore():
    """rosbags type store for the ROS 2 distribution the wheels here are built from."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def sensor_qos(depth: int = 10):
    """Offered QoS written into the bag: reliable, volatile, keep-last ``depth``.

    RELIABLE because large images/clouds over BEST_EFFORT lose most samples with FastDDS
    defaults; ``ros2 bag play`` re-offers the recorded profile.
    """
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                    QosTime)

    zero = QosTime(0, 0)  # rmw "default" = no deadline / lifespan / lease
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def storage_plugin(name: str):
    from rosbags.rosbag2 import StoragePlugin

    try:
        return {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}[name]
    except KeyError:
        raise BagError(f"unknown storage {name!r}; choose sqlite3 or mcap") from None


@dataclass(frozen=True)
class BagTopic:
    name: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagInfo:
    path: Path
    storage: str
    start_ns: int
    end_ns: int
    topics: tuple[BagTopic, ...]
    custom_data: dict = None  # metadata.yaml custom_data (make-bag writes its settings there)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9

    def topic(self, name: str) -> BagTopic | None:
        return next((t for t in self.topics if t.name == name), None)


class BagReader:
    """Context manager over ``rosbags.rosbag2.Reader`` that turns every failure into :class:`BagError`.

    ``messages(topics)`` yields ``(topic, msgtype, timestamp_ns, raw_cdr_bytes)`` in time order.
    A bag whose data file was cut short (no footer / index: rosbags cannot open it) is read as far
    as the file goes (:mod:`aecf_ros.bag.salvage`); its ``messages`` then end in a BagError.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._reader = None
        self._storage = None  # the rosbags reader, or the salvaged data file of a bag cut short
        #: why the bag could not be opened normally when its cut-short data file is read instead ('' = it could)
        self.salvaged = ""

    def __enter__(self) -> "BagReader":
        from rosbags.rosbag2 import Reader

        if not self.path.exists():
            raise BagError(f"no bag at {self.path}")
        if self.path.is_file():
            raise BagError(f"{self.path} is a file; a rosbag2 bag is a directory with metadata.yaml "
                           f"(pass the directory {self.path.parent})")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises ReaderError, yaml, sqlite3, zstd and KeyErrors
            self._reader = None
            self._storage = self._salvage()
            if self._storage is None:
                raise BagError(f"cannot open bag {self.path}: {_reason(exc)}") from None
            # a data file cut short: read as far as it goes (bag/salvage.py); the read then
            # ends in a BagError that says where, which every tool reports as truncated
            self.salvaged = _reason(exc)
        else:
            self._storage = self._reader
        return self

    def _salvage(self):
        from aecf_ros.bag.salvage import salvage

        try:
            import yaml

            meta = yaml.safe_load((self.path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
            storage = str(meta["storage_identifier"])
        except Exception:  # noqa: BLE001 - without readable metadata there is nothing to salvage
            return None
        return salvage(self.path, storage)

    def __exit__(self, *exc) -> None:
        if self._storage is not None:
            try:
                self._storage.close()
            except Exception:  # noqa: BLE001 - closing a broken bag must not hide the real error
                pass

    def info(self) -> BagInfo:
        r = self._storage
        topics = tuple(BagTopic(name, t.msgtype or "?", t.msgcount) for name, t in r.topics.items())
        storage = "?"
        custom: dict = {}
        start_ns, end_ns = int(r.start_time), int(r.end_time)
        try:
            import yaml

            meta = yaml.safe_load((self.path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
            storage = str(meta.get("storage_identifier", "?"))
            custom = dict(meta.get("custom_data") or {})
            if self.salvaged:  # the recording's span and counts as recorded; the read ends at the cut
                start_ns = int(meta["starting_time"]["nanoseconds_since_epoch"])
                end_ns = start_ns + int(meta["duration"]["nanoseconds"])
                recorded = {e["topic_metadata"]["name"]: int(e["message_count"])
                            for e in meta["topics_with_message_count"]}
                topics = tuple(BagTopic(t.name, t.msgtype, recorded.get(t.name, t.count)) for t in topics)
        except Exception:  # noqa: BLE001 - rosbags (or the salvaged file) already gave what matters
            pass
        return BagInfo(self.path, storage, start_ns, end_ns, topics, custom)

    def messages(self, topics: Sequence[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        r = self._storage
        conns = [c for c in r.connections if topics is None or c.topic in topics]
        try:
            for conn, timestamp, raw in r.messages(connections=conns):
                yield conn.topic, conn.msgtype, int(timestamp), raw
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"bag {self.path} is corrupt or truncated: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def deserialize(raw: bytes, msgtype: str):
    """rclpy message from CDR bytes (the exact objects the nodes receive)."""
    from rclpy.serialization import deserialize_message

    cls = message_class(msgtype)
    try:
        return deserialize_message(raw, cls)
    except Exception as exc:  # noqa: BLE001
        raise BagError(f"cannot deserialize a {msgtype} message: {_reason(exc)}") from None


def message_class(msgtype: str):
    """rclpy message class of ``pkg/msg/Name`` (BagError when no Python package provides it)."""
    from aecf_ros.nodes.message_types import UnknownMessageType
    from aecf_ros.nodes.message_types import message_class as ros_message_class

    try:
        return ros_message_class(msgtype)
    except UnknownMessageType as exc:
        raise BagError(str(exc)) from None
