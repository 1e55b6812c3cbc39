"""``make bench-gpu``: the CUDA tests + the GPU rows of the benchmark, one script, < 5 minutes.

    PYTHONPATH=. python3 tools/bench_gpu.py            # on a CUDA machine: docs/PERFORMANCE_GPU.md + .json
    PYTHONPATH=. python3 tools/bench_gpu.py --cpu --quick --out /tmp/g   # its CPU-reachable parts

Runs with a bare Python + torch + numpy (+ opencv for the image resize, pytest for the CUDA
tests if installed): no venv, no ROS, no ``make setup``; it imports only ``aecf_ros.core``,
``aecf_ros.encoders`` and ``aecf_ros.runtime.gpu_step`` (torch only). The text row uses the
hashing encoder (no 88 MB MiniLM download), so the working tree it needs is a few MB.

Rows (median + p99 per call, CUDA-synchronised):
* fusion layer AECF / attention / mean / concat at batch 1 and 256, float32 and float16;
* the batch-1 fusion + head step: eager float32, eager float16, CUDA graph float16
  (:class:`aecf_ros.runtime.gpu_step.CudaFusionStep`), and its max |difference| from float32;
* encoders: camera CNN on a 640x480 frame (resize + normalise on CPU, CNN on the device),
  PointNet on a 60k-point cloud (select + normalise on CPU), hashing text encoder.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DIMS = {"camera": 64, "lidar": 64, "text": 384}  # the shipped model's embedding widths
METHODS = ("aecf", "attention", "mean", "concat")


def stats(v) -> dict:
    v = [float(x) for x in v]
    return {"n": len(v), "p50": float(np.median(v)) if v else None, "p99": float(np.percentile(v, 99)) if v else None}


def timed(fn, n: int, sync) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def run_cuda_tests(quick: bool) -> dict:
    """The CUDA-marked tests (pytest -m gpu) if pytest is installed."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"ran": False, "reason": "pytest not installed on this machine"}
    files = ["test/test_core_fusion.py", "test/test_runtime_gpu_step.py"]
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files],
                       cwd=str(REPO), capture_output=True, text=True, timeout=240)
    tail = (p.stdout + p.stderr).strip().splitlines()[-1:] or [""]
    return {"ran": True, "returncode": p.returncode, "summary": tail[0], "seconds": time.monotonic() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="no GPU: run every row on the CPU (checks the script)")
    ap.add_argument("--quick", action="store_true", help="small n")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from aecf_ros.core.baselines import build_fusion
    from aecf_ros.encoders import build_encoder
    from aecf_ros.encoders.camera import preprocess_image
    from aecf_ros.encoders.lidar import preprocess_points

    if not args.cpu and not torch.cuda.is_available():
        print("bench-gpu: no CUDA device here (torch.cuda.is_available() is False); nothing measured. "
              "--cpu runs the rows on the CPU to check the script.", file=sys.stderr)
        return 2
    dev = torch.device("cpu" if args.cpu else "cuda")
    if dev.type == "cpu":
        torch.set_num_threads(1)  # batch-1 CPU inference: more threads only fight (see nodes/model_loading.py)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    n1, n256 = (20, 5) if args.quick else (500, 100)
    t_start = time.monotonic()
    r = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.node(), "python": platform.python_version(),
         "torch": torch.__version__, "device": str(dev),
         "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"}
    r["cuda_tests"] = {"ran": False, "reason": "skipped"} if args.skip_tests else run_cuda_tests(args.quick)
    dtypes = ("float32",) if dev.type == "cpu" else ("float32", "float16")
    fusion_rows = {}
    for dt in dtypes:
        for m in METHODS:
            torch.manual_seed(0)
            f = build_fusion(m, DIMS, 64).eval().to(dev, getattr(torch, dt))
            for b, n in ((1, n1), (256, n256)):
                emb = {k: torch.randn(b, d, device=dev, dtype=getattr(torch, dt)) for k, d in DIMS.items()}
                present = torch.ones(b, len(DIMS), dtype=torch.bool, device=dev)
                with torch.inference_mode():
                    for _ in range(5):
                        f(emb, present)
                    sync()
                    fusion_rows[f"{m}@{b}/{dt}"] = stats(timed(lambda: f(emb, present), n, sync))
    r["fusion_layer_us"] = fusion_rows
    # batch-1 fusion + head step
    torch.manual_seed(0)
    fusion = build_fusion("aecf", DIMS, 64).eval()
    head = torch.nn.Linear(64, 10).eval()
    rng = np.random.default_rng(0)
    emb_np = {m: rng.normal(size=d).astype(np.float32) for m, d in DIMS.items()}
    present = [True, True, True]
    step_rows, max_diff = {}, None
    with torch.inference_mode():
        f32, h32 = fusion.to(dev), head.to(dev)

        def eager32():
            e = {m: torch.from_numpy(v).to(dev).unsqueeze(0) for m, v in emb_np.items()}
            out = f32(e, torch.tensor([present], device=dev))
            return h32(out.fused).float().cpu(), out.weights[0].float().cpu()

        ref_logits, ref_w = eager32()
        step_rows["eager float32"] = stats(timed(eager32, n1, sync))
        if dev.type == "cuda":
            from aecf_ros.runtime.gpu_step import CudaFusionStep

            for graph in (False, True):
                step = CudaFusionStep(fusion, head, list(DIMS), DIMS, dev, "float16", cuda_graph=graph)
                logits, w, _ = step(emb_np, present)
                diff = float(max((logits.cpu() - ref_logits).abs().max(), np.abs(w - ref_w.numpy()).max()))
                max_diff = diff if max_diff is None else max(max_diff, diff)
                step_rows[step.mode] = stats(timed(lambda: step(emb_np, present), n1, sync))
                if step.capture_error:
                    step_rows[step.mode]["capture_error"] = step.capture_error
    r["step_us"] = step_rows
    r["half_max_abs_diff_vs_float32"] = max_diff
    # encoders at real sizes
    enc_rows = {}
    torch.manual_seed(0)
    cam = build_encoder("camera", {"embed_dim": 64, "width": 16}).eval().to(dev)
    frame = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    lid = build_encoder("lidar", {"embed_dim": 64, "width": 32, "max_points": 1024}).eval().to(dev)
    cloud = np.concatenate([rng.normal(scale=10.0, size=(60000, 3)), rng.random((60000, 1))], 1).astype(np.float32)
    txt = build_encoder("text", {"name": "hashing", "dim": 256})
    with torch.inference_mode():
        for _ in range(3):
            cam(preprocess_image(frame).unsqueeze(0).to(dev))
        enc_rows["camera 640x480: preprocess (CPU)"] = stats(timed(lambda: preprocess_image(frame), n1 // 4 + 5, sync))
        x = preprocess_image(frame).unsqueeze(0).to(dev)
        enc_rows["camera 640x480: CNN"] = stats(timed(lambda: cam(x), n1 // 4 + 5, sync))
        enc_rows["lidar 60k: preprocess (CPU)"] = stats(timed(lambda: preprocess_points(cloud, 1024), n1 // 4 + 5, sync))
        pts = preprocess_points(cloud, 1024).unsqueeze(0).to(dev)
        enc_rows["lidar 60k: PointNet"] = stats(timed(lambda: lid(pts), n1 // 4 + 5, sync))
        enc_rows["text (hashing)"] = stats(timed(lambda: txt.encode(["a red car next to a cyclist"]), n1 // 4 + 5, sync))
    r["encoders_us"] = enc_rows
    r["wall_s"] = time.monotonic() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_GPU" if dev.type == "cuda" else "_GPU_cpucheck"
    (args.out / f"performance{suffix.lower()}.json").write_text(json.dumps(r, indent=1) + "\n")
    md = report(r)
    (args.out / f"PERFORMANCE{suffix}.md").write_text(md)
    print(md)
    return 0 if not (r["cuda_tests"].get("ran") and r["cuda_tests"].get("returncode")) else 1


def report(r: dict) -> str:
    def f(x, nd=1):
        return "-" if x is None else f"{x:.{nd}f}"

    L = [f"# aecf_ros GPU rows (`make bench-gpu`)", "",
         f"{r['date']}, {r['device']} ({r['device_name']}), Python {r['python']}, torch {r['torch']}, {r['wall_s']:.0f} s.",
         "", f"CUDA tests: {r['cuda_tests']}", "", "## Fusion layer (us per call)", "",
         "| method | batch | dtype | p50 | p99 | vs attention (p50) |", "|---|---|---|---|---|---|"]
    for k, s in r["fusion_layer_us"].items():
        m, rest = k.split("@")
        b, dt = rest.split("/")
        att = r["fusion_layer_us"][f"attention@{b}/{dt}"]["p50"]
        L.append(f"| {m} | {b} | {dt} | {f(s['p50'])} | {f(s['p99'])} | {f(s['p50'] / att, 3)}x |")
    L += ["", "## Batch-1 fusion + head step (us, host copies included)", "", "| path | p50 | p99 |", "|---|---|---|"]
    L += [f"| {k} | {f(s['p50'])} | {f(s['p99'])} |" for k, s in r["step_us"].items()]
    L += ["", f"float16 vs float32 max |difference| (logits, weights): {r['half_max_abs_diff_vs_float32']}", "",
          "## Encoders at real sizes (us)", "", "| row | p50 | p99 |", "|---|---|---|"]
    L += [f"| {k} | {f(s['p50'])} | {f(s['p99'])} |" for k, s in r["encoders_us"].items()]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
