"""THE definition of the aecf_ros node graph: modalities, nodes, executables, topics and parameters.

Both ways of starting the graph read this module and nothing else:

* ``launch/aecf.launch.py`` (``ros2 launch aecf_ros aecf.launch.py``): one process per node;
* ``aecf_ros.nodes.runner`` (``aecf-ros run``): all nodes in one process.

The nodes declare their parameters from :data:`PARAMETERS` too, so a parameter's default,
range and description exist in one place. This module imports only :mod:`aecf_ros.sensors` (the sensor
kinds and the default sensor set; no ROS): it is the bottom layer, read by ``encoders/``, ``model/``, ``runtime/``, ``nodes/``,
``bag/``, the launch files and the tests alike.

Topics
------
Sensor inputs are remapped from each encoder's internal name (``image``, ``image_compressed``,
``points``, ``text``) to the launch/runner arguments ``camera_topic`` (default
``/camera/image_raw``; compressed images on ``<camera_topic>/compressed``: the camera nodes'
``transport`` parameter picks which one of the two they subscribe), ``lidar_topic``
(``/lidar/points``) and ``text_topic`` (``/operator/text``). The graph's own topics are
relative, so a ``namespace`` moves them: ``aecf/embedding/<modality>`` and ``aecf/prediction``
(``/aecf/...`` without a namespace). Diagnostics go to the absolute ``/diagnostics``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

PACKAGE = "aecf_ros"
from aecf_ros.sensors import DEFAULT_SENSOR_SET  # noqa: E402 - the one record of the default sensors

MODALITIES: tuple[str, ...] = DEFAULT_SENSOR_SET.names  # camera, lidar, text

# launch argument / runner option -> default topic
TOPIC_ARGUMENTS: dict[str, str] = {
    "camera_topic": "/camera/image_raw",
    "lidar_topic": "/lidar/points",
    "text_topic": "/operator/text",
}
COMPRESSED_SUFFIX = "/compressed"

# Default sensor topics: the bag tools write these, the drop plan maps modality names onto them,
# and ``--topic-map`` (or a plan's ``topics:`` section) points them at a robot's own topics.
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
assert tuple(DEFAULT_MODALITY_TOPICS) == MODALITIES
PREDICTION_TOPIC = "aecf/prediction"
DIAGNOSTICS_TOPIC = "/diagnostics"
DEFAULT_MODEL = "default"  # model_path value meaning "the shipped checkpoint"

# Bounds on what one sensor message may cost an encoder (the defaults of the encoder parameters
# ``max_pixels`` / ``max_text_chars``; ``aecf_ros.runtime.input_limits`` builds on them).
#: 4096 x 4096: a 4K UHD frame (8.3 MP) and a 12 MP camera fit.
DEFAULT_MAX_PIXELS = 4096 * 4096
#: Far beyond the 256 tokens MiniLM reads, so it never changes a MiniLM embedding; a 1 MB string
#: was measured to take ~945 ms to tokenize whole before MiniLM's own truncation.
DEFAULT_MAX_TEXT_CHARS = 4096
#: Embeddings with any |value| above this are dropped (``out_of_range``). The literal, because
#: this module imports nothing: it equals ``aecf_ros.core.INPUT_ABS_LIMIT`` (test_nodes_graph.py
#: asserts so), the bound below which the fusion is exact in float32 and float16.
DEFAULT_MAX_ABS_EMBEDDING = 1.0e4


def embedding_topic(modality: str) -> str:
    return f"aecf/embedding/{modality}"


DROPOUT_PREFIX = "/dropout"  # sensor_dropout's default output = prefix + input topic


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: default (its type is the parameter type), description, constraints.

    ``range`` is (min, max) for numbers (enforced by rclpy through the descriptor);
    ``choices`` lists allowed strings (enforced by the node's set-parameters callback);
    ``applied`` says when a change takes effect: ``live`` or ``configure`` (read in
    on_configure: cycle the lifecycle node, or restart it).
    """

    name: str
    default: Any
    description: str
    range: Optional[tuple[float, float]] = None
    choices: Optional[tuple[str, ...]] = None
    applied: str = "live"


@dataclass(frozen=True)
class Remap:
    """Node-internal topic ``internal`` -> value of graph argument ``argument`` + ``suffix``."""

    internal: str
    argument: str
    suffix: str = ""


