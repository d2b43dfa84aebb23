"""End to end on the paper exchange slicing as Binance does (about one child a minute at a
jittered second, sizes ±30 %, a working spot algo's ``executedQty`` hidden until it ends),
over HTTP on its manual clock: healthy TWAPs complete uncancelled, a stuck one is cancelled
within the grace period plus two monitor intervals of its stall showing, and every reader
shows the monitor's own verdict."""

from __future__ import annotations

from decimal import Decimal

from app.exchange.filters import Market
from app.models import OrderStatus, SignalStatus
from app.monitoring import verdicts
from app.monitoring.algos import from_ms
from app.monitoring.queries import working_algos
from tests.monitoring.conftest import BINANCE
from tests.monitoring.desk import Desk

D = Decimal
PAPER_CADENCE = BINANCE
INTERVAL = 5.0
SPOT_CANCEL = "/sapi/v1/algo/spot/order"
FUTURES_CANCEL = "/sapi/v1/algo/futures/order"


def cycles_until_ended(desk: Desk, order_id: int, *, limit: int) -> int:
    """Cycles ``INTERVAL`` seconds of exchange time apart until the order ends; returns the
    exchange time (ms) of the cycle that saw it end."""
    for _ in range(limit):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(order_id).status != OrderStatus.WORKING:
            return desk.clock.now_ms()
    raise AssertionError(f"order {order_id} still working after {limit} cycles")


def test_a_healthy_300_s_spot_twap_completes_uncancelled(desk: Desk) -> None:
    entry = desk.entry(quantity="0.3", duration=300)
    cancels = desk.count("DELETE", SPOT_CANCEL)
    fills_while_working: list[Decimal] = []

    for _ in range(70):
        desk.advance(INTERVAL)
        desk.cycle()
        order = desk.order(entry.order_id)
        if order.status != OrderStatus.WORKING:
            break
        fills_while_working.append(desk.fills_qty(entry.order_id))
    else:
        raise AssertionError("the TWAP never ended")

    order = desk.order(entry.order_id)
    assert order.status == OrderStatus.FILLED and order.executed_qty == D("0.3")
    assert desk.applied(cancels) == 0 and not desk.events("pace")
    assert len(desk.fills(entry.order_id)) == 5  # one child a minute
    # openOrders showed nothing executed while it worked; the children did, and were judged.
    assert 0 < fills_while_working[30] < D("0.3")
    assert desk.signal(entry.signal_id).status == SignalStatus.DONE


def test_a_healthy_300_s_futures_twap_completes_uncancelled(desk: Desk) -> None:
    entry = desk.entry(market="usdm", quantity="0.3", duration=300)
    cancels = desk.count("DELETE", FUTURES_CANCEL)

    cycles_until_ended(desk, entry.order_id, limit=70)

    assert desk.order(entry.order_id).status == OrderStatus.FILLED
    assert desk.applied(cancels) == 0 and not desk.events("pace")


def test_a_stuck_twap_is_cancelled_within_grace_plus_two_intervals_of_the_stall(
    desk: Desk,
) -> None:
    desk.set_price("BTCUSDT", "65000")
    entry = desk.entry(quantity="0.3", duration=300, limit_price="65000")
    desk.advance(125)  # two children filled at the limit
    desk.cycle()
    assert desk.fills_qty(entry.order_id) > 0
    desk.set_price("BTCUSDT", "66000")  # the market leaves the BUY limit behind

    ended_ms = cycles_until_ended(desk, entry.order_id, limit=40)

    venue_id = desk.order(entry.order_id).venue_id
    assert venue_id is not None
    children = list(desk.ctx.client.iter_algo_sub_orders(Market.SPOT, venue_id))
    first_missed = next(c for c in children if c.executedQty == 0)
    grace = D("0.1") * 300
    assert (ended_ms - first_missed.bookTime) / D(1000) <= grace + 2 * D(str(INTERVAL))
    (decision,) = desk.events("pace", order_id=entry.order_id)
    assert decision.data is not None
    assert decision.data["state"] == "stalled" and "unfilled since" in decision.message
    order = desk.order(entry.order_id)
    assert order.status == OrderStatus.CANCELLED and D(0) < order.executed_qty < D("0.3")
    assert desk.signal(entry.signal_id).status == SignalStatus.DONE  # what filled is kept


def test_readers_show_the_verdict_the_monitor_reached(desk: Desk) -> None:
    entry = desk.entry(quantity="0.3", duration=300)
    desk.advance(125)  # two children out (each in its own minute)
    desk.cycle()
    judged_at = from_ms(desk.clock.now_ms())
    desk.advance(40)  # time passes on the exchange; no cycle has read the children since

    ctx = desk.ctx
    published = verdicts.fetch(ctx.redis, ctx.settings.queue_name, [entry.order_id])
    with ctx.sessions() as session:
        (algo,) = working_algos(session, ctx.settings, now=judged_at, published=published)
    assert algo.source == "monitor" and algo.as_of == judged_at
    assert algo.verdict is not None and algo.verdict.state == "on_schedule"
    assert algo.verdict.children == 2 and algo.verdict.fill_fraction > 0
    assert int(algo.verdict.elapsed) == 125
