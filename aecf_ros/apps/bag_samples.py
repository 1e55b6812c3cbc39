"""One labelled bag -> the samples the fusion node would have fused: what ``aecf-ros dataset``
runs per bag (in a worker process of its own when ``--jobs`` > 1).

The bag goes through :class:`~aecf_ros.apps.bag_graph.BagGraph`: the encoder nodes' conversion
and checks, the model's encoders, the fusion node's presence rule (timeouts, ``enabled``,
``min_present``) on the bag's clock. At every fusion tick (``publish_rate_hz``) where the node
would publish a prediction (:meth:`FusionEngine.gate` says which sensors it would fuse) and a
label holds, one sample is kept: each sensor's embedding as fused (zeros where absent), the
presence, the labels, the tick's bag time. Nothing else is kept in memory: a sample is
``sum(D_m)`` floats, the bag itself is streamed.

The result is a shard file (``.npz``: ``emb_<sensor>``, ``present_<sensor>``, ``labels``,
``stamps_ns``) plus a report (:class:`BagReport`): samples, presence per sensor, every tick not
kept by reason, every input dropped by reason.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np


class DatasetError(ValueError):
    """A bag, label file or setting the dataset cannot be built from (the message says why)."""


@dataclass
class BagJob:
    """Everything a worker needs for one bag (plain data: it crosses a process boundary)."""

    path: str
    shard: str  # where the shard .npz goes
    parameters: dict  # the fusion node's parameters (timeouts, publish_rate_hz, ...)
    topics: dict  # sensor -> list of topics (the declared topics, --topic-map applied)
    families: dict  # sensor -> encoder family
    encoder_model: str  # bundle path, or "default"
    class_names: list
    labels_file: Optional[str] = None  # None: the ground-truth topic
    ground_truth_topic: str = "/scene/ground_truth"
    allow_missing_sensors: bool = False
    allow_truncated: bool = False
    threads: int = 1
    progress: bool = False


@dataclass
class BagReport:
    path: str
    start_ns: int = 0  # the bag's first message (time blocks count from it)
    samples: int = 0
    ticks: int = 0
    duration_s: float = 0.0
    labels: str = ""  # where the labels came from
    labelled_s: Optional[float] = None
    #: sensor -> fraction of kept samples with it present
    presence: dict = field(default_factory=dict)
    #: ticks not kept, by reason (no_modality_present, too_few_modalities, unlabelled)
    skipped: dict = field(default_factory=dict)
    #: sensor -> reason -> inputs dropped (conversion, checks, the fusion's own staleness rules)
    input_drops: dict = field(default_factory=dict)
    #: topic -> reason (bag/damage.py: undeserializable, zeroed) -> messages skipped
    damaged_messages: dict = field(default_factory=dict)
    truncated: str = ""  # the damage that stopped the read of a damaged bag file ('' = read to its end)
    truncated_after_ns: Optional[int] = None  # bag time of the last message read before it
    #: sensor -> message layout -> count (bags of one dataset must agree)
    formats: dict = field(default_factory=dict)
    topics: dict = field(default_factory=dict)
    positives: list = field(default_factory=list)  # per class: samples labelled with it
    encoder_ids: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def encoder_source(spec: str, families: dict):
    """The model whose encoders embed the bag: ``spec`` (a bundle path or ``default``, the
    shipped model), reduced to the declared sensors (``{name: family}``; sensors of one family
    share its weights)."""
    from aecf_ros.model import load_model

    model = load_model(None if spec == "default" else spec, device="cpu")
    if list(model.modalities) != list(families) or \
            any(model.sensor_families.get(m) != f for m, f in families.items()):
        from aecf_ros.train.sensor_set import sensor_model

        model = sensor_model(model, families)
    model.eval()
    return model


def extract_bag(job: BagJob, log: Callable[[str], None] = print) -> BagReport:
    """Write ``job.shard`` and return the bag's report; :class:`DatasetError` when it cannot be used."""
    import torch

    from aecf_ros.apps.bag_graph import BagGraph
    from aecf_ros.bag.bag_io import BagError, BagReader
    from aecf_ros.data.labels import LabelError, read_labels
    from aecf_ros.runtime.drop_plan import DropPlan

    torch.set_num_threads(max(1, int(job.threads)))
    try:
        with BagReader(job.path) as bag:
            info = bag.info()
    except BagError as exc:  # e.g. an mcap cut short has no footer: nothing can be read
        raise DatasetError(f"{job.path}: {exc} (a recording cut short? `mcap recover` or "
                           f"`ros2 bag reindex` rebuild what can be saved)") from None
    missing = [m for m, topics in job.topics.items() if not any(info.topic(t) for t in topics)]
    if missing and not job.allow_missing_sensors:
        raise DatasetError(f"{job.path}: no topic for declared sensor(s) "
                           + ", ".join(f"{m} ({' or '.join(job.topics[m])})" for m in missing)
                           + "; record it, map it (--topic-map SENSOR=TOPIC) or pass --allow-missing-sensors "
                             "(samples then have it absent)")
    track = None
    report = BagReport(job.path, info.start_ns)
    if job.labels_file:
        try:
            track = read_labels(job.labels_file, job.class_names, bag_start_ns=info.start_ns, bag_end_ns=info.end_ns)
        except LabelError as exc:
            raise DatasetError(str(exc)) from None
        report.labels, report.labelled_s = job.labels_file, track.labelled_seconds()
    else:
        gt = info.topic(job.ground_truth_topic)
        if gt is None:
            raise DatasetError(f"{job.path}: no labels: no --labels file, no labels.csv in the bag directory and "
                               f"no {job.ground_truth_topic} topic")
        report.labels = f"topic {job.ground_truth_topic}"

    model = encoder_source(job.encoder_model, job.families)
    report.encoder_ids = dict(model.encoder_ids)
    plan = DropPlan(topics={m: tuple(t) for m, t in job.topics.items()})
    graph = BagGraph(model, job.parameters, plan, log)
    sensors = graph.modalities
    dims = {m: int(model.embedding_dims[m]) for m in sensors}
    emb: dict[str, list] = {m: [] for m in sensors}
    present_rows: list = []
    labels_rows: list = []
    stamps: list = []
    skipped: dict[str, int] = {}

    def on_tick(now_ns: int, truth) -> None:
        report.ticks += 1
        present, no_output, _ = graph.engine.gate(now_ns / 1e9)
        if no_output is not None:
            skipped[no_output.reason] = skipped.get(no_output.reason, 0) + 1
            return
        labels = track.at(now_ns) if track is not None else (truth[1] if truth is not None else None)
        if labels is None:
            skipped["unlabelled"] = skipped.get("unlabelled", 0) + 1
            return
        vectors = graph.engine.embeddings_of(present)
        for m in sensors:
            v = vectors[m]
            emb[m].append(np.zeros(dims[m], np.float32) if v is None else np.asarray(v, np.float32).reshape(-1))
        present_rows.append(present)
        labels_rows.append(np.asarray(labels, np.uint8))
        stamps.append(now_ns)

    bar = None
    on_message = None
    if job.progress:
        from tqdm import tqdm

        read = {t for ts in job.topics.values() for t in ts} | {job.ground_truth_topic}
        bar = tqdm(total=sum(t.count for t in info.topics if t.name in read),
                   desc=Path(job.path).name, unit="msg", leave=False, mininterval=0.5)
        on_message = lambda: bar.update(1)  # noqa: E731
    try:
        run = graph.run(job.path, on_tick, ground_truth_topic=None if track is not None else job.ground_truth_topic,
                        class_names=job.class_names, on_message=on_message)
    except BagError as exc:
        raise DatasetError(f"{job.path}: {exc}") from None
    finally:
        if bar is not None:
            bar.close()
    if run.damage.truncated and not job.allow_truncated:
        raise DatasetError(f"{job.path}: the bag file is damaged ({run.damage.truncated}); repair it (ros2 bag reindex) "
                           f"or pass --allow-truncated to keep the samples before the damage")
    if track is None and not run.has_truth:
        raise DatasetError(f"{job.path}: {job.ground_truth_topic} is not a ground-truth topic; give --labels")
    n = len(stamps)
    report.samples, report.duration_s = n, run.duration_s
    report.skipped = skipped
    report.input_drops = {m: {r: c for r, c in d.items() if c} for m, d in run.input_drops.items()}
    damage = run.damage.as_dict()
    report.damaged_messages, report.truncated = damage["messages"], damage["truncated"]
    report.truncated_after_ns = damage["truncated_after_ns"]
    report.formats, report.topics = run.formats, run.topics
    if run.ground_truth_dropped:
        report.skipped["ground_truth_unreadable_msgs"] = run.ground_truth_dropped
    present = np.asarray(present_rows, bool).reshape(n, len(sensors))
    labels = np.asarray(labels_rows, np.uint8).reshape(n, len(job.class_names))
    report.presence = {m: (float(present[:, i].mean()) if n else 0.0) for i, m in enumerate(sensors)}
    report.positives = labels.sum(0).astype(int).tolist()
    arrays: dict[str, Any] = {"labels": labels, "stamps_ns": np.asarray(stamps, np.int64)}
    for i, m in enumerate(sensors):
        arrays[f"emb_{m}"] = np.stack(emb[m]) if n else np.zeros((0, dims[m]), np.float32)
        arrays[f"present_{m}"] = present[:, i]
    shard = Path(job.shard)
    shard.parent.mkdir(parents=True, exist_ok=True)
    tmp = shard.with_name(f".{shard.name}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    Path(str(shard) + ".json").write_text(json.dumps(report.to_json(), indent=1))
    tmp.replace(shard)
    return report


def extract_bag_worker(job: BagJob) -> dict:
    """Process-pool entry point: the report as a dict, or ``{"error": message}``."""
    import sys

    try:
        return extract_bag(job, log=lambda line: print(f"{Path(job.path).name}: {line}", file=sys.stderr)).to_json()
    except DatasetError as exc:
        return {"error": str(exc)}
