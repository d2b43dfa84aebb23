"""The clock execution and monitoring read: the system one, and the manual one tests step."""

from __future__ import annotations

from datetime import UTC, timedelta

from app.clock import Clock, SystemClock
from paper.clock import ManualClock


def test_the_paper_manual_clock_serves_as_the_execution_clock() -> None:
    clock: Clock = ManualClock(start_ms=1_700_000_000_000)
    before, started = clock.now(), clock.monotonic()

    clock.sleep(2.5)

    assert before.tzinfo is UTC
    assert clock.now() - before == timedelta(seconds=2.5)
    assert clock.monotonic() - started == 2.5


def test_a_negative_sleep_leaves_the_manual_clock_where_it_is() -> None:
    clock = ManualClock(start_ms=1_000)
    clock.sleep(-1.0)
    assert clock.now_ms() == 1_000


def test_the_system_clock_reads_aware_utc() -> None:
    clock: Clock = SystemClock()
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.monotonic() <= clock.monotonic()
