"""Reads shared by the jobs of a process: one request in flight per key, its answer (or its
error) for every caller waiting, and reused only while younger than the maximum age."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from app.exchange.errors import Temporary
from app.exchange.shared import SharedReads
from tests.support import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def blocking_read(
    answer: Decimal | Exception, release: threading.Event, calls: list[str]
) -> Callable[[], Decimal]:
    def read() -> Decimal:
        calls.append("read")
        release.wait(30)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return read


def test_callers_that_come_while_a_read_is_in_flight_share_its_answer() -> None:
    reads: SharedReads[Decimal] = SharedReads(1.0, Clock())
    release, calls = threading.Event(), list[str]()
    read = blocking_read(Decimal("65000"), release, calls)
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(reads.get, "BTCUSDT", read) for _ in range(10)]
        wait_until(lambda: reads.joined == 9)  # nine wait for the first one's request
        release.set()
        answers = [f.result() for f in futures]
    assert answers == [Decimal("65000")] * 10
    assert calls == ["read"]


def test_an_error_reaches_every_caller_waiting_and_is_not_kept() -> None:
    reads: SharedReads[Decimal] = SharedReads(1.0, Clock())
    release, calls = threading.Event(), list[str]()
    read = blocking_read(Temporary("exchange down"), release, calls)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(reads.get, "BTCUSDT", read) for _ in range(3)]
        wait_until(lambda: reads.joined == 2)
        release.set()
        for future in futures:
            with pytest.raises(Temporary):
                future.result()
    assert calls == ["read"]
    # The next caller asks again.
    assert reads.get("BTCUSDT", lambda: Decimal("64000")) == Decimal("64000")


def test_an_answer_is_reused_until_it_is_older_than_the_maximum_age() -> None:
    clock = Clock()
    reads: SharedReads[Decimal] = SharedReads(1.0, clock)
    assert reads.get("BTCUSDT", lambda: Decimal("65000")) == Decimal("65000")
    clock.now = 1.0
    assert reads.get("BTCUSDT", lambda: Decimal("1")) == Decimal("65000")
    assert reads.get("ETHUSDT", lambda: Decimal("3000")) == Decimal("3000")  # its own key
    clock.now = 1.5
    assert reads.get("BTCUSDT", lambda: Decimal("64000")) == Decimal("64000")


def test_a_maximum_age_of_zero_reads_every_time() -> None:
    reads: SharedReads[Decimal] = SharedReads(0.0, Clock())
    assert reads.get("BTCUSDT", lambda: Decimal("65000")) == Decimal("65000")
    assert reads.get("BTCUSDT", lambda: Decimal("64000")) == Decimal("64000")


def test_past_the_refresh_point_a_caller_gets_the_answer_at_once_and_one_read_goes_ahead() -> None:
    clock, spawned = Clock(), list[Callable[[], None]]()
    reads: SharedReads[Decimal] = SharedReads(1.0, clock, refresh_ahead=0.5, spawn=spawned.append)
    assert reads.get("BTCUSDT", lambda: Decimal("65000")) == Decimal("65000")
    clock.now = 0.4  # young: nothing goes ahead
    assert reads.get("BTCUSDT", lambda: Decimal("1")) == Decimal("65000")
    assert spawned == []
    clock.now = 0.6  # past half the age: the answer now, one read ahead in the background
    assert reads.get("BTCUSDT", lambda: Decimal("64000")) == Decimal("65000")
    assert reads.get("BTCUSDT", lambda: Decimal("2")) == Decimal("65000")  # one at a time
    assert len(spawned) == 1 and reads.refreshed == 1
    spawned.pop()()  # the background read, sent at 0.6
    # The first answer has expired; the one read ahead (sent at 0.6) stands, and is old
    # enough to be read ahead in its turn.
    clock.now = 1.5
    assert reads.get("BTCUSDT", lambda: Decimal("63000")) == Decimal("64000")
    assert len(spawned) == 1 and reads.refreshed == 2
    spawned.pop()()
    clock.now = 2.0  # sent at 1.5: young again, nothing more goes ahead
    assert reads.get("BTCUSDT", lambda: Decimal("4")) == Decimal("63000")
    assert spawned == []


def test_a_read_ahead_that_fails_keeps_the_answer_and_the_next_expiry_reads_again() -> None:
    clock, spawned = Clock(), list[Callable[[], None]]()
    reads: SharedReads[Decimal] = SharedReads(1.0, clock, refresh_ahead=0.5, spawn=spawned.append)
    reads.get("BTCUSDT", lambda: Decimal("65000"))
    clock.now = 0.7

    def down() -> Decimal:
        raise Temporary("exchange down")

    assert reads.get("BTCUSDT", down) == Decimal("65000")
    spawned.pop()()  # fails quietly: nobody waited for it
    clock.now = 0.8  # the answer still stands, and the next caller sends ahead again
    assert reads.get("BTCUSDT", down) == Decimal("65000")
    assert len(spawned) == 1
    spawned.pop()()  # fails again
    clock.now = 1.2  # expired, nothing in flight: a caller reads for itself
    assert reads.get("BTCUSDT", lambda: Decimal("64000")) == Decimal("64000")
    assert spawned == [] and reads.refreshed == 2


def test_a_caller_that_finds_the_answer_expired_joins_the_read_ahead_in_flight() -> None:
    clock = Clock()
    release, calls = threading.Event(), list[str]()
    reads: SharedReads[Decimal] = SharedReads(1.0, clock, refresh_ahead=0.5)  # real threads
    reads.get("BTCUSDT", lambda: Decimal("65000"))
    clock.now = 0.9
    slow = blocking_read(Decimal("64000"), release, calls)
    assert reads.get("BTCUSDT", slow) == Decimal("65000")
    wait_until(lambda: calls == ["read"])  # the read ahead is in flight, in its thread
    clock.now = 1.1
    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(reads.get, "BTCUSDT", lambda: Decimal("1"))
        wait_until(lambda: reads.joined == 1)
        release.set()
        assert late.result(timeout=10) == Decimal("64000")
    assert calls == ["read"]
