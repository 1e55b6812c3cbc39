"""Default topic names of the sensor streams (ROS-free, so drop plans can use them).

The sensor topics come from the node graph's definition (``aecf_ros/nodes/graph.py``), so a bag
made here plays straight into the graph. The bag tools write these, the drop plan maps modality
names onto them, and ``--topic-map`` (or a plan's ``topics:`` section) points them at a robot's
own topics.
"""
from __future__ import annotations

from aecf_ros.nodes.graph import COMPRESSED_SUFFIX, MODALITIES, TOPIC_ARGUMENTS

CAMERA_TOPIC = TOPIC_ARGUMENTS["camera_topic"]
COMPRESSED_CAMERA_TOPIC = CAMERA_TOPIC + COMPRESSED_SUFFIX
LIDAR_TOPIC = TOPIC_ARGUMENTS["lidar_topic"]
TEXT_TOPIC = TOPIC_ARGUMENTS["text_topic"]
GROUND_TRUTH_TOPIC = "/scene/ground_truth"
CLOCK_TOPIC = "/clock"

#: modality -> topics that carry it (a drop of ``camera`` applies to raw and compressed images).
DEFAULT_MODALITY_TOPICS: dict[str, tuple[str, ...]] = {
    "camera": (CAMERA_TOPIC, COMPRESSED_CAMERA_TOPIC),
    "lidar": (LIDAR_TOPIC,),
    "text": (TEXT_TOPIC,),
}
assert tuple(DEFAULT_MODALITY_TOPICS) == tuple(MODALITIES)
