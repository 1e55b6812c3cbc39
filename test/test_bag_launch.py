"""launch/replay.launch.py wiring, checked with stand-ins for launch/launch_ros (not installable
here): sim time on, the graph's own launch file included, the players and the relay configured."""
import importlib.util
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _stub_modules(monkeypatch, share):
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "ExecuteProcess", "IncludeLaunchDescription"],
        "launch.conditions": ["IfCondition"],
        "launch.launch_description_sources": ["PythonLaunchDescriptionSource"],
        "launch.substitutions": ["LaunchConfiguration", "PythonExpression"],
        "launch_ros.actions": ["Node", "LifecycleNode"],
        "ament_index_python.packages": [],
    }
    for module, classes in names.items():
        mod = types.ModuleType(module)
        for cls in classes:
            setattr(mod, cls, type(cls, (_Recorder,), {}))
        monkeypatch.setitem(sys.modules, module, mod)
    monkeypatch.setitem(sys.modules, "launch_ros", types.ModuleType("launch_ros"))
    monkeypatch.setitem(sys.modules, "ament_index_python", types.ModuleType("ament_index_python"))
    sys.modules["ament_index_python.packages"].get_package_share_directory = lambda pkg: str(share)


def _load(monkeypatch):
    _stub_modules(monkeypatch, REPO)  # the source tree has the share/ layout (launch/, config/)
    spec = importlib.util.spec_from_file_location("replay_launch", REPO / "launch" / "replay.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_replay_launch_runs_the_graph_on_sim_time_with_players_and_relay(monkeypatch):
    description = _load(monkeypatch)
    entities = description.args[0]
    kinds = [type(e).__name__ for e in entities]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if kinds[entities.index(e)] == "DeclareLaunchArgument"}
    assert {"bag", "rate", "player", "dropout", "dropout_params", "params_file", "model_path"} <= set(declared)
    assert Path(declared["dropout_params"]).is_file() and Path(declared["params_file"]).is_file()

    include = next(e for e in entities if type(e).__name__ == "IncludeLaunchDescription")
    source = include.args[0]
    assert Path(source.args[0]) == REPO / "launch" / "aecf.launch.py"
    launch_args = dict(include.kwargs["launch_arguments"])
    assert launch_args["use_sim_time"] == "true"
    from aecf_ros import graph

    assert set(graph.TOPIC_ARGUMENTS) <= set(launch_args)

    processes = [e for e in entities if type(e).__name__ == "ExecuteProcess"]
    ros2 = next(p for p in processes if p.kwargs["cmd"][:3] == ["ros2", "bag", "play"])
    assert "--clock" in ros2.kwargs["cmd"]
    assert any(p.kwargs["cmd"][:2] == ["aecf-ros", "replay"] for p in processes)

    relay = next(e for e in entities if type(e).__name__ == "LifecycleNode")  # a managed node, like the rest
    assert relay.kwargs["executable"] == "sensor_dropout"
    assert (REPO / "scripts" / "sensor_dropout").is_file()
    assert {"use_sim_time": True} in relay.kwargs["parameters"]


def test_dropout_outputs_match_what_the_graph_reads_with_dropout_true():
    """The relay's configured outputs are the '/dropout' + sensor topics the launch file feeds the graph."""
    import yaml

    from aecf_ros import graph

    params = yaml.safe_load((REPO / "config" / "sensor_dropout.yaml").read_text())["sensor_dropout"]["ros__parameters"]
    outputs = {params[s]["input_topic"]: params[s]["output_topic"] for s in params["streams"]}
    for default in graph.TOPIC_ARGUMENTS.values():
        assert outputs[default] == "/dropout" + default
