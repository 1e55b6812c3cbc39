"""Parameter files with integers for float parameters, the frame of aecf/prediction, and the device
rule (``auto`` falls back to CPU with one warning; an explicit ``cuda`` that is not there fails
configure with the reason and the node stays alive, unconfigured, for a lifecycle manager).
"""
from __future__ import annotations

import time

import pytest

from test_nodes_support import NodeProcess, make_model_file, spin_until

pytestmark = [pytest.mark.ros]

INT_PARAMS = """\
/**:
  ros__parameters:
    device: cpu
fusion_node:
  ros__parameters:
    publish_rate_hz: 20
    gate_temperature: 2
    timeout_s:
      text: 3
      camera: 1
"""


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return make_model_file(tmp_path_factory.mktemp("params_device"))


def test_integer_in_params_file_is_accepted_for_float_parameters(rclpy_context, tmp_path, model_file):
    from rclpy.parameter import Parameter

    from aecf_ros.nodes.fusion_node import FusionNode

    params = tmp_path / "int.yaml"
    params.write_text(INT_PARAMS)
    node = FusionNode(context=rclpy_context, cli_args=["--ros-args", "--params-file", str(params)])
    try:
        for name, want in (("timeout_s.text", 3.0), ("timeout_s.camera", 1.0), ("gate_temperature", 2.0),
                           ("publish_rate_hz", 20.0)):
            p = node.get_parameter(name)
            assert p.type_ == Parameter.Type.DOUBLE and p.value == want, (name, p.type_, p.value)
        # live: an integer from `ros2 param set` is taken as a double too, still range-checked
        assert node.set_parameters([Parameter("gate_bias.lidar", Parameter.Type.INTEGER, -2)])[0].successful
        assert node.get_parameter("gate_bias.lidar").value == -2.0
        assert node.get_parameter("gate_bias.lidar").type_ == Parameter.Type.DOUBLE
        bad = node.set_parameters([Parameter("gate_temperature", Parameter.Type.INTEGER, -1)])[0]
        assert not bad.successful and "type" not in bad.reason.lower(), bad.reason  # range, not type
    finally:
        node.destroy_node()


def test_integer_set_fallback_on_humble_path(rclpy_context):
    """Humble has no pre-set callback: compat's wrapper converts the integer before rclpy's type check."""
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from aecf_ros.graph import ParamSpec
    from aecf_ros.nodes.compat import add_pre_set_parameters_callback
    from aecf_ros.nodes.parameters import declare_float, int_to_float

    node = Node("humble_path", context=rclpy_context)
    try:
        declare_float(node, "gain", 1.0, ParameterDescriptor())
        add_pre_set_parameters_callback(node, int_to_float([ParamSpec("gain", 1.0, "")]), force_fallback=True)
        assert node.set_parameters([Parameter("gain", Parameter.Type.INTEGER, 4)])[0].successful
        assert node.get_parameter("gain").value == 4.0
        assert node.set_parameters_atomically([Parameter("gain", Parameter.Type.INTEGER, 5)]).successful
        assert node.get_parameter("gain").type_ == Parameter.Type.DOUBLE
    finally:
        node.destroy_node()


def test_evaluate_bag_reads_the_params_file_by_rcl_rules(tmp_path):
    from aecf_ros.apps.evaluate_bag import fusion_parameters
    from aecf_ros.runtime.params_file import ParamsFileError, read_params_file

    params = tmp_path / "int.yaml"
    params.write_text(INT_PARAMS + "/robot1/fusion_node:\n  ros__parameters:\n    timeout_s:\n      lidar: 0x2\n"
                      "    frame_id: '7'\n    enabled:\n      text: off\n")
    values = fusion_parameters(str(params))
    assert values["timeout_s.text"] == 3.0 and isinstance(values["timeout_s.text"], float)
    assert values["gate_temperature"] == 2.0 and values["timeout_s.lidar"] == 0.4  # robot1's section not ours
    ns = fusion_parameters(str(params), namespace="robot1")
    assert ns["timeout_s.lidar"] == 2.0 and ns["frame_id"] == "7" and ns["enabled.text"] is False
    assert read_params_file(params, "/robot1/fusion_node")["device"] == "cpu"  # /** matches every node
    params.write_text("fusion_node:\n  ros__parameters:\n    gate_temperature: 'warm'\n")
    with pytest.raises(ParamsFileError, match="gate_temperature"):
        fusion_parameters(str(params))