@dataclass(frozen=True)
class NodeSpec:
    name: str  # node name = params-file section
    executable: str  # lib/aecf_ros/<executable> (scripts/, CMakeLists.txt)
    module: str  # module exposing main() and NODE_CLASS
    remaps: tuple[Remap, ...] = ()
    parameters: tuple[ParamSpec, ...] = field(default=())
    #: launch argument / runner switch that turns an optional node off (``debug_view:=false``);
    #: '' = always started
    switch: str = ""


# ---------------------------------------------------------------------------------- parameters
QOS_PROFILES = ("reliable", "sensor_data", "system_default")


def _qos(input_name: str, depth: int = 5) -> tuple[ParamSpec, ...]:
    return (
        ParamSpec(f"qos.{input_name}.profile", "reliable",
                  "reliable (RELIABLE, KEEP_LAST depth; matches REP 2003 drivers, which publish with "
                  "SystemDefaultsQoS) | sensor_data (rclpy's sensor-data profile, BEST_EFFORT: what REP 2003 "
                  "asks consumers to use; needed for BEST_EFFORT drivers) | system_default (the RMW's defaults). "
                  "RELIABLE is the default: with FastDDS defaults BEST_EFFORT ~1 MB images/clouds were "
                  "measured to deliver 0 of 240 here; a RELIABLE subscription does not match a BEST_EFFORT "
                  "publisher (reported in /diagnostics and the log)",
                  choices=QOS_PROFILES, applied="configure"),
        ParamSpec(f"qos.{input_name}.reliability", "",
                  "'' = the profile's | reliable | best_effort (overrides the profile's reliability)",
                  choices=("", "reliable", "best_effort"), applied="configure"),
        ParamSpec(f"qos.{input_name}.depth", depth,
                  "KEEP_LAST depth of the input queue: small so a slow encoder works on fresh data.",
                  range=(1, 100), applied="configure"),
    )


MODEL_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", DEFAULT_MODEL,
              "model bundle (aecf-ros train output); 'default' = the shipped aecf_ros/models/default.pt",
              applied="configure"),
    ParamSpec("device", "auto", "auto | cpu | cuda | cuda:N (auto = CUDA when available)",
              applied="configure"),
    ParamSpec("autostart", True,
              "configure + activate this lifecycle node at start-up; false = wait for a lifecycle manager",
              applied="configure"),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics reports", range=(0.1, 10.0),
              applied="configure"),
)

# a few sensor periods: camera 30 Hz, lidar 10 Hz, operator text ~1 Hz
_DEFAULT_INPUT_QUIET_S = {"camera": 0.5, "lidar": 0.5, "text": 5.0}


def _input_quiet(modality: str) -> ParamSpec:
    return ParamSpec("input_quiet_s", _DEFAULT_INPUT_QUIET_S[modality],
                     f"/diagnostics WARN (logged once) when no {modality} message has arrived for longer "
                     f"than this (node clock); OK again when one arrives", range=(0.01, 3600.0))


# Nominal sensor rates for the rate check; 0 = not monitored (the default: only the robot's
# params file knows its sensors; config/aecf.yaml sets 30 / 10 Hz).
_MIN_RATE_FRACTION = ParamSpec(
    "min_rate_fraction", 0.5,
    "/diagnostics WARN when a sensor with an expected rate arrives slower than this fraction of it "
    "(measured on the node clock over max(2 s, 10 expected periods))", range=(0.01, 1.0))


def _expected_rate(modality: str, name: str = "expected_rate_hz") -> ParamSpec:
    return ParamSpec(name, 0.0,
                     f"nominal {modality} rate (Hz); below min_rate_fraction of it /diagnostics says WARN, and "
                     f"header-stamp gaps longer than 1.5 periods are counted as lost inputs (estimate); "
                     f"0 = not monitored", range=(0.0, 1000.0))


def _sensor(family: str) -> ParamSpec:
    return ParamSpec("sensor", family,
                     f"the declared sensor this {family} encoder encodes (the params file's 'sensors' list; "
                     f"names aecf/embedding/<sensor>); the launch file and aecf-ros run set it",
                     applied="configure")


ENCODER_PARAMETERS: dict[str, tuple[ParamSpec, ...]] = {
    "camera": (_sensor("camera"), _input_quiet("camera"), *_qos("image"), _expected_rate("camera"), _MIN_RATE_FRACTION,
               ParamSpec("max_pixels", DEFAULT_MAX_PIXELS,
                         "images declaring more pixels (width x height; compressed images: read from the "
                         "PNG/JPEG header before decoding) are dropped as too_large",
                         range=(1, 1 << 30))),
    "lidar": (_sensor("lidar"), _input_quiet("lidar"), *_qos("points"), _expected_rate("lidar"), _MIN_RATE_FRACTION),
    "text": (_sensor("text"), _input_quiet("text"), *_qos("text", depth=10), _expected_rate("text"), _MIN_RATE_FRACTION,
             ParamSpec("max_text_chars", DEFAULT_MAX_TEXT_CHARS,
                       "longer strings are cut to this many characters before tokenizing "
                       "(counted as text_clipped)", range=(1, 1 << 24))),
}

