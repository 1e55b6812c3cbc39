"""graph.py is the ONE definition: the launch file, the runner, scripts/, CMakeLists.txt and the
config files all agree with it; `aecf-ros run` brings the whole graph up in one process."""
from __future__ import annotations

import ast
import re
import sys
import types

import pytest
import yaml

from aecf_ros import graph
from test_nodes_support import REPO_ROOT, make_model_file, spin_until

LAUNCH_FILE = REPO_ROOT / "launch" / "aecf.launch.py"


def test_launch_file_derives_nodes_from_graph():
    tree = ast.parse(LAUNCH_FILE.read_text())
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("aecf_ros", "graph") in imports
    source = LAUNCH_FILE.read_text()
    for needle in ("graph.NODES", "graph.TOPIC_ARGUMENTS", "declared_sensor_set", "graph_nodes", "g.spec.executable",
                   "g.name", "g.remaps"):
        assert needle in source
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for spec in graph.NODES:  # nothing hard-coded that graph.py defines
        assert spec.name not in literals and spec.executable not in literals
    for topic in graph.TOPIC_ARGUMENTS.values():
        assert topic not in literals


def test_max_abs_embedding_default_is_the_core_input_limit():
    """graph.py imports nothing of the core, so it writes the literal; it must be the core's bound."""
    from aecf_ros.core import INPUT_ABS_LIMIT
    from aecf_ros.runtime.fusion_engine import FusionSettings

    assert graph.DEFAULT_MAX_ABS_EMBEDDING == INPUT_ABS_LIMIT
    spec = {p.name: p for p in graph.FUSION_PARAMETERS}["max_abs_embedding"]
    assert spec.default == INPUT_ABS_LIMIT and spec.range[1] == INPUT_ABS_LIMIT
    assert FusionSettings().max_abs_embedding == INPUT_ABS_LIMIT


def test_input_limit_defaults_come_from_graph():
    from aecf_ros.runtime.input_limits import InputLimits

    limits = InputLimits()
    assert limits.max_pixels == graph.DEFAULT_MAX_PIXELS
    assert limits.max_text_chars == graph.DEFAULT_MAX_TEXT_CHARS
    table = {p.name: p.default for p in graph.ENCODER_PARAMETERS["camera"] + graph.ENCODER_PARAMETERS["text"]}
    assert table["max_pixels"] == graph.DEFAULT_MAX_PIXELS
    assert table["max_text_chars"] == graph.DEFAULT_MAX_TEXT_CHARS


def _fake_launch_modules():
    """Minimal stand-ins for launch / launch_ros (not installable here) that record arguments."""

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration(Recorder):
        def __repr__(self):
            return f"LC({self.args[0]})"

    mods = {
        "launch": types.SimpleNamespace(LaunchDescription=Recorder),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=Recorder,
                                                OpaqueFunction=type("OpaqueFunction", (Recorder,), {})),
        "launch.conditions": types.SimpleNamespace(IfCondition=type("IfCondition", (Recorder,), {})),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=Recorder,
                                                    LifecycleNode=type("LifecycleNode", (Recorder,), {})),
        "launch_ros.parameter_descriptions": types.SimpleNamespace(ParameterValue=Recorder),
        "ament_index_python": types.SimpleNamespace(),
        "ament_index_python.packages": types.SimpleNamespace(get_package_share_directory=lambda pkg: str(REPO_ROOT)),  # the source tree has share/'s layout
    }
    return mods


def _launch(monkeypatch):
    """(declared launch arguments {name: default}, nodes(**given) -> the LifecycleNode stand-ins the
    launch-time function makes from those argument values), or None with the real launch installed."""
    try:
        import launch  # noqa: F401
        import launch_ros  # noqa: F401
        real = hasattr(launch, "LaunchDescription")
    except ImportError:
        real = False
    if not real:
        for name, mod in _fake_launch_modules().items():
            monkeypatch.setitem(sys.modules, name, mod)
    namespace = {"__file__": str(LAUNCH_FILE), "__name__": "aecf_launch"}
    exec(compile(LAUNCH_FILE.read_text(), str(LAUNCH_FILE), "exec"), namespace)
    ld = namespace["generate_launch_description"]()
    if real:
        return None  # real launch: constructing it without error is the check
    entities = ld.args[0]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if "default_value" in e.kwargs}
    (opaque,) = [e for e in entities if type(e).__name__ == "OpaqueFunction"]

    def nodes(**given):
        configuration = {**declared, **given}  # what `ros2 launch ... name:=value` leaves in the context
        return opaque.kwargs["function"](types.SimpleNamespace(launch_configurations=configuration))

    return declared, nodes


