"""The node graph's computation over one bag, offline: what ``evaluate-bag`` and ``dataset`` share.

One process, no DDS. The bag is read in time order and passed through the drop plan exactly as
``aecf-ros replay`` publishes it (``bag/schedule.py``); each sensor message is converted,
checked and stamped by the table the encoder nodes use (``aecf_ros.runtime.inputs``: header
stamp; text: arrival time), encoded by the model's encoders, and offered to the same
:class:`~aecf_ros.runtime.fusion_engine.FusionEngine` the fusion node runs, with the same
timeouts. Time is the bag's clock (what ``/clock`` carries in a live replay); the fusion ticks
every ``1 / publish_rate_hz`` seconds from the bag start, as the fusion node's timer does under
``use_sim_time``. At every tick :meth:`BagGraph.run` calls ``on_tick(now_ns, truth)``: the
caller asks ``graph.engine`` what the node would do then (``step`` to fuse, ``gate`` for the
presence decision alone).

Messages wait until the next fusion tick, then go through THE encoder data path
(``runtime.inputs.encode_input``) in arrival order, every one of them, like the live node: a
message whose conversion, encoding or embedding check fails publishes nothing, so the fusion
keeps the sensor's previous embedding until that one's timeout, exactly as live.

Damage is counted, never fatal (``bag/damage.py``, the rule replay applies too): a message that
cannot be deserialized or is all zero is skipped and counted per topic and reason; damage to the
file itself ends the run there (``damage.truncated`` says where).
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from aecf_ros import graph as T
from aecf_ros.bag.bag_io import BagError, BagReader
from aecf_ros.bag.damage import BagDamage, DamageFilter
from aecf_ros.bag.schedule import plan_topics_missing, planned_messages
from aecf_ros.runtime.drop_plan import DropPlan, PlanApplier
from aecf_ros.runtime.inputs import MODALITY_INPUTS

GROUND_TRUTH_TYPE = "diagnostic_msgs/msg/DiagnosticArray"

#: (stamp_ns, multi-hot labels uint8[C], scene index or None) of the ground truth in force
Truth = tuple[int, np.ndarray, Optional[int]]


def input_format(msgtype: str, msg: Any) -> str:
    """What a sensor message's layout is, in one string (``Image rgb8 640x480``, ``CompressedImage
    rgb8; jpeg compressed bgr8``, ``PointCloud2 x,y,z,intensity``): bags of one dataset should agree on it."""
    short = msgtype.rsplit("/", 1)[-1]
    if short == "Image":
        return f"Image {msg.encoding} {msg.width}x{msg.height}"
    if short == "CompressedImage":
        return f"CompressedImage {str(msg.format).strip()}"  # e.g. 'rgb8; jpeg compressed bgr8'
    if short == "PointCloud2":
        return f"PointCloud2 {','.join(f.name for f in msg.fields)}"
    return short


def settings_from_parameters(values: Mapping[str, Any], modalities):
    from aecf_ros.runtime.fusion_engine import FusionSettings

    # check_encoder_id off: embeddings are made here by the same model
    return FusionSettings.from_parameters(values.__getitem__, modalities, check_encoder_id=False)


@dataclass
class BagRun:
    """What one pass over a bag counted (per sensor and per topic)."""

    path: str
    start_ns: int
    end_ns: int
    has_truth: bool
    #: sensor -> reason -> count: encoder-side drops, then the fusion's own (``fusion:<reason>``)
    input_drops: dict = field(default_factory=dict)
    plan_counters: dict = field(default_factory=dict)
    ground_truth_dropped: int = 0  # ground-truth messages that could not be read (logged once)
    #: damaged messages skipped (topic -> reason -> count) and where a damaged file stopped the read
    damage: BagDamage = field(default_factory=BagDamage)
    #: sensor -> input_format() -> messages of that layout
    formats: dict = field(default_factory=dict)
    #: sensor topics the bag has (sensor -> topic)
    topics: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


class BagGraph:
    """The fusion engine + the encoders of ``model`` under the fusion node's ``parameters``."""

    def __init__(self, model, parameters: Mapping[str, Any], plan: DropPlan,
                 log: Callable[[str], None] = print):
        from aecf_ros.runtime.fusion_engine import FusionEngine
        from aecf_ros.runtime.input_limits import InputLimits

        self.model = model
        self.parameters = dict(parameters)
        self.plan = plan
        self.log = log
        self.modalities = list(model.modalities)
        # sensor name -> its encoder family (the input table entry): front_camera -> camera
        self.families = {m: getattr(model, "sensor_families", {}).get(m, m) for m in self.modalities}
        unknown = [m for m in self.modalities if self.families[m] not in MODALITY_INPUTS]
        if unknown:
            raise BagError(f"the model has sensors the bag tools cannot encode: {unknown}")
        missing = [m for m in self.modalities if f"timeout_s.{m}" not in self.parameters]
        if missing:
            raise BagError(f"the model's sensors {self.modalities} are not the declared ones (no "
                           f"timeout_s.{missing[0]}): give the robot's params file")
        self.engine = FusionEngine(model, settings_from_parameters(self.parameters, self.modalities))
        self.rate_hz = float(self.parameters["publish_rate_hz"])
        self.period_ns = int(round(1e9 / self.rate_hz))
        self.start_ns = 0  # set by run(): the current bag's start
        self.limits = InputLimits(**{k: self.parameters[k] for k in ("max_pixels", "max_text_chars")
                                     if k in self.parameters})

    def _sensor_topics(self, info) -> dict[str, str]:
        """bag topic -> sensor, checking types; BagError on a type the encoders cannot take."""
        out = {}
        for m in self.modalities:
            for topic in self.plan.topics.get(m, ()):
                t = info.topic(topic)
                if t is None:
                    continue
                accepted = MODALITY_INPUTS[self.families[m]].msgtypes
                if t.msgtype not in accepted:
                    raise BagError(f"topic {topic} ({m}) in {info.path} has type {t.msgtype}; the {m} encoder "
                                   f"takes {' or '.join(accepted)} (use --topic-map to pick another topic)")
                out[topic] = m
        return out

    def run(self, path: str | Path, on_tick: Callable[[int, Optional[Truth]], None], *,
            ground_truth_topic: Optional[str] = T.GROUND_TRUTH_TOPIC, class_names=None,
            on_message: Optional[Callable[[], None]] = None) -> BagRun:
        """One pass over the bag at ``path``; ``on_tick(now_ns, truth)`` at every fusion tick
        (``truth``: the newest ground-truth message stamped at or before ``now_ns``, decoded in
        ``class_names`` order; None without one). ``on_message()`` after each message read."""
        import torch

        from aecf_ros.runtime.inputs import encode_input
        from aecf_ros.runtime.stamps import stamp_to_ns
        from aecf_ros.sim.scene_msgs import labels_from_ground_truth

        model, engine, modalities, families = self.model, self.engine, self.modalities, self.families
        class_names = list(class_names if class_names is not None else model.class_names)
        log = self.log
        with BagReader(path) as bag:
            info = bag.info()
            self.start_ns = info.start_ns  # the bag's first instant: ticks are period_ns apart from it
            topic_sensor = self._sensor_topics(info)
            if not topic_sensor:
                raise BagError(f"{path} has none of the sensor topics "
                               f"({', '.join(t for m in modalities for t in self.plan.topics.get(m, ()))}); "
                               f"see --topic-map")
            for modality in plan_topics_missing(self.plan, list(topic_sensor)):
                log(f"warning: the plan acts on {modality}, which is not in the bag")
            gt = info.topic(ground_truth_topic) if ground_truth_topic else None
            if gt is not None and gt.msgtype != GROUND_TRUTH_TYPE:
                log(f"warning: {ground_truth_topic} has type {gt.msgtype}, not {GROUND_TRUTH_TYPE}; no labels from it")
                gt = None
            run = BagRun(str(path), info.start_ns, max(info.end_ns, info.start_ns), gt is not None,
                         topics={m: t for t, m in topic_sensor.items()})
            drops: dict[str, dict[str, int]] = {m: {} for m in modalities}
            formats: dict[str, collections.Counter] = {m: collections.Counter() for m in modalities}
            truth: Optional[Truth] = None
            truth_queue: list[Truth] = []
            pending: dict[str, list] = {m: [] for m in modalities}
            next_tick = info.start_ns + self.period_ns

            def flush(modality: str) -> None:
                for time_ns, msgtype, msg in pending[modality]:
                    result = encode_input(model, families[modality], msgtype, msg, time_ns / 1e9, self.limits,
                                          sensor=modality)
                    if not result.ok:
                        drops[modality][result.reason] = drops[modality].get(result.reason, 0) + 1
                        if result.reason == "encode_error":
                            log(f"warning: {modality}: encoding failed ({result.detail}); sample dropped")
                        continue
                    engine.submit(modality, result.vector, result.stamp, time_ns / 1e9)
                pending[modality].clear()

            def tick(now_ns: int) -> None:
                nonlocal truth
                for m in modalities:
                    if pending[m]:
                        flush(m)
                while truth_queue and truth_queue[0][0] <= now_ns:
                    truth = truth_queue.pop(0)
                on_tick(now_ns, truth)

            damage = DamageFilter(log, run.damage)
            wanted = list(topic_sensor) + ([ground_truth_topic] if gt is not None else [])
            applier = PlanApplier(self.plan)
            with torch.inference_mode():
                for item in planned_messages(damage.readable(bag.messages(wanted)), self.plan, info.start_ns, applier):
                    if on_message is not None:
                        on_message()
                    while next_tick < item.time_ns:
                        tick(next_tick)
                        next_tick += self.period_ns
                    msg = damage.message(item.topic, item.msgtype, item.data)
                    if msg is None:  # a torn or zeroed message: counted per topic, the bag goes on
                        continue
                    if item.topic == ground_truth_topic:
                        try:
                            labels, scene = labels_from_ground_truth(msg, class_names)
                        except ValueError as exc:
                            run.ground_truth_dropped += 1
                            if run.ground_truth_dropped == 1:  # once: a broken topic is broken throughout
                                log(f"warning: dropping unreadable {ground_truth_topic} message(s): {exc}")
                            continue
                        truth_queue.append((stamp_to_ns(msg.header.stamp), labels, scene))
                        truth_queue.sort(key=lambda x: x[0])
                        continue
                    sensor = topic_sensor[item.topic]
                    try:
                        formats[sensor][input_format(item.msgtype, msg)] += 1
                    except (AttributeError, TypeError):
                        formats[sensor]["malformed"] += 1
                    pending[sensor].append((item.time_ns, item.msgtype, msg))
                if run.damage.truncated:  # the bag ends where its file is damaged: no ticks past what was read
                    run.end_ns = max(run.start_ns, run.damage.truncated_after_ns or run.start_ns)
                while next_tick <= run.end_ns:
                    tick(next_tick)
                    next_tick += self.period_ns
            for m in modalities:
                for reason, n in engine.monitors[m].drops.items():
                    drops[m][f"fusion:{reason}"] = drops[m].get(f"fusion:{reason}", 0) + n
            run.input_drops = drops
            run.formats = {m: dict(c) for m, c in formats.items()}
            run.plan_counters = applier.counters.as_dict()
        return run
