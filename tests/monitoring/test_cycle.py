"""The monitor cycle on the paper exchange over real HTTP, with scripted paces on its manual
clock: on schedule, out-of-reach limit, stalled, finished, cancel racing completion, expiry.
The paper slices on the fine cadence here (even slices, a second apart), so paces are exact;
``test_pace_e2e.py`` runs on Binance's cadence."""

from __future__ import annotations

from decimal import Decimal

import httpx

from app.healthcheck import monitor_heartbeat_key
from app.models import OrderStatus, SignalStatus
from tests.monitoring.desk import Desk

D = Decimal
SPOT_CANCEL = "/sapi/v1/algo/spot/order"
INTERVAL = 5.0


def run_until(desk: Desk, done: object, *, limit: int = 40) -> int:
    """Cycles ``INTERVAL`` seconds of exchange time apart until ``done()``; returns how many."""
    for n in range(1, limit + 1):
        desk.advance(INTERVAL)
        desk.cycle()
        if done():  # type: ignore[operator]
            return n
    raise AssertionError(f"not done after {limit} cycles")


def test_algo_on_schedule_is_never_cancelled_and_finishes(desk: Desk, redis_conn: object) -> None:
    entry = desk.entry(quantity="0.3", duration=60)
    cancels = desk.count("DELETE", SPOT_CANCEL)

    run_until(desk, lambda: desk.order(entry.order_id).status != OrderStatus.WORKING)

    order = desk.order(entry.order_id)
    assert order.status == OrderStatus.FILLED and order.venue_status == "FINISHED"
    assert order.executed_qty == D("0.3") and order.avg_price == D("65000")
    fills = desk.fills(entry.order_id)
    assert len(fills) == 60 and sum(f.qty for f in fills) == D("0.3")
    assert all(f.fee_asset == "BTC" and f.fee > 0 for f in fills)
    assert desk.applied(cancels) == 0 and not desk.events("pace")
    signal = desk.signal(entry.signal_id)
    assert signal.status == SignalStatus.DONE
    assert signal.status_reason == "TWAP finished: 0.3 of 0.3 filled at avg 65000"
    assert redis_conn.get(monitor_heartbeat_key(desk.ctx.settings.queue_name))  # type: ignore[attr-defined]


def test_limit_out_of_reach_is_cancelled_within_grace_plus_two_intervals(desk: Desk) -> None:
    # A BUY limited 8% under the market never trades: fill stays 0 while the schedule runs.
    entry = desk.entry(quantity="0.3", duration=60, limit_price="60000")
    cancels = desk.count("DELETE", SPOT_CANCEL)

    cycles = run_until(desk, lambda: desk.order(entry.order_id).status != OrderStatus.WORKING)

    grace = D("0.1") * 60
    assert cycles * INTERVAL <= grace + 2 * D(str(INTERVAL))
    assert desk.applied(cancels) == 1
    (decision,) = desk.events("pace", order_id=entry.order_id)
    # Even slices, a second apart, each an expired IOC: behind once past the grace period.
    assert decision.message == (
        "cancelling: fill 0.00 < 0.5 × schedule 0.15 one child (1 s) earlier, after 10 s"
    )
    assert decision.data is not None
    assert decision.data["fill_fraction"] == "0" and decision.data["schedule"] is not None
    order = desk.order(entry.order_id)
    assert order.status == OrderStatus.CANCELLED and order.venue_status == "CANCELLED"
    (placed,) = desk.ledger(client_id=entry.client_id)
    assert placed["status"] == "CANCELLED" and order.venue_id == placed["id"]
    signal = desk.signal(entry.signal_id)
    assert signal.status == SignalStatus.CANCELLED
    assert "cancelled by the monitor (fill 0.00 < 0.5 × schedule 0.15" in (
        signal.status_reason or ""
    )


