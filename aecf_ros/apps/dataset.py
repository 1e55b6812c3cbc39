"""``aecf-ros dataset BAG... --out DIR``: a training set from a robot's own labelled bags.

Every bag goes through the node graph's computation offline (:mod:`aecf_ros.apps.bag_samples`:
the encoder nodes' conversion, the encoders, the fusion node's presence rule on the bag's
clock), and a sample is kept at every fusion output instant that has a label: the embeddings
as fused, which sensors were present, the labels, the bag time. So a model trained on the
dataset sees its sensors exactly as the running nodes will hand them over, drops included.

Labels per bag, first found: ``--labels FILE`` (one per bag, in bag order; format in
:mod:`aecf_ros.data.labels`), ``<bag>/labels.csv``, the ground-truth topic
(``/scene/ground_truth``, ``diagnostic_msgs/DiagnosticArray``, see ``sim/scene_msgs``). Class
order: ``--classes FILE``, else ``<bag>/classes.txt``, else the labels' order of appearance.

Examples::

    aecf-ros dataset bags/run1 bags/run2 bags/run3 --params robot.yaml --out data/robot
    aecf-ros dataset bags/*/ --labels-dir labels/ --classes classes.txt --split blocks --out data/robot

The directory's layout is in :mod:`aecf_ros.data.dataset_files`; ``aecf-ros train --dataset
DIR`` trains on it, ``aecf-ros evaluate --dataset DIR --model M`` scores a model on its test part.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from aecf_ros import graph as T
from aecf_ros.apps.bag_samples import BagJob, DatasetError
from aecf_ros.bag.damage import BagDamage
from aecf_ros.data.dataset_files import GAP

SAMPLER_VERSION = 2  # bump when what a shard holds changes: old shards are then re-extracted
#: files of a bag directory that are not the recording (they do not change the content hash)
NOT_RECORDING = ("labels.csv", "classes.txt")


def add_arguments(parser) -> None:
    parser.add_argument("bags", nargs="+", help="rosbag2 directories (sqlite3 or mcap)")
    parser.add_argument("--out", required=True, help="dataset directory to write (re-runs reuse its shards)")
    parser.add_argument("--params", default=None, metavar="PARAMS_FILE",
                        help="the robot's ROS params file: declared sensors, timeouts, publish_rate_hz "
                             "(default: config/aecf.yaml)")
    parser.add_argument("--labels", action="append", default=None, metavar="FILE",
                        help="label file of each bag, in bag order (default: <bag>/labels.csv, else the "
                             "ground-truth topic)")
    parser.add_argument("--labels-dir", default=None, metavar="DIR",
                        help="label files named <bag name>.csv in DIR")
    parser.add_argument("--classes", default=None, metavar="FILE", help="class list, one name per line")
    parser.add_argument("--model", default="default",
                        help="bundle whose encoders embed the sensors (default: the shipped model)")
    parser.add_argument("--topic-map", action="append", default=[], metavar="SENSOR=TOPIC",
                        help="read SENSOR from TOPIC in these bags (recorded under another name)")
    parser.add_argument("--ground-truth-topic", default=T.GROUND_TRUTH_TOPIC)
    g = parser.add_argument_group("splits (never through correlated time)")
    g.add_argument("--split", choices=("bags", "blocks"), default="bags",
                   help="whole bags per part (default), or time blocks of every bag")
    g.add_argument("--val", type=float, default=0.2, help="fraction for validation (default 0.2)")
    g.add_argument("--test", type=float, default=0.2, help="fraction for test (default 0.2)")
    g.add_argument("--test-bag", action="append", default=[], metavar="BAG", help="put this bag in test")
    g.add_argument("--val-bag", action="append", default=[], metavar="BAG", help="put this bag in val")
    g.add_argument("--block", type=float, default=30.0, metavar="S", help="--split blocks: block length (s)")
    g.add_argument("--gap", type=float, default=None, metavar="S",
                   help="--split blocks: samples dropped after a boundary where the part changes "
                        "(default: the longest sensor timeout)")
    g.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=0,
                        help="bags extracted in parallel processes (default: one per core, at most one per bag)")
    parser.add_argument("--allow-missing-sensors", action="store_true",
                        help="accept bags without a declared sensor's topic (it is absent in their samples)")
    parser.add_argument("--allow-mixed-formats", action="store_true",
                        help="accept bags whose sensors differ in encoding / size / fields")
    parser.add_argument("--allow-truncated", action="store_true",
                        help="keep the samples before the damage of a damaged bag file")
    parser.add_argument("--no-progress", action="store_true")


def bag_content_hash(path: Path) -> str:
    """sha256 over the recording's files (names + bytes): the same recording, wherever it lies."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.name not in NOT_RECORDING
                    and not p.name.startswith(".")):
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def labels_for(bags: list[Path], args) -> list[Optional[str]]:
    """Each bag's label file (None: its ground-truth topic)."""
    if args.labels:
        if len(args.labels) != len(bags):
            raise DatasetError(f"{len(args.labels)} --labels file(s) for {len(bags)} bag(s): give one per bag, "
                               f"in bag order")
        return list(args.labels)
    out = []
    for bag in bags:
        own = bag / "labels.csv"
        named = Path(args.labels_dir) / f"{bag.name}.csv" if args.labels_dir else None
        if named is not None and named.is_file():
            out.append(str(named))
        elif named is not None:
            raise DatasetError(f"--labels-dir: no {named} for bag {bag}")
        else:
            out.append(str(own) if own.is_file() else None)
    return out


