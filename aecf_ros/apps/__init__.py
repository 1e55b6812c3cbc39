"""aecf_ros.apps: the programs behind ``aecf-ros <command>`` that drive the ROS graph and bags.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (see ``aecf_ros/cli.py``):
``demo``, ``bench_runtime``, ``replay``, ``make_bag``, ``evaluate_bag``. They may import every
layer below; nothing in ``aecf_ros`` imports them except the CLI. The training programs
(``train``, ``evaluate``, ``benchmark``, ``sweep``) are ``aecf_ros/train/cmd_*.py``.
"""