def sensor_fusion_parameters(defaults: dict[str, dict[str, Any]]) -> tuple[ParamSpec, ...]:
    """The fusion node's per-sensor parameters for ``{sensor name: {setting: default}}`` (the
    declared sensor set, defaults from each sensor's kind: ``aecf_ros.sensors``)."""
    return (
        *(ParamSpec(f"timeout_s.{m}", float(d.get("timeout_s", 0.5)),
                    f"{m} counts as present while now - newest {m} stamp <= this (node clock)",
                    range=(0.01, 60.0)) for m, d in defaults.items()),
        *(ParamSpec(f"enabled.{m}", bool(d.get("enabled", True)), f"false = never fuse {m} (state DISABLED)")
          for m, d in defaults.items()),
        *(ParamSpec(f"gate_bias.{m}", float(d.get("gate_bias", 0.0)),
                    f"added to {m}'s gate logit (< 0 trusts {m} less)", range=(-10.0, 10.0))
          for m, d in defaults.items()),
        *(ParamSpec(f"expected_rate_hz.{m}", float(d.get("expected_rate_hz", 0.0)),
                    f"nominal {m} rate (Hz); below min_rate_fraction of it /diagnostics says WARN, and "
                    f"header-stamp gaps longer than 1.5 periods are counted as lost inputs (estimate); "
                    f"0 = not monitored", range=(0.0, 1000.0)) for m, d in defaults.items()),
    )


def fusion_parameters(defaults: dict[str, dict[str, Any]]) -> tuple[ParamSpec, ...]:
    """Every fusion node parameter for a sensor set given as ``{name: {setting: default}}``."""
    names = tuple(defaults)
    return (
        ParamSpec("publish_rate_hz", 10.0,
                  "fixed output rate: a prediction every period from whatever is present (never waits "
                  "for a dead sensor); the time to notice a dead sensor is <= timeout + one period",
                  range=(0.5, 200.0)),
        ParamSpec("gate_temperature", 1.0, "AECF gate temperature (> 1 flattens the gate towards uniform)",
                  range=(0.05, 20.0)),
        ParamSpec("min_present", 1, "publish only when at least this many modalities are present",
                  range=(1, max(1, len(names)))),
        ParamSpec("score_threshold", 0.5, "a class counts as detected (logs, demo) at or above this score",
                  range=(0.0, 1.0)),
        # DEFAULT_MAX_ABS_EMBEDDING = aecf_ros.core.INPUT_ABS_LIMIT (1.0e4): the fusion is exact below it
        ParamSpec("max_abs_embedding", DEFAULT_MAX_ABS_EMBEDDING,
                  "embeddings with any |value| above this are dropped (out_of_range); at most 1e4, the bound "
                  "below which the fusion is exact in float32 and float16",
                  range=(1.0e-3, DEFAULT_MAX_ABS_EMBEDDING)),
        *sensor_fusion_parameters(defaults),
        _MIN_RATE_FRACTION,
        *_qos("embeddings", depth=10),
        ParamSpec("output_trigger", "timer",
                  "timer = publish on the publish_rate_hz timer; a sensor name = publish as soon as a new "
                  "embedding of it arrives (at most max_output_rate_hz), the timer kept as a watchdog that "
                  "publishes when nothing else did for a whole period (a dead trigger sensor never stalls output)",
                  choices=("timer",) + names),
        ParamSpec("max_output_rate_hz", 100.0,
                  "trigger mode: at most this many trigger predictions a second (a trigger embedding sooner after "
                  "the previous trigger output is skipped, counted rate_limited; a watchdog output never holds "
                  "one back)", range=(0.5, 1000.0)),
        # output frame of aecf/prediction
        ParamSpec("frame_id", "base_link",
                  "header.frame_id of aecf/prediction (the fused result describes the robot, not one sensor)"),
    )


#: the fusion node's parameters for the package's own camera/lidar/text set
FUSION_PARAMETERS: tuple[ParamSpec, ...] = fusion_parameters(
    {s.name: dict(s.kind_record.defaults) for s in DEFAULT_SENSOR_SET})

DEBUG_IMAGE_TOPIC = "aecf/debug_image"