def class_names_for(bags: list[Path], labels: list[Optional[str]], args) -> tuple[list[str], str]:
    """(class names, where they came from)."""
    from aecf_ros.data.labels import LabelError, read_class_list, read_labels

    try:
        if args.classes:
            return read_class_list(args.classes), args.classes
        lists = [(b / "classes.txt") for b in bags if (b / "classes.txt").is_file()]
        if lists:
            first = read_class_list(lists[0])
            for other in lists[1:]:
                if read_class_list(other) != first:
                    raise DatasetError(f"{lists[0]} and {other} list different classes; give --classes")
            return first, str(lists[0])
        names: list[str] = []
        for f in labels:
            if f is not None:
                names += [c for c in read_labels(f).class_names if c not in names]
    except LabelError as exc:
        raise DatasetError(str(exc)) from None
    for bag, f in zip(bags, labels):
        if f is None:
            names += [c for c in _topic_class_names(bag, args.ground_truth_topic) if c not in names]
    if not names:
        raise DatasetError("no classes: the labels name none; give --classes")
    return names, "labels"


def _topic_class_names(bag: Path, topic: str) -> list[str]:
    """The class names of the first readable ground-truth message (damaged ones are skipped by the
    rule of bag/damage.py; the extraction counts them)."""
    from aecf_ros.bag.bag_io import BagError, BagReader
    from aecf_ros.bag.damage import DamageFilter
    from aecf_ros.sim.scene_msgs import GROUND_TRUTH_STATUS_NAME, SCENE_INDEX_KEY

    damage = DamageFilter(log=lambda line: None)  # counted and reported by the extraction itself
    try:
        with BagReader(bag) as reader:
            for item in damage.readable(reader.messages([topic])):
                msg = damage.message(item[0], item[1], item[3])
                for status in msg.status if msg is not None else ():
                    if status.name == GROUND_TRUTH_STATUS_NAME:
                        return [kv.key for kv in status.values if kv.key != SCENE_INDEX_KEY]
    except BagError as exc:
        raise DatasetError(f"{bag}: {exc}") from None
    return []


