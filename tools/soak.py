"""Soak: the full graph at 30/10/1 Hz for a long run; RSS, CPU, rates and loss counters over time.

    make soak                      # 10 minutes, writes docs/results/soak.{csv,png,json}
    .venv/bin/python tools/soak.py --duration 60 --out /tmp/soak   # a short smoke run

Not part of ``make test`` (it takes minutes). Every ``--period`` seconds it samples, per node
process, RSS (``/proc/<pid>/status`` VmRSS) and CPU (``/proc/<pid>/stat`` utime+stime over the
period), and from ``/diagnostics`` the fusion node's per-sensor receive rate, the prediction rate
seen by the driver, and the loss counters that stand in for queue depths (DDS queues cannot be
read from rclpy): embeddings lost between encoder and fusion (sequence gaps) and sensor inputs
lost before each encoder (stamp gaps at the expected rate). "Memory flat" is judged on the RSS
slope over the second half of the run (after warm-up), reported in MiB per 10 minutes.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_harness import NODES, Driver, NodeProc, small_model  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def slope_per_10min(ts, ys) -> float:
    import numpy as np

    half = len(ts) // 2
    if len(ts) - half < 3:
        return float("nan")
    return float(np.polyfit(np.asarray(ts[half:]), np.asarray(ys[half:]), 1)[0] * 600.0)


def run(duration_s: float, period_s: float, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="aecf_soak_"))
    model = small_model(tmp)
    procs = {n: NodeProc(n, model, tmp) for n in NODES}
    for p in procs.values():
        p.start()
    d = Driver()
    rows = []
    try:
        start = time.monotonic()
        assert d.spin(120, lambda: any(all(p) for _, p in d.predictions)), "graph never came up"
        t0 = time.monotonic()
        print(f"graph up after {t0 - start:.1f} s; soaking {duration_s:.0f} s", flush=True)
        last_cpu = {n: cpu_s(p.pid) for n, p in procs.items()}
        last_t, last_preds = t0, len(d.predictions)
        while time.monotonic() - t0 < duration_s:
            d.spin(period_s)
            now = time.monotonic()
            row = {"t_s": round(now - t0, 1)}
            for n, p in procs.items():
                c = cpu_s(p.pid)
                row[f"{n}.rss_mib"] = round(rss_mib(p.pid), 1)
                row[f"{n}.cpu_pct"] = round(100.0 * (c - last_cpu[n]) / (now - last_t), 1)
                last_cpu[n] = c
            row["prediction_hz"] = round((len(d.predictions) - last_preds) / (now - last_t), 2)
            last_t, last_preds = now, len(d.predictions)
            for m in ("camera", "lidar", "text"):
                f = d.values(f"fusion_node: {m}")
                e = d.values(f"{m}_encoder: {m} input")
                row[f"{m}.fusion_rate_hz"] = float(f.get("rate_hz", "nan") or "nan")
                row[f"{m}.lost_embeddings"] = int(f.get("lost", 0) or 0)
                row[f"{m}.lost_inputs_est"] = int(e.get("lost_estimate", 0) or 0)
                row[f"{m}.dropped"] = int(e.get("dropped", 0) or 0) + int(f.get("dropped", 0) or 0)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        d.close()
        codes = {n: p.stop() for n, p in procs.items()}
    with open(out / "soak.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ts = [r["t_s"] for r in rows]
    summary = {
        "duration_s": duration_s, "samples": len(rows), "exit_codes": codes,
        "rss_mib_first": {n: rows[0][f"{n}.rss_mib"] for n in NODES},
        "rss_mib_last": {n: rows[-1][f"{n}.rss_mib"] for n in NODES},
        "rss_slope_mib_per_10min_second_half": {n: round(slope_per_10min(ts, [r[f"{n}.rss_mib"] for r in rows]), 2)
                                                for n in NODES},
        "cpu_pct_mean": {n: round(sum(r[f"{n}.cpu_pct"] for r in rows) / len(rows), 1) for n in NODES},
        "prediction_hz_mean": round(sum(r["prediction_hz"] for r in rows) / len(rows), 2),
        "lost_embeddings_total": {m: rows[-1][f"{m}.lost_embeddings"] for m in ("camera", "lidar", "text")},
        "lost_inputs_est_total": {m: rows[-1][f"{m}.lost_inputs_est"] for m in ("camera", "lidar", "text")},
        "logs_with_traceback": [f.name for f in tmp.glob("*.log") if "Traceback" in f.read_text(errors="replace")],
    }
    (out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(rows, out / "soak.png")
    print(json.dumps(summary, indent=2))
    return summary


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] / 60.0 for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(9, 11), sharex=True)
    for n in NODES:
        axes[0].plot(t, [r[f"{n}.rss_mib"] for r in rows], label=n)
        axes[1].plot(t, [r[f"{n}.cpu_pct"] for r in rows], label=n)
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].set_ylabel("CPU (% of one core)")
    for m in ("camera", "lidar", "text"):
        axes[2].plot(t, [r[f"{m}.fusion_rate_hz"] for r in rows], label=f"{m} at fusion")
        axes[3].plot(t, [r[f"{m}.lost_embeddings"] for r in rows], label=f"{m} lost embeddings (seq)")
        axes[3].plot(t, [r[f"{m}.lost_inputs_est"] for r in rows], "--", label=f"{m} lost inputs (est.)")
    axes[2].plot(t, [r["prediction_hz"] for r in rows], "k", label="predictions")
    axes[2].set_ylabel("rate (Hz)")
    axes[3].set_ylabel("lost (cumulative)")
    axes[3].set_xlabel("minutes")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("aecf_ros soak: full graph, sensors at 30/10/1 Hz, fusion at 10 Hz")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    ap.add_argument("--period", type=float, default=5.0, help="sampling period, seconds")
    ap.add_argument("--out", type=Path, default=Path("docs/results"))
    args = ap.parse_args(argv)
    summary = run(args.duration, args.period, args.out)
    return 0 if not summary["logs_with_traceback"] else 1


if __name__ == "__main__":
    sys.exit(main())
