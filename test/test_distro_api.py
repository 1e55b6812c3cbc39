"""Every rclpy name the package uses exists in every supported distro (Humble, Jazzy, Kilted).

The lists in ``test/rclpy_api/<distro>.txt`` are made by ``tools/rclpy_api.py`` from each distro's
rclpy sources (the ``humble`` / ``jazzy`` branches of ros2/rclpy; kilted = the installed
ros-rclpy 9.1 wheel). Checked, by parsing the package's code (aecf_ros/, launch/):

* ``import rclpy.x`` / ``from rclpy.x import y`` / ``rclpy.x.y`` chains name something that exists;
* a method or attribute of rclpy's node, executor, publisher, timer, clock, time, parameter and
  context classes (``node.add_post_set_parameters_callback``) exists in every distro;
* the keyword arguments of those calls are accepted in every distro.

Only ``aecf_ros/nodes/compat.py`` (the distro fallbacks) may use a name some distro lacks.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
API_DIR = Path(__file__).with_name("rclpy_api")
DISTROS = ("humble", "jazzy", "kilted")
EXEMPT = {REPO / "aecf_ros" / "nodes" / "compat.py"}
# classes whose members the package calls on its objects (nodes, executors, timers, ...)
MEMBER_CLASSES = (
    "rclpy.node.Node", "rclpy.lifecycle.node.LifecycleNode", "rclpy.lifecycle.node.LifecycleState",
    "rclpy.executors.Executor", "rclpy.executors.SingleThreadedExecutor", "rclpy.publisher.Publisher",
    "rclpy.lifecycle.publisher.LifecyclePublisher", "rclpy.subscription.Subscription", "rclpy.timer.Timer",
    "rclpy.clock.Clock", "rclpy.time.Time", "rclpy.duration.Duration", "rclpy.parameter.Parameter",
    "rclpy.context.Context", "rclpy.client.Client", "rclpy.service.Service", "rclpy.task.Future",
)


def load_api(distro: str):
    """(names, members: {member: [arg lists]}) of one distro's list."""
    names, members = set(), {}
    for line in (API_DIR / f"{distro}.txt").read_text().splitlines():
        name, _, args = line.partition("(")
        names.add(name)
        cls, _, member = name.rpartition(".")
        if cls in MEMBER_CLASSES:
            members.setdefault(member, []).append(args.rstrip(")").split(",") if args else None)
    return names, members


def package_files():
    return sorted(p for p in list((REPO / "aecf_ros").rglob("*.py")) + list((REPO / "launch").glob("*.py"))
                  if p not in EXEMPT)


def rclpy_uses(tree: ast.AST):
    """(dotted names, member uses [(member, kwargs, line)], rclpy calls [(dotted, kwargs, line)])."""
    dotted, members, calls = [], [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dotted += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "rclpy"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rclpy":
            dotted += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Attribute):
            chain, cur = [node.attr], node.value
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "rclpy":
                dotted.append((".".join(["rclpy"] + chain[::-1]), node.lineno))
            else:
                members.append((node.attr, [], node.lineno))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            kwargs = [k.arg for k in node.keywords if k.arg]
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "rclpy":
                calls.append((f"rclpy.{node.func.attr}", kwargs, node.lineno))
            else:
                members.append((node.func.attr, kwargs, node.lineno))
    return dotted, members, calls


def own_function_names():
    """Methods the package defines itself (RosSession.spin, ...): their keywords are ours."""
    names = set()
    for path in sorted((REPO / "aecf_ros").rglob("*.py")):
        names |= {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
    return names


def test_api_lists_cover_the_installed_rclpy():
    """The kilted list is the installed rclpy (a list made from the wrong sources would not be)."""
    import rclpy.node

    names, members = load_api("kilted")
    for attr in dir(rclpy.node.Node):
        if not attr.startswith("_") and callable(getattr(rclpy.node.Node, attr)):
            assert attr in members, attr
    humble, _ = load_api("humble")
    assert "rclpy.node.Node.add_post_set_parameters_callback" not in humble  # the list is Humble's
    assert "rclpy.node.Node.add_on_set_parameters_callback" in humble


@pytest.mark.parametrize("distro", DISTROS)
def test_package_uses_only_rclpy_names_of(distro):
    names, distro_members = load_api(distro)
    signatures_of = {}
    for line in (API_DIR / f"{distro}.txt").read_text().splitlines():
        if "(" in line:
            name, _, args = line.partition("(")
            signatures_of[name] = args.rstrip(")").split(",")
    ours = own_function_names()
    all_members = set()
    for d in DISTROS:
        all_members |= set(load_api(d)[1])
    missing = []
    for path in package_files():
        rel = path.relative_to(REPO)
        dotted, members, calls = rclpy_uses(ast.parse(path.read_text(), str(path)))
        for name, kwargs, line in calls:
            for kw in kwargs:
                if name in signatures_of and kw not in signatures_of[name]:
                    missing.append(f"{rel}:{line}: {name}({kw}=...)")
        for name, line in dotted:
            # rclpy.x.y.z: the longest listed prefix must be the whole name or end in a class/function
            if name not in names and not any(name.startswith(n + ".") and n.count(".") >= 2 for n in names):
                missing.append(f"{rel}:{line}: {name}")
        for member, kwargs, line in members:
            if member not in all_members:
                continue  # not an rclpy member name
            if member not in distro_members:
                missing.append(f"{rel}:{line}: .{member}()")
                continue
            signatures = distro_members[member]
            for kw in ([] if member in ours else kwargs):
                if not any(s is None or kw in s or any(a.startswith("**") for a in s) for s in signatures):
                    missing.append(f"{rel}:{line}: .{member}({kw}=...)")
    assert not missing, f"not in {distro}'s rclpy (use aecf_ros/nodes/compat.py):\n" + "\n".join(missing)


def test_compat_post_set_fallback_behaves_like_the_native_callback(rclpy_context):
    """Humble's path (no native post-set callback): the callback sees the stored values, and
    nothing for a rejected set."""
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from aecf_ros.nodes.compat import add_post_set_parameters_callback

    node = Node("compat_probe", context=rclpy_context)
    try:
        node.declare_parameter("gain", 1.0)
        node.add_on_set_parameters_callback(
            lambda ps: SetParametersResult(successful=all(p.value < 10 for p in ps), reason="too big"))
        seen = []
        add_post_set_parameters_callback(
            node, lambda ps: seen.append([(p.name, p.value, node.get_parameter(p.name).value) for p in ps]),
            force_fallback=True)
        node.set_parameters([Parameter("gain", value=2.5)])
        assert seen == [[("gain", 2.5, 2.5)]]
        node.set_parameters_atomically([Parameter("gain", value=50.0)])
        assert seen == [[("gain", 2.5, 2.5)]] and node.get_parameter("gain").value == 2.5
        node.set_parameters_atomically([Parameter("gain", value=3.0)])
        assert seen[-1] == [("gain", 3.0, 3.0)]
    finally:
        node.destroy_node()