def test_prediction_frame_id_is_the_frame_id_parameter(rclpy_context, model_file):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from aecf_ros.msg import FusedPrediction, ModalityEmbedding
    from aecf_ros.nodes.fusion_node import FusionNode
    from aecf_ros.nodes.lifecycle import bring_up

    path, model = model_file
    fusion = FusionNode(context=rclpy_context, parameter_overrides=[
        Parameter("model_path", value=str(path)), Parameter("device", value="cpu")])
    peer = Node("frame_peer", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    try:
        ex.add_node(fusion)
        ex.add_node(peer)
        assert fusion.get_parameter("frame_id").value == "base_link"
        assert bring_up(fusion)
        got = []
        peer.create_subscription(FusedPrediction, "aecf/prediction", got.append, 10)
        pub = peer.create_publisher(ModalityEmbedding, "aecf/embedding/lidar", 10)

        def feed():
            msg = ModalityEmbedding(modality="lidar", embedding=[0.1] * model.embedding_dims["lidar"],
                                    encoder_id=model.encoder_ids["lidar"])
            msg.header.stamp = peer.get_clock().now().to_msg()
            pub.publish(msg)

        peer.create_timer(0.05, feed)
        assert spin_until(ex, lambda: got, 30.0)
        assert got[-1].header.frame_id == "base_link"
        fusion.set_parameters([Parameter("frame_id", value="robot1/base_link")])
        n = len(got)
        assert spin_until(ex, lambda: len(got) > n + 1, 30.0)
        assert got[-1].header.frame_id == "robot1/base_link"
    finally:
        ex.shutdown()
        peer.destroy_node()
        fusion.destroy_node()


def test_auto_device_falls_back_to_cpu_with_one_warning():
    import torch

    from aecf_ros.model import ModelLoadError
    from aecf_ros.nodes.model_loading import resolve_device_rule

    warnings = []
    if torch.cuda.is_available():
        assert resolve_device_rule("auto", warnings.append) == "cuda" and not warnings
        return
    assert resolve_device_rule("auto", warnings.append) == "cpu"
    assert len(warnings) == 1 and "CPU" in warnings[0]
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        resolve_device_rule("cuda", warnings.append)
    assert resolve_device_rule("cpu", warnings.append) == "cpu" and len(warnings) == 1


@pytest.mark.parametrize("version, too_old", [
    ("2.13.0+cpu", False), ("1.13.0", False), ("1.13.0a0+git1234", False), ("10.0", False), ("2.0.1+cu118", False),
    ("1.12.1+cu113", True), ("1.8.1", True), ("0.4.1", True), ("1.9.0a0+gitd69c22d", True),
    ("not a version", False),  # not judged: a torch that says nothing parseable is let through
])
def test_torch_version_comparison(version, too_old):
    from aecf_ros.nodes.model_loading import torch_version_problem

    problem = torch_version_problem(version)
    assert (problem is not None) == too_old
    if too_old:
        assert version in problem and ">= 1.13" in problem and "weights_only" in problem


def test_node_with_a_too_old_torch_fails_configure_with_a_clear_error(rclpy_context, model_file, monkeypatch):
    """Issue 20 item 3: torch < 1.13 cannot read the bundles (weights_only): configure fails, the
    error says why, the node stays unconfigured; with the real version it configures."""
    import torch
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from aecf_ros.nodes.fusion_node import FusionNode
    from test_nodes_support import RecordingLogger

    path, _ = model_file
    node = FusionNode(context=rclpy_context, parameter_overrides=[
        Parameter("model_path", value=str(path)), Parameter("device", value="cpu"), Parameter("autostart", value=False)])
    rec = RecordingLogger(node.get_logger())
    node.get_logger = lambda: rec
    try:
        real = torch.__version__
        monkeypatch.setattr(torch, "__version__", "1.12.1+cu113")
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # rclpy: back to unconfigured
        errors = [m for level, m in rec.records if level == "error"]
        assert any("torch 1.12.1+cu113 is too old" in m and ">= 1.13" in m for m in errors), rec.records
        assert node.model is None
        monkeypatch.setattr(torch, "__version__", real)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS and node.model is not None
    finally:
        node.destroy_node()


@pytest.mark.slow
def test_explicit_cuda_without_gpu_fails_configure_and_node_stays_for_retry(tmp_path, model_file):
    """The log says configure failed and why; the process stays up, unconfigured; a lifecycle
    manager then sets device:=cpu and configures it (what `ros2 param set` + `ros2 lifecycle set` do)."""
    import rclpy
    import torch
    from conftest import ros_env
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path, _ = model_file
    proc = NodeProcess("aecf_ros.nodes.fusion_node", ["-r", "__node:=cuda_fusion", "-p", f"model_path:={path}",
                                                      "-p", "device:=cuda"], ros_env(), tmp_path / "node.log")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = Node("lifecycle_manager_probe", context=context)
    ex = SingleThreadedExecutor(context=context)
    ex.add_node(node)
    try:
        deadline = time.monotonic() + 120
        while "stays unconfigured" not in proc.log() and time.monotonic() < deadline:
            assert proc.proc.poll() is None, proc.log()
            time.sleep(0.2)
        log = proc.log()
        assert "CUDA is not available" in log and "stays unconfigured" in log, log
        time.sleep(1.0)
        assert proc.proc.poll() is None, "the node exited after a failed configure:\n" + proc.log()

        def call(srv_type, name, request):
            client = node.create_client(srv_type, name)
            assert client.wait_for_service(timeout_sec=30.0), name
            future = client.call_async(request)
            assert spin_until(ex, future.done, 60.0), name
            return future.result()

        assert call(GetState, "/cuda_fusion/get_state", GetState.Request()).current_state.label == "unconfigured"
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="cpu")
        result = call(SetParameters, "/cuda_fusion/set_parameters",
                      SetParameters.Request(parameters=[ParameterMsg(name="device", value=value)]))
        assert result.results[0].successful
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert call(ChangeState, "/cuda_fusion/change_state",
                        ChangeState.Request(transition=Transition(id=transition))).success, proc.log()
        assert call(GetState, "/cuda_fusion/get_state", GetState.Request()).current_state.label == "active"
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        assert proc.stop() == 0, proc.log()


