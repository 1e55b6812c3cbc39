"""aecf_ros.core must stay importable without ROS: no rclpy / ROS message imports anywhere."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "aecf_ros" / "core"
FORBIDDEN_ROOTS = {"rclpy", "rosidl_runtime_py", "rosbag2_py", "rosbags", "launch", "launch_ros",
                   "std_msgs", "sensor_msgs", "builtin_interfaces", "diagnostic_msgs", "message_filters",
                   "ament_index_python", "tf2_ros"}


def _imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.module
            elif node.level > 0 and node.module and node.module.split(".")[0] in {"msg", "nodes", "runtime", "bag"}:
                yield f"aecf_ros.{node.module}"
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {
                "__import__", "import_module"} and node.args and isinstance(node.args[0], ast.Constant):
            yield str(node.args[0].value)


def test_core_has_no_ros_imports():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) >= 7
    offenders = []
    for path in files:
        for module in _imported_modules(ast.parse(path.read_text(), filename=str(path))):
            root = module.split(".")[0]
            if root in FORBIDDEN_ROOTS or module.endswith("_msgs") or module.startswith(
                    ("aecf_ros.msg", "aecf_ros.nodes", "aecf_ros.runtime", "aecf_ros.bag")):
                offenders.append(f"{path.name}: {module}")
    assert not offenders, offenders


def test_scanner_catches_a_ros_import():
    tree = ast.parse("import rclpy\nfrom sensor_msgs.msg import Image\nfrom ..msg import X\n")
    found = set(_imported_modules(tree))
    assert {"rclpy", "sensor_msgs.msg", "aecf_ros.msg"} <= found
