"""A cycle that meets failures: what it records, whether it goes on, and whether its heartbeat
says the monitor did its job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.healthcheck import monitor_heartbeat_key
from app.models import OrderStatus
from tests.monitoring.desk import Desk

SUB_ORDERS = "/sapi/v1/algo/spot/subOrders"


@contextmanager
def limit_order_writes_fail(engine: Engine) -> Iterator[None]:
    """Every UPDATE of a LIMIT order row fails in the database (a trigger), as a locked or
    failing database would: not an exchange error."""
    if engine.dialect.name == "sqlite":
        create = [
            "CREATE TRIGGER pk_fault BEFORE UPDATE ON orders WHEN OLD.kind = 'limit' "
            "BEGIN SELECT RAISE(ABORT, 'injected database failure'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS pk_fault"]
    else:
        create = [
            "CREATE OR REPLACE FUNCTION pk_fault() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected database failure'; END $$",
            "CREATE TRIGGER pk_fault BEFORE UPDATE ON orders FOR EACH ROW "
            "WHEN (OLD.kind = 'limit') EXECUTE FUNCTION pk_fault()",
        ]
        drop = ["DROP TRIGGER IF EXISTS pk_fault ON orders", "DROP FUNCTION IF EXISTS pk_fault()"]
    with engine.begin() as conn:
        for statement in create:
            conn.execute(text(statement))
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))


def test_resting_orders_failing_is_recorded_and_the_cycle_goes_on(
    desk: Desk, redis_conn: redis.Redis
) -> None:
    desk.set_price("BTCUSDT", "65000")
    sid = desk.submit(quantity="0.01", execution={"type": "limit", "price": "64000"},
                      take_profit="70000", stop_loss="60000")  # fmt: skip
    assert desk.run(sid).status == "working"
    (entry,) = desk.orders(signal_id=sid)
    desk.set_price("BTCUSDT", "63900")  # the resting limit fills on the exchange
    desk.advance(2)

    with limit_order_writes_fail(desk.ctx.sessions.kw["bind"]):
        redis_conn.delete(monitor_heartbeat_key(desk.ctx.settings.queue_name))
        report = desk.cycle()  # before the fix: the database error escaped the cycle

        assert not report.incomplete and report.errors >= 1
        assert [e for e in desk.events("monitor_error") if "injected" in e.message]
        assert redis_conn.get(monitor_heartbeat_key(desk.ctx.settings.queue_name))
        assert desk.order(entry.id).status == OrderStatus.WORKING

    desk.advance(5)
    report = desk.cycle()  # the database works again: the next cycle follows the order

    assert report.resting_orders_changed == 1
    assert desk.order(entry.id).status == OrderStatus.FILLED
    assert desk.signal(sid).status == "done"
    (position,) = desk.positions()
    assert [o.kind for o in desk.orders(position_id=position.id) if o.leg == "bracket"] == ["oco"]


def test_no_heartbeat_when_every_working_algo_failed(desk: Desk, redis_conn: redis.Redis) -> None:
    first, second = desk.entry(), desk.entry(symbol="ETHUSDT", quantity="1")
    desk.advance(5)
    rule = desk.fault(action="fail_before", path=SUB_ORDERS, status=400, code=-1102)
    redis_conn.delete(monitor_heartbeat_key(desk.ctx.settings.queue_name))

    report = desk.cycle()

    assert (
        redis_conn.get(monitor_heartbeat_key(desk.ctx.settings.queue_name)) is None
        and report.incomplete
    )
    assert report.algos_checked == 2 and report.algos_failed == 2
    assert {e.order_id for e in desk.events("monitor_error")} == {first.order_id, second.order_id}

    desk.paper("DELETE", f"/faults/{rule}")
    desk.advance(5)
    report = desk.cycle()

    assert report.algos_failed == 0 and not report.incomplete
    assert redis_conn.get(monitor_heartbeat_key(desk.ctx.settings.queue_name))


def test_heartbeat_when_only_some_algos_failed(desk: Desk, redis_conn: redis.Redis) -> None:
    desk.entry()
    desk.entry(symbol="ETHUSDT", quantity="1")
    desk.advance(5)
    desk.fault(action="fail_before", path=SUB_ORDERS, status=400, code=-1102, count=1)
    redis_conn.delete(monitor_heartbeat_key(desk.ctx.settings.queue_name))

    report = desk.cycle()

    assert (
        redis_conn.get(monitor_heartbeat_key(desk.ctx.settings.queue_name))
        and not report.incomplete
    )
    assert report.algos_failed == 1 and report.errors == 1
