"""Pairing messages by header stamp: the depth image (and CameraInfo) nearest in time to a colour image.

The colour image drives the pipeline; depth is attached when one lies within ``slop`` seconds, else the
frame runs monocular (a depth dropout never costs a skeleton). Bounded: keeps the last ``size`` messages.
Thread-safe: subscription callbacks add while the worker looks up.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any


class StampBuffer:
    """The last ``size`` (stamp_ns, message) pairs of one topic."""

    def __init__(self, size: int = 10) -> None:
        self.items: deque[tuple[int, Any]] = deque(maxlen=max(1, size))
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, msg: Any) -> None:
        with self._lock:
            self.items.append((stamp_ns, msg))

    def closest(self, stamp_ns: int) -> tuple[Any, float]:
        """The message whose stamp is closest to ``stamp_ns`` and its offset in s (None, inf when empty)."""
        with self._lock:
            items = tuple(self.items)
        if not items:
            return None, math.inf
        stamp, msg = min(items, key=lambda item: abs(item[0] - stamp_ns))
        return msg, abs(stamp - stamp_ns) * 1e-9

    def nearest(self, stamp_ns: int, slop: float | None = None) -> Any:
        """The message whose stamp is closest to ``stamp_ns``; None when none is within ``slop`` s."""
        msg, offset = self.closest(stamp_ns)
        return None if slop is not None and offset > slop else msg

    def newest_stamp(self) -> int | None:
        with self._lock:
            return self.items[-1][0] if self.items else None

    def clear(self) -> None:
        with self._lock:
            self.items.clear()
