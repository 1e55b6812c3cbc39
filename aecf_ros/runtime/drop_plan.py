"""Sensor drop plans: which modality fails when, and how (ROS-free).

One plan definition is shared by ``aecf-ros replay`` (bag -> DDS), the ``sensor_dropout`` relay
node (live topics) and ``aecf-ros evaluate-bag`` (offline), so all three fail the same messages.

Times are seconds from the start of the stream (the bag's first message; for the live relay,
the first message it receives). Windows are half-open ``[start, end)``.

Command-line specs (``--drop/--stall/--delay/--freeze``, repeatable; MOD may be ``a,b``):

==========================  ===================================================================
``--drop lidar@10-25``      drop every lidar message in [10, 25)
``--drop camera:p=0.3``     drop each camera message with probability 0.3 (seeded; optional
                            ``@a-b`` window and ``:seed=N``)
``--stall text@30``         text stops for good at t = 30
``--delay lidar:0.2``       lidar arrives 0.2 s late (header stamps unchanged; optional ``@a-b``)
``--freeze camera@40-45``   camera repeats its last frame before 40 s, with that frame's old
                            stamp; ``camera@40-45:restamp`` gives the copies fresh stamps (a
                            frozen driver that still looks alive)
==========================  ===================================================================

YAML (``--plan file.yaml``), either form per entry::

    seed: 0
    topics: {camera: /my/camera/image, lidar: [/velodyne_points]}   # optional modality -> topics
    drop: ["lidar@10-25", "camera:p=0.3"]                            # same strings as the CLI
    stall: ["text@30"]
    events:                                                           # or explicit mappings
      - {type: freeze, modality: camera, start: 40, end: 45, restamp: false}
      - {type: delay, modality: lidar, seconds: 0.2}

Random drops are decided by a hash of (seed, modality, index of the message on that modality),
so the same bag and plan drop the same messages in every tool and on every run.
"""
from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from aecf_ros.graph import DEFAULT_MODALITY_TOPICS
from aecf_ros.runtime.cdr_stamp import HEADER_FIRST_TYPES, cdr_header_stamp_ns, cdr_with_header_stamp

EVENT_KINDS = ("drop", "random", "stall", "delay", "freeze")
_MOD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUM = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"


class DropPlanError(ValueError):
    """A drop-plan spec, YAML file or topic map that cannot be used (message says why)."""


@dataclass(frozen=True)
class DropEvent:
    """One failure of one modality.

    kind: ``drop`` (window), ``random`` (probability ``p``, optional window), ``stall`` (from
    ``start`` on, for good), ``delay`` (``delay_s`` late, optional window), ``freeze`` (window).
    ``end`` is ``math.inf`` for open-ended events.
    """

    kind: str
    modality: str
    start: float = 0.0
    end: float = math.inf
    p: float = 0.0
    seed: int | None = None
    delay_s: float = 0.0
    restamp: bool = False

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def describe(self) -> str:
        window = "" if (self.start == 0 and math.isinf(self.end)) else (
            f"@{_fmt(self.start)}-" + ("" if math.isinf(self.end) else _fmt(self.end))
        )
        if self.kind == "drop":
            return f"drop {self.modality}{window}"
        if self.kind == "random":
            return f"drop {self.modality}:p={_fmt(self.p)}{window}"
        if self.kind == "stall":
            return f"stall {self.modality}@{_fmt(self.start)}"
        if self.kind == "delay":
            return f"delay {self.modality}:{_fmt(self.delay_s)}{window}"
        return f"freeze {self.modality}{window}" + (":restamp" if self.restamp else "")


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Phase:
    """A stretch of time in which the same set of events is active (for per-phase metrics)."""

    name: str
    start: float
    end: float
    events: tuple[DropEvent, ...]

    @property
    def absent(self) -> frozenset[str]:
        """Modalities whose every message is dropped in this phase (drop windows and stalls)."""
        return frozenset(e.modality for e in self.events if e.kind in ("drop", "stall"))