def test_launch_description_has_every_graph_node_with_remaps(monkeypatch):
    launch = _launch(monkeypatch)
    if launch is None:
        return
    declared, make = launch
    assert {"params_file", "extra_params_file", "use_sim_time", "device", "model_path", "autostart", "log_level",
            "respawn", "respawn_delay", "namespace", *graph.TOPIC_ARGUMENTS} <= set(declared)
    assert {s.switch for s in graph.NODES if s.switch} == {"debug_view"} and "debug_view" in declared
    nodes = make(camera_topic="/front/image")
    # the default params file declares camera/lidar/text: today's graph, same names
    assert [n.kwargs["name"] for n in nodes] == [s.name for s in graph.NODES]
    for node, spec in zip(nodes, graph.NODES):
        assert type(node).__name__ == "LifecycleNode"  # launch_ros knows they are managed nodes
        assert node.kwargs["package"] == "aecf_ros" and node.kwargs["executable"] == spec.executable
        topics = {**graph.TOPIC_ARGUMENTS, "camera_topic": "/front/image"}
        assert node.kwargs["remappings"] == [(r.internal, topics[r.argument] + r.suffix) for r in spec.remaps]
        assert node.kwargs["namespace"] == ""
    assert [n.kwargs["name"] for n in make(debug_view="false")] == [s.name for s in graph.NODES if not s.switch]
    with pytest.raises(ValueError, match="debug_view"):
        make(debug_view="maybe")


def test_launch_remappings_and_sensor_topic_prefix_reach_every_node(monkeypatch):
    """Issue 20 item 4: remappings:='from:=to ...' is added to every node after the graph's own
    remaps; sensor_topic_prefix:=/dropout moves every sensor input (replay.launch.py dropout:=true)."""
    launch = _launch(monkeypatch)
    if launch is None:
        return
    declared, make = launch
    assert declared["remappings"] == "" and declared["sensor_topic_prefix"] == ""
    plain = {n.kwargs["name"]: n.kwargs["remappings"] for n in make()}
    nodes = {n.kwargs["name"]: n.kwargs["remappings"] for n in
             make(remappings="aecf/prediction:=/perception/fused  /diagnostics:=/robot/diagnostics")}
    for name, remaps in nodes.items():
        assert remaps == plain[name] + [("aecf/prediction", "/perception/fused"), ("/diagnostics", "/robot/diagnostics")]
    moved = {n.kwargs["name"]: dict(n.kwargs["remappings"]) for n in make(sensor_topic_prefix="/dropout")}
    for name, remaps in plain.items():
        for internal, topic in remaps:
            if internal in ("image", "image_compressed", "points", "text"):
                assert moved[name][internal] == "/dropout" + topic, (name, internal)
    for bad in ("aecf/prediction", ":=/x", "a:="):
        with pytest.raises(ValueError, match="remappings"):
            make(remappings=bad)


def test_launch_arguments_override_the_params_file_only_when_given(monkeypatch):
    """Issue 20 item 2: device / model_path / autostart defaults ('') leave the params file's values;
    only given values become node parameters. use_sim_time is always set."""
    launch = _launch(monkeypatch)
    if launch is None:
        return
    declared, make = launch
    assert declared["device"] == declared["model_path"] == declared["autostart"] == ""
    default_file = declared["params_file"]
    own = {"camera_encoder": {"sensor": "camera", "transport": "raw"}, "lidar_encoder": {"sensor": "lidar"},
           "text_encoder": {"sensor": "text"}, "debug_view": {"transport": "raw"}}
    for node in make():
        assert node.kwargs["parameters"] == [default_file, {**own.get(node.kwargs["name"], {}), "use_sim_time": False}]
    for node in make(device="cuda:1", model_path="/models/m.pt", autostart="false", use_sim_time="true"):
        assert node.kwargs["parameters"] == [default_file, {**own.get(node.kwargs["name"], {}), "use_sim_time": True,
                                                            "device": "cuda:1", "model_path": "/models/m.pt",
                                                            "autostart": False}]
    with pytest.raises(ValueError, match="autostart"):
        make(autostart="yes please")