def run(args) -> int:
    try:
        return _run(args)
    except DatasetError as exc:
        print(f"aecf-ros dataset: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from aecf_ros.apps.bag_samples import encoder_source
    from aecf_ros.apps.evaluate_bag import fusion_parameters
    from aecf_ros.data.dataset_files import FEATURES, file_sha256, split_bags, split_blocks, write_manifest
    from aecf_ros.data.features import save_features
    from aecf_ros.model import ModelLoadError
    from aecf_ros.graph import DEFAULT_MODALITY_TOPICS
    from aecf_ros.runtime.drop_plan import DropPlanError, parse_topic_map
    from aecf_ros.runtime.sensor_graph import declared_sensor_set
    from aecf_ros.sensors import DEFAULT_SENSOR_SET, SensorConfigError

    t0 = time.perf_counter()
    bags = [Path(b) for b in args.bags]
    for b in bags:
        if not (b / "metadata.yaml").is_file():
            raise DatasetError(f"{b} is not a rosbag2 directory (no metadata.yaml)")
    if len({b.resolve() for b in bags}) != len(bags):
        raise DatasetError("a bag is given twice")
    if args.params is None:  # the file `aecf-ros run` uses by default, for the same settings
        from aecf_ros.nodes.runner import default_params_file

        args.params = str(default_params_file())
    params_file = args.params
    try:
        sensor_set = declared_sensor_set([params_file])
        parameters = fusion_parameters(params_file)
    except (SensorConfigError, ValueError, OSError) as exc:
        raise DatasetError(f"{params_file}: {exc}") from None
    embedding = [s.name for s in sensor_set if s.family is None]
    if embedding:
        raise DatasetError(f"sensors {embedding} are of kind embedding: the bag tools do not read "
                           f"ModalityEmbedding topics yet (record the raw sensor and let its encoder embed it)")
    names = list(sensor_set.names)
    topics = ({m: list(DEFAULT_MODALITY_TOPICS[m]) for m in names} if sensor_set.names == DEFAULT_SENSOR_SET.names
              else {s.name: [s.topic] for s in sensor_set})
    try:
        for sensor, topic in parse_topic_map(args.topic_map).items():
            if sensor not in topics:
                raise DatasetError(f"--topic-map names {sensor!r}, not a declared sensor ({', '.join(names)})")
            topics[sensor] = list(topic)
    except DropPlanError as exc:
        raise DatasetError(str(exc)) from None
    if args.split == "bags":  # before any extraction: a split that cannot work fails now
        try:
            split_bags([b.name for b in bags], args.split_seed, args.val, args.test,
                       {**{Path(b).name: "test" for b in args.test_bag}, **{Path(b).name: "val" for b in args.val_bag}})
        except ValueError as exc:
            raise DatasetError(str(exc)) from None
    labels = labels_for(bags, args)
    class_names, classes_from = class_names_for(bags, labels, args)
    try:
        model = encoder_source(args.model, sensor_set.families())
    except ModelLoadError as exc:
        raise DatasetError(str(exc)) from None
    encoder_ids = dict(model.encoder_ids)
    dims = {m: int(model.embedding_dims[m]) for m in names}
    out = Path(args.out)
    shards = out / "shards"
    jobs = []
    for bag, label_file in zip(bags, labels):
        key = hashlib.sha256(json.dumps({
            "bag": bag_content_hash(bag), "labels": file_sha256(label_file) if label_file else args.ground_truth_topic,
            "classes": class_names, "parameters": parameters, "topics": topics, "encoders": encoder_ids,
            "model": args.model, "allow": [args.allow_missing_sensors, args.allow_truncated],
            "version": SAMPLER_VERSION}, sort_keys=True, default=str).encode()).hexdigest()[:20]
        jobs.append(BagJob(str(bag), str(shards / f"{bag.name}-{key}.npz"), parameters, topics,
                           sensor_set.families(), args.model, class_names, label_file, args.ground_truth_topic,
                           args.allow_missing_sensors, args.allow_truncated, 1,
                           progress=not args.no_progress))
    reports = _extract(jobs, args)
    # one dataset = one set of sensor layouts: a camera that changed resolution between bags
    # changes what its encoder sees, which the model would learn as a difference of scenes
    for m in names:
        seen = {}
        for job, rep in zip(jobs, reports):
            for fmt in rep["formats"].get(m, {}):
                if fmt != "malformed":
                    seen.setdefault(fmt, job.path)
        if len(seen) > 1 and not args.allow_mixed_formats:
            raise DatasetError(f"sensor {m} differs between or within bags: "
                               + "; ".join(f"{fmt} ({p})" for fmt, p in seen.items())
                               + " (convert the bags, or --allow-mixed-formats)")
    for job, rep in zip(jobs, reports):
        if rep["encoder_ids"] != encoder_ids:
            raise DatasetError(f"{job.path}: embedded with other encoders than {args.model} (stale shard?)")
    # the samples, bag after bag
    parts = []
    for i, job in enumerate(jobs):
        with np.load(job.shard, allow_pickle=False) as z:
            parts.append({k: z[k] for k in z.files} | {"bag": np.full(len(z["labels"]), i, np.int32)})
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(data["labels"])
    if n == 0:
        raise DatasetError("no samples: no fusion output instant of any bag has a label "
                           "(see the per-bag reports above)")
    bag_ids = [Path(j.path).name for j in jobs]
    if len(set(bag_ids)) != len(bag_ids):
        bag_ids = [j.path for j in jobs]
    split_info: dict = {"mode": args.split, "seed": args.split_seed, "val": args.val, "test": args.test}
    try:
        if args.split == "bags":
            by_name = {**{Path(b).name: "test" for b in args.test_bag}, **{Path(b).name: "val" for b in args.val_bag}}
            fixed = {bid: by_name[Path(j.path).name] for bid, j in zip(bag_ids, jobs) if Path(j.path).name in by_name}
            unknown = set(by_name) - {Path(j.path).name for j in jobs}
            if unknown:
                raise DatasetError(f"--test-bag / --val-bag name bags not given: {sorted(unknown)}")
            assignment = split_bags(bag_ids, args.split_seed, args.val, args.test, fixed)
            split = np.array([assignment[bag_ids[i]] for i in data["bag"]], dtype="<U5")
            split_info["bags"] = assignment
        else:
            gap = args.gap if args.gap is not None else max(float(parameters[f"timeout_s.{m}"]) for m in names)
            starts = [r["start_ns"] for r in reports]
            split, blocks = split_blocks(data["bag"], data["stamps_ns"], starts, args.block, gap,
                                         args.split_seed, args.val, args.test)
            split_info.update({"block_s": args.block, "gap_s": gap, "blocks": blocks,
                               "gap_samples": int((split == GAP).sum())})
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    keep = split != GAP
    out.mkdir(parents=True, exist_ok=True)
    features = save_features(
        out / FEATURES, {m: data[f"emb_{m}"][keep] for m in names}, data["labels"][keep],
        {m: data[f"present_{m}"][keep] for m in names}, class_names, split[keep],
        extra={"stamps_ns": data["stamps_ns"][keep], "bag": data["bag"][keep]})
    counts = {p: int((split[keep] == p).sum()) for p in ("train", "val", "test")}
    for i, rep in enumerate(reports):
        rep["id"] = bag_ids[i]
        rep["split"] = {p: int(((data["bag"] == i) & (split == p)).sum()) for p in ("train", "val", "test", GAP)}
    manifest = {
        "sensors": [{"name": s.name, "kind": s.kind, "family": s.family, "topics": topics[s.name],
                     "transport": s.transport, "msgtype": s.msgtype, "dim": dims[s.name]} for s in sensor_set],
        "encoder_ids": encoder_ids,
        "encoder_model": args.model if args.model == "default" else str(Path(args.model).resolve()),
        "encoder_model_sha256": None if args.model == "default" else file_sha256(args.model),
        "class_names": class_names, "classes_from": classes_from,
        "fusion_parameters": parameters, "params_file": params_file,
        "sample_rule": "a sample at every fusion tick (1/publish_rate_hz from the bag start) where the fusion "
                       "node would publish and a label holds",
        "split": split_info, "samples": int(keep.sum()), "split_counts": counts,
        "bags": reports, "features_sha256": file_sha256(features),
        "created_unix": int(time.time()),
    }
    write_manifest(out, manifest)
    _print_reports(reports, names, class_names)
    print(f"wrote {out} ({int(keep.sum())} samples: train {counts['train']}, val {counts['val']}, "
          f"test {counts['test']}; {len(names)} sensors, {len(class_names)} classes) in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def _extract(jobs: list[BagJob], args) -> list[dict]:
    """Each job's report: cached shards reused, the others extracted (in parallel processes)."""
    from aecf_ros.apps.bag_samples import extract_bag_worker

    reports: list[Optional[dict]] = [None] * len(jobs)
    todo = []
    for i, job in enumerate(jobs):
        cached = Path(job.shard + ".json")
        if Path(job.shard).is_file() and cached.is_file():
            reports[i] = json.loads(cached.read_text())
            print(f"{job.path}: cached ({Path(job.shard).name})", file=sys.stderr)
        else:
            todo.append(i)
    jobs_n = args.jobs or min(len(todo), os.cpu_count() or 1)
    if len(todo) > 1 and jobs_n > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        for i in todo:
            jobs[i].progress = False
        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="bags", unit="bag")
        with ProcessPoolExecutor(jobs_n, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(extract_bag_worker, jobs[i]): i for i in todo}
            for fut in as_completed(futures):
                reports[futures[fut]] = fut.result()
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
    else:
        for i in todo:
            reports[i] = extract_bag_worker(jobs[i])
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise DatasetError("\n  ".join(errors))
    return reports


def _print_reports(reports: list[dict], names: list[str], class_names: list[str]) -> None:
    print(f"{'bag':24s} {'s':>7s} {'samples':>8s} {'tr/va/te':>14s} " + " ".join(f"{m[:8]:>8s}" for m in names))
    for rep in reports:
        sp = rep["split"]
        print(f"{rep['id'][:24]:24s} {rep['duration_s']:7.1f} {rep['samples']:8d} "
              f"{sp['train']:>4d}/{sp['val']:>4d}/{sp['test']:>4d} "
              + " ".join(f"{100 * rep['presence'].get(m, 0):7.1f}%" for m in names))
        skipped = {**rep["skipped"], **({"block gap": sp[GAP]} if sp.get(GAP) else {})}
        if skipped:
            print("    ticks not kept: " + ", ".join(f"{r} {n}" for r, n in sorted(skipped.items())))
        for m in names:
            drops = rep["input_drops"].get(m) or {}
            if drops:
                print(f"    {m} inputs dropped: " + ", ".join(f"{r} {n}" for r, n in sorted(drops.items())))
        damage = BagDamage(rep["damaged_messages"], rep["truncated"], rep["truncated_after_ns"])
        for line in damage.summary_lines(rep["start_ns"]):
            print(f"    {line}")
        unseen = [c for c, k in zip(class_names, rep["positives"]) if not k]
        if unseen and len(unseen) < len(class_names):
            print(f"    classes never labelled in this bag: {', '.join(unseen)}")
