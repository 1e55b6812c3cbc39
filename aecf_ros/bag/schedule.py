"""The publish schedule of a bag under a drop plan (ROS-free; shared by replay and evaluate-bag).

:func:`planned_messages` reads a bag in time order, passes every message through a
:class:`~aecf_ros.runtime.drop_plan.PlanApplier` and yields what should go out and when, in
publish-time order (a delayed message goes out after undelayed ones recorded later). Replay
sleeps until each time and publishes the bytes; evaluate-bag feeds them to the encoders and
the fusion engine on a simulated clock: both therefore see exactly the same messages.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from aecf_ros.runtime.drop_plan import DropPlan, PlanApplier


@dataclass
class Scheduled:
    """One message to publish: at bag time ``time_ns`` (absolute, bag clock), on ``topic``."""

    time_ns: int
    topic: str
    msgtype: str
    data: bytes
    action: str  # pass | delay | freeze
    recorded_ns: int  # bag timestamp of the input message it came from


def planned_messages(
    messages: Iterable[tuple[str, str, int, bytes]],
    plan: DropPlan,
    start_ns: int,
    applier: PlanApplier | None = None,
    start_offset_s: float = 0.0,
) -> Iterator[Scheduled]:
    """Apply ``plan`` to ``(topic, msgtype, timestamp_ns, raw)`` messages in recorded order.

    Plan times are seconds since ``start_ns`` (the bag's first message). Messages recorded
    before ``start_offset_s`` are skipped (they are neither published nor seen by the plan).
    Frozen copies with ``:restamp`` get the replaced message's header stamp written into their
    CDR bytes (header-first types only; no deserialisation).
    """
    applier = applier or PlanApplier(plan)
    pending: list[tuple[int, int, Scheduled]] = []
    order = itertools.count()
    offset_ns = int(round(start_offset_s * 1e9))
    for topic, msgtype, t_ns, raw in messages:
        if t_ns - start_ns < offset_ns:
            continue
        while pending and pending[0][0] <= t_ns:
            yield heapq.heappop(pending)[2]
        t_rel = (t_ns - start_ns) / 1e9
        for e in applier.process_serialized(topic, msgtype, t_rel, raw):
            delay_ns = max(0, int(round((e.time - t_rel) * 1e9)))
            item = Scheduled(t_ns + delay_ns, topic, msgtype, e.payload, e.action, t_ns)
            heapq.heappush(pending, (item.time_ns, next(order), item))
    while pending:
        yield heapq.heappop(pending)[2]


def plan_topics_missing(plan: DropPlan, bag_topics: Sequence[str]) -> list[str]:
    """Modalities the plan acts on that have none of their topics in the bag (worth a warning)."""
    present = set(bag_topics)
    return sorted({e.modality for e in plan.events if not present & set(plan.topics[e.modality])})