def test_launch_layers_params_files_in_order_and_refuses_a_missing_one(monkeypatch, tmp_path):
    launch = _launch(monkeypatch)
    if launch is None:
        return
    _, make = launch
    a, b, c = (tmp_path / f"{n}.yaml" for n in "abc")
    for f in (a, b, c):
        f.write_text("/**:\n  ros__parameters: {}\n")
    params = make(params_file=f"{a}, {b}", extra_params_file=str(c))[0].kwargs["parameters"]
    assert params == [str(a), str(b), str(c), {"sensor": "camera", "transport": "raw", "use_sim_time": False}]
    with pytest.raises(ValueError, match="nope.yaml"):
        make(extra_params_file=str(tmp_path / "nope.yaml"))


def test_launch_log_level_and_respawn_reach_every_node(monkeypatch):
    launch = _launch(monkeypatch)
    if launch is None:
        return
    _, make = launch
    for node in make():
        assert node.kwargs["arguments"] == ["--ros-args", "--log-level", "info"]
        assert node.kwargs["respawn"] is False
    for node in make(log_level="debug", respawn="true", respawn_delay="5"):
        assert node.kwargs["arguments"] == ["--ros-args", "--log-level", "debug"]
        assert node.kwargs["respawn"] is True and node.kwargs["respawn_delay"] == 5.0


def _as_launch_ros_would(node_kwargs, tmp_path) -> list[str]:
    """``--ros-args`` for a node's ``parameters=`` list the way launch_ros passes it: each file as
    ``--params-file``, each dict written to a temporary params file under the node's fully
    qualified name (launch_ros ``Node._create_params_file_from_dict`` for a named node), in order."""
    fqn = f"{node_kwargs['namespace'].rstrip('/')}/{node_kwargs['name']}"
    cli = ["--ros-args"]
    for i, entry in enumerate(node_kwargs["parameters"]):
        if isinstance(entry, dict):
            path = tmp_path / f"launch_params_{i}.yaml"
            path.write_text(yaml.safe_dump({fqn: {"ros__parameters": entry}}))
            entry = path
        cli += ["--params-file", str(entry)]
    return cli


@pytest.mark.ros
def test_params_file_device_survives_a_launch_without_device(monkeypatch, tmp_path, rclpy_context):
    """End to end through rcl's own params-file parsing: a robot's file saying device: cuda:1 is what
    the node gets when device:= is not given, the extra file wins over the first, and a given
    device:= wins over both."""
    launch = _launch(monkeypatch)
    if launch is None:
        return
    _, make = launch
    from aecf_ros.nodes.fusion_node import FusionNode

    robot = tmp_path / "robot.yaml"
    robot.write_text("/**:\n  ros__parameters:\n    device: cuda:1\n    model_path: /robot/m.pt\n"
                     "/**/fusion_node:\n  ros__parameters:\n    publish_rate_hz: 7.0\n")
    extra = tmp_path / "extra.yaml"
    extra.write_text("/**/fusion_node:\n  ros__parameters:\n    publish_rate_hz: 12.0\n    autostart: false\n")
    cases = [({}, "cuda:1", 7.0, True), ({"extra_params_file": str(extra)}, "cuda:1", 12.0, False),
             ({"extra_params_file": str(extra), "device": "cpu", "autostart": "true"}, "cpu", 12.0, True)]
    for given, device, rate, autostart in cases:
        (spec,) = [n for n in make(params_file=f"{REPO_ROOT / 'config' / 'aecf.yaml'},{robot}", **given)
                   if n.kwargs["name"] == "fusion_node"]
        node = FusionNode(context=rclpy_context, cli_args=_as_launch_ros_would(spec.kwargs, tmp_path))
        try:
            assert node.get_parameter("device").value == device, given
            assert node.get_parameter("model_path").value == "/robot/m.pt"
            assert node.get_parameter("publish_rate_hz").value == rate
            assert node.get_parameter("autostart").value is autostart
        finally:
            node.destroy_node()


