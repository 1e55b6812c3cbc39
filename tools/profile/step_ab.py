import sys, time, numpy as np, torch
torch.set_num_threads(1)
from aecf_ros.apps.bench_runtime import _engines
es = _engines("default", "cpu")
for e in es.values():
    for _ in range(50): e.step(1.0)
res = {k: [] for k in es}
for _ in range(1000):
    for k, e in es.items():
        t = time.perf_counter(); e.step(1.0); res[k].append(time.perf_counter() - t)
print(sys.argv[1], {k: round(float(np.median(v)) * 1e6) for k, v in res.items()}, "us engine.step p50;",
      "aecf/attention", round(np.median(res["aecf"]) / np.median(res["attention"]), 3))
