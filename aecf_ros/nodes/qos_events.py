"""Requested-incompatible-QoS events of the nodes' input subscriptions, in the log and /diagnostics.

A RELIABLE subscription never matches a BEST_EFFORT publisher (a typical camera / lidar driver
using the sensor-data profile): without this, the node just sees no data. Each event is logged
(with the parameter that fixes it) and counted; the node's /diagnostics report goes WARN and
names the topic and the policy while any were seen.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IncompatibleQos:
    """Per-topic count of publishers offering QoS this node's subscription cannot match."""

    counts: dict[str, int] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)

    def record(self, topic: str, policy: str, total_count: int) -> None:
        self.counts[topic] = max(int(total_count), self.counts.get(topic, 0) + 1)
        self.policies[topic] = policy

    def values(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for topic, n in sorted(self.counts.items()):
            out[f"qos_incompatible.{topic}"] = n
            out[f"qos_incompatible_policy.{topic}"] = self.policies[topic]
        return out

    def message(self) -> str:
        """'' when none, else the sentence /diagnostics shows."""
        return "; ".join(f"incompatible QoS with a publisher on {t} ({self.policies[t]}): no data from it"
                         for t in sorted(self.counts))


def incompatible_qos_callbacks(node, tracker: IncompatibleQos, topic: str, parameter_prefix: str):
    """``event_callbacks`` for a subscription: log (with the fix) and count incompatible publishers."""
    from rclpy.qos import qos_policy_name_from_kind

    from aecf_ros.nodes.compat import subscription_event_callbacks

    def on_incompatible(info) -> None:
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        resolved = node.resolve_topic_name(topic)
        tracker.record(resolved, policy, getattr(info, "total_count", 0))
        node.get_logger().warning(
            f"a publisher on {resolved} offers QoS incompatible with this subscription (policy {policy}): "
            f"no messages will arrive from it. A BEST_EFFORT driver needs {parameter_prefix}.profile: "
            f"sensor_data (or {parameter_prefix}.reliability: best_effort)")

    guard = getattr(node, "callback_guard", None)  # rclpy runs event handlers in the executor too
    return subscription_event_callbacks(
        incompatible_qos=guard.wrap(f"qos event {topic}", on_incompatible) if guard else on_incompatible)