def test_scripts_and_cmake_match_graph():
    cmake = (REPO_ROOT / "CMakeLists.txt").read_text()
    for spec in graph.NODES:
        script = REPO_ROOT / "scripts" / spec.executable
        assert script.is_file(), script
        assert f"from {spec.module} import main" in script.read_text()
        installed = re.search(r"set\(AECF_NODE_SCRIPTS([^)]*)\)", cmake)
        assert installed and spec.executable in installed.group(1).split(), "CMakeLists.txt does not install it"
        module = __import__(spec.module, fromlist=["main", "NODE_CLASS"])
        assert callable(module.main) and module.NODE_CLASS


@pytest.mark.parametrize("config", ["aecf.yaml", "aggressive_timeouts.yaml"])
def test_config_files_only_set_declared_parameters_with_valid_values(config):
    from aecf_ros.nodes.parameters import check_choice

    data = yaml.safe_load((REPO_ROOT / "config" / config).read_text())
    names = {s.name for s in graph.NODES}
    for section, body in data.items():
        section = section.removeprefix("/**/")  # any-namespace form of a node section
        assert section == "/**" or section in names, section
        specs = {p.name: p for s in graph.NODES if section in ("/**", s.name) for p in s.parameters}
        params = dict(body["ros__parameters"])
        if "sensors" in params:  # the sensor declaration (aecf_ros/sensors.py checks it whole)
            from aecf_ros.sensors import parse_sensor_set

            declared = {"sensors": params.pop("sensors")}
            for name in declared["sensors"]:
                declared.update({f"{name}.{k}": v for k, v in params.pop(name).items()})
            assert section == "/**", f"{config}: declare the sensors under /** so every node reads them"
            parse_sensor_set(declared)
        for key, value in params.items():
            assert key in specs or key == "use_sim_time", f"{config}: {section}.{key} is not declared"
            spec = specs[key]
            assert type(value) is type(spec.default), f"{key}: {value!r} vs default {spec.default!r}"
            assert check_choice(spec, value) is None
            if spec.range:
                assert spec.range[0] <= value <= spec.range[1]
    if config == "aecf.yaml":  # the main file documents every fusion parameter
        fusion = data["/**/fusion_node"]["ros__parameters"]
        assert {p.name for p in graph.FUSION_PARAMETERS} <= set(fusion)


def test_runner_creates_graph_nodes_with_remaps_and_params_file(tmp_path, rclpy_context):
    from aecf_ros.nodes.runner import create_nodes

    params = tmp_path / "p.yaml"
    params.write_text("/**/fusion_node:\n  ros__parameters:\n    publish_rate_hz: 7.0\n    gate_bias.lidar: -1.5\n")
    nodes = create_nodes(rclpy_context, [REPO_ROOT / "config" / "aecf.yaml", params], use_sim_time=True,
                         device="cpu", model_path="/x.pt", namespace="robot1",
                         topics={"camera_topic": "/front/image"})
    try:
        assert [n.get_name() for n in nodes] == [s.name for s in graph.NODES]
        by_name = {n.get_name(): n for n in nodes}
        fusion = by_name["fusion_node"]
        assert fusion.get_namespace() == "/robot1"
        assert fusion.get_parameter("publish_rate_hz").value == 7.0  # later params file wins
        assert fusion.get_parameter("gate_bias.lidar").value == -1.5
        assert fusion.get_parameter("timeout_s.lidar").value == 0.4  # from aecf.yaml
        assert fusion.get_parameter("use_sim_time").value is True
        model_nodes = [n for n in nodes if n.has_parameter("model_path")]
        assert len(model_nodes) == 4 and not by_name["debug_view"].has_parameter("device")  # loads no model
        assert all(n.get_parameter("device").value == "cpu" for n in model_nodes)
        assert all(n.get_parameter("model_path").value == "/x.pt" for n in model_nodes)
        assert by_name["debug_view"].resolve_topic_name("image") == "/front/image"  # the camera's remap
        cam = nodes[0]
        assert cam.resolve_topic_name("image") == "/front/image"
        assert cam.resolve_topic_name("image_compressed") == "/front/image/compressed"
        assert nodes[1].resolve_topic_name("points") == "/lidar/points"
        assert fusion.resolve_topic_name(graph.PREDICTION_TOPIC) == "/robot1/aecf/prediction"
    finally:
        for n in nodes:
            n.destroy_node()


