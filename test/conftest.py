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
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import pytest  # noqa: E402


def ros_env(**extra: str) -> dict:
    """Environment for a ROS subprocess started by a test: loopback-only, this session's domain."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
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
