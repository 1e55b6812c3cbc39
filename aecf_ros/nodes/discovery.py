"""Waiting for DDS discovery before a timed scenario starts (replay ``--wait-for``, the demo)."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional


class TopicSubscribers:
    """A topic this process does not publish, as a ``wait_for_discovery`` endpoint: it has a peer
    once ``node`` sees a subscription on it in the ROS graph (e.g. the encoders' ``/dropout/...``
    inputs, fed by the sensor_dropout relay rather than by the bag player)."""

    def __init__(self, node, topic: str):
        self.node, self.topic = node, topic

    def get_subscription_count(self) -> int:
        return self.node.count_subscribers(self.topic)


def unmatched(endpoints: Mapping[str, Any], node=None) -> list[str]:
    """Names of the endpoints with no peer yet: a publisher without a matched subscription, or
    a subscription without a matched publisher (on Humble, which cannot count a subscription's
    matches, the publishers of its topic seen by ``node``)."""
    from aecf_ros.nodes.compat import publisher_count

    def peers(endpoint) -> int:
        if hasattr(endpoint, "get_subscription_count"):
            return endpoint.get_subscription_count()
        return publisher_count(endpoint, node)

    return [name for name, endpoint in endpoints.items() if peers(endpoint) == 0]


def wait_for_discovery(endpoints: Mapping[str, Any], timeout_s: float,
                       while_waiting: Optional[Callable[[], None]] = None,
                       stop: Optional[Callable[[], bool]] = None, poll_s: float = 0.05,
                       node=None) -> list[str]:
    """Block until every endpoint (``{name: publisher or subscription}``) has matched a peer.

    DDS discovery of a new participant took > 2 s on a busy 2-core machine, so whatever starts
    a timed scenario (bag replay, the demo's sensors) waits for it instead of guessing a delay.
    ``while_waiting()`` runs every ``poll_s`` (e.g. publish /clock, spin an executor once);
    ``stop()`` true ends the wait early. Returns the names still unmatched: empty when all
    matched, else the wait timed out or was stopped.
    """
    deadline = time.monotonic() + float(timeout_s)
    while True:
        missing = unmatched(endpoints, node)
        if not missing or time.monotonic() > deadline or (stop is not None and stop()):
            return missing
        if while_waiting is not None:
            while_waiting()
        time.sleep(poll_s)