@pytest.mark.ros
@pytest.mark.slow
def test_aecf_ros_run_brings_whole_graph_up_from_sensor_messages(tmp_path):
    """`aecf-ros run` in its own process: sensor messages in, predictions out, clean Ctrl-C."""
    import rclpy
    from conftest import ros_env
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import String

    from aecf_ros.data.scenes import generate_scene
    from aecf_ros.msg import FusedPrediction
    from aecf_ros.sim.scene_msgs import scene_messages

    model_path, _ = make_model_file(tmp_path)
    # NodeProcess runs `python -m MODULE --ros-args ...`: use the CLI module with its own args instead
    import subprocess

    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "aecf_ros.cli", "run", "--params", str(REPO_ROOT / "config" / "aecf.yaml"),
                             "--model-path", str(model_path), "--device", "cpu", "--duration", "60"],
                            env=ros_env(), cwd=str(REPO_ROOT), stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = Node("run_test_driver", context=context)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(node)
    try:
        pubs = {"camera": node.create_publisher(Image, "/camera/image_raw", 5),
                "lidar": node.create_publisher(PointCloud2, "/lidar/points", 5),
                "text": node.create_publisher(String, "/operator/text", 5)}
        preds = []
        node.create_subscription(FusedPrediction, "/aecf/prediction", preds.append, 10)
        scene = generate_scene(0, seed=5)

        def send():
            msgs = scene_messages(scene, node.get_clock().now().nanoseconds * 1e-9)
            for m, pub in pubs.items():
                pub.publish(msgs[m])

        node.create_timer(0.1, send)
        ok = spin_until(ex, lambda: any(all(p.modality_present) for p in preds), 60)
        assert ok, (tmp_path / "run.log").read_text()
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        import signal

        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
    text = (tmp_path / "run.log").read_text()
    assert code == 0 and "Traceback" not in text, text
    assert "active" in text


def test_runner_switches_turn_optional_nodes_off(rclpy_context):
    """`aecf-ros run --no-debug-view` (like `debug_view:=false` at launch) starts the rest only."""
    import argparse

    from aecf_ros.nodes.runner import add_arguments, create_nodes

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--no-debug-view"]).no_debug_view is True
    nodes = create_nodes(rclpy_context, without=["debug_view"])
    try:
        assert [n.get_name() for n in nodes] == [s.name for s in graph.NODES if not s.switch]
    finally:
        for n in nodes:
            n.destroy_node()


@pytest.mark.ros
def test_runner_device_and_model_path_override_the_params_files_only_when_given(tmp_path, rclpy_context):
    """`aecf-ros run`: the same precedence as the launch file (issue 20 item 2): --params repeats
    (later wins); --device / --model-path apply only when given."""
    import argparse

    from aecf_ros.nodes.runner import add_arguments, create_nodes

    robot = tmp_path / "robot.yaml"
    robot.write_text("/**:\n  ros__parameters:\n    device: cuda:1\n    model_path: /robot/m.pt\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--params", str(REPO_ROOT / "config" / "aecf.yaml"), "--params", str(robot)])
    assert args.params == [REPO_ROOT / "config" / "aecf.yaml", robot] and args.device is None and args.model_path is None
    for device, model_path, want in [(None, None, ("cuda:1", "/robot/m.pt")), ("cpu", "/x.pt", ("cpu", "/x.pt"))]:
        (fusion,) = create_nodes(rclpy_context, args.params, device=device, model_path=model_path, only=["fusion_node"])
        try:
            assert (fusion.get_parameter("device").value, fusion.get_parameter("model_path").value) == want
        finally:
            fusion.destroy_node()


