"""Replay a bag into the aecf_ros graph on sim time, optionally through the sensor_dropout relay.

    ros2 launch aecf_ros replay.launch.py bag:=/path/to/bag [rate:=1.0] [player:=ros2|aecf|none]
        [dropout:=true dropout_params:=<share>/config/sensor_dropout.yaml]
        [params_file:=...] [model_path:=...] [device:=cpu]

* The graph is ``aecf.launch.py`` (nodes, remaps and parameters from ``aecf_ros.graph``)
  with ``use_sim_time:=true``: node clocks follow ``/clock`` from the player, so message ages
  are judged in bag time at any playback rate.
* ``player:=ros2`` runs ``ros2 bag play BAG --clock --rate R``; ``player:=aecf`` runs
  ``aecf-ros replay BAG --rate R`` (same /clock, plus ``--drop``-style plans via ``replay_args``);
  ``player:=none`` starts only the graph (play the bag yourself with ``--clock``).
* ``dropout:=true`` inserts the ``sensor_dropout`` relay (its plan in ``dropout_params``): the
  encoders then read ``/dropout/<sensor topic>``, the relay's outputs.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode

from aecf_ros import graph

DROPOUT_PREFIX = "/dropout"  # sensor_dropout's default output = prefix + input topic


def _is(argument: str, value: str):
    return PythonExpression(["'", LaunchConfiguration(argument), f"' == '{value}'"])


def generate_launch_description():
    share = get_package_share_directory(graph.PACKAGE)
    bag = LaunchConfiguration("bag")
    rate = LaunchConfiguration("rate")
    arguments = [
        DeclareLaunchArgument("bag", default_value="", description="rosbag2 directory to play"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("player", default_value="ros2", description="ros2 | aecf | none"),
        DeclareLaunchArgument("replay_args", default_value="",
                              description="extra `aecf-ros replay` arguments, e.g. '--drop lidar@10-25'"),
        DeclareLaunchArgument("dropout", default_value="false", description="insert the sensor_dropout relay"),
        DeclareLaunchArgument("dropout_params", default_value=os.path.join(share, "config", "sensor_dropout.yaml"),
                              description="sensor_dropout parameters (streams and drop plan)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "aecf.yaml"),
                              description="parameters of the aecf_ros nodes"),
        DeclareLaunchArgument("model_path", default_value=graph.DEFAULT_MODEL, description="model bundle"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
    ]

    # Encoder inputs: the sensor topics, or the relay's outputs when dropout:=true.
    topics = {
        name: PythonExpression(["'", DROPOUT_PREFIX + default, "' if '", LaunchConfiguration("dropout"),
                                "' == 'true' else '", default, "'"])
        for name, default in graph.TOPIC_ARGUMENTS.items()
    }
    pipeline = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "aecf.launch.py")),
        launch_arguments={
            "use_sim_time": "true",
            "params_file": LaunchConfiguration("params_file"),
            "model_path": LaunchConfiguration("model_path"),
            "device": LaunchConfiguration("device"),
            **topics,
        }.items(),
    )
    dropout = LifecycleNode(
        package=graph.PACKAGE,
        executable="sensor_dropout",
        name="sensor_dropout",
        namespace="",
        output="screen",
        parameters=[LaunchConfiguration("dropout_params"), {"use_sim_time": True}],
        condition=IfCondition(LaunchConfiguration("dropout")),
    )
    ros2_player = ExecuteProcess(
        cmd=["ros2", "bag", "play", bag, "--clock", "--rate", rate],
        output="screen",
        condition=IfCondition(_is("player", "ros2")),
    )
    aecf_player = ExecuteProcess(
        cmd=["aecf-ros", "replay", bag, "--rate", rate, LaunchConfiguration("replay_args")],
        shell=True,  # replay_args holds several words
        output="screen",
        condition=IfCondition(_is("player", "aecf")),
    )
    return LaunchDescription(arguments + [pipeline, dropout, ros2_player, aecf_player])