DEBUG_VIEW_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True,
              "configure + activate this lifecycle node at start-up; false = wait for a lifecycle manager",
              applied="configure"),
    ParamSpec("width", 640, "width (pixels) of aecf/debug_image; the camera frame is scaled to it",
              range=(320, 3840)),
    ParamSpec("top_k", 3, "how many of the highest-scoring classes the view lists", range=(1, 20)),
    ParamSpec("max_rate_hz", 15.0,
              "at most this many debug images a second (one per prediction up to this rate; above the "
              "default 10 Hz output so timer jitter skips none)", range=(0.5, 100.0)),
    ParamSpec("silence_s", 1.0,
              "with no prediction for this long the view says NO PREDICTION (every sensor marked so), "
              "redrawn every silence_s: the fusion node publishes nothing when too few sensors are present",
              range=(0.1, 60.0), applied="configure"),
    ParamSpec("subscriber_check_period_s", 0.5,
              "how often the node checks whether anyone subscribes to aecf/debug_image: it subscribes to "
              "the camera and the predictions (and draws) only while someone does",
              range=(0.05, 10.0), applied="configure"),
    *_qos("image", depth=1),
    ParamSpec("max_pixels", DEFAULT_MAX_PIXELS, "camera frames declaring more pixels are not drawn (too_large)",
              range=(1, 1 << 30)),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics reports", range=(0.1, 10.0),
              applied="configure"),
)

# One transport per camera (issue 20): a driver that publishes raw and <topic>/compressed would
# otherwise have every frame encoded (or drawn) twice. transport -> the node-internal input topic.
CAMERA_TRANSPORTS: dict[str, str] = {"raw": "image", "compressed": "image_compressed"}
CAMERA_TRANSPORT = ParamSpec(
    "transport", "raw",
    "raw = subscribe sensor_msgs/Image on camera_topic | compressed = subscribe sensor_msgs/CompressedImage "
    "on <camera_topic>/compressed; only that one is subscribed", choices=tuple(CAMERA_TRANSPORTS),
    applied="configure")
ENCODER_PARAMETERS["camera"] = ENCODER_PARAMETERS["camera"] + (CAMERA_TRANSPORT,)
DEBUG_VIEW_PARAMETERS = DEBUG_VIEW_PARAMETERS + (CAMERA_TRANSPORT,)

NODES: tuple[NodeSpec, ...] = (
    NodeSpec("camera_encoder", "camera_encoder", "aecf_ros.nodes.camera_encoder",
             remaps=(Remap("image", "camera_topic"),
                     Remap("image_compressed", "camera_topic", COMPRESSED_SUFFIX)),
             parameters=MODEL_PARAMETERS + ENCODER_PARAMETERS["camera"]),
    NodeSpec("lidar_encoder", "lidar_encoder", "aecf_ros.nodes.lidar_encoder",
             remaps=(Remap("points", "lidar_topic"),),
             parameters=MODEL_PARAMETERS + ENCODER_PARAMETERS["lidar"]),
    NodeSpec("text_encoder", "text_encoder", "aecf_ros.nodes.text_encoder",
             remaps=(Remap("text", "text_topic"),),
             parameters=MODEL_PARAMETERS + ENCODER_PARAMETERS["text"]),
    NodeSpec("fusion_node", "fusion_node", "aecf_ros.nodes.fusion_node",
             parameters=MODEL_PARAMETERS + FUSION_PARAMETERS),
    # loads no model: draws aecf/prediction over the camera frame, only while someone watches
    NodeSpec("debug_view", "debug_view", "aecf_ros.nodes.debug_view",
             remaps=(Remap("image", "camera_topic"),
                     Remap("image_compressed", "camera_topic", COMPRESSED_SUFFIX)),
             parameters=DEBUG_VIEW_PARAMETERS, switch="debug_view"),
)

# parameters the launch file / runner set on every node from their own arguments
OVERRIDABLE = ("device", "model_path")


def node_spec(name: str) -> NodeSpec:
    for spec in NODES:
        if spec.name == name:
            return spec
    raise KeyError(f"no node {name!r} in the aecf_ros graph (nodes: {', '.join(s.name for s in NODES)})")


def resolve_remaps(spec: NodeSpec, topics: Optional[dict[str, str]] = None) -> list[tuple[str, str]]:
    """``[(internal, topic)]`` for plain string topics (the runner); defaults from TOPIC_ARGUMENTS."""
    values = dict(TOPIC_ARGUMENTS)
    values.update({k: v for k, v in (topics or {}).items() if v})
    return [(r.internal, values[r.argument] + r.suffix) for r in spec.remaps]