def test_diagnostic_status_names_carry_the_namespace(rclpy_context):
    """Status names as diagnostic_updater forms them, ``<node name>: <task>``; in a namespace the
    fully qualified name (its ``use_fqn`` form), since aggregators and rqt_robot_monitor group by
    name and two robots' reports must not collide. hardware_id: the sensor, or 'none'."""
    from rclpy.lifecycle import LifecycleNode

    from aecf_ros.nodes.camera_encoder import CameraEncoderNode
    from aecf_ros.nodes.debug_view import DebugViewNode
    from aecf_ros.nodes.fusion_node import FusionNode
    from aecf_ros.nodes.sensor_dropout import SensorDropoutNode

    nodes = [FusionNode(context=rclpy_context, namespace="robot1"),
             CameraEncoderNode("camera_encoder", context=rclpy_context, namespace="robot2"),
             FusionNode(context=rclpy_context),
             CameraEncoderNode("camera_encoder", context=rclpy_context, namespace="/fleet/robot3")]
    dropout = SensorDropoutNode(context=rclpy_context, namespace="robot1")
    view = DebugViewNode(context=rclpy_context)
    try:
        assert isinstance(dropout, LifecycleNode)  # "all nodes are lifecycle nodes"
        statuses = [n.diagnostics().status for n in nodes]
        assert [(s.name, s.hardware_id) for s in statuses[0]] == [("/robot1/fusion_node: output", "none")]
        assert [(s.name, s.hardware_id) for s in statuses[1]] == [("/robot2/camera_encoder: camera input", "camera")]
        assert [(s.name, s.hardware_id) for s in statuses[2]] == [("fusion_node: output", "none")]
        assert [s.name for s in statuses[3]] == ["/fleet/robot3/camera_encoder: camera input"]
        got = []
        for node in (dropout, view):
            node._diag_pub.publish = got.append
            node._publish_diagnostics()
        assert [(s.name, s.hardware_id) for s in got[0].status] == [("/robot1/sensor_dropout: plan", "none")]
        assert [(s.name, s.hardware_id) for s in got[1].status] == [("debug_view: view", "none")]
    finally:
        for n in nodes + [dropout, view]:
            n.destroy_node()
