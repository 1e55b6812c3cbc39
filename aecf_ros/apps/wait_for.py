"""`aecf-ros wait-for TOPIC...`: exit 0 once every topic has a subscriber in the ROS graph.

replay.launch.py runs it before ``ros2 bag play`` (which cannot wait for subscribers itself), so
the bag starts only when the pipeline is active and subscribed. Exit 1 after ``--timeout``.
"""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("topics", nargs="+", metavar="TOPIC", help="topics that must have a subscriber")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="give up after S seconds (default 120)")


def run(args) -> int:
    import rclpy

    from aecf_ros.nodes.discovery import TopicSubscribers, wait_for_discovery

    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("aecf_wait_for", context=context)
        print(f"aecf-ros wait-for: waiting up to {args.timeout:g} s for subscribers on {', '.join(args.topics)}",
              file=sys.stderr)
        missing = wait_for_discovery({t: TopicSubscribers(node, t) for t in args.topics}, args.timeout)
        node.destroy_node()
    finally:
        if context.ok():
            rclpy.shutdown(context=context)
    if missing:
        print(f"aecf-ros wait-for: error: no subscriber on {', '.join(missing)} after {args.timeout:g} s",
              file=sys.stderr)
        return 1
    return 0
