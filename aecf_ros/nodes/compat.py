"""Fallbacks for rclpy APIs that not every supported distro has (Humble, Jazzy, Kilted).

Every rclpy call that exists only in some distros goes through here, so the rest of the package
uses one API. ``test/test_distro_api.py`` checks the rclpy names used everywhere else against
per-distro lists made from each distro's rclpy sources (``test/rclpy_api/*.txt``).
"""
from __future__ import annotations

from typing import Callable, List


def _native_or_setters(node, name: str, callback: Callable, force_fallback: bool):
    """Install ``callback`` with rclpy's own ``node.<name>`` where this distro has it (returns
    None); otherwise return the node's ``(set_parameters, set_parameters_atomically)`` for the
    caller to wrap on this instance (Humble, or ``force_fallback``)."""
    native = getattr(node, name, None)
    if native is not None and not force_fallback:
        native(callback)
        return None
    return node.set_parameters, node.set_parameters_atomically


def add_post_set_parameters_callback(node, callback: Callable[[List], None], *, force_fallback: bool = False) -> None:
    """Call ``callback(parameters)`` after parameters were set successfully on ``node``.

    Jazzy and later: rclpy's own ``Node.add_post_set_parameters_callback``. Humble has no
    post-set callback (its on-set callbacks run *before* the values are stored, so a callback
    there would read the old values): the node's public ``set_parameters`` and
    ``set_parameters_atomically`` (what Humble's parameter services call) are wrapped on this
    instance and the callback gets the parameters that were stored.
    """
    setters = _native_or_setters(node, "add_post_set_parameters_callback", callback, force_fallback)
    if setters is None:
        return
    set_each, set_atomically = setters

    def set_parameters(parameter_list):
        results = set_each(parameter_list)
        done = [p for p, r in zip(parameter_list, results) if r.successful]
        if done:
            callback(done)
        return results

    def set_parameters_atomically(parameter_list):
        result = set_atomically(parameter_list)
        if result.successful and parameter_list:
            callback(list(parameter_list))
        return result

    node.set_parameters = set_parameters
    node.set_parameters_atomically = set_parameters_atomically


def add_pre_set_parameters_callback(node, callback: Callable[[List], List], *, force_fallback: bool = False) -> None:
    """``callback(parameters) -> parameters`` may rewrite a set request before rclpy checks types.

    Jazzy and later: rclpy's ``Node.add_pre_set_parameters_callback``. Humble: the node's public
    ``set_parameters`` / ``set_parameters_atomically`` are wrapped on this instance to rewrite
    the list first (install this after :func:`add_post_set_parameters_callback`).
    """
    setters = _native_or_setters(node, "add_pre_set_parameters_callback", callback, force_fallback)
    if setters is None:
        return
    set_each, set_atomically = setters
    node.set_parameters = lambda parameter_list: set_each(callback(list(parameter_list)))
    node.set_parameters_atomically = lambda parameter_list: set_atomically(callback(list(parameter_list)))


def publisher_count(subscription, node=None) -> int:
    """Publishers matched with ``subscription``. Jazzy and later: ``Subscription.get_publisher_count``.
    Humble has no such call: the publishers of its topic that ``node`` sees (0 without a node)."""
    native = getattr(subscription, "get_publisher_count", None)
    if native is not None:
        return native()
    return node.count_publishers(subscription.topic_name) if node is not None else 0


def subscription_event_callbacks(**callbacks):
    """``SubscriptionEventCallbacks(**callbacks)``: ``rclpy.event_handler`` (Jazzy and later) or
    ``rclpy.qos_event`` (Humble; a deprecated alias from Jazzy on, which warns on import)."""
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import SubscriptionEventCallbacks
    return SubscriptionEventCallbacks(**callbacks)
