"""Bringing a lifecycle node up to active in-process (``autostart``, the runner)."""
from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn


def bring_up(node: LifecycleNode) -> bool:
    """Configure + activate a lifecycle node in-process (what ``autostart`` does).

    Returns True when the node ended up active. Used by ``main()`` (parameter ``autostart``,
    default true) and by the runner, so ``ros2 launch`` / ``aecf-ros run`` need no lifecycle
    manager; with ``autostart:=false`` an external manager drives the lifecycle services.
    """
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("configure failed (reason above); node stays unconfigured")
        return False
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("activate failed; node stays inactive")
        return False
    return True
