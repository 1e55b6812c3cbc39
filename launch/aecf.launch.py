"""Launch the aecf_ros graph: one encoder per declared sensor + fusion_node, one process each.

The sensors are the params file's ``sensors: [...]`` (default camera/lidar/text; see README
"Your robot's sensors"): ``front_camera`` gets a ``front_camera_encoder`` node, and so on.

    ros2 launch aecf_ros aecf.launch.py [params_file:=...] [extra_params_file:=...] [use_sim_time:=true]
        [device:=cpu] [model_path:=/path/model.pt] [autostart:=false] [log_level:=debug]
        [respawn:=true respawn_delay:=2.0] [namespace:=robot1] [camera_topic:=/front/image_raw]
        [lidar_topic:=/velodyne_points] [text_topic:=/operator/text] [debug_view:=false]
        [sensor_topic_prefix:=/dropout] [remappings:='aecf/prediction:=/perception/fused']

Nodes, executables, remaps and parameters come from ``aecf_ros.graph`` (the same module
``aecf-ros run`` uses), so the two can't drift apart. Every node is a lifecycle node that
configures and activates itself (parameter ``autostart``, default true); ``autostart:=false``
(or ``autostart: false`` in a params file) hands them to a lifecycle manager instead.

Parameter precedence: node defaults < ``params_file`` < ``extra_params_file`` < the launch
arguments that were GIVEN. ``params_file`` and ``extra_params_file`` may each name several
files separated by commas (later wins). ``device``, ``model_path`` and ``autostart`` default to
'' = not set: only a value given on the command line (or by an including launch file) is
applied as a node parameter, so a params file's ``device: cuda`` is not silently replaced by a
launch default (nav2's RewrittenYaml idea: only given values are written over the file).
``use_sim_time`` is always applied (default false). ``log_level`` (default info) is every node's
``--log-level``; ``respawn:=true`` restarts a node process that exits, after ``respawn_delay`` s.
``remappings`` (default '') remaps topics of every node, ``'from:=to from:=to'``.
``sensor_topic_prefix`` (default '') goes in front of every declared sensor topic: with
``/dropout`` the graph reads the sensor_dropout relay's outputs. ``debug_view`` (default true) starts the node that draws ``aecf/debug_image`` (it loads no
model and draws only while something subscribes; ``config/foxglove_layout.json`` shows it).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import LifecycleNode

from aecf_ros import graph

#: launch arguments that become node parameters only when given ('' = leave the params files' value)
OPTIONAL_OVERRIDES = (*graph.OVERRIDABLE, "autostart")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _flag(name: str, value: str) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"aecf.launch.py: {name}:={value!r} must be true or false")


def params_files(params_file: str, extra_params_file: str = "") -> list:
    """The params files in the order they apply (later wins): ``params_file`` then
    ``extra_params_file``, each a path or several separated by commas. A missing file stops the
    launch with its name (before any node is started)."""
    files = [p.strip() for value in (params_file, extra_params_file) for p in str(value).split(",") if p.strip()]
    missing = [p for p in files if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"aecf.launch.py: params file(s) not found: {', '.join(missing)}")
    return files


def node_parameters(configuration) -> list:
    """``parameters=`` of every node: the params files, then one dict of the launch arguments
    that override them (``use_sim_time`` always; ``device``, ``model_path``, ``autostart`` only
    when given)."""
    value = configuration.get
    overrides = {"use_sim_time": _flag("use_sim_time", value("use_sim_time", "false"))}
    for name in OPTIONAL_OVERRIDES:
        given = str(value(name, "")).strip()
        if given:
            overrides[name] = _flag(name, given) if name == "autostart" else given
    return [*params_files(value("params_file", ""), value("extra_params_file", "")), overrides]


def parse_remappings(text: str) -> list:
    """``remappings:='aecf/prediction:=/perception/fused a:=b'``: ``[(from, to), ...]`` for every
    node (after the graph's own remaps, so a user's remap of a sensor input wins). A word that is
    not ``from:=to`` stops the launch with its text."""
    pairs = []
    for word in str(text or "").split():
        src, sep, dst = word.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"aecf.launch.py: remappings: {word!r} is not from:=to")
        pairs.append((src, dst))
    return pairs


def _nodes(context):
    configuration = context.launch_configurations
    value = configuration.get
    parameters = node_parameters(configuration)
    respawn = _flag("respawn", value("respawn", "false"))
    delay = float(value("respawn_delay", "2.0"))
    log_level = str(value("log_level", "info")).strip() or "info"
    user_remaps = parse_remappings(value("remappings", ""))
    from aecf_ros.runtime.sensor_graph import declared_sensor_set, graph_nodes

    files = [p for p in parameters if isinstance(p, str)]
    # the robot's declared sensors (the params files' `sensors: [...]`): one encoder node each;
    # a bad declaration stops the launch here, naming the parameter, before any node starts
    sensor_set = declared_sensor_set(files, value("namespace", ""))
    topics = {name: value(name, default) for name, default in graph.TOPIC_ARGUMENTS.items()}
    without = [spec.switch for spec in graph.NODES
               if spec.switch and not _flag(spec.switch, value(spec.switch, "true"))]
    nodes = []
    for g in graph_nodes(sensor_set, topics, without, value("sensor_topic_prefix", "")):
        # launch_ros' LifecycleNode (not a plain Node): launch knows they are managed, so lifecycle
        # event handlers (OnStateTransition) and `ros2 lifecycle` tooling work on them
        nodes.append(LifecycleNode(
            package=graph.PACKAGE,
            executable=g.spec.executable,
            name=g.name,
            namespace=value("namespace", ""),
            output="screen",
            # the node's own parameters (sensor, transport) under the given launch overrides
            parameters=[*parameters[:-1], {**g.parameters, **parameters[-1]}],
            remappings=list(g.remaps) + user_remaps,
            arguments=["--ros-args", "--log-level", log_level],
            respawn=respawn,
            respawn_delay=delay,
        ))
    return nodes


def generate_launch_description():
    share = get_package_share_directory(graph.PACKAGE)
    arguments = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "aecf.yaml"),
                              description="ROS parameters file(s) for all aecf_ros nodes (comma-separated: later wins)"),
        DeclareLaunchArgument("extra_params_file", default_value="",
                              description="more parameters file(s) applied over params_file (comma-separated)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto | cpu | cuda | cuda:N; '' = the params file's (default auto)"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="model bundle; 'default' = the shipped checkpoint; '' = the params file's"),
        DeclareLaunchArgument("autostart", default_value="",
                              description="true | false (false: a lifecycle manager brings the nodes up); "
                                          "'' = the params file's (default true)"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error | fatal"),
        DeclareLaunchArgument("respawn", default_value="false", description="restart a node process that exits"),
        DeclareLaunchArgument("respawn_delay", default_value="2.0", description="seconds before a respawn"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of all nodes and graph topics"),
        DeclareLaunchArgument("remappings", default_value="",
                              description="topic remaps for every node, 'from:=to from:=to' "
                                          "(e.g. 'aecf/prediction:=/perception/fused')"),
        DeclareLaunchArgument("sensor_topic_prefix", default_value="",
                              description="put in front of every declared sensor topic, e.g. /dropout (the "
                                          "sensor_dropout relay's outputs; replay.launch.py dropout:=true)"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=f"input topic ({name})")
                  for name, default in graph.TOPIC_ARGUMENTS.items()]
    arguments += [DeclareLaunchArgument(spec.switch, default_value="true", description=f"start {spec.name}")
                  for spec in graph.NODES if spec.switch]
    # the nodes are made at launch time from the argument values: only the given overrides are set
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
