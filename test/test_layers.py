"""The layers of docs/ARCHITECTURE.md are the code's: its mermaid graph is exactly the set of
imports between aecf_ros's top-level parts, and the ROS-free layers import no ROS.

Every import counts, also the lazy ones inside functions; ``aecf_ros/cli.py`` names its command
modules as strings (imported lazily), so those strings count as its imports.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "aecf_ros"
DOC = ROOT / "docs" / "ARCHITECTURE.md"

#: layers that must run without ROS (training machines, offline evaluation, pure logic)
ROS_FREE = ("graph", "core", "data", "encoders", "model", "runtime", "train")
ROS_ROOTS = {"rclpy", "rosidl_runtime_py", "rosbag2_py", "launch", "launch_ros", "std_msgs", "sensor_msgs",
             "builtin_interfaces", "diagnostic_msgs", "rosgraph_msgs", "lifecycle_msgs", "rcl_interfaces",
             "message_filters", "ament_index_python", "tf2_ros"}


def imported_modules(tree: ast.AST, strings: bool = False, package: str = "aecf_ros"):
    """Absolute module names a file imports (relative ones resolved against ``package``, the
    package the file is in)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            yield base
            if base.count(".") == 0 or not node.module:  # from aecf_ros import graph; from . import x
                yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {
                "__import__", "import_module"} and node.args and isinstance(node.args[0], ast.Constant):
            yield str(node.args[0].value)
        elif strings and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and re.fullmatch(r"aecf_ros(\.\w+)+", node.value):
            yield node.value


def layer_of(path: Path) -> str:
    """``aecf_ros/nodes/qos.py`` -> ``nodes``; ``aecf_ros/graph.py`` -> ``graph``."""
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def source_files():
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts and p != PKG / "__init__.py")


def code_edges() -> dict[tuple[str, str], set[str]]:
    edges: dict[tuple[str, str], set[str]] = {}
    for path in source_files():
        me = layer_of(path)
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        for module in imported_modules(ast.parse(path.read_text(), str(path)), strings=me == "cli", package=package):
            parts = module.split(".")
            if parts[0] == "aecf_ros" and len(parts) > 1 and parts[1] != me:
                edges.setdefault((me, parts[1]), set()).add(str(path.relative_to(ROOT)))
    return edges


def doc_edges() -> set[tuple[str, str]]:
    text = DOC.read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/ARCHITECTURE.md must hold exactly one mermaid graph (the layers)"
    return set(re.findall(r"^\s*(\w+)\s*-->\s*(\w+)\s*$", blocks[0], re.M))


def test_every_import_between_layers_is_an_arrow_of_the_architecture_picture():
    allowed = doc_edges()
    offenders = [f"{a} -> {b} ({', '.join(sorted(files))})" for (a, b), files in sorted(code_edges().items())
                 if (a, b) not in allowed]
    assert not offenders, "imports the layer graph in docs/ARCHITECTURE.md does not allow:\n" + "\n".join(offenders)


def test_every_arrow_of_the_architecture_picture_is_an_import():
    stale = sorted(doc_edges() - set(code_edges()))
    assert not stale, f"arrows in docs/ARCHITECTURE.md that no import backs (remove them): {stale}"


def test_the_layers_form_no_cycle():
    graph: dict[str, set[str]] = {}
    for a, b in doc_edges():
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(n, path):
        if state.get(n) == 1:
            raise AssertionError(f"import cycle between layers: {' -> '.join(path + [n])}")
        if state.get(n) == 2:
            return
        state[n] = 1
        for m in graph.get(n, ()):
            visit(m, path + [n])
        state[n] = 2

    for n in list(graph):
        visit(n, [])


@pytest.mark.parametrize("layer", ROS_FREE)
def test_ros_free_layer_imports_no_ros(layer):
    files = [p for p in source_files() if layer_of(p) == layer]
    assert files, f"no files in layer {layer}"
    offenders = []
    for path in files:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        for module in imported_modules(ast.parse(path.read_text(), str(path)), package=package):
            root = module.split(".")[0]
            if root in ROS_ROOTS or root.endswith("_msgs") or module.startswith("aecf_ros.msg"):
                offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert not offenders, offenders


def test_runtime_imports_no_ros_no_nodes_no_bag():
    """The issue's own wording, kept as its own test: runtime/ is shared by nodes and offline tools."""
    for (a, b), files in code_edges().items():
        assert not (a == "runtime" and b in {"nodes", "bag", "apps", "sim", "msg", "train"}), (b, files)


def test_scanner_sees_lazy_relative_and_dynamic_imports():
    tree = ast.parse("def f():\n    import rclpy\n    from aecf_ros.bag import bag_io\n"
                     "from ..msg import X\nfrom aecf_ros import graph\nimportlib.import_module('sensor_msgs.msg')\n")
    found = set(imported_modules(tree, package="aecf_ros.runtime"))
    assert {"rclpy", "aecf_ros.bag", "aecf_ros.msg", "aecf_ros.graph", "sensor_msgs.msg"} <= found
    assert "aecf_ros.runtime.stamps" in set(imported_modules(ast.parse("from . import stamps"), package="aecf_ros.runtime"))
