"""Launch the aecf_ros graph: camera/lidar/text encoders + fusion_node, one process each.

    ros2 launch aecf_ros aecf.launch.py [params_file:=...] [use_sim_time:=true] [device:=cpu]
        [model_path:=/path/model.pt] [namespace:=robot1] [camera_topic:=/front/image_raw]
        [lidar_topic:=/velodyne_points] [text_topic:=/operator/text] [debug_view:=false]

Nodes, executables, remaps and parameters come from ``aecf_ros.graph`` (the same module
``aecf-ros run`` uses), so the two can't drift apart. Every node is a lifecycle node that
configures and activates itself (parameter ``autostart``, default true); set
``autostart: false`` in the params file to hand them to a lifecycle manager instead.
Parameter precedence: node defaults < params_file < the launch arguments below.
``debug_view`` (default true) starts the node that draws ``aecf/debug_image`` (it loads no
model and draws only while something subscribes; ``config/foxglove_layout.json`` shows it).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue

from aecf_ros import graph


def generate_launch_description():
    share = get_package_share_directory(graph.PACKAGE)
    arguments = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "aecf.yaml"),
                              description="ROS parameters file for all aecf_ros nodes"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("model_path", default_value=graph.DEFAULT_MODEL,
                              description="model bundle; 'default' = the shipped checkpoint"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of all nodes and graph topics"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=f"input topic ({name})")
                  for name, default in graph.TOPIC_ARGUMENTS.items()]
    arguments += [DeclareLaunchArgument(spec.switch, default_value="true", description=f"start {spec.name}")
                  for spec in graph.NODES if spec.switch]

    overrides = {
        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
        "model_path": ParameterValue(LaunchConfiguration("model_path"), value_type=str),
    }
    # launch_ros' LifecycleNode (not a plain Node): launch knows they are managed, so lifecycle
    # event handlers (OnStateTransition) and `ros2 lifecycle` tooling work on them
    nodes = [
        LifecycleNode(
            package=graph.PACKAGE,
            executable=spec.executable,
            name=spec.name,
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[(remap.internal, [LaunchConfiguration(remap.argument), remap.suffix])
                        for remap in spec.remaps],
            condition=IfCondition(LaunchConfiguration(spec.switch)) if spec.switch else None,
        )
        for spec in graph.NODES
    ]
    return LaunchDescription(arguments + nodes)
