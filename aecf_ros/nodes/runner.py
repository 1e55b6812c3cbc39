"""``aecf-ros run``: the whole aecf_ros node graph in ONE process (no ``ros2 launch`` needed).

Starts every node of :data:`aecf_ros.graph.NODES` (same names, remaps and parameters as
``launch/aecf.launch.py``) in one ``SingleThreadedExecutor`` (the multi-threaded executor is
unreliable with these rclpy wheels), then configures + activates each lifecycle node
(:func:`aecf_ros.nodes.lifecycle.bring_up`), so the graph is running without a lifecycle manager.

    aecf-ros run --params config/aecf.yaml [--use-sim-time] [--device cpu] [--model-path m.pt]
                 [--namespace robot1] [--camera-topic /front/image_raw] [--only fusion_node ...]
                 [--no-debug-view]

Parameter precedence: node defaults (graph.py) < ``--params`` files (repeat: later wins) < the
command-line options given (``--device`` / ``--model-path`` apply only when given, like the
launch file's arguments).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from aecf_ros import graph


def default_params_file() -> Optional[Path]:
    """config/aecf.yaml of the source tree, the ament index's share dir or the installed share/."""
    from aecf_ros.resources import package_file

    candidate = package_file("config", "aecf.yaml")
    return candidate if candidate.is_file() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, action="append", default=None,
                        help="ROS parameters file (node_name: ros__parameters: ...); repeat to layer "
                             "files (later wins); default config/aecf.yaml")
    parser.add_argument("--use-sim-time", action="store_true", help="run every node on /clock")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (overrides the params file)")
    parser.add_argument("--model-path", default=None, help="model bundle (overrides the params file)")
    parser.add_argument("--namespace", default="", help="namespace for every node and graph topic")
    for arg, default in graph.TOPIC_ARGUMENTS.items():
        parser.add_argument("--" + arg.replace("_", "-"), default=default, help=f"default {default}")
    parser.add_argument("--only", nargs="+", default=None, metavar="NODE",
                        help=f"start only these nodes ({', '.join(s.name for s in graph.NODES)})")
    for spec in graph.NODES:
        if spec.switch:  # launch: <switch>:=false
            parser.add_argument("--no-" + spec.switch.replace("_", "-"), dest="no_" + spec.switch,
                                action="store_true", help=f"do not start {spec.name}")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")


def create_nodes(context, params_files: Sequence[Path] = (), use_sim_time: bool = False,
                 device: Optional[str] = None, model_path: Optional[str] = None, namespace: str = "",
                 topics: Optional[dict] = None, only: Optional[Sequence[str]] = None,
                 extra_parameters: Optional[dict] = None, without: Sequence[str] = ()) -> list:
    """Instantiate the graph's nodes (unconfigured) in ``context``: all, or ``only`` these, less
    the ``without`` switches (``debug_view``). ``extra_parameters``: ``{node_name: {param: value}}``
    applied over everything else (tests, demo)."""
    import importlib

    from rclpy.parameter import Parameter

    from aecf_ros.runtime.sensor_graph import declared_sensor_set, graph_nodes

    sensor_set = declared_sensor_set(params_files or (), namespace)  # SensorConfigError names the parameter
    planned = graph_nodes(sensor_set, topics, without)
    names = [g.name for g in graph_nodes(sensor_set)]  # every node, switched off or not
    unknown = set(only or ()) - set(names)
    if unknown:
        raise ValueError(f"unknown node(s) {sorted(unknown)}; graph has {names}")
    nodes = []
    for g in planned:
        if only and g.name not in only:
            continue
        cli = ["--ros-args"]
        for params_file in params_files or ():
            cli += ["--params-file", str(params_file)]
        for internal, topic in g.remaps:
            cli += ["-r", f"{internal}:={topic}"]
        overrides = {"use_sim_time": bool(use_sim_time), **g.parameters}
        if device:
            overrides["device"] = device
        if model_path:
            overrides["model_path"] = str(model_path)
        overrides.update((extra_parameters or {}).get(g.name, {}))
        node_class = importlib.import_module(g.spec.module).NODE_CLASS
        nodes.append(node_class(g.name, context=context, namespace=namespace or None, cli_args=cli,
                                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]))
    return nodes


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 after ``--duration`` or on Ctrl-C / SIGTERM at any moment (start-up and model
    load included: :class:`~aecf_ros.nodes.session.RosSession`); 1 if a node failed to start;
    2 for a missing params file."""
    from aecf_ros.nodes.session import RosSession

    params_files = list(args.params) if args.params else [p for p in [default_params_file()] if p]
    for params_file in params_files:
        if not Path(params_file).is_file():
            print(f"aecf-ros run: params file not found: {params_file}", file=sys.stderr)
            return 2
    topics = {k: getattr(args, k) for k in graph.TOPIC_ARGUMENTS}
    without = [s.switch for s in graph.NODES if s.switch and getattr(args, "no_" + s.switch, False)]
    from aecf_ros.sensors import SensorConfigError

    with RosSession() as ros:
        try:
            created = create_nodes(ros.context, params_files, args.use_sim_time, args.device, args.model_path,
                                   args.namespace, topics, args.only, without=without)
        except SensorConfigError as exc:
            print(f"aecf-ros run: bad sensor declaration in {', '.join(map(str, params_files))}: {exc}",
                  file=sys.stderr)
            ros.exit_code = 2
            return ros.exit_code
        nodes = [ros.add_node(node) for node in created]
        for node in nodes:
            if node.get_parameter("autostart").value and not ros.bring_up(node):
                print(f"aecf-ros run: {node.get_name()} failed to start (see its log above)", file=sys.stderr)
                ros.exit_code = 1
                return ros.exit_code
        ros.get_executor()
        print(f"aecf-ros run: {', '.join(n.get_name() for n in nodes)} active"
              f"{' (sim time)' if args.use_sim_time else ''}; Ctrl-C to stop", flush=True)
        ros.spin(duration_s=args.duration)
    return ros.exit_code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="aecf-ros run", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
