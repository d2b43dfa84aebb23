"""The clock execution and monitoring read: wall time, a monotonic count, and sleep.

Time is a dependency like the exchange: ``ExecContext.clock`` is a ``SystemClock`` in the
workers and the monitor; a test hands it the paper exchange's ``ManualClock``
(``paper/clock.py``), whose ``sleep`` steps it, so waits take no real time. Pure
functions (pace, planning) still take ``now`` as a value.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds that only move forward, for deadlines and elapsed time."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
