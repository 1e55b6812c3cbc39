"""The node graph of a declared sensor set (no ROS): one encoder node per sensor, then the rest.

``aecf-ros run`` and ``launch/aecf.launch.py`` both start what :func:`graph_nodes` returns, so a
robot's params file (``sensors: [front_camera, rear_camera, lidar]`` ...) gives the same graph
either way: ``front_camera_encoder`` (the camera encoder executable with ``sensor:
front_camera``), ``rear_camera_encoder``, ``lidar_encoder``, ``fusion_node`` and ``debug_view``.
No encoder node is started for an ``embedding`` sensor (its own node publishes the embeddings).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from aecf_ros import graph
from aecf_ros.sensors import DEFAULT_SENSOR_SET, Sensor, SensorConfigError, SensorSet, parse_sensor_set

#: launch argument / runner option -> the default set's sensor it retargets (camera_topic:=...)
TOPIC_ARGUMENT_SENSORS = {"camera_topic": "camera", "lidar_topic": "lidar", "text_topic": "text"}


@dataclass(frozen=True)
class GraphNode:
    """One node to start: its table entry, name, remaps and the parameters it must be given."""

    spec: graph.NodeSpec
    name: str
    remaps: tuple[tuple[str, str], ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)


def declared_sensor_set(params_files: Sequence[str | Path], namespace: str = "") -> SensorSet:
    """The sensor set the fusion node reads from ``params_files`` (layered, later wins; rcl's
    section matching, so ``/**`` and ``fusion_node`` sections both count). Raises
    :class:`~aecf_ros.sensors.SensorConfigError` naming the parameter."""
    from aecf_ros.runtime.params_file import read_params_file

    fqn = "/" + "/".join(x for x in (namespace.strip("/"), "fusion_node") if x)
    values: dict[str, Any] = {}
    for path in params_files:
        values.update(read_params_file(path, fqn))
    return parse_sensor_set(values)


def _camera_remaps(sensor: Sensor) -> tuple[tuple[str, str], ...]:
    # the encoder subscribes the one internal name of its transport (graph.CAMERA_TRANSPORTS)
    if sensor.transport == "compressed":
        raw = sensor.topic[:-len(graph.COMPRESSED_SUFFIX)] if sensor.topic.endswith(graph.COMPRESSED_SUFFIX) \
            else sensor.topic + "/raw"
        return (("image", raw), ("image_compressed", sensor.topic))
    return (("image", sensor.topic), ("image_compressed", sensor.topic + graph.COMPRESSED_SUFFIX))


_INPUT_NAME = {"lidar": "points", "text": "text"}


def encoder_node(sensor: Sensor) -> GraphNode:
    """The encoder node of one declared sensor (the family's table entry, renamed)."""
    family = sensor.family
    base = graph.node_spec(f"{family}_encoder")
    params: dict[str, Any] = {"sensor": sensor.name}
    if family == "camera":
        remaps = _camera_remaps(sensor)
        params["transport"] = sensor.transport
    else:
        remaps = ((_INPUT_NAME[family], sensor.topic),)
    return GraphNode(replace(base, name=sensor.encoder_node), sensor.encoder_node, remaps, params)


def effective_sensor_set(sensor_set: SensorSet, topics: Optional[Mapping[str, str]] = None,
                         topic_prefix: str = "") -> SensorSet:
    """``sensor_set`` as the started graph reads it: ``topics`` (launch-argument overrides,
    ``camera_topic`` ...) for the sensors of those names, then ``topic_prefix`` in front of every
    sensor topic (``/dropout``: the sensor_dropout relay's outputs)."""
    overrides = {TOPIC_ARGUMENT_SENSORS[k]: v for k, v in (topics or {}).items()
                 if v and k in TOPIC_ARGUMENT_SENSORS and TOPIC_ARGUMENT_SENSORS[k] in sensor_set
                 and v != graph.TOPIC_ARGUMENTS[k]}
    if overrides:
        sensor_set = sensor_set.with_topics(overrides)
    prefix = topic_prefix.strip().rstrip("/")
    if prefix:
        if not prefix.startswith("/"):
            raise SensorConfigError(f"sensor topic prefix {topic_prefix!r} must be an absolute topic name ('/dropout')")
        sensor_set = sensor_set.with_topics({s.name: prefix + _absolute(s.topic) for s in sensor_set})
    return sensor_set


def _absolute(topic: str, namespace: str = "") -> str:
    if topic.startswith("/"):
        return topic
    return "/" + "/".join(x for x in (namespace.strip("/"), topic) if x)


def graph_nodes(sensor_set: SensorSet = DEFAULT_SENSOR_SET, topics: Optional[Mapping[str, str]] = None,
                without: Sequence[str] = (), topic_prefix: str = "") -> list[GraphNode]:
    """Every node of the graph for ``sensor_set``; ``topics``: launch-argument overrides
    (``camera_topic`` ...) for the sensors of those names; ``without``: switches turned off;
    ``topic_prefix``: in front of every sensor topic (see :func:`effective_sensor_set`)."""
    declared = sensor_set
    sensor_set = effective_sensor_set(sensor_set, topics, topic_prefix)
    nodes = [encoder_node(s) for s in sensor_set.with_encoder_nodes()]
    # the fusion node subscribes an embedding sensor's topic itself: give it the moved topic
    moved = {f"{s.name}.topic": s.topic for s in sensor_set
             if not s.has_encoder_node and s.topic != declared[s.name].topic}
    nodes.append(GraphNode(graph.node_spec("fusion_node"), "fusion_node", parameters=moved))
    view = graph.node_spec("debug_view")
    if view.switch not in without:
        cameras = [s for s in sensor_set if s.kind == "image"]
        if cameras:  # it draws over the first declared camera's frames
            nodes.append(GraphNode(view, view.name, _camera_remaps(cameras[0]), {"transport": cameras[0].transport}))
        else:
            nodes.append(GraphNode(view, view.name, (("image", "~/no_camera"), ("image_compressed", "~/no_camera"))))
    return nodes


def pipeline_subscriptions(sensor_set: SensorSet = DEFAULT_SENSOR_SET, dropout: bool = False,
                           namespace: str = "") -> list[str]:
    """The topics the launched pipeline of ``sensor_set`` subscribes to once ACTIVE (lifecycle
    nodes subscribe in ``on_activate``), fully qualified: with ``dropout`` the sensor_dropout
    relay's inputs (the sensor topics), then what the graph reads (each encoder's one transport
    topic, ``/dropout/...`` behind the relay; an embedding sensor's topic, read by the fusion
    node) and the fusion node's embedding topics. A bag player that waits for all of them starts
    with the pipeline ready (replay.launch.py, ``aecf-ros wait-for --params``)."""
    relay = [_absolute(s.topic, namespace) for s in sensor_set] if dropout else []
    read = effective_sensor_set(sensor_set, topic_prefix=graph.DROPOUT_PREFIX if dropout else "")
    inputs = [_absolute(s.topic, namespace) for s in read]
    embeddings = [_absolute(graph.embedding_topic(s.name), namespace) for s in read.with_encoder_nodes()]
    return relay + inputs + embeddings
