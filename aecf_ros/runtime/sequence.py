"""Lost-message accounting from per-publisher sequence numbers (no ROS).

An encoder numbers its embeddings 1, 2, 3, ... (``ModalityEmbedding.seq``); the receiver feeds
each number it gets to a :class:`SequenceTracker`. A gap is messages lost on the way (DDS, or a
KEEP_LAST input queue that overwrote them before the callback ran: neither rclpy's message-lost
QoS event, which ignores KEEP_LAST overwrites, nor Humble's callbacks can tell). A number at or
below the last one means the publisher restarted: counted as a restart, not as a loss. 0 means
"not numbered" (third-party encoders) and is ignored.
"""
from __future__ import annotations

from typing import Optional

__all__ = ["SequenceTracker"]


class SequenceTracker:
    def __init__(self) -> None:
        self.last: Optional[int] = None
        self.lost = 0
        self.restarts = 0

    def observe(self, seq: int) -> int:
        """Record one received sequence number; returns how many were lost just before it."""
        seq = int(seq)
        if seq <= 0:
            return 0
        if self.last is None:
            self.last = seq
            return 0
        if seq <= self.last:
            self.restarts += 1
            self.last = seq
            return 0
        gap = seq - self.last - 1
        self.lost += gap
        self.last = seq
        return gap
