#!/usr/bin/env python3
"""Run test files N times in a row and count, per test id, how often each one failed.

    python tools/test_repeat.py -n 10 test/test_sensor_dropout.py test/test_nodes_fusion.py
    make test-repeat N=10 FILES="test/test_sensor_dropout.py"

Each repeat is one pytest process (one at a time: the DDS tests are timing-sensitive and share
the machine), with the loopback-only environment every ROS process here needs
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID = AECF_TEST_DOMAIN_ID = --domain-id).
Per-test outcomes come from pytest's --junitxml report of each run. Prints a table of
runs / failures / skips per test id (failures first), and the path of each failed run's
report and output; exits 1 if any test failed (or errored) even once, 2 on bad use.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The test files that start real nodes over DDS (~3 minutes a run on the 2-core machine, quiet).
DEFAULT_FILES = [
    "test/test_sensor_dropout.py",
    "test/test_nodes_debug_view.py",
    "test/test_nodes_demo.py",
    "test/test_nodes_encoders.py",
    "test/test_nodes_fusion.py",
    "test/test_nodes_graph.py",
    "test/test_nodes_output_trigger.py",
    "test/test_nodes_params_device.py",
    "test/test_nodes_qos.py",
    "test/test_nodes_robot_sensors.py",
    "test/test_nodes_new_kind.py",
    "test/test_nodes_shutdown.py",
    "test/test_nodes_sim_time.py",
    "test/test_bag_replay.py",
    "test/test_bag_launch.py",
    "test/test_reliability_catalogue.py",
    "test/test_fuzz_reliability.py",
    "test/test_nodes_callback_fuzz.py",
    "test/test_nodes_internal_error.py",
    "test/test_big_frames.py",
    "test/test_bag_damage.py",
]


def _test_id(classname: str, name: str) -> str:
    """pytest's node id from a junit classname ("test.test_x" or "test.test_x.TestY") and name."""
    parts = classname.split(".")
    for k in range(len(parts), 0, -1):
        path = "/".join(parts[:k]) + ".py"
        if (REPO / path).exists():
            return "::".join([path, *parts[k:], name])
    return f"{classname}::{name}"


def outcomes(junit: Path) -> dict[str, str]:
    """test id -> passed | failed | skipped, from one --junitxml report."""
    out: dict[str, str] = {}
    root = ET.parse(junit).getroot()
    for case in root.iter("testcase"):
        file = case.get("file")
        classname = case.get("classname", "")
        name = case.get("name", "")
        test_id = f"{file}::{name}" if file else _test_id(classname, name)
        if case.find("failure") is not None or case.find("error") is not None:
            state = "failed"
        elif case.find("skipped") is not None:
            state = "skipped"
        else:
            state = "passed"
        if out.get(test_id) != "failed":  # a test passing its call but erroring in teardown: failed
            out[test_id] = state
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help=f"test files (default: {len(DEFAULT_FILES)} DDS-heavy files)")
    ap.add_argument("-n", "--repeats", type=int, default=10)
    ap.add_argument("--domain-id", default=os.environ.get("AECF_TEST_DOMAIN_ID") or os.environ.get("ROS_DOMAIN_ID") or "141",
                    help="ROS_DOMAIN_ID of every repeat (default: AECF_TEST_DOMAIN_ID, ROS_DOMAIN_ID, 141)")
    ap.add_argument("--out", default=str(REPO / "build" / "test-repeat"), help="where the per-run reports go")
    ap.add_argument("--pytest-args", default="", help="extra pytest arguments (one string)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("-n must be >= 1")
    files = args.files or DEFAULT_FILES
    missing = [f for f in files if not (REPO / f).exists() and not Path(f).exists()]
    if missing:
        print(f"no such test file: {', '.join(missing)}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(args.domain_id),
               AECF_TEST_DOMAIN_ID=str(args.domain_id), PYTHONDONTWRITEBYTECODE="1")
    runs: dict[str, int] = defaultdict(int)
    fails: dict[str, list[int]] = defaultdict(list)
    skips: dict[str, int] = defaultdict(int)
    bad_runs = []
    t_start = time.monotonic()
    for i in range(1, args.repeats + 1):
        junit = out_dir / f"run{i:02d}.xml"
        log = out_dir / f"run{i:02d}.log"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
               f"--junitxml={junit}", *args.pytest_args.split(), *files]
        t0 = time.monotonic()
        with open(log, "wb") as fh:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
        got = outcomes(junit) if junit.exists() else {}
        n_failed = sum(s == "failed" for s in got.values())
        for test_id, state in got.items():
            runs[test_id] += 1
            if state == "failed":
                fails[test_id].append(i)
            elif state == "skipped":
                skips[test_id] += 1
        if rc not in (0, 1) or not got:  # interrupted, internal error, or no report at all
            fails[f"<run {i}: pytest exit {rc}>"].append(i)
        if rc != 0:
            bad_runs.append((i, log))
        print(f"run {i}/{args.repeats}: {len(got)} tests, {n_failed} failed, rc {rc}, "
              f"{time.monotonic() - t0:.0f} s", flush=True)
    wall = time.monotonic() - t_start
    ids = sorted(set(runs) | set(fails), key=lambda t: (-len(fails.get(t, [])), t))
    width = max(len(t) for t in ids) if ids else 10
    print(f"\n{'test id':<{width}}  runs  failed  skipped  failed in runs")
    for t in ids:
        print(f"{t:<{width}}  {runs.get(t, 0):>4}  {len(fails.get(t, [])):>6}  {skips.get(t, 0):>7}  "
              f"{','.join(map(str, fails.get(t, [])))}")
    total_fail = sum(len(v) for v in fails.values())
    print(f"\n{args.repeats} repeats of {len(files)} files, {len(runs)} test ids, "
          f"{sum(runs.values())} test runs, {total_fail} failures, {wall:.0f} s wall")
    for i, log in bad_runs:
        print(f"  run {i} output: {log}")
    return 1 if total_fail else 0


if __name__ == "__main__":
    sys.exit(main())
