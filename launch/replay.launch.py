"""Replay a bag into the aecf_ros graph on sim time, optionally through the sensor_dropout relay.

    ros2 launch aecf_ros replay.launch.py bag:=/path/to/bag [rate:=1.0] [player:=aecf|ros2|none]
        [dropout:=true dropout_params:=<share>/config/sensor_dropout.yaml]
        [params_file:=robot.yaml] [extra_params_file:=...] [model_path:=...] [device:=cpu] [autostart:=false]
        [namespace:=robot1] [remappings:='aecf/prediction:=/perception/fused']

* The graph is ``aecf.launch.py`` (one encoder per sensor the params files declare, the fusion
  node, the debug view) with ``use_sim_time:=true``, in ``namespace``; ``model_path``, ``device`` and ``autostart`` are passed on only as
  given (default '': the params files' values stand): node clocks follow ``/clock`` from the player, so message ages
  are judged in bag time at any playback rate.
* ``player:=ros2`` runs ``ros2 bag play BAG --clock --rate R``; ``player:=aecf`` (the default) runs
  ``aecf-ros replay BAG --rate R --params <params files>`` (same /clock, plus ``--drop``-style plans
  via ``replay_args``, by the declared sensor names: ``replay_args:='--drop rear_camera@5-10'``);
  ``player:=none`` starts only the graph (play the bag yourself with ``--clock``).
* The player starts only once the pipeline is ACTIVE and subscribed (``wait_for:=pipeline``, the
  default: every declared sensor's topic as the graph reads it, the relay's inputs with
  ``dropout:=true``, the fusion node's embedding topics; see
  ``aecf_ros.runtime.sensor_graph.pipeline_subscriptions``), so the first seconds of the bag
  are not lost to node start-up. ``wait_for:=none`` plays at once; ``wait_for:='/a /b'`` waits for
  those topics; ``wait_timeout`` (s) bounds the wait. ``ros2 bag play`` is preceded by
  ``aecf-ros wait-for`` (it cannot wait itself).
* A player without a bag (``bag`` not given, or not a directory) is refused at launch, before any
  node is started. (``ros2 launch`` itself rejects a literal ``bag:=`` with "malformed launch argument".)
* ``dropout:=true`` inserts the ``sensor_dropout`` relay (its plan in ``dropout_params``; it reads
  the params files too, so it relays every declared sensor): the graph then reads
  ``/dropout/<sensor topic>``, the relay's outputs (aecf.launch.py ``sensor_topic_prefix:=/dropout``).
"""
import os
import shlex

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode

from aecf_ros import graph

DROPOUT_PREFIX = graph.DROPOUT_PREFIX  # sensor_dropout's default output = prefix + input topic
PLAYERS = ("ros2", "aecf", "none")
#: the package's own player (aecf-ros replay, tested here with bags of every distro's metadata
#: version); ``ros2 bag play`` has not been tried (no rosbag2 where this package is developed)
DEFAULT_PLAYER = "aecf"
#: aecf.launch.py arguments passed on as given ('' = not given: the params files decide)
PASSED_ON = ("model_path", "device", "autostart")


def _sensor_set(params_file: str = "", extra_params_file: str = "", namespace: str = ""):
    """The robot's declared sensors from the params files (the default set without files)."""
    from aecf_ros.runtime.sensor_graph import declared_sensor_set

    return declared_sensor_set(_params_files(params_file, extra_params_file), namespace)


def _params_files(params_file: str = "", extra_params_file: str = "") -> list:
    return [p.strip() for v in (params_file, extra_params_file) for p in str(v).split(",") if p.strip()]


def player_command(player: str, bag: str, rate: str = "1.0", replay_args: str = "", dropout: str = "false",
                   wait_for: str = "pipeline", wait_timeout: str = "120", params_file: str = "",
                   extra_params_file: str = "", namespace: str = "") -> str | None:
    """The shell command of the bag player (None for ``player:=none``); every path and value is
    quoted, ``replay_args`` is passed on as the words the user wrote. ``wait_for:=pipeline`` waits
    for the subscriptions of the sensors the params files declare. Raises ValueError (launch
    stops with its message) for a player without a bag."""
    from aecf_ros.runtime.sensor_graph import pipeline_subscriptions

    if player not in PLAYERS:
        raise ValueError(f"replay.launch.py: player:={player!r} is not one of {' | '.join(PLAYERS)}")
    if player == "none":
        return None
    if not bag.strip():
        raise ValueError(f"replay.launch.py: player:={player} needs bag:=<rosbag2 directory> (bag:= is empty); "
                         "use player:=none to start only the graph")
    if not os.path.isdir(bag):
        raise ValueError(f"replay.launch.py: bag:={bag!r} is not a directory (a rosbag2 bag is a directory)")
    if wait_for.strip() == "pipeline":
        topics = pipeline_subscriptions(_sensor_set(params_file, extra_params_file, namespace),
                                        dropout=_is_true(dropout), namespace=namespace)
    elif wait_for.strip() in ("", "none"):
        topics = []
    else:
        topics = wait_for.split()
    q, waits = shlex.quote, " ".join(shlex.quote(t) for t in topics)
    if player == "ros2":
        gate = f"aecf-ros wait-for {waits} --timeout {q(wait_timeout)} && " if topics else ""
        return f"{gate}ros2 bag play {q(bag)} --clock --rate {q(rate)}"
    cmd = f"aecf-ros replay {q(bag)} --rate {q(rate)}"
    # drop plans by the robot's sensor names (--drop rear_camera@5-10), on their declared topics
    cmd += "".join(f" --params {q(f)}" for f in _params_files(params_file, extra_params_file))
    if topics:
        cmd += f" --wait-for {waits} --wait-timeout {q(wait_timeout)}"
    return cmd + (f" {replay_args}" if replay_args.strip() else "")


