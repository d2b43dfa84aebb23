"""What an algo leaves, end to end on the paper exchange slicing as Binance does: a stuck exit
TWAP is cancelled and the position closed by market (the default for what reduces a
position); an entry's remainder goes out as its signal says (market; a limit, then market at
the signal's expiry); the position is protected throughout. Signals go through the
execution layer itself."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
import pytest

from app.models import OrderStatus, SignalStatus
from app.monitoring.cancels import cancel_algo
from tests.monitoring.conftest import BINANCE
from tests.monitoring.desk import Desk

D = Decimal
PAPER_CADENCE = BINANCE
INTERVAL = 5.0
SYMBOL = {"spot": "BTCUSDT", "usdm": "BTCUSDT.P"}
# What a market entry of 0.03 BTC holds: spot pays its 0.1 % fee in BTC.
HELD = {"spot": D("0.02997"), "usdm": D("0.03")}
LIVE = {"oco": "EXECUTING", "futures_conditional": "NEW"}


def run_until_ended(desk: Desk, order_id: int, *, limit: int = 80) -> None:
    for _ in range(limit):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(order_id).status != OrderStatus.WORKING:
            return
    raise AssertionError(f"order {order_id} still working after {limit} cycles")


def enter(desk: Desk, market: str) -> None:
    desk.set_price("BTCUSDT", "65000")
    entry = desk.submit(
        symbol=SYMBOL[market], quantity="0.03", take_profit="70000", stop_loss="60000"
    )
    assert desk.run(entry).status == "done"


def exit_twap(desk: Desk, market: str, **execution: Any) -> int:
    twap = {"type": "twap", "duration": 300, "limit_price": "65000", **execution}
    exit_id = desk.submit(action="exit", symbol=SYMBOL[market], side=None, execution=twap)
    assert desk.run(exit_id).status == "working"
    (order,) = desk.orders(signal_id=exit_id)
    return order.id


def stepped(quantity: Decimal) -> str:
    """A quantity as a spot bracket sells it: rounded down to BTC's step."""
    return f"{quantity.quantize(D('0.00001'), rounding=ROUND_DOWN).normalize():f}"


def live_brackets(desk: Desk) -> list[dict[str, Any]]:
    return [e for kind, status in LIVE.items() for e in desk.ledger(kind=kind)
            if e["status"] == status]  # fmt: skip


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_a_stuck_exit_twap_is_cancelled_and_the_position_closed_by_market(
    desk: Desk, market: str
) -> None:
    enter(desk, market)
    exit_id = exit_twap(desk, market)
    desk.advance(125)  # two children sold at the limit
    desk.cycle()
    desk.set_price("BTCUSDT", "64500")  # the market leaves the SELL limit behind

    run_until_ended(desk, exit_id)

    algo = desk.order(exit_id)
    assert algo.status == OrderStatus.CANCELLED and D(0) < algo.executed_qty < HELD[market]
    (decision,) = desk.events("pace", order_id=exit_id)
    assert decision.data is not None and decision.data["state"] == "stalled"
    (rest,) = desk.orders(signal_id=algo.signal_id, leg="exit-rest")
    assert rest.kind == "market" and rest.status == OrderStatus.FILLED
    assert rest.quantity == HELD[market] - algo.executed_qty
    assert rest.avg_price == D("64500")
    if market == "usdm":
        assert (rest.extra or {}).get("reduce_only") is True
    (position,) = desk.positions()
    assert position.status == "closed" and position.exit_quantity == HELD[market]
    assert algo.signal_id is not None
    signal = desk.signal(algo.signal_id)
    assert signal.status == SignalStatus.DONE
    assert "remainder (market): market filled" in (signal.status_reason or "")
    assert "position closed" in (signal.status_reason or "")
    desk.advance(INTERVAL)
    desk.cycle()
    assert not live_brackets(desk)  # nothing protects what is closed


def test_an_exit_twap_the_exchange_ends_short_is_closed_by_market(desk: Desk) -> None:
    enter(desk, "spot")
    # Both pace rules off: the TWAP runs to its end, the limit holding back its last children.
    pace = {"min_ratio": "0", "stall_seconds": "0"}
    twap = {"type": "twap", "duration": 300, "limit_price": "65000"}
    exit_id = desk.submit(action="exit", side=None, pace=pace, execution=twap)
    assert desk.run(exit_id).status == "working"
    (algo,) = desk.orders(signal_id=exit_id)
    desk.advance(125)
    desk.cycle()
    desk.set_price("BTCUSDT", "64500")

    run_until_ended(desk, algo.id)

    algo = desk.order(algo.id)
    assert algo.venue_status == "FINISHED" and algo.executed_qty < HELD["spot"]
    assert not desk.events("pace")
    (rest,) = desk.orders(signal_id=exit_id, leg="exit-rest")
    assert rest.status == OrderStatus.FILLED
    (position,) = desk.positions()
    assert position.status == "closed" and position.exit_quantity == HELD["spot"]


