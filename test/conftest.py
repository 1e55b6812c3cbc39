"""Test-session set-up shared by every test.

Every ROS process a test starts must stay on loopback and in a domain of its own, so the
environment is fixed here, before anything imports rclpy.
"""
import os
import sys
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# One domain per test session so parallel sessions on one machine never see each other's
# topics. AECF_TEST_DOMAIN_ID pins it; otherwise derive one from the pid (range 100-199).
os.environ["ROS_DOMAIN_ID"] = os.environ.get("AECF_TEST_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]

# Where every test, and every process a test starts, finds aecf_ros: one rule, the same under
# `make test` and under `colcon test` (one CTest test per file, CMakeLists.txt):
#  * the package's Python modules come from this checkout (REPO_ROOT first on sys.path and on
#    PYTHONPATH), so a test exercises the source it sits next to, whatever the working directory;
#  * the generated aecf_ros.msg (and its C type support) exists only in an install, and
#    aecf_ros/__init__.py extends the package path to it: the venv's site-packages after
#    `make setup`, or the colcon install space under `colcon test` (CMakeLists.txt names that
#    prefix in AECF_TEST_INSTALL_PREFIX; its site-packages goes right after REPO_ROOT, so no
#    other copy on PYTHONPATH or in the underlay can supply the messages).
# os.environ["PYTHONPATH"] is set here, once, so a subprocess that copies os.environ finds the same
# files as this process; a test must not replace PYTHONPATH (test_import_layout.py checks both).
INSTALL_PREFIX = os.environ.get("AECF_TEST_INSTALL_PREFIX") or None
INSTALL_SITE = (str(Path(INSTALL_PREFIX) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
                    / "site-packages") if INSTALL_PREFIX else None)
TEST_PYTHONPATH = [str(REPO_ROOT)] + ([INSTALL_SITE] if INSTALL_SITE else [])
_rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in TEST_PYTHONPATH]
os.environ["PYTHONPATH"] = os.pathsep.join(TEST_PYTHONPATH + _rest)
for _i, _entry in enumerate(TEST_PYTHONPATH):
    if _entry in sys.path:
        sys.path.remove(_entry)
    sys.path.insert(_i, _entry)

import pytest  # noqa: E402


def pytest_sessionstart(session):
    """Under `colcon test`, fail at once (not test by test) if the install space's messages are
    not the ones this session imports: the package was not built, or another copy wins."""
    if not INSTALL_SITE:
        return
    try:
        import aecf_ros.msg
    except ImportError as exc:
        pytest.exit(f"aecf_ros.msg is not importable from {INSTALL_SITE} ({exc}): build the package "
                    "first (colcon build --packages-select aecf_ros)", returncode=3)
    if not str(Path(aecf_ros.msg.__file__).resolve()).startswith(str(Path(INSTALL_SITE).resolve())):
        pytest.exit(f"aecf_ros.msg comes from {aecf_ros.msg.__file__}, not from the install space "
                    f"{INSTALL_SITE} this colcon test is for", returncode=3)


def ros_env(**extra: str) -> dict:
    """Environment for a ROS subprocess started by a test: loopback-only, this session's domain,
    and the session's PYTHONPATH (set above: the checkout, then the install with aecf_ros.msg).
    A PYTHONPATH in ``extra`` replaces it on purpose (tests of an install space alone)."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.update(extra)
    return env


@pytest.fixture
def ros_subprocess_env():
    return ros_env()


@pytest.fixture
def rclpy_context():
    """A fresh rclpy context for in-process nodes, shut down after the test."""
    import rclpy

    context = rclpy.context.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed DDS test shows what it saw: every live Timeline and the tail of every node log
    (test_nodes_support.py) appear as sections of the failure report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    support = sys.modules.get("test_nodes_support")
    if support is None:
        return
    for timeline in list(support.LIVE_TIMELINES):
        report.sections.append((f"timeline {timeline.name}", str(timeline)))
    for node in list(support.LIVE_NODES):
        try:
            lines = node.log().splitlines()
        except OSError:
            continue
        report.sections.append((f"node log {node.module} ({node.log_path}), last 40 lines",
                                "\n".join(lines[-40:])))
