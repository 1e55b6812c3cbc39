"""Start-up time and resident memory of each aecf_ros node process (README "Footprint").

    .venv/bin/python tools/measure_nodes.py [--model m.pt]

Each node is started alone (``python -m aecf_ros.nodes.<node> --ros-args -p device:=cpu``);
start-up = spawn until the node logs that it is active (configure + activate done, model loaded
and warmed up); RSS = VmRSS of the process once active. Loopback DDS, a private domain.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODES = ("camera_encoder", "lidar_encoder", "text_encoder", "fusion_node")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def measure(node: str, model: str, env: dict, log_dir: Path) -> tuple[float, float]:
    log = log_dir / f"{node}.log"
    with open(log, "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", f"aecf_ros.nodes.{node}", "--ros-args",
                                 "-p", "device:=cpu", "-p", f"model_path:={model}"],
                                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            while "warm-up" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() - t0 > 300:
                    raise RuntimeError(f"{node} did not come up:\n{log.read_text()}")
                time.sleep(0.05)
            startup = time.monotonic() - t0
            time.sleep(1.0)  # activation done; let allocations settle
            return startup, rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=os.environ.get("ROS_DOMAIN_ID", "97"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])))
    with tempfile.TemporaryDirectory() as tmp:
        print("| node | start-up s | RSS MB |\n|---|---|---|")
        for node in NODES:
            startup, rss = measure(node, args.model, env, Path(tmp))
            print(f"| {node} | {startup:.1f} | {rss:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
