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
    assert declared["player"] == "aecf"  # ros2 bag play has not been tried here (issue 20 item 4)

    include = next(e for e in entities if type(e).__name__ == "IncludeLaunchDescription")
    source = include.args[0]
    assert Path(source.args[0]) == REPO / "launch" / "aecf.launch.py"
    launch_args = dict(include.kwargs["launch_arguments"])
    assert launch_args["use_sim_time"] == "true"
    from aecf_ros import graph

    # the graph reads the declared sensor topics, behind the relay with /dropout in front
    prefix = launch_args["sensor_topic_prefix"]
    assert type(prefix).__name__ == "PythonExpression"
    words = [w.args[0] if type(w).__name__ == "LaunchConfiguration" else w for w in prefix.args[0]]
    for dropout, expected in (("true", "/dropout"), ("false", ""), ("True", "/dropout")):
        assert eval("".join(dropout if w == "dropout" else w for w in words)) == expected
    assert launch_args["namespace"].args == ("namespace",) and launch_args["remappings"].args == ("remappings",)
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

    relay_fn = next(e for e in entities if type(e).__name__ == "OpaqueFunction"
                    and e.kwargs["function"].__name__ == "relay_node").kwargs["function"]
    robot = str(REPO / "config" / "aecf.yaml")
    plan = str(REPO / "config" / "sensor_dropout.yaml")
    configuration = dict(dropout="true", params_file=robot, extra_params_file="", dropout_params=plan,
                         namespace="robot1")
    (relay,) = relay_fn(types.SimpleNamespace(launch_configurations=configuration))
    assert type(relay).__name__ == "LifecycleNode"  # a managed node, like the rest
    assert relay.kwargs["executable"] == "sensor_dropout" and relay.kwargs["namespace"] == "robot1"
    assert (REPO / "scripts" / "sensor_dropout").is_file()
    # the robot's files first (their /** sensor declaration = the relay's streams), then the plan
    assert relay.kwargs["parameters"] == [robot, plan, {"use_sim_time": True}]
    assert relay_fn(types.SimpleNamespace(launch_configurations=dict(configuration, dropout="false"))) == []


def test_player_waits_for_the_active_pipeline_by_default_also_through_the_relay(monkeypatch):
    """Issue 8 item 4: the player starts once every pipeline subscription exists (lifecycle nodes
    subscribe when ACTIVE), with dropout:=true on the relay's /dropout outputs too."""
    import shlex

    from aecf_ros import graph
    from aecf_ros.runtime.sensor_graph import pipeline_subscriptions

    module = _module(monkeypatch)
    bag = str(REPO / "config")
    for dropout in ("false", "true"):
        words = shlex.split(module.player_command("aecf", bag, dropout=dropout))
        waited = words[words.index("--wait-for") + 1:words.index("--wait-timeout")]
        assert waited == pipeline_subscriptions(dropout=dropout == "true")
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


ROBOT = """/**:
  ros__parameters:
    sensors: [front_camera, rear_camera, lidar, radar]
    front_camera: {kind: image, topic: /front/image_raw}
    rear_camera: {kind: image, topic: /rear/image_raw/compressed, transport: compressed}
    lidar: {kind: pointcloud, topic: /velodyne_points}
    radar: {kind: embedding, topic: radar/embedding}
"""


def test_replay_of_a_declared_robot_waits_for_its_sensors_and_passes_its_files(monkeypatch, tmp_path):
    """Issue 16 item 3: replay.launch.py takes the sensor set from params_file: the player waits for
    the declared sensors' topics as the graph reads them (the compressed camera on its compressed
    topic, the relay's /dropout outputs with dropout:=true, an embedding sensor read by the fusion
    node, under the namespace), and `aecf-ros replay` gets the files, so drop plans name sensors."""
    import shlex

    module = _module(monkeypatch)
    robot = tmp_path / "robot.yaml"
    robot.write_text(ROBOT)
    bag = str(REPO / "config")
    words = shlex.split(module.player_command("aecf", bag, dropout="true", params_file=str(robot),
                                              namespace="robot1", replay_args="--drop rear_camera@5-10"))
    waited = words[words.index("--wait-for") + 1:words.index("--wait-timeout")]
    assert waited == ["/front/image_raw", "/rear/image_raw/compressed", "/velodyne_points", "/robot1/radar/embedding",
                      "/dropout/front/image_raw", "/dropout/rear/image_raw/compressed", "/dropout/velodyne_points",
                      "/dropout/radar/embedding",
                      "/robot1/aecf/embedding/front_camera", "/robot1/aecf/embedding/rear_camera",
                      "/robot1/aecf/embedding/lidar"]
    assert words[words.index("--params") + 1] == str(robot) and words[-2:] == ["--drop", "rear_camera@5-10"]
    plain = shlex.split(module.player_command("ros2", bag, params_file=str(robot)).split(" && ")[0])
    assert plain[2:-2] == ["/front/image_raw", "/rear/image_raw/compressed", "/velodyne_points", "/radar/embedding",
                           "/aecf/embedding/front_camera", "/aecf/embedding/rear_camera", "/aecf/embedding/lidar"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(ROBOT.replace("kind: pointcloud", "kind: sonar"))
    import pytest

    check = next(e for e in _load(monkeypatch).args[0] if type(e).__name__ == "OpaqueFunction").kwargs["function"]
    with pytest.raises(ValueError, match="lidar.kind"):  # before any node starts, naming the parameter
        check(types.SimpleNamespace(launch_configurations=dict(player="none", params_file=str(bad))))


def test_the_graph_behind_the_relay_reads_every_declared_sensor_from_dropout(tmp_path):
    """sensor_topic_prefix (replay.launch.py dropout:=true): every encoder subscribes /dropout + its
    sensor's topic (the compressed camera its compressed one), the fusion node reads an embedding
    sensor there too; without the prefix the graph is the declared one."""
    from aecf_ros.runtime.sensor_graph import declared_sensor_set, graph_nodes

    robot = tmp_path / "robot.yaml"
    robot.write_text(ROBOT)
    sensor_set = declared_sensor_set([robot])
    nodes = {g.name: g for g in graph_nodes(sensor_set, topic_prefix="/dropout")}
    assert dict(nodes["front_camera_encoder"].remaps)["image"] == "/dropout/front/image_raw"
    assert dict(nodes["rear_camera_encoder"].remaps)["image_compressed"] == "/dropout/rear/image_raw/compressed"
    assert dict(nodes["lidar_encoder"].remaps)["points"] == "/dropout/velodyne_points"
    assert "radar_encoder" not in nodes and nodes["fusion_node"].parameters == {"radar.topic": "/dropout/radar/embedding"}
    plain = {g.name: g for g in graph_nodes(sensor_set)}
    assert dict(plain["lidar_encoder"].remaps)["points"] == "/velodyne_points" and plain["fusion_node"].parameters == {}