def test_an_operators_cancel_leaves_the_rest_of_the_position_bracketed(desk: Desk) -> None:
    enter(desk, "spot")
    exit_id = exit_twap(desk, "spot")
    desk.advance(125)
    desk.cycle()
    with desk.ctx.sessions() as session:
        cancel_algo(session, desk.ctx.client, exit_id, cause="operator", reason="enough",
                    by="admin-api", now=desk.ctx.clock.now())  # fmt: skip

    desk.advance(INTERVAL)
    desk.cycle()

    algo = desk.order(exit_id)
    assert algo.status == OrderStatus.CANCELLED
    assert not desk.orders(signal_id=algo.signal_id, leg="exit-rest")
    (position,) = desk.positions()
    left = HELD["spot"] - algo.executed_qty
    assert position.status == "open" and position.quantity - position.exit_quantity == left
    assert [e["quantity"] for e in live_brackets(desk)] == [f"{left.normalize():f}"]


def stuck_entry(desk: Desk, **execution: Any) -> tuple[str, int]:
    """A BUY TWAP limited at 65,000 that fills two children, then the market leaves it."""
    desk.set_price("BTCUSDT", "65000")
    twap = {"type": "twap", "duration": 300, "limit_price": "65000", **execution}
    deadline = desk.clock.now_ms() // 1000 + 400  # exchange time: the clock runs ahead
    signal_id = desk.submit(quantity="0.3", execution=twap, take_profit="70000",
                            stop_loss="60000", expires_at=deadline)  # fmt: skip
    assert desk.run(signal_id).status == "working"
    (algo,) = desk.orders(signal_id=signal_id)
    desk.advance(125)
    desk.cycle()
    desk.set_price("BTCUSDT", "65500")
    run_until_ended(desk, algo.id)
    return signal_id, algo.id


def test_an_entry_remainder_at_market_is_bought_and_bracketed_with_the_rest(desk: Desk) -> None:
    signal_id, algo_id = stuck_entry(desk, remainder="market")

    algo = desk.order(algo_id)
    assert algo.status == OrderStatus.CANCELLED and algo.executed_qty < D("0.3")
    entries = desk.orders(signal_id=signal_id, leg="entry")
    assert [(o.kind, o.status) for o in entries] == [
        ("twap", OrderStatus.CANCELLED), ("market", OrderStatus.FILLED),
    ]  # fmt: skip
    assert entries[1].quantity == D("0.3") - algo.executed_qty
    (position,) = desk.positions()
    assert position.quantity == D("0.3") * D("0.999")  # everything bought, less fees in BTC
    brackets = [o for o in desk.orders(position_id=position.id) if o.leg.startswith("bracket")]
    live = [(o.status, o.quantity) for o in brackets if o.status == OrderStatus.WORKING]
    assert live == [(OrderStatus.WORKING, position.quantity)]  # one bracket, for all of it
    # (earlier generations protected the TWAP's fills as they came, and were replaced)
    assert all(o.status == OrderStatus.CANCELLED for o in brackets if o.status != "working")
    assert desk.signal(signal_id).status == SignalStatus.DONE


def test_an_entry_remainder_limit_rests_then_goes_to_market_at_the_signals_expiry(
    desk: Desk,
) -> None:
    def market_runs_away(request: httpx.Request) -> None:
        order = request.method == "POST" and request.url.path == "/api/v3/order"
        if order and b"type=LIMIT" in request.content:
            desk.set_price("BTCUSDT", "66000")  # past the band before the limit lands

    desk.ctx.client._http.event_hooks["request"].append(market_runs_away)
    signal_id, algo_id = stuck_entry(desk, remainder="limit", max_slippage_bps="10")

    algo = desk.order(algo_id)
    (limit,) = [o for o in desk.orders(signal_id=signal_id, leg="entry") if o.kind == "limit"]
    assert limit.status == OrderStatus.WORKING and limit.price == D("65565.5")  # 65,500 + 10 bp
    assert limit.quantity == D("0.3") - algo.executed_qty
    # What filled is protected while the limit rests; the signal still works.
    (position,) = desk.positions()
    assert [e["quantity"] for e in live_brackets(desk)] == [stepped(position.quantity)]
    assert desk.signal(signal_id).status == SignalStatus.WORKING

    for _ in range(60):  # until the signal's expiry: the rest goes out at market
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.signal(signal_id).status != SignalStatus.WORKING:
            break

    limit = desk.order(limit.id)
    assert limit.status == OrderStatus.CANCELLED and limit.executed_qty == 0
    (market,) = desk.orders(signal_id=signal_id, leg="entry", kind="market")
    assert market.status == OrderStatus.FILLED and market.avg_price == D("66000")
    (position,) = desk.positions()
    assert position.quantity == D("0.3") * D("0.999")
    # The first bracket gave way to one for everything.
    assert [e["quantity"] for e in live_brackets(desk)] == [stepped(position.quantity)]
    signal = desk.signal(signal_id)
    assert signal.status == SignalStatus.DONE
    assert "limit cancelled 0, market filled" in (signal.status_reason or "")
