"""The bag-dataset rows of ``make bench``: extraction throughput and memory, training time.

    .venv/bin/python tools/bench_dataset.py [--minutes 10] [--quick] [--out DIR]

1. extraction: ``aecf-ros dataset`` over one generated bag of ``--minutes`` minutes (camera
   320x240 rgb8 at 10 Hz, the scene's point cloud at 10 Hz, text at 1 Hz; fusion ticks at 10 Hz),
   one worker (``--jobs 1``), in a child process: messages read + converted + encoded per
   CPU-second of the child (user + sys: msgs/s per core), wall time, the child's peak RSS
   (ru_maxrss), and a re-run on the same output (every shard cached).
2. training: ``aecf-ros train --dataset`` on that dataset with config/train.yaml's stage 2, one
   thread: seconds per epoch per 10k training samples, from stage 2's own clock in the training
   summary (``--json``), so that process start-up, calibration and evaluation stay out of it.

Figures are printed and written to ``--out`` (``dataset_bench.json``, ``PERFORMANCE_DATASET.md``);
``make bench`` runs this as its section 6.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _child(argv: list[str], env: dict) -> dict:
    """Run ``python -m aecf_ros.cli argv`` as a child; its wall, CPU and peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "aecf_ros.cli", *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            # ru_maxrss of RUSAGE_CHILDREN: the largest child so far (KiB on Linux)
            "peak_rss_mib": after.ru_maxrss / 1024.0, "stdout": proc.stdout, "stderr": proc.stderr}


def run(minutes: float, epochs: int, work: Path) -> dict:
    from aecf_ros.apps.make_bag import BagSpec, write_scene_bag
    from aecf_ros.bag.bag_io import BagReader

    path = os.pathsep.join(x for x in (str(REPO), os.environ.get("PYTHONPATH", "")) if x)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONPATH=path)
    env.setdefault("ROS_DOMAIN_ID", "79")
    bag = work / "bag"
    t0 = time.perf_counter()
    write_scene_bag(bag, BagSpec(duration_s=60.0 * minutes, scene_hold_s=4.0, camera_hz=10.0, lidar_hz=10.0))
    make_s = time.perf_counter() - t0
    with BagReader(bag) as reader:
        info = reader.info()
    counts = {t.name: t.count for t in info.topics}
    size = sum(f.stat().st_size for f in bag.iterdir() if f.is_file())
    out = work / "dataset"
    block = "30" if minutes >= 5 else "5"
    args = ["dataset", str(bag), "--out", str(out), "--split", "blocks", "--block", block, "--jobs", "1",
            "--no-progress"]
    first = _child(args, env)
    again = _child(args, env)
    manifest = json.loads((out / "dataset.json").read_text())
    n_msgs = sum(counts.values())
    train_counts = manifest["split_counts"]["train"]
    summary_path = work / "train.json"
    timed = _child(["train", "--dataset", str(out), "--out", str(work / "m.pt"), "--json", str(summary_path),
                    "--set", f"stage2.epochs={epochs}", "--no-progress", "--threads", "1"], env)
    stage2 = json.loads(summary_path.read_text())["stage2"]
    epochs_run = int(stage2["epochs"][-1]["epoch"]) if stage2["epochs"] else epochs
    # stage 2's own clock (training + the per-epoch validation pass), not the process's start-up
    per_epoch = float(stage2["seconds"]) / max(1, epochs_run)
    return {
        "bag": {"minutes": minutes, "messages": counts, "bytes": size, "written_s": make_s},
        "extraction": {"messages": n_msgs, "wall_s": first["wall_s"], "cpu_s": first["cpu_s"],
                       "msgs_per_cpu_s": n_msgs / first["cpu_s"], "msgs_per_wall_s": n_msgs / first["wall_s"],
                       "peak_rss_mib": first["peak_rss_mib"], "samples": manifest["samples"],
                       "bag_seconds_per_wall_s": 60.0 * minutes / first["wall_s"]},
        "cached_rerun_wall_s": again["wall_s"],
        "training": {"train_samples": train_counts, "epochs_timed": epochs_run,
                     "seconds_per_epoch": per_epoch,
                     "seconds_per_epoch_per_10k_samples": per_epoch * 10_000 / max(1, train_counts),
                     "train_run_wall_s": timed["wall_s"]},
    }


def report(r: dict) -> str:
    e, t, b = r["extraction"], r["training"], r["bag"]
    return "\n".join([
        "## 6. Bag dataset (`aecf-ros dataset`, `aecf-ros train --dataset`)", "",
        f"One generated bag of {b['minutes']:g} min ({b['bytes'] / 1e9:.2f} GB: "
        + ", ".join(f"{k} {v}" for k, v in b["messages"].items())
        + "), one worker process, fusion ticks at 10 Hz. Peak RSS is the largest child process of the run "
          "(the extraction).", "",
        "| figure | value |", "|---|---|",
        f"| messages read + converted + encoded per CPU-second (msgs/s/core) | {e['msgs_per_cpu_s']:.0f} |",
        f"| wall time for the bag (bag seconds per wall second) | {e['wall_s']:.1f} s ({e['bag_seconds_per_wall_s']:.1f}x real time) |",
        f"| peak RSS of the extraction process | {e['peak_rss_mib']:.0f} MiB |",
        f"| samples | {e['samples']} |",
        f"| re-run on the same output (every shard cached) | {r['cached_rerun_wall_s']:.1f} s |",
        f"| training (config/train.yaml stage 2, 1 thread): seconds per epoch per 10k samples | "
        f"{t['seconds_per_epoch_per_10k_samples']:.1f} s ({t['train_samples']} train samples, "
        f"{t['seconds_per_epoch']:.2f} s per epoch) |", ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--epochs", type=int, default=5, help="stage-2 epochs timed for the training row")
    ap.add_argument("--quick", action="store_true", help="0.5-minute bag, 2 epochs (smoke run)")
    ap.add_argument("--out", type=Path, default=None, help="write dataset_bench.json + .md here")
    args = ap.parse_args(argv)
    minutes, epochs = (0.5, 2) if args.quick else (args.minutes, args.epochs)
    with tempfile.TemporaryDirectory(prefix="aecf_dataset_bench_") as tmp:
        r = run(minutes, epochs, Path(tmp))
    md = report(r)
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "dataset_bench.json").write_text(json.dumps(r, indent=1) + "\n")
        (args.out / "PERFORMANCE_DATASET.md").write_text(
            f"# aecf_ros bag dataset performance (`tools/bench_dataset.py`, {time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} CPUs)\n\n" + md.replace("## 6. ", "## "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
