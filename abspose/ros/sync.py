"""Pairing messages by header stamp: the depth image (and CameraInfo) nearest in time to a colour image.

The colour image drives the pipeline; depth is attached when one lies within ``slop`` seconds, else the
frame runs monocular (a depth dropout never costs a skeleton). Bounded: keeps the last ``size`` messages.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class StampBuffer:
    """The last ``size`` (stamp_ns, message) pairs of one topic."""

    def __init__(self, size: int = 10) -> None:
        self.items: deque[tuple[int, Any]] = deque(maxlen=max(1, size))

    def add(self, stamp_ns: int, msg: Any) -> None:
        self.items.append((stamp_ns, msg))

    def nearest(self, stamp_ns: int, slop: float | None = None) -> Any:
        """The message whose stamp is closest to ``stamp_ns``; None when none is within ``slop`` s."""
        if not self.items:
            return None
        stamp, msg = min(self.items, key=lambda item: abs(item[0] - stamp_ns))
        if slop is not None and abs(stamp - stamp_ns) > slop * 1e9:
            return None
        return msg

    def newest_stamp(self) -> int | None:
        return self.items[-1][0] if self.items else None
