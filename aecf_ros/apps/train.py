"""``aecf-ros train``: stage 1 (encoders) + stage 2 (fusion + head, AECF objective) + calibration.

Examples::

    aecf-ros train                                   # config/train.yaml -> build/train/model.pt
    aecf-ros train --config config/train_tiny.yaml --out /tmp/m.pt --set stage2.epochs=3
    aecf-ros train --method moddrop --seed 1 --device cuda
    aecf-ros train --resume                          # continue from <workdir>/checkpoint.pt
    aecf-ros train --dataset data/robot --out robot.pt  # the robot's own bags (aecf-ros dataset)
    torchrun --nproc_per_node=2 -m aecf_ros.cli train --config ...   # DDP (gloo on CPU, nccl on GPU)

Settings come from the YAML config (``--config``, default ``config/train.yaml``), then
``--set section.key=value`` overrides, then the shortcut flags. The run is seeded
(``seed`` for stage 2, ``stage1.seed`` for the encoders). Stage-1 encoders + embeddings are
cached under ``cache_dir`` (reused by later runs with the same data/encoder settings). After
training, the test split is evaluated under every sensor-drop scenario and the numbers go into
the bundle's metadata; ``--json`` also writes the whole summary. Only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aecf_ros.train.config import DEFAULT_CONFIG_PATH, METHODS


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG_PATH),
                        help="YAML training config (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set stage2.epochs=5 (repeatable)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="device (config: auto)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--out", help="model bundle to write (config: out)")
    parser.add_argument("--method", choices=METHODS, help="fusion method (config: model.fusion.method)")
    parser.add_argument("--seed", type=int, help="stage-2 seed (config: seed)")
    parser.add_argument("--resume", action="store_true",
                        help="resume from <workdir>/checkpoint.pt of an interrupted run")
    parser.add_argument("--json", help="also write the training summary as JSON here")
    parser.add_argument("--dataset", metavar="DIR",
                        help="train on a dataset made from the robot's bags (aecf-ros dataset): its sensors, "
                             "encoders, classes and split; only fusion + head + calibrator are trained")
    parser.add_argument("--init", metavar="BUNDLE",
                        help="--dataset: start fusion + head from this bundle (same sensors, encoders, classes)")
    parser.add_argument("--params", action="append", default=None, metavar="PARAMS_FILE",
                        help="the robot's ROS params file(s) (repeat to layer): train for the sensors it declares "
                             "('sensors: [...]'); the simulator renders each image sensor's own view")


def config_from_args(args, extra: list[str] | None = None) -> dict:
    from aecf_ros.train.config import load_config

    overrides = list(args.overrides or [])
    for attr, key in (("device", "device"), ("threads", "threads"), ("out", "out"),
                      ("method", "model.fusion.method"), ("seed", "seed")):
        value = getattr(args, attr, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "no_progress", False):
        overrides.append("progress=false")
    overrides += extra or []
    return load_config(args.config, overrides)


def format_command(name: str, args) -> str:
    """The command line equivalent to the parsed ``args`` (recorded in the bundle metadata)."""
    import shlex

    parts = ["aecf-ros", name]
    for key, value in sorted(vars(args).items()):
        if value is None or value is False or key == "overrides":
            continue
        flag = "--" + key.replace("_", "-")
        if key == "config":
            try:
                value = Path(value).resolve().relative_to(Path.cwd().resolve())
            except ValueError:
                pass
        parts += [flag] if value is True else [flag, str(value)]
    for item in getattr(args, "overrides", None) or []:
        parts += ["--set", item]
    return " ".join(shlex.quote(p) for p in parts)


def setup_runtime(cfg: dict):
    import torch

    from aecf_ros.train.distributed import init_distributed

    if int(cfg.get("threads") or 0) > 0:
        torch.set_num_threads(int(cfg["threads"]))
    return init_distributed(cfg["device"])


def start_run(command: str, args, extra: list[str] | None = None):
    """Load the config from ``args`` and set up threads + device/DDP: ``(cfg, dist)``.

    A bad config (unknown key, bad value, missing file) is reported on stderr as
    ``aecf-ros <command>: ...`` and gives ``None`` (the caller exits with status 2).
    """
    try:
        cfg = config_from_args(args, extra)
    except (ValueError, FileNotFoundError) as exc:
        print(f"aecf-ros {command}: {exc}", file=sys.stderr)
        return None
    return cfg, setup_runtime(cfg)


def run_dataset(args) -> int:
    """``--dataset DIR``: fusion + head + calibrator on the robot's own samples."""
    from aecf_ros.model import ModelLoadError, save_model
    from aecf_ros.train.from_dataset import train_on_dataset
    from aecf_ros.train.pipeline import environment_info

    if args.params:
        print("aecf-ros train: --dataset takes its sensors from the dataset; drop --params", file=sys.stderr)
        return 2
    started = start_run("train", args)
    if started is None:
        return 2
    cfg, dist = started
    try:
        model, summary = train_on_dataset(args.dataset, cfg, dist=dist, init=args.init)
    except (ValueError, ModelLoadError) as exc:
        print(f"aecf-ros train: {exc}", file=sys.stderr)
        return 2
    finally:
        dist.shutdown()
    out = Path(cfg["out"])
    save_model(model, out, extra={
        "command": format_command("train", args), "train_config": cfg, "dataset": summary["dataset"],
        "method": summary["method"], "seed": summary["seed"], "calibration": summary["calibration"],
        "test_metrics": summary["test"], "seconds": summary["seconds"], "environment": environment_info(),
        "created_unix": int(time.time())})
    print(f"[train] wrote model bundle {out} ({out.stat().st_size / 1e6:.2f} MB): sensors "
          f"{', '.join(model.modalities)}, {len(model.class_names)} classes")
    t = summary["test"] or {}
    for name in ("full", "drop_p0.5"):
        if name in t:
            print(f"[train] test {name}: mAP={t[name]['map']:.4f} ECE={t[name]['ece_model']:.4f} "
                  f"(model output: {model.calibrator.default_mode})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1, default=float))
    return 0


def run(args) -> int:
    from aecf_ros.model import save_model
    from aecf_ros.train.pipeline import bundle_metadata, train_pipeline

    if getattr(args, "dataset", None):
        return run_dataset(args)
    if getattr(args, "init", None):
        print("aecf-ros train: --init needs --dataset", file=sys.stderr)
        return 2
    families = None
    if getattr(args, "params", None):
        from aecf_ros.runtime.sensor_graph import declared_sensor_set
        from aecf_ros.sensors import DEFAULT_SENSOR_SET, SensorConfigError

        try:
            sensor_set = declared_sensor_set(args.params)
        except (SensorConfigError, OSError, ValueError) as exc:
            print(f"aecf-ros train: {', '.join(args.params)}: {exc}", file=sys.stderr)
            return 2
        embedding = [s.name for s in sensor_set if s.family is None]
        if embedding:
            print(f"aecf-ros train: sensors {embedding} are of kind embedding: the simulator cannot render "
                  f"them; train on your own recordings", file=sys.stderr)
            return 2
        if sensor_set.families() != DEFAULT_SENSOR_SET.families():
            families = sensor_set.families()
    started = start_run("train", args)
    if started is None:
        return 2
    cfg, dist = started
    if families:
        cfg["sensors"] = families

    def log(msg: str) -> None:
        if dist.is_main:
            print(msg, flush=True)

    try:
        log(f"[train] device={dist.device} world_size={dist.world_size} backend={dist.backend} "
            f"method={cfg['model']['fusion']['method']} seed={cfg['seed']}")
        model, summary = train_pipeline(cfg, dist=dist, resume=args.resume, log=log)
        if dist.is_main:
            out = Path(cfg["out"])
            save_model(model, out, extra=bundle_metadata(cfg, summary, format_command("train", args)))
            print(f"[train] rank 0 wrote model bundle {out} ({out.stat().st_size / 1e6:.2f} MB)")
            t = summary["test"] or {}
            for name in ("full", "drop_p0.5"):
                if name in t:
                    print(f"[train] test {name}: mAP={t[name]['map']:.4f} "
                          f"ECE raw/global/presence/presence-Platt={t[name]['ece_raw']:.4f}/"
                          f"{t[name]['ece_global']:.4f}/{t[name]['ece_presence']:.4f}/"
                          f"{t[name]['ece_platt']:.4f} (model output: {model.calibrator.default_mode})")
            print(f"[train] done in {summary['seconds']:.1f}s; ranks: "
                  + ", ".join(f"rank{r['rank']} {r['stage2_steps']} steps" for r in summary["ranks"]))
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(summary, indent=1, default=float))
        dist.barrier()
    finally:
        dist.shutdown()
    return 0
