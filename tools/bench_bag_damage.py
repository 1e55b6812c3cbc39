"""Figures for docs/RELIABILITY.md "Damaged bags": what the damage rule costs and how far a damaged
bag file is read.

On a make-bag recording (default rates: camera 30 Hz 320x240 rgb8, lidar 10 Hz, text and ground
truth 1 Hz) of ``--seconds``, in both storages:

1. the check (``bag/damage.DamageFilter.message``: the zero test + rclpy deserialization) per
   message and topic, and per second of bag: what ``aecf-ros replay`` now spends before
   publishing (evaluate-bag and the dataset deserialized every message before: no extra cost);
2. torn and zeroed messages: counted exactly (checked, not timed);
3. a data file cut at 25 / 50 / 75 / 95 %: messages and bytes read, time to open it (the
   salvage scan) against the intact file;
4. damage mid-file (an mcap chunk failing its checksum, zeroed sqlite3 pages at 50 %): messages
   read before it.

Usage: python tools/bench_bag_damage.py [--seconds 10] [--json docs/bag_damage_bench.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))  # test/bag_damage.py: the damaged copies the tests use


def _read(bag):
    from aecf_ros.bag.bag_io import BagReader
    from aecf_ros.bag.damage import DamageFilter

    rule = DamageFilter(log=lambda line: None)
    t0 = time.perf_counter()
    with BagReader(bag) as reader:
        opened = time.perf_counter() - t0
        read = list(rule.readable(reader.messages()))
    return read, rule.damage, opened


def main(argv=None) -> int:
    import bag_damage as bd
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag
    from aecf_ros.bag.damage import DamageFilter

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bag_damage_bench_"))
    out: dict = {"seconds": args.seconds, "storages": {}}
    try:
        for storage in ("mcap", "sqlite3"):
            res: dict = {}
            intact = root / storage
            write_scene_bag(intact, BagSpec(duration_s=args.seconds, storage=storage))
            messages = bd.read_all(intact)
            size = bd.data_file(intact).stat().st_size
            res["messages"], res["bytes"] = len(messages), size

            # 1. the check, per message and topic
            rule = DamageFilter(log=lambda line: None)
            per_topic: dict[str, list[float]] = {}
            for topic, msgtype, _, raw in messages:
                t0 = time.perf_counter()
                assert rule.message(topic, msgtype, raw) is not None
                per_topic.setdefault(topic, []).append(time.perf_counter() - t0)
            res["check_ms"] = {t: {"n": len(v), "bytes": len(next(m[3] for m in messages if m[0] == t)),
                                   "median": statistics.median(v) * 1e3, "p99": sorted(v)[int(0.99 * (len(v) - 1))] * 1e3}
                               for t, v in per_topic.items()}
            res["check_ms_per_bag_second"] = sum(map(sum, per_topic.values())) * 1e3 / args.seconds

            # 2. torn and zeroed messages: exact counts
            damage = {t: {i: bd.TORN if i % 2 else bd.ZEROED for i in range(1, 6)} for t in per_topic}
            expected = bd.damaged_copy(intact, root / f"torn_{storage}", damage)
            _, found, _ = _read(root / f"torn_{storage}")
            rule = DamageFilter(log=lambda line: None)
            for topic, msgtype, _, raw in bd.read_all(root / f"torn_{storage}"):
                rule.message(topic, msgtype, raw)
            res["torn_and_zeroed_counted_exactly"] = rule.damage.messages == expected

            # 3. cut short
            _, _, res["open_intact_ms"] = _read(intact)
            res["open_intact_ms"] *= 1e3
            cuts = {}
            for fraction in (0.25, 0.5, 0.75, 0.95):
                cut = root / f"cut_{storage}_{fraction}"
                bd.cut_file(intact, cut, fraction)
                read, dmg, opened = _read(cut)
                assert read == messages[:len(read)] and "cut short" in dmg.truncated
                kept = int(size * fraction)
                cuts[str(fraction)] = {"messages_read": len(read), "of": len(messages),
                                       "bag_seconds_read": (read[-1][2] - messages[0][2]) / 1e9 if read else 0.0,
                                       "payload_bytes_read": sum(len(m[3]) for m in read), "file_bytes_kept": kept,
                                       "open_ms": opened * 1e3}
            res["cut"] = cuts

            # 4. damage mid-file
            mid = root / f"mid_{storage}"
            if storage == "mcap":
                starts = bd.corrupt_mcap_chunk(intact, mid)
                before = sum(1 for m in messages if m[2] < starts)
            else:
                bd.zero_sqlite_pages(intact, mid, 0.5)
                before = None
            read, dmg, _ = _read(mid)
            assert read == messages[:len(read)] and dmg.truncated
            res["mid_file"] = {"messages_read": len(read), "of": len(messages), "expected": before,
                               "stopped_by": dmg.truncated.split(": ", 1)[-1]}
            out["storages"][storage] = res
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
