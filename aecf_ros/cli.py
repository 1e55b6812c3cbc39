"""`aecf-ros <command>`: one entry point for training, evaluation, the ROS graph and bag tools.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
they are imported lazily so `aecf-ros replay --help` does not pay for torch or rclpy imports it
does not need.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("aecf_ros.apps.train", "train encoders + AECF fusion + head on the embedded scenes"),
    "evaluate": ("aecf_ros.apps.evaluate", "evaluate a checkpoint under sensor-drop scenarios"),
    "benchmark": ("aecf_ros.apps.benchmark", "train and compare every fusion method over seeds"),
    "sweep": ("aecf_ros.apps.sweep", "equal-budget tuning on validation: tuned ModDrop vs tuned AECF on test"),
    "run": ("aecf_ros.nodes.runner", "start the whole node graph in one process"),
    "demo": ("aecf_ros.apps.demo", "live demo: scenes over DDS, sensors dropped and restored"),
    "bench-runtime": ("aecf_ros.apps.bench_runtime", "measure fusion overhead and latency"),
    "make-bag": ("aecf_ros.apps.make_bag", "write a rosbag2 of generated scenes with ground truth"),
    "replay": ("aecf_ros.apps.replay", "replay a bag with a sensor drop plan and /clock"),
    "wait-for": ("aecf_ros.apps.wait_for", "wait until topics have a subscriber (replay.launch.py, before ros2 bag play)"),
    "evaluate-bag": ("aecf_ros.apps.evaluate_bag", "run encoders + fusion over a bag offline"),
    "dataset": ("aecf_ros.apps.dataset", "a training set from labelled bags: embeddings at every fusion output instant"),
}


#: long-running ROS processes: Ctrl-C is how they are meant to end, so it exits 0 (``ros2 run``
#: convention; their own shutdown is :class:`aecf_ros.nodes.session.RosSession`). Batch commands
#: exit 130 so an interrupted training or evaluation is not taken for a finished one.
ROS_PROCESSES = frozenset({"run", "demo", "replay"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aecf-ros", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    try:  # Ctrl-C while importing torch / rclpy (start-up) is a Ctrl-C too: no traceback
        module = importlib.import_module(COMMANDS[name][0])
        parser = argparse.ArgumentParser(prog=f"aecf-ros {name}", description=COMMANDS[name][1])
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 0 if name in ROS_PROCESSES else 130


if __name__ == "__main__":
    sys.exit(main())
