"""The declared sensor set as node parameters: ``sensors`` and ``<name>.kind/topic/transport``.

Every node that needs the robot's sensor set (the fusion node; the runner and launch file read
the same parameters from the file) declares them here, two-phase as nav2 declares
``observation_sources``: first ``sensors``, then each listed name's keys. A bad declaration does
not raise (the node must stay alive to say what is wrong): the error, naming the parameter, is
returned and the node refuses to configure.
"""
from __future__ import annotations

from typing import Optional

from rcl_interfaces.msg import ParameterDescriptor

from aecf_ros.sensors import DEFAULT_SENSOR_SET, SENSOR_KEYS, SensorConfigError, SensorSet, parse_sensor_set

_DOC = {
    "kind": "sensor kind: image | pointcloud | text | embedding (aecf_ros.sensors.KINDS)",
    "topic": "the topic the sensor arrives on (embedding kind: its aecf_ros/ModalityEmbedding topic)",
    "transport": "image: raw | compressed ('' = the kind's default, raw)",
}


def declare_sensor_set(node) -> tuple[SensorSet, Optional[str]]:
    """Declare ``sensors`` + ``<name>.kind/topic/transport`` on ``node`` (read on configure) and
    return ``(sensor set, None)``, or ``(the default set, error naming the parameter)``."""
    names = node.declare_parameter(
        "sensors", list(DEFAULT_SENSOR_SET.names),
        ParameterDescriptor(description="the robot's sensors, by name; each name's kind/topic/transport "
                                        "below it (e.g. front_camera.kind: image) [applied on configure]")).value
    flat: dict = {"sensors": list(names or [])}
    for name in flat["sensors"]:
        base = DEFAULT_SENSOR_SET[name] if name in DEFAULT_SENSOR_SET else None
        for key in SENSOR_KEYS:
            default = str(getattr(base, key)) if base is not None else ""
            pname = f"{name}.{key}"
            try:
                value = node.declare_parameter(pname, default, ParameterDescriptor(
                    description=_DOC[key] + " [applied on configure]")).value
            except Exception as exc:  # noqa: BLE001 - a name rclpy refuses, a value of the wrong type
                return DEFAULT_SENSOR_SET, f"parameter '{pname}': {type(exc).__name__}: {exc}"
            flat[pname] = value
    try:
        return parse_sensor_set(flat), None
    except SensorConfigError as exc:
        return DEFAULT_SENSOR_SET, str(exc)
