"""Clocks for the paper exchange: the system clock, or a manual one that tests step forward."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Clock(Protocol):
    """Milliseconds since the epoch; ``realtime`` tells whether time moves on its own."""

    realtime: bool

    def now_ms(self) -> int: ...


class SystemClock:
    realtime = True

    def now_ms(self) -> int:
        return wall_ms()


class ManualClock:
    """A clock that only moves when told to. Starts at the current wall time by default.

    It is also an ``app.clock.Clock``: handed to ``ExecContext``, execution and monitoring
    read it, and their ``sleep`` steps it instead of waiting."""

    realtime = False

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = wall_ms() if start_ms is None else start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> int:
        """Move forward by ``seconds`` (never backward); returns the new time in ms."""
        if seconds < 0:
            raise ValueError("a manual clock only moves forward")
        with self._lock:
            self._now += round(seconds * 1000)
            return self._now

    def set(self, now_ms: int) -> None:
        with self._lock:
            if now_ms < self._now:
                raise ValueError("a manual clock only moves forward")
            self._now = now_ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, UTC)

    def monotonic(self) -> float:
        return self.now_ms() / 1000

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))
