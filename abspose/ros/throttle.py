"""Rate-limited log lines: one line per kind of message at most every ``period`` seconds, the rest counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """Calls ``emit(text)`` (if given) at most once per ``period`` s for each ``kind``; ``counts[kind]`` counts
    every call. Thread-safe."""

    def __init__(
        self, period: float, emit: Callable[[str], None] | None = print, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.period, self.emit, self.clock = period, emit, clock
        self.last: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str, text: str) -> bool:
        """Emit ``text`` unless a ``kind`` line went out less than ``period`` s ago; True when emitted."""
        now = self.clock()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind in self.last and now - self.last[kind] < self.period:
                return False
            self.last[kind] = now
        if self.emit is not None:
            self.emit(text)
        return True