@dataclass(frozen=True)
class DropPlan:
    """A set of :class:`DropEvent` plus the modality -> topics map they apply through."""

    events: tuple[DropEvent, ...] = ()
    seed: int = 0
    topics: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_MODALITY_TOPICS))

    def __post_init__(self) -> None:
        for event in self.events:
            if event.modality not in self.topics:
                raise DropPlanError(
                    f"unknown modality {event.modality!r} in '{event.describe()}'; "
                    f"known: {', '.join(self.topics)}"
                )
        owners: dict[str, str] = {}
        for modality, topics in self.topics.items():
            for topic in topics:
                if topic in owners and owners[topic] != modality:
                    raise DropPlanError(f"topic {topic} mapped to both {owners[topic]!r} and {modality!r}")
                owners[topic] = modality
        object.__setattr__(self, "_owners", owners)

    @property
    def empty(self) -> bool:
        return not self.events

    def modality_of(self, topic: str) -> str | None:
        """Modality a topic carries, or None (such topics pass through untouched)."""
        return self._owners.get(topic)  # type: ignore[attr-defined]

    def events_for(self, modality: str) -> tuple[DropEvent, ...]:
        return tuple(e for e in self.events if e.modality == modality)

    def planned_absent(self, modality: str, t: float) -> bool:
        """True when every ``modality`` message at time ``t`` is dropped (drop window or stall)."""
        return any(e.kind in ("drop", "stall") and e.active(t) for e in self.events_for(modality))

    def phases(self, duration: float) -> list[Phase]:
        """Split ``[0, duration)`` at every event boundary; adjacent equal phases are merged."""
        cuts = {0.0, float(duration)}
        for e in self.events:
            for x in (e.start, e.end):
                if 0.0 < x < duration:
                    cuts.add(float(x))
        edges = sorted(cuts)
        phases: list[Phase] = []
        for a, b in zip(edges[:-1], edges[1:]):
            mid = 0.5 * (a + b)
            active = tuple(e for e in self.events if e.active(mid))
            if phases and phases[-1].events == active:
                last = phases[-1]
                phases[-1] = Phase(last.name, last.start, b, active)
                continue
            name = " + ".join(e.describe() for e in active) if active else "nominal"
            phases.append(Phase(name, a, b, active))
        return phases

    def describe(self) -> str:
        return "; ".join(e.describe() for e in self.events) or "no drops"