def test_stalled_algo_is_cancelled_and_what_filled_is_kept(desk: Desk) -> None:
    # The schedule rule is off (min_ratio 0): only the stall window can end it.
    entry = desk.entry(quantity="0.3", duration=120, pace={"min_ratio": "0", "stall_seconds": 20})
    desk.advance(10)
    desk.cycle()
    assert desk.order(entry.order_id).executed_qty > 0
    desk.fill_ratio(entry.client_id, "0")  # children stop executing

    run_until(desk, lambda: desk.order(entry.order_id).status != OrderStatus.WORKING)

    (decision,) = desk.events("pace", order_id=entry.order_id)
    assert decision.data is not None and decision.data["state"] == "stalled"
    assert "no new fill for" in decision.message and "(stall grace 20 s)" in decision.message
    assert "children unfilled since" in decision.message
    order = desk.order(entry.order_id)
    assert order.status == OrderStatus.CANCELLED
    assert order.executed_qty == sum(f.qty for f in desk.fills(entry.order_id)) > 0
    assert desk.signal(entry.signal_id).status == SignalStatus.DONE  # something filled


def test_vp_is_judged_by_stall_only(desk: Desk) -> None:
    entry = desk.entry(kind="vp", market="usdm", quantity="1", pace={"stall_seconds": 30})
    desk.fill_ratio(entry.client_id, "0")

    cycles = run_until(desk, lambda: desk.order(entry.order_id).status != OrderStatus.WORKING)

    assert cycles * INTERVAL >= 30  # no duration, so no schedule: only the stall window
    (decision,) = desk.events("pace", order_id=entry.order_id)
    assert decision.data is not None
    assert decision.data["state"] == "stalled" and decision.data["schedule"] is None
    assert desk.signal(entry.signal_id).status == SignalStatus.CANCELLED


def test_cancel_racing_completion_is_already_done(desk: Desk, paper: object) -> None:
    # Behind (each child executes a tenth), but the algo ends while the cancel is in flight.
    entry = desk.entry(quantity="0.3", duration=60)
    desk.fill_ratio(entry.client_id, "0.1")

    def finish_first(request: httpx.Request) -> None:
        if request.method == "DELETE" and request.url.path == SPOT_CANCEL:
            desk.advance(60)

    desk.ctx.client._http.event_hooks["request"].append(finish_first)
    cancels = desk.count("DELETE", SPOT_CANCEL)

    run_until(desk, lambda: desk.order(entry.order_id).status != OrderStatus.WORKING)

    assert desk.applied(cancels) == 1  # answered -20124: it had already finished
    order = desk.order(entry.order_id)
    assert order.venue_status == "FINISHED" and order.status == OrderStatus.FILLED
    assert order.executed_qty == D("0.03") == sum(f.qty for f in desk.fills(entry.order_id))
    signal = desk.signal(entry.signal_id)
    assert signal.status == SignalStatus.DONE
    assert "it ended before the monitor's cancel" in (signal.status_reason or "")


def test_expired_signal_cancels_its_algo(desk: Desk) -> None:
    entry = desk.entry(quantity="0.3", duration=120, expires_in=22)

    cycles = run_until(desk, lambda: desk.order(entry.order_id).status != OrderStatus.WORKING)

    assert cycles == 5  # first cycle at or after the expiry (25 s)
    (decision,) = desk.events("expiry", order_id=entry.order_id)
    assert decision.message.startswith("cancelling: signal expired at ")
    order = desk.order(entry.order_id)
    assert order.status == OrderStatus.CANCELLED and D(0) < order.executed_qty < D("0.3")
    assert desk.signal(entry.signal_id).status == SignalStatus.EXPIRED


def test_algo_id_is_stored_when_first_seen_before_any_fill(desk: Desk) -> None:
    entry = desk.entry(limit_price="60000")
    desk.advance(1)

    desk.cycle()

    order = desk.order(entry.order_id)
    (placed,) = desk.ledger(client_id=entry.client_id)
    assert order.venue_id == placed["id"] and order.venue_status == "WORKING"
    assert order.book_time is not None and order.executed_qty == 0


def test_each_completed_cycle_is_counted_in_the_cycle_time_metric(desk: Desk, ctx: object) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from app.metrics import RedisCollector

    def cycles_counted() -> float:
        registry = CollectorRegistry()
        registry.register(RedisCollector(lambda: ctx.redis, ctx.settings))  # type: ignore[attr-defined]
        for line in generate_latest(registry).decode().splitlines():
            if line.startswith("pacekeeper_monitor_cycle_seconds_count"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = cycles_counted()
    desk.entry(quantity="0.3", duration=60)
    desk.advance(INTERVAL)
    desk.cycle()
    desk.advance(INTERVAL)
    desk.cycle()
    assert cycles_counted() == before + 2