def _is_true(value: str) -> bool:
    return str(value).strip().lower() in ("true", "1")


def _player_command(context) -> str | None:
    value = context.launch_configurations.get
    return player_command(value("player", DEFAULT_PLAYER), value("bag", ""), value("rate", "1.0"),
                          value("replay_args", ""), value("dropout", "false"), value("wait_for", "pipeline"),
                          value("wait_timeout", "120"), value("params_file", ""), value("extra_params_file", ""),
                          value("namespace", ""))


def _check_player(context):
    """Runs before any node is started: a refused player/bag (or a bad sensor declaration) stops
    the launch while nothing runs yet. (Raised later, after the graph's processes were spawned,
    `ros2 launch` exits 1 and leaves those node processes running, orphaned.)"""
    _player_command(context)
    value = context.launch_configurations.get
    _sensor_set(value("params_file", ""), value("extra_params_file", ""), value("namespace", ""))
    return []


def _player(context):
    cmd = _player_command(context)
    return [] if cmd is None else [ExecuteProcess(cmd=[cmd], shell=True, output="screen", name="player")]


def relay_node(context) -> list:
    """The sensor_dropout relay (``dropout:=true``): it reads the robot's params files (their
    ``/**`` sensor declaration: one stream per declared sensor) under ``dropout_params`` (the plan)."""
    value = context.launch_configurations.get
    if not _is_true(value("dropout", "false")):
        return []
    files = _params_files(value("params_file", ""), value("extra_params_file", ""))
    return [LifecycleNode(
        package=graph.PACKAGE,
        executable="sensor_dropout",
        name="sensor_dropout",
        namespace=value("namespace", ""),
        output="screen",
        parameters=[*files, value("dropout_params", ""), {"use_sim_time": True}],
    )]


def generate_launch_description():
    share = get_package_share_directory(graph.PACKAGE)
    arguments = [
        DeclareLaunchArgument("bag", default_value="", description="rosbag2 directory to play"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("player", default_value=DEFAULT_PLAYER,
                              description="aecf (default: aecf-ros replay) | ros2 (ros2 bag play) | none"),
        DeclareLaunchArgument("replay_args", default_value="",
                              description="extra `aecf-ros replay` arguments, e.g. '--drop lidar@10-25'"),
        DeclareLaunchArgument("wait_for", default_value="pipeline",
                              description="pipeline (start the player once the nodes are active and subscribed) "
                                          "| none | 'TOPIC TOPIC...'"),
        DeclareLaunchArgument("wait_timeout", default_value="120", description="seconds wait_for may take"),
        DeclareLaunchArgument("dropout", default_value="false", description="insert the sensor_dropout relay"),
        DeclareLaunchArgument("dropout_params", default_value=os.path.join(share, "config", "sensor_dropout.yaml"),
                              description="sensor_dropout parameters (the drop plan; streams: the declared sensors)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "aecf.yaml"),
                              description="parameters of the aecf_ros nodes (comma-separated: later wins)"),
        DeclareLaunchArgument("extra_params_file", default_value="",
                              description="more parameters file(s) applied over params_file"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the graph's nodes and topics"),
        DeclareLaunchArgument("remappings", default_value="",
                              description="topic remaps for every graph node, 'from:=to from:=to'"),
        # '' = not given: the params files' values stand (aecf.launch.py applies only given values)
        *(DeclareLaunchArgument(name, default_value="", description=f"{name}; '' = the params file's")
          for name in PASSED_ON),
    ]

    # The graph reads the declared sensor topics, or the relay's /dropout/<topic> outputs.
    prefix = PythonExpression(["'", DROPOUT_PREFIX, "' if '", LaunchConfiguration("dropout"),
                               "'.strip().lower() in ('true', '1') else ''"])
    pipeline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "aecf.launch.py")),
        launch_arguments={
            "use_sim_time": "true",
            "params_file": LaunchConfiguration("params_file"),
            "extra_params_file": LaunchConfiguration("extra_params_file"),
            "namespace": LaunchConfiguration("namespace"),
            "sensor_topic_prefix": prefix,
            "remappings": LaunchConfiguration("remappings"),
            **{name: LaunchConfiguration(name) for name in PASSED_ON},
        }.items(),
    )
    # argument check first: it must raise before the include and the relay spawn any process
    return LaunchDescription(arguments + [OpaqueFunction(function=_check_player), pipeline,
                                          OpaqueFunction(function=relay_node), OpaqueFunction(function=_player)])
