"""One cycle at a time: overlapping monitors skip, a cycle that lost its lock stops acting,
and one algo's error is recorded while the others are still processed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import redis

from app.execution.context import ExecContext
from app.models import OrderStatus
from app.monitoring import algos as A
from app.monitoring.lock import LockLost, SingleFlight
from app.monitoring.service import CycleReport, Monitor, monitor_lock
from tests.monitoring.desk import Desk
from tests.support import wait_until

D = Decimal
SPOT_CANCEL = "/sapi/v1/algo/spot/order"
OPEN_ORDERS = "/sapi/v1/algo/spot/openOrders"


def test_lock_is_released_only_by_its_owner(redis_conn: redis.Redis) -> None:
    key = f"pacekeeper:test:lock:{uuid.uuid4().hex}"  # Redis db 9 is shared between runs
    first, second = SingleFlight(redis_conn, key, 30), SingleFlight(redis_conn, key, 30)
    try:
        assert first.acquire() and not second.acquire()
        first.ensure()  # renewing its own lock is fine
        redis_conn.set(key, "a cycle that took over after expiry")
        with pytest.raises(LockLost):
            first.ensure()
        first.release()  # not its lock any more: must not free it
        assert redis_conn.get(key) == b"a cycle that took over after expiry"
    finally:
        redis_conn.delete(key)


def test_a_live_holder_keeps_its_lock_past_the_ttl(redis_conn: redis.Redis) -> None:
    key = f"pacekeeper:test:lock:{uuid.uuid4().hex}"
    first, second = SingleFlight(redis_conn, key, 0.6), SingleFlight(redis_conn, key, 0.6)
    try:
        assert first.acquire()
        deadline = time.monotonic() + 2.0  # more than three TTLs
        while time.monotonic() < deadline:
            assert not second.acquire()
            time.sleep(0.1)
        first.ensure()
        first.release()
        assert second.acquire()
        second.release()
    finally:
        redis_conn.delete(key)


def test_the_lock_of_a_holder_that_died_frees_itself_within_its_ttl(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    """A cycle whose process is SIGKILLed cannot release its lock: the next one gets it
    after the short TTL, not after the length of the longest cycle."""
    key = f"pacekeeper:test:lock:{uuid.uuid4().hex}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_url, key],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        time.sleep(1.5)  # kept alive past its TTL (1 s) while the holder lives
        assert not SingleFlight(redis_conn, key, 1.0).acquire()
        holder.kill()
        holder.wait()
        after = SingleFlight(redis_conn, key, 1.0)
        wait_until(after.acquire, timeout=5, interval=0.1)
        after.release()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        redis_conn.delete(key)


HOLDER = """
import sys, time
import redis
from app.monitoring.lock import SingleFlight
flight = SingleFlight(redis.Redis.from_url(sys.argv[1]), sys.argv[2], 1.0)
assert flight.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_two_monitors_at_once_cancel_once(desk: Desk, make_ctx: Callable[[], ExecContext]) -> None:
    entry = desk.entry(limit_price="60000")  # never trades: behind after the grace period
    desk.advance(10)
    cancels = desk.count("DELETE", SPOT_CANCEL)
    slow = desk.fault(action="latency", path=OPEN_ORDERS, delay_ms=300, count=1)
    other = make_ctx()  # a second monitor process by mistake: own client, own engine
    first: list[CycleReport] = []
    thread = threading.Thread(target=lambda: first.append(desk.cycle()))
    thread.start()
    wait_until(lambda: desk.applied(slow) == 1)  # the first cycle is inside, holding the lock
    second = desk.cycle(other)
    thread.join()

    assert second.skipped and not first[0].skipped and first[0].cancels == 1
    assert desk.applied(cancels) == 1
    assert desk.order(entry.order_id).status == OrderStatus.CANCELLED


def test_many_monitors_racing_still_cancel_once(
    desk: Desk, make_ctx: Callable[[], ExecContext]
) -> None:
    entries = [desk.entry(limit_price="60000") for _ in range(3)]
    desk.advance(10)
    cancels = desk.count("DELETE", SPOT_CANCEL)
    contexts = [make_ctx() for _ in range(4)]
    start = threading.Barrier(len(contexts))
    reports: list[CycleReport] = []

    def monitor(ctx: ExecContext) -> None:
        start.wait()
        for _ in range(3):
            reports.append(desk.cycle(ctx))

    threads = [threading.Thread(target=monitor, args=(c,)) for c in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert desk.applied(cancels) == 3 == sum(r.cancels for r in reports)
    assert all(desk.order(e.order_id).status == OrderStatus.CANCELLED for e in entries)


def test_cycle_that_lost_its_lock_does_not_cancel(desk: Desk, redis_conn: redis.Redis) -> None:
    entry = desk.entry(limit_price="60000")
    desk.advance(10)
    cancels = desk.count("DELETE", SPOT_CANCEL)
    flight = monitor_lock(desk.ctx)
    assert flight.acquire()
    redis_conn.set(flight.key, "another cycle's token")  # ours expired; another took it

    report = Monitor(desk.ctx, flight, now_ms=desk.clock.now_ms).cycle()

    assert report.cancels == 0 and report.errors == 1
    assert desk.applied(cancels) == 0
    assert desk.order(entry.order_id).status == OrderStatus.WORKING
    assert not desk.events("pace")  # nothing decided without the lock


def test_error_in_one_algo_is_recorded_and_the_others_go_on(desk: Desk) -> None:
    broken = desk.entry(pace={"grace": "not a number"})  # a corrupt row
    lagging = desk.entry(limit_price="60000")
    on_pace = desk.entry()
    desk.advance(10)

    report = desk.cycle()

    assert report.errors == 1 and report.cancels == 1
    (error,) = desk.events("monitor_error")
    assert error.order_id == broken.order_id and "InvalidOperation" in error.message
    assert desk.order(lagging.order_id).status == OrderStatus.CANCELLED
    assert desk.order(on_pace.order_id).executed_qty > 0
    assert desk.order(broken.order_id).executed_qty > 0  # its fills were still recorded


def test_exchange_error_on_one_algo_is_retried_next_cycle(desk: Desk) -> None:
    entries = [desk.entry() for _ in range(3)]
    desk.advance(10)
    desk.fault(
        action="fail_before", path="/sapi/v1/algo/spot/subOrders", status=400, code=-1102, count=1
    )

    first = desk.cycle()
    second = desk.cycle()

    assert first.errors == 1 and first.sub_order_reads == 2
    assert second.errors == 0 and second.sub_order_reads == 3  # every algo, every cycle
    assert all(desk.order(e.order_id).executed_qty == desk.fills_qty(e.order_id) for e in entries)
    assert len({desk.order(e.order_id).executed_qty for e in entries}) == 1


def test_fills_that_fail_to_record_leave_only_that_algo_behind(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = desk.entry(), desk.entry()
    desk.advance(10)
    apply_children = A.apply_children

    def failing(session: Any, order: Any, *args: Any, **kwargs: Any) -> int:
        if order.id == bad.order_id:
            raise RuntimeError("disk full")
        return apply_children(session, order, *args, **kwargs)

    monkeypatch.setattr(A, "apply_children", failing)
    first = desk.cycle()
    monkeypatch.setattr(A, "apply_children", apply_children)
    second = desk.cycle()

    assert first.errors == 1 and "disk full" in desk.events("monitor_error")[0].message
    assert first.fills_recorded == 10 and second.fills_recorded == 10
    assert desk.fills_qty(good.order_id) == desk.fills_qty(bad.order_id) == D("0.05")
