"""aecf_ros.apps: the programs behind ``aecf-ros <command>``.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (see ``aecf_ros/cli.py``).
Training programs (no ROS; their pipeline is :mod:`aecf_ros.train`): ``train``, ``evaluate``,
``benchmark``, ``sweep``. Programs that drive the ROS graph and bags: ``demo``, ``bench_runtime``,
``replay``, ``make_bag``, ``wait_for``, ``evaluate_bag``. They may import every layer below;
nothing in ``aecf_ros`` imports them except the CLI (and the training programs each other's
shared arguments, from ``apps/train.py``).
"""