def test_readme_lifecycle_manager_example_lists_every_graph_node():
    """The nav2 lifecycle_manager example (issue 20 item 6) names exactly the graph's nodes."""
    readme = (REPO_ROOT / "README.md").read_text()
    examples = re.findall(r"node_names:(?:=\"| )(\[[^\]]*\])", readme)
    assert len(examples) == 2 and "bond_timeout:=0.0" in readme and "bond_timeout: 0.0" in readme
    for example in examples:
        assert sorted(yaml.safe_load(example)) == sorted(s.name for s in graph.NODES)


TWO_CAMERA_ROBOT = """/**:
  ros__parameters:
    sensors: [front_camera, rear_camera, lidar]
    front_camera: {kind: image, topic: /front/image_raw}
    rear_camera: {kind: image, topic: /rear/image_raw/compressed, transport: compressed}
    lidar: {kind: pointcloud, topic: /velodyne_points}
"""


def test_launch_starts_one_encoder_per_declared_sensor(monkeypatch, tmp_path):
    """Issue 16 item 3: the robot's params file, not the package, says which encoders run."""
    launch = _launch(monkeypatch)
    if launch is None:
        return
    _, make = launch
    robot = tmp_path / "robot.yaml"
    robot.write_text(TWO_CAMERA_ROBOT)
    nodes = {n.kwargs["name"]: n.kwargs for n in make(params_file=str(robot))}
    assert list(nodes) == ["front_camera_encoder", "rear_camera_encoder", "lidar_encoder", "fusion_node", "debug_view"]
    assert nodes["rear_camera_encoder"]["executable"] == "camera_encoder"
    assert dict(nodes["rear_camera_encoder"]["remappings"])["image_compressed"] == "/rear/image_raw/compressed"
    assert nodes["rear_camera_encoder"]["parameters"][-1]["sensor"] == "rear_camera"
    assert nodes["rear_camera_encoder"]["parameters"][-1]["transport"] == "compressed"
    assert dict(nodes["lidar_encoder"]["remappings"]) == {"points": "/velodyne_points"}
    assert dict(nodes["debug_view"]["remappings"])["image"] == "/front/image_raw"  # the first camera
    bad = tmp_path / "bad.yaml"
    bad.write_text(TWO_CAMERA_ROBOT.replace("kind: pointcloud", "kind: radar"))
    with pytest.raises(ValueError, match="'lidar.kind'"):
        make(params_file=str(bad))


def test_runner_builds_the_declared_robot_and_refuses_a_bad_declaration(tmp_path, rclpy_context):
    from aecf_ros.nodes.runner import create_nodes
    from aecf_ros.sensors import SensorConfigError

    robot = tmp_path / "robot.yaml"
    robot.write_text(TWO_CAMERA_ROBOT)
    nodes = create_nodes(rclpy_context, [robot], only=["rear_camera_encoder", "fusion_node"])
    try:
        enc, fusion = nodes
        assert enc.get_name() == "rear_camera_encoder" and enc.get_parameter("sensor").value == "rear_camera"
        assert enc.get_parameter("transport").value == "compressed"
        assert fusion.sensor_set.names == ("front_camera", "rear_camera", "lidar") and fusion.sensor_error is None
        assert fusion.get_parameter("timeout_s.rear_camera").value == 0.25  # the image kind's default
        assert not fusion.has_parameter("timeout_s.text")
    finally:
        for n in nodes:
            n.destroy_node()
    bad = tmp_path / "bad.yaml"
    bad.write_text(TWO_CAMERA_ROBOT.replace("/velodyne_points", "/front/image_raw"))
    with pytest.raises(SensorConfigError, match="two sensors on one topic"):
        create_nodes(rclpy_context, [bad])