def _as_topics(value, modality: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else list(value or [])
    if not values:
        raise DropPlanError(f"modality {modality!r} mapped to no topic")
    for topic in values:
        if not isinstance(topic, str) or not topic.startswith("/"):
            raise DropPlanError(f"topic for {modality!r} must be an absolute name like /camera/image_raw, got {topic!r}")
    return tuple(values)


# --- parsing ------------------------------------------------------------------------------------


def _parse_window(text: str, spec: str) -> tuple[float, float]:
    m = re.fullmatch(rf"\s*({_NUM})\s*-\s*({_NUM})?\s*", text)
    if not m:
        raise DropPlanError(f"bad time window {text!r} in {spec!r}: expected START-END in seconds, e.g. 10-25")
    start = float(m.group(1))
    end = float(m.group(2)) if m.group(2) is not None else math.inf
    if end <= start:
        raise DropPlanError(f"empty time window {text!r} in {spec!r}: END must be greater than START")
    return start, end


def _parse_float(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DropPlanError(f"bad {what} {text!r} in {spec!r}: expected a number") from None
    if not math.isfinite(value) or value < 0:
        raise DropPlanError(f"bad {what} {text!r} in {spec!r}: must be a finite number >= 0")
    return value


def parse_spec(kind: str, spec: str) -> list[DropEvent]:
    """One ``--drop/--stall/--delay/--freeze`` value -> events (one per listed modality).

    Raises :class:`DropPlanError` with the offending text and the expected form.
    """
    forms = {
        "drop": "MOD@START-END or MOD:p=P[@START-END][:seed=N]",
        "stall": "MOD@TIME",
        "delay": "MOD:SECONDS[@START-END]",
        "freeze": "MOD@START-END[:restamp]",
    }
    if kind not in forms:
        raise DropPlanError(f"unknown plan action {kind!r}; choose from {', '.join(forms)}")
    if not isinstance(spec, str) or not spec.strip():
        raise DropPlanError(f"empty --{kind} spec; expected {forms[kind]}")
    spec = spec.strip()
    m = re.fullmatch(r"([A-Za-z0-9_,]+)((?:[:@][^:@]*)*)", spec)
    if not m:
        raise DropPlanError(f"cannot parse --{kind} {spec!r}; expected {forms[kind]}")
    modalities = [x for x in m.group(1).split(",")]
    if any(not _MOD_RE.match(x) for x in modalities):
        raise DropPlanError(f"bad modality list {m.group(1)!r} in --{kind} {spec!r}")
    window: tuple[float, float] | None = None
    at: float | None = None
    options: list[str] = []
    for token in re.findall(r"[:@][^:@]*", m.group(2)):
        body = token[1:]
        if token[0] == "@":
            if window is not None or at is not None:
                raise DropPlanError(f"more than one '@' time in --{kind} {spec!r}")
            if kind == "stall":
                at = _parse_float(body, "stall time", spec)
            else:
                window = _parse_window(body, spec)
        else:
            options.append(body.strip())

    events: list[DropEvent] = []
    start, end = window if window else (0.0, math.inf)
    if kind == "drop":
        p = None
        seed = None
        for opt in options:
            key, _, value = opt.partition("=")
            if key == "p" and value:
                p = _parse_float(value, "probability", spec)
                if p > 1:
                    raise DropPlanError(f"drop probability must be in [0, 1], got {p} in {spec!r}")
            elif key == "seed" and value:
                try:
                    seed = int(value)
                except ValueError:
                    raise DropPlanError(f"bad seed {value!r} in {spec!r}: expected an integer") from None
            else:
                raise DropPlanError(f"unknown option {opt!r} in --drop {spec!r}; expected {forms[kind]}")
        if p is None:
            if window is None:
                raise DropPlanError(f"--drop {spec!r} needs a window (@START-END) or a probability (:p=P)")
            if seed is not None:
                raise DropPlanError(f"seed given without a probability in --drop {spec!r}")
            events = [DropEvent("drop", mod, start, end) for mod in modalities]
        else:
            events = [DropEvent("random", mod, start, end, p=p, seed=seed) for mod in modalities]
    elif kind == "stall":
        if at is None or options:
            raise DropPlanError(f"--stall {spec!r}: expected {forms[kind]}")
        events = [DropEvent("stall", mod, at) for mod in modalities]
    elif kind == "delay":
        if len(options) != 1:
            raise DropPlanError(f"--delay {spec!r}: expected {forms[kind]}")
        value = options[0].split("=", 1)[1] if options[0].startswith(("delay=", "s=")) else options[0]
        delay = _parse_float(value, "delay", spec)
        events = [DropEvent("delay", mod, start, end, delay_s=delay) for mod in modalities]
    elif kind == "freeze":
        if window is None:
            raise DropPlanError(f"--freeze {spec!r} needs a window: expected {forms[kind]}")
        if any(opt != "restamp" for opt in options):
            raise DropPlanError(f"unknown option in --freeze {spec!r}; expected {forms[kind]}")
        events = [DropEvent("freeze", mod, start, end, restamp=bool(options)) for mod in modalities]
    return events


def _event_from_mapping(entry: Mapping, where: str) -> list[DropEvent]:
    entry = dict(entry)
    kind = entry.pop("type", None) or entry.pop("kind", None)
    if kind is None:  # {drop: "lidar@10-25"} shorthand
        if len(entry) == 1 and next(iter(entry)) in ("drop", "stall", "delay", "freeze"):
            (kind, spec), = entry.items()
            return parse_spec(kind, str(spec))
        raise DropPlanError(f"{where}: event needs 'type' (drop, random, stall, delay, freeze), got {dict(entry)}")
    if kind not in EVENT_KINDS:
        raise DropPlanError(f"{where}: unknown event type {kind!r}; choose from {', '.join(EVENT_KINDS)}")
    modality = entry.pop("modality", None)
    mods = [modality] if isinstance(modality, str) else list(modality or [])
    if not mods:
        raise DropPlanError(f"{where}: event needs 'modality'")
    allowed = {"start", "end", "at", "p", "seed", "seconds", "delay_s", "restamp"}
    unknown = set(entry) - allowed
    if unknown:
        raise DropPlanError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")

    def num(key: str, default: float) -> float:
        if key not in entry or entry[key] is None:
            return default
        return _parse_float(str(entry[key]), key, where)

    start = num("start", num("at", 0.0))
    end = num("end", math.inf)
    if end <= start:
        raise DropPlanError(f"{where}: end ({end}) must be greater than start ({start})")
    if kind == "drop" and "p" in entry:
        kind = "random"
    p = num("p", 0.0)
    if kind == "random" and not 0 <= p <= 1:
        raise DropPlanError(f"{where}: p must be in [0, 1], got {p}")
    if kind == "drop" and start == 0 and math.isinf(end):
        raise DropPlanError(f"{where}: a drop needs start/end (or use type: stall with at: 0)")
    if kind == "freeze" and math.isinf(end):
        raise DropPlanError(f"{where}: a freeze needs an end")
    delay = num("seconds", num("delay_s", 0.0))
    if kind == "delay" and delay <= 0:
        raise DropPlanError(f"{where}: a delay needs seconds > 0")
    seed = entry.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise DropPlanError(f"{where}: seed must be an integer, got {seed!r}")
    return [
        DropEvent(kind, str(m), start, math.inf if kind == "stall" else end, p=p, seed=seed, delay_s=delay,
                  restamp=bool(entry.get("restamp", False)))
        for m in mods
    ]


def plan_from_dict(data: Mapping, source: str = "plan") -> DropPlan:
    """A plan from its YAML structure (see the module docstring)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise DropPlanError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    allowed = {"seed", "topics", "events", "drop", "stall", "delay", "freeze"}
    unknown = set(data) - allowed
    if unknown:
        raise DropPlanError(f"{source}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")
    events: list[DropEvent] = []
    for kind in ("drop", "stall", "delay", "freeze"):
        specs = data.get(kind) or []
        for spec in [specs] if isinstance(specs, str) else specs:
            events += parse_spec(kind, str(spec))
    for i, entry in enumerate(data.get("events") or []):
        if not isinstance(entry, Mapping):
            raise DropPlanError(f"{source}: events[{i}] must be a mapping, got {entry!r}")
        events += _event_from_mapping(entry, f"{source}: events[{i}]")
    seed = data.get("seed", 0)
    if not isinstance(seed, int):
        raise DropPlanError(f"{source}: seed must be an integer, got {seed!r}")
    topics = dict(DEFAULT_MODALITY_TOPICS)
    for modality, value in (data.get("topics") or {}).items():
        topics[str(modality)] = _as_topics(value, str(modality))
    return DropPlan(tuple(events), seed, topics)


def load_plan(path: str | Path) -> DropPlan:
    """Read a YAML plan file; errors name the file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DropPlanError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DropPlanError(f"plan file {path} is not valid YAML: {exc}") from None
    return plan_from_dict(data, source=str(path))


def parse_topic_map(items: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``["camera=/cam/image", "lidar=/velodyne_points,/ouster/points"]`` -> modality -> topics."""
    out: dict[str, tuple[str, ...]] = {}
    for item in items or []:
        modality, sep, topics = item.partition("=")
        if not sep or not _MOD_RE.match(modality.strip()):
            raise DropPlanError(f"bad --topic-map {item!r}: expected MODALITY=/topic[,/topic2]")
        out[modality.strip()] = _as_topics([t.strip() for t in topics.split(",") if t.strip()], modality)
    return out


def build_plan(
    drops: Sequence[str] = (),
    stalls: Sequence[str] = (),
    delays: Sequence[str] = (),
    freezes: Sequence[str] = (),
    plan_file: str | Path | None = None,
    seed: int | None = None,
    topic_map: Sequence[str] = (),
) -> DropPlan:
    """The plan of a command line: the YAML file's events plus the ``--drop ...`` ones."""
    base = load_plan(plan_file) if plan_file else DropPlan()
    events = list(base.events)
    for kind, specs in (("drop", drops), ("stall", stalls), ("delay", delays), ("freeze", freezes)):
        for spec in specs or ():
            events += parse_spec(kind, spec)
    topics = dict(base.topics)
    topics.update(parse_topic_map(topic_map))
    return DropPlan(tuple(events), base.seed if seed is None else int(seed), topics)


def add_plan_arguments(parser) -> None:
    """The ``--drop/--stall/--delay/--freeze/--plan/--seed/--topic-map`` options (argparse)."""
    g = parser.add_argument_group("drop plan (times in seconds from the start of the bag)")
    g.add_argument("--drop", action="append", default=[], metavar="SPEC",
                   help="MOD@START-END (window) or MOD:p=P[@START-END] (random, seeded)")
    g.add_argument("--stall", action="append", default=[], metavar="SPEC", help="MOD@TIME: stop for good")
    g.add_argument("--delay", action="append", default=[], metavar="SPEC", help="MOD:SECONDS[@START-END]: latency")
    g.add_argument("--freeze", action="append", default=[], metavar="SPEC",
                   help="MOD@START-END[:restamp]: repeat the last frame (old stamp unless :restamp)")
    g.add_argument("--plan", default=None, metavar="YAML", help="drop plan file (events are added to the flags)")
    g.add_argument("--seed", type=int, default=None, help="seed of random drops (default: the plan's, else 0)")
    g.add_argument("--topic-map", action="append", default=[], metavar="MOD=/topic[,/topic]",
                   help="topics a modality is on (default camera=/camera/image_raw,... ; with a robot's params "
                        "file: each declared sensor's topic)")


def sensor_topic_map(sensor_set) -> list[str]:
    """``--topic-map`` entries of a declared sensor set (``rear_camera=/rear/image_raw/compressed``):
    plans then name the robot's sensors (``--drop rear_camera@5-10``)."""
    return [f"{s.name}={s.topic}" for s in sensor_set]


def plan_from_args(args, sensor_set=None) -> DropPlan:
    """The command line's plan; with ``sensor_set`` its sensors' topics come first (``--topic-map``
    still wins)."""
    topic_map = (sensor_topic_map(sensor_set) if sensor_set is not None else []) + list(args.topic_map)
    return build_plan(args.drop, args.stall, args.delay, args.freeze, args.plan, args.seed, topic_map)


# --- applying a plan to a message stream ----------------------------------------------------------


def _uniform(seed: int, modality: str, index: int) -> float:
    """Deterministic U[0, 1) from (seed, modality, message index): splitmix64 of the three."""
    x = (seed * 0x9E3779B97F4A7C15 + zlib.crc32(modality.encode()) * 0xBF58476D1CE4E5B9 + index) & (2**64 - 1)
    x = (x + 0x9E3779B97F4A7C15) & (2**64 - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    return (x >> 11) / float(2**53)


@dataclass
class Emission:
    """What to publish for one input message.

    ``time`` is when (stream seconds; later than the input for delays), ``payload`` what (the
    input's bytes, or the frozen frame's), ``restamp_ns`` a header stamp to write into the
    payload (freeze with restamp) or None, ``action`` one of pass / delay / freeze.
    """

    time: float
    topic: str
    payload: object
    action: str = "pass"
    restamp_ns: int | None = None


@dataclass
class PlanCounters:
    """Per-modality message counts by what the plan did with them."""

    passed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    delayed: dict[str, int] = field(default_factory=dict)
    frozen: dict[str, int] = field(default_factory=dict)

    def add(self, which: str, modality: str) -> None:
        table = getattr(self, which)
        table[modality] = table.get(modality, 0) + 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"passed": dict(self.passed), "dropped": dict(self.dropped),
                "delayed": dict(self.delayed), "frozen": dict(self.frozen)}


class PlanApplier:
    """Applies a :class:`DropPlan` to a stream of (topic, time, payload), one message at a time.

    Stateless about transport: replay, the relay node and evaluate-bag feed it the same way and
    get the same decisions. ``payload`` is opaque (serialized bytes or a message object);
    ``stamp_ns`` (the input's header stamp, if it has one) is only needed for freeze:restamp.
    """

    def __init__(self, plan: DropPlan):
        self.plan = plan
        self.counters = PlanCounters()
        self._index: dict[str, int] = {}
        self._last_passed: dict[str, object] = {}  # topic -> last payload that went out unfrozen

    def reset(self) -> None:
        """Forget state (a looping replay starts each pass afresh, so every pass is identical)."""
        self._index.clear()
        self._last_passed.clear()

    def process(self, topic: str, t: float, payload, stamp_ns: int | None = None) -> list[Emission]:
        modality = self.plan.modality_of(topic)
        if modality is None:
            return [Emission(t, topic, payload)]
        events = self.plan.events_for(modality)
        if not events:
            self.counters.add("passed", modality)
            return [Emission(t, topic, payload)]
        index = self._index.get(modality, 0)
        self._index[modality] = index + 1
        for e in events:
            if not e.active(t):
                continue
            if e.kind in ("drop", "stall"):
                self.counters.add("dropped", modality)
                return []
            if e.kind == "random":
                seed = self.plan.seed if e.seed is None else e.seed
                if _uniform(seed, modality, index) < e.p:
                    self.counters.add("dropped", modality)
                    return []
        out = Emission(t, topic, payload)
        freeze = next((e for e in events if e.kind == "freeze" and e.active(t)), None)
        if freeze is not None:
            frozen = self._last_passed.get(topic)
            if frozen is None:  # nothing seen before the freeze: a frozen driver sends nothing
                self.counters.add("dropped", modality)
                return []
            out = Emission(t, topic, frozen, "freeze", stamp_ns if freeze.restamp else None)
            self.counters.add("frozen", modality)
        else:
            self._last_passed[topic] = payload
        delay = sum(e.delay_s for e in events if e.kind == "delay" and e.active(t))
        if delay > 0:
            out.time = t + delay
            if out.action == "pass":
                out.action = "delay"
            self.counters.add("delayed", modality)
        elif out.action == "pass":
            self.counters.add("passed", modality)
        return [out]

    def process_serialized(self, topic: str, msgtype: str, t: float, data: bytes) -> list[Emission]:
        """:meth:`process` for serialized CDR bytes (replay, evaluate-bag, the live relay): the
        header stamp is read from the bytes, and a ``:restamp`` frozen copy gets the replaced
        message's stamp written into its bytes (header-first types only; no deserialisation)."""
        header_first = msgtype in HEADER_FIRST_TYPES and len(data) >= 12
        stamp_ns = cdr_header_stamp_ns(data) if header_first and self.plan.modality_of(topic) else None
        out = self.process(topic, t, data, stamp_ns=stamp_ns)
        for e in out:
            if e.restamp_ns is not None and header_first:
                e.payload = cdr_with_header_stamp(e.payload, e.restamp_ns)
        return out
