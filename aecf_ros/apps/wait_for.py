"""`aecf-ros wait-for TOPIC...`: exit 0 once every topic has a subscriber in the ROS graph.

replay.launch.py runs it before ``ros2 bag play`` (which cannot wait for subscribers itself), so
the bag starts only when the pipeline is active and subscribed. Exit 1 after ``--timeout``.
``--params robot.yaml`` (no topics) waits for the pipeline of the sensors that file declares
(``aecf_ros.runtime.sensor_graph.pipeline_subscriptions``; ``--dropout`` behind the relay):

    aecf-ros wait-for --params robot.yaml && ros2 bag play BAG --clock
"""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("topics", nargs="*", metavar="TOPIC", help="topics that must have a subscriber")
    parser.add_argument("--params", action="append", default=None, metavar="PARAMS_FILE",
                        help="the robot's params file(s): wait for the pipeline of its declared sensors "
                             "(encoder inputs and embedding topics) besides any TOPIC")
    parser.add_argument("--dropout", action="store_true",
                        help="with --params: the graph reads the sensor_dropout relay's /dropout/... outputs")
    parser.add_argument("--namespace", default="", help="with --params: the graph's namespace")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="give up after S seconds (default 120)")


def wanted_topics(args) -> list[str]:
    """TOPIC... then, with ``--params``, the declared pipeline's subscriptions (no repeats)."""
    topics = list(args.topics)
    if args.params:
        from aecf_ros.runtime.sensor_graph import declared_sensor_set, pipeline_subscriptions

        sensor_set = declared_sensor_set(args.params, args.namespace)
        topics += pipeline_subscriptions(sensor_set, dropout=args.dropout, namespace=args.namespace)
    return list(dict.fromkeys(topics))


def run(args) -> int:
    import rclpy

    from aecf_ros.sensors import SensorConfigError

    try:
        topics = wanted_topics(args)
    except (SensorConfigError, OSError, ValueError) as exc:
        print(f"aecf-ros wait-for: error: {exc}", file=sys.stderr)
        return 2
    if not topics:
        print("aecf-ros wait-for: error: give TOPIC... or --params PARAMS_FILE", file=sys.stderr)
        return 2

    from aecf_ros.nodes.discovery import TopicSubscribers, wait_for_discovery

    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("aecf_wait_for", context=context)
        print(f"aecf-ros wait-for: waiting up to {args.timeout:g} s for subscribers on {', '.join(topics)}",
              file=sys.stderr)
        missing = wait_for_discovery({t: TopicSubscribers(node, t) for t in topics}, args.timeout)
        node.destroy_node()
    finally:
        if context.ok():
            rclpy.shutdown(context=context)
    if missing:
        print(f"aecf-ros wait-for: error: no subscriber on {', '.join(missing)} after {args.timeout:g} s",
              file=sys.stderr)
        return 1
    return 0
