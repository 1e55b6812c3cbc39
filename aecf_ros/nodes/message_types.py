"""``pkg/msg/Name`` type strings -> rclpy message classes (the ROS side's one lookup).

Bag topics, discovered topics and the encoder input table name types as strings; the relay
node, the encoder nodes' subscriptions, bag replay and evaluate-bag all turn them into classes here.
"""
from __future__ import annotations

import importlib


class UnknownMessageType(LookupError):
    """No installed Python message package provides the type (message names it)."""


def message_class(msgtype: str) -> type:
    """rclpy message class of ``pkg/msg/Name`` (also accepts ``pkg/Name``)."""
    package, _, name = msgtype.replace("/msg/", "/").partition("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError, ValueError):
        raise UnknownMessageType(
            f"unknown message type {msgtype} (no Python message package installed for it)") from None
