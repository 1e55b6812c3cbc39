"""THE declared sensor set: which sensors a robot has, of which kind, on which topic.

A robot declares its sensors once, in the parameter file every node reads (the way nav2's
collision_monitor declares ``observation_sources``), under ``/**`` so every node sees it::

    /**:
      ros__parameters:
        sensors: [front_camera, rear_camera, lidar]
        front_camera: {kind: image, topic: /front/image_raw}
        rear_camera:  {kind: image, topic: /rear/image_raw/compressed, transport: compressed}
        lidar:        {kind: pointcloud, topic: /velodyne_points}

(rcl flattens the nested form to ``front_camera.kind`` etc.; both spellings are the same file.)
Per-sensor keys: ``kind`` (required), ``topic`` (required), ``transport`` (image: ``raw`` |
``compressed``; one transport per sensor, the other is never subscribed). The fusion node's
per-sensor settings are its ``timeout_s.<name>``, ``enabled.<name>``, ``gate_bias.<name>`` and
``expected_rate_hz.<name>`` parameters, declared for every declared sensor (defaults: the kind's). An ``embedding`` sensor is a user's own encoder node publishing
``aecf_ros/ModalityEmbedding`` on ``topic``: no encoder node is started for it.

A *kind* is one record (:class:`SensorKind`): its message type per transport, the model's
encoder family that turns a message into an embedding (``camera`` CNN, ``lidar`` PointNet,
``text`` MiniLM; None for ``embedding``), the executable of its encoder node, the simulator
renderer that makes training data for it, and its default settings. :func:`register_kind` adds
one (docs/ARCHITECTURE.md, "A new sensor kind"). This module imports nothing (bottom layer):
graph facts, nodes, launch files, bag tools and training all read sensor sets through it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Optional

__all__ = ["SensorKind", "Sensor", "SensorSet", "SensorConfigError", "KINDS", "register_kind",
           "parse_sensor_set", "DEFAULT_SENSOR_SET", "valid_name_token", "SENSOR_KEYS"]


class SensorConfigError(ValueError):
    """A sensor declaration that cannot be used; the message names the parameter."""


@dataclass(frozen=True)
class SensorKind:
    """Everything the package knows about one kind of sensor."""

    name: str
    #: transport -> ROS message type (``pkg/msg/Name``); the first is the default transport
    transports: Mapping[str, str]
    #: the model's encoder family (``camera`` | ``lidar`` | ``text``); None: embeddings arrive ready
    family: Optional[str]
    #: encoder node executable (``lib/aecf_ros/<executable>``); '' = no encoder node (embedding)
    executable: str = ""
    #: the simulator renderer whose output this kind's encoder takes ('' = none)
    renderer: str = ""
    #: defaults of the per-sensor settings (see SENSOR_SETTINGS)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: True: the stamp is the message header's; False (std_msgs/String): the arrival time
    stamped: bool = True

    @property
    def default_transport(self) -> str:
        return next(iter(self.transports))


_COMMON_DEFAULTS = {"enabled": True, "gate_bias": 0.0, "expected_rate_hz": 0.0}

#: the keys under a sensor's name
SENSOR_KEYS = ("kind", "topic", "transport")

_NAME_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def valid_name_token(name: Any) -> bool:
    """A ROS name token (``front_camera``): letters, digits, single underscores, starts with a
    letter, no trailing underscore. A sensor's name becomes node and topic names
    (``front_camera_encoder``, ``aecf/embedding/front_camera``), so it must be one."""
    return (isinstance(name, str) and bool(_NAME_TOKEN.match(name)) and "__" not in name
            and not name.endswith("_"))


KINDS: dict[str, SensorKind] = {}


def register_kind(kind: SensorKind, replace_existing: bool = False) -> SensorKind:
    """Add a sensor kind (its conversion and encoder must be registered where they live:
    ``runtime/inputs.py`` and the model's encoder families). Returns it."""
    if not valid_name_token(kind.name):
        raise ValueError(f"sensor kind name {kind.name!r} is not a valid name token")
    if kind.name in KINDS and not replace_existing:
        raise ValueError(f"sensor kind {kind.name!r} is registered already")
    if not kind.transports:
        raise ValueError(f"sensor kind {kind.name!r} needs at least one transport")
    KINDS[kind.name] = replace(kind, defaults={**_COMMON_DEFAULTS, **dict(kind.defaults)})
    return KINDS[kind.name]


# Timeouts: several sensor periods + encoder latency (camera 30 Hz, lidar 10 Hz, text ~1 Hz).
register_kind(SensorKind("image", {"raw": "sensor_msgs/msg/Image", "compressed": "sensor_msgs/msg/CompressedImage"},
                         family="camera", executable="camera_encoder", renderer="camera",
                         defaults={"timeout_s": 0.25}))
register_kind(SensorKind("pointcloud", {"raw": "sensor_msgs/msg/PointCloud2"}, family="lidar",
                         executable="lidar_encoder", renderer="lidar", defaults={"timeout_s": 0.4}))
register_kind(SensorKind("text", {"raw": "std_msgs/msg/String"}, family="text", executable="text_encoder",
                         renderer="text", defaults={"timeout_s": 3.0}, stamped=False))
register_kind(SensorKind("embedding", {"raw": "aecf_ros/msg/ModalityEmbedding"}, family=None,
                         defaults={"timeout_s": 0.5}))

@dataclass(frozen=True)
class Sensor:
    """One declared sensor."""

    name: str
    kind: str
    topic: str
    transport: str

    @property
    def kind_record(self) -> SensorKind:
        return KINDS[self.kind]

    @property
    def msgtype(self) -> str:
        return self.kind_record.transports[self.transport]

    @property
    def family(self) -> Optional[str]:
        return self.kind_record.family

    @property
    def has_encoder_node(self) -> bool:
        return bool(self.kind_record.executable)

    @property
    def encoder_node(self) -> str:
        """Name of this sensor's encoder node (``front_camera_encoder``)."""
        return f"{self.name}_encoder"

    def default(self, setting: str) -> Any:
        """The kind's default of a fusion setting (``timeout_s``, ``enabled``, ...)."""
        return self.kind_record.defaults[setting]


@dataclass(frozen=True)
class SensorSet:
    """The declared sensors, in declaration order (the model's modality order)."""

    sensors: tuple[Sensor, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sensors)

    def __iter__(self):
        return iter(self.sensors)

    def __len__(self) -> int:
        return len(self.sensors)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> Sensor:
        for s in self.sensors:
            if s.name == name:
                return s
        raise KeyError(f"no sensor {name!r} declared (sensors: {', '.join(self.names)})")

    def with_encoder_nodes(self) -> tuple[Sensor, ...]:
        return tuple(s for s in self.sensors if s.has_encoder_node)

    def kinds(self) -> dict[str, str]:
        return {s.name: s.kind for s in self.sensors}

    def families(self) -> dict[str, Optional[str]]:
        return {s.name: s.family for s in self.sensors}

    def topic_of(self) -> dict[str, str]:
        """sensor topic -> sensor name (bag tools, the dropout relay)."""
        return {s.topic: s.name for s in self.sensors}

    def to_parameters(self) -> dict[str, Any]:
        """The flat parameters that declare this set (``sensors``, ``<name>.kind``, ...)."""
        out: dict[str, Any] = {"sensors": list(self.names)}
        for s in self.sensors:
            out[f"{s.name}.kind"] = s.kind
            out[f"{s.name}.topic"] = s.topic
            out[f"{s.name}.transport"] = s.transport
        return out

    def with_topics(self, topics: Mapping[str, str]) -> "SensorSet":
        """A copy with ``{sensor name: topic}`` overrides (launch arguments, --topic options)."""
        unknown = sorted(set(topics) - set(self.names))
        if unknown:
            raise SensorConfigError(f"topic override for undeclared sensor(s) {unknown} "
                                    f"(sensors: {', '.join(self.names)})")
        out = tuple(replace(s, topic=topics.get(s.name) or s.topic) for s in self.sensors)
        _check_topics(out)
        return SensorSet(out)


def _check_topics(sensors: Iterable[Sensor]) -> None:
    seen: dict[str, str] = {}
    for s in sensors:
        if s.topic in seen:
            raise SensorConfigError(f"parameters '{seen[s.topic]}.topic' and '{s.name}.topic': two sensors on "
                                    f"one topic {s.topic!r} (each message would count for both)")
        seen[s.topic] = s.name


def parse_sensor_set(params: Mapping[str, Any], default: Optional["SensorSet"] = None) -> SensorSet:
    """The sensor set a node's flat parameters declare (``sensors``, ``<name>.kind``, ...).

    Without a ``sensors`` parameter: ``default`` (the package's camera/lidar/text set when
    None), with any ``<name>.kind/topic/transport`` given for its sensors applied. Raises
    :class:`SensorConfigError` naming the parameter for: an empty list, a duplicate name, a name
    that is not a ROS name token, an unknown kind or transport, a sensor without a topic, two
    sensors on one topic.
    """
    if "sensors" not in params or params["sensors"] is None:
        base = default if default is not None else DEFAULT_SENSOR_SET
        declared = {k: v for k, v in params.items() if "." in k and k.split(".", 1)[0] in base.names}
        if not declared:
            return base
        params = {**base.to_parameters(), **declared}
    names = params["sensors"]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names:
        raise SensorConfigError("parameter 'sensors' is empty: declare at least one sensor "
                                "(e.g. sensors: [camera, lidar])")
    seen: set[str] = set()
    sensors = []
    for name in names:
        if not valid_name_token(name):
            raise SensorConfigError(f"parameter 'sensors': {name!r} is not a valid ROS name token (letters, "
                                    f"digits and single underscores, starting with a letter)")
        if name in seen:
            raise SensorConfigError(f"parameter 'sensors': {name!r} is declared twice")
        seen.add(name)
        sensors.append(_parse_sensor(name, params))
    unknown_sections = sorted({k.split(".", 1)[0] for k in params if "." in k and k.split(".", 1)[1] in
                               ("kind", "topic")} - seen)
    if unknown_sections:
        raise SensorConfigError(f"parameter '{unknown_sections[0]}.kind' / '.topic' given for a sensor that is not "
                                f"in 'sensors' ({', '.join(names)}): add it to the list or remove the section")
    _check_topics(sensors)
    return SensorSet(tuple(sensors))


def _parse_sensor(name: str, params: Mapping[str, Any]) -> Sensor:
    kind_name = params.get(f"{name}.kind")
    if kind_name in (None, ""):
        raise SensorConfigError(f"parameter '{name}.kind' is missing (kinds: {', '.join(KINDS)})")
    if kind_name not in KINDS:
        raise SensorConfigError(f"parameter '{name}.kind': unknown kind {kind_name!r} (kinds: {', '.join(KINDS)})")
    kind = KINDS[kind_name]
    topic = params.get(f"{name}.topic")
    if not isinstance(topic, str) or not topic.strip():
        raise SensorConfigError(f"parameter '{name}.topic' is missing: sensor {name!r} needs the topic it "
                                f"arrives on")
    topic = topic.strip()
    if not re.match(r"^[~/A-Za-z][A-Za-z0-9_/~{}]*$", topic) or "//" in topic or topic.endswith("/"):
        raise SensorConfigError(f"parameter '{name}.topic': {topic!r} is not a valid ROS topic name")
    transport = params.get(f"{name}.transport") or kind.default_transport
    if transport not in kind.transports:
        raise SensorConfigError(f"parameter '{name}.transport': {transport!r} is not a transport of kind "
                                f"{kind.name!r} ({' | '.join(kind.transports)})")
    return Sensor(name=name, kind=kind.name, topic=topic, transport=transport)


def _default_set() -> SensorSet:
    # the package's own robot: what config/aecf.yaml declares (test_sensors.py checks they agree)
    return parse_sensor_set({
        "sensors": ["camera", "lidar", "text"],
        "camera.kind": "image", "camera.topic": "/camera/image_raw",
        "lidar.kind": "pointcloud", "lidar.topic": "/lidar/points",
        "text.kind": "text", "text.topic": "/operator/text",
    }, default=SensorSet(()))


DEFAULT_SENSOR_SET: SensorSet = _default_set()
