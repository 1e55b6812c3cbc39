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
from aecf_ros.sensors import DEFAULT_SENSOR_SET, Sensor, SensorSet, parse_sensor_set

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


def graph_nodes(sensor_set: SensorSet = DEFAULT_SENSOR_SET, topics: Optional[Mapping[str, str]] = None,
                without: Sequence[str] = ()) -> list[GraphNode]:
    """Every node of the graph for ``sensor_set``; ``topics``: launch-argument overrides
    (``camera_topic`` ...) for the sensors of those names; ``without``: switches turned off."""
    overrides = {TOPIC_ARGUMENT_SENSORS[k]: v for k, v in (topics or {}).items()
                 if v and k in TOPIC_ARGUMENT_SENSORS and TOPIC_ARGUMENT_SENSORS[k] in sensor_set
                 and v != graph.TOPIC_ARGUMENTS[k]}
    if overrides:
        sensor_set = sensor_set.with_topics(overrides)
    nodes = [encoder_node(s) for s in sensor_set.with_encoder_nodes()]
    nodes.append(GraphNode(graph.node_spec("fusion_node"), "fusion_node"))
    view = graph.node_spec("debug_view")
    if view.switch not in without:
        cameras = [s for s in sensor_set if s.kind == "image"]
        if cameras:  # it draws over the first declared camera's frames
            nodes.append(GraphNode(view, view.name, _camera_remaps(cameras[0]), {"transport": cameras[0].transport}))
        else:
            nodes.append(GraphNode(view, view.name, (("image", "~/no_camera"), ("image_compressed", "~/no_camera"))))
    return nodes
