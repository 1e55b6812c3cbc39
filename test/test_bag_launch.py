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
        "launch.actions": ["DeclareLaunchArgument", "ExecuteProcess", "IncludeLaunchDescription", "OpaqueFunction"],
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


def _module(monkeypatch):
    _stub_modules(monkeypatch, REPO)  # the source tree has the share/ layout (launch/, config/)
    spec = importlib.util.spec_from_file_location("replay_launch", REPO / "launch" / "replay.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(monkeypatch):
    return _module(monkeypatch).generate_launch_description()


def _players(entities, **configuration):
    """The ExecuteProcess actions the launch-time player function returns for ``configuration``."""
    opaque = [e for e in entities if type(e).__name__ == "OpaqueFunction"][-1]  # the last one plays
    context = types.SimpleNamespace(launch_configurations=dict(configuration))
    return opaque.kwargs["function"](context)


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
    # issue 20 item 2: passed on as given; '' (not given) lets the params files' values stand
    for name in ("device", "model_path", "autostart"):
        assert declared[name] == "", name
        assert launch_args[name].args == (name,)  # the replay launch's own argument, unchanged
    assert declared["extra_params_file"] == "" and launch_args["extra_params_file"].args == ("extra_params_file",)

    bag = str(REPO / "config")  # any directory stands for the bag here
    (ros2,) = _players(entities, player="ros2", bag=bag)
    assert " && ros2 bag play " in ros2.kwargs["cmd"][0] and "--clock" in ros2.kwargs["cmd"][0]
    (aecf,) = _players(entities, player="aecf", bag=bag)
    assert aecf.kwargs["cmd"][0].startswith("aecf-ros replay ")
    assert _players(entities, player="none", bag="") == []

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


def test_player_waits_for_the_active_pipeline_by_default_also_through_the_relay(monkeypatch):
    """Issue 8 item 4: the player starts once every pipeline subscription exists (lifecycle nodes
    subscribe when ACTIVE), with dropout:=true on the relay's /dropout outputs too."""
    import shlex

    from aecf_ros import graph

    module = _module(monkeypatch)
    bag = str(REPO / "config")
    for dropout in ("false", "true"):
        words = shlex.split(module.player_command("aecf", bag, dropout=dropout))
        waited = words[words.index("--wait-for") + 1:words.index("--wait-timeout")]
        assert waited == graph.pipeline_subscriptions(dropout=dropout == "true")
        assert {"/" + graph.embedding_topic(m) for m in graph.MODALITIES} <= set(waited)
        encoder_inputs = [("/dropout" if dropout == "true" else "") + t for t in graph.TOPIC_ARGUMENTS.values()]
        assert set(encoder_inputs) <= set(waited)
        gate, play = module.player_command("ros2", bag, dropout=dropout).split(" && ")
        assert shlex.split(gate)[:2] == ["aecf-ros", "wait-for"]
        assert shlex.split(gate)[2:-2] == waited
        assert shlex.split(play)[:3] == ["ros2", "bag", "play"]
    assert "--wait-for" not in module.player_command("aecf", bag, wait_for="none")
    assert "&&" not in module.player_command("ros2", bag, wait_for="none")
    assert shlex.split(module.player_command("aecf", bag, wait_for="/x /y"))[-4:-2] == ["/x", "/y"]


def test_player_without_a_bag_is_refused_at_launch_and_paths_are_quoted(monkeypatch, tmp_path):
    import shlex

    import pytest

    module = _module(monkeypatch)
    for player in ("ros2", "aecf"):
        with pytest.raises(ValueError, match="needs bag:="):
            module.player_command(player, "")
        with pytest.raises(ValueError, match="not a directory"):
            module.player_command(player, str(tmp_path / "missing"))
    odd = tmp_path / "my bag; rm -rf x"
    odd.mkdir()
    for player in ("ros2", "aecf"):
        words = shlex.split(module.player_command(player, str(odd), rate="0.5"))
        assert str(odd) in words and "0.5" in words


def test_a_refused_player_stops_the_launch_before_any_node_is_started(monkeypatch, tmp_path):
    """Found with the real `ros2 launch` (docs/ROBOT_CHECKS.md): the player check ran in the last
    action, after the graph's five nodes were spawned; `ros2 launch` then exited 1 with the message
    and left those processes running (parent pid 1). The check must come before every action
    that starts a process, and raise there."""
    import pytest

    entities = _load(monkeypatch).args[0]
    kinds = [type(e).__name__ for e in entities]
    starts = [i for i, k in enumerate(kinds) if k in ("IncludeLaunchDescription", "LifecycleNode", "Node",
                                                      "ExecuteProcess")]
    checks = [i for i, k in enumerate(kinds) if k == "OpaqueFunction" and i < min(starts)]
    assert checks, f"no argument check before the first process-starting action: {kinds}"
    check = entities[checks[0]].kwargs["function"]
    refused = [dict(player="ros2", bag=""), dict(bag=""), dict(player="aecf", bag=str(tmp_path / "missing")),
               dict(player="foo", bag=str(tmp_path))]
    for configuration in refused:
        with pytest.raises(ValueError, match="replay.launch.py"):
            check(types.SimpleNamespace(launch_configurations=configuration))
    for configuration in (dict(player="none", bag=""), dict(player="aecf", bag=str(tmp_path))):
        assert check(types.SimpleNamespace(launch_configurations=configuration)) == []
