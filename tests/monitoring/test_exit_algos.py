"""Exits and closes executed as a TWAP: when the algo ends, the monitor takes its fills from
the position (closing it with its realised result) and never brackets what is closed; only a
remainder still open is protected again (with ``execution.remainder`` ``cancel``; the default
for exits, ``market``, is in ``test_remainders.py``). Signals go through the execution layer
itself."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.models import OrderStatus, SignalStatus
from tests.monitoring.desk import Desk

D = Decimal
SYMBOL = {"spot": "BTCUSDT", "usdm": "BTCUSDT.P"}
# What the entry of 0.03 BTC holds: spot pays its 0.1 % fee in BTC.
HELD = {"spot": D("0.02997"), "usdm": D("0.03")}
LIVE_BRACKET = {"spot": ("oco", "EXECUTING"), "usdm": ("futures_conditional", "NEW")}


def run_until_ended(desk: Desk, order_id: int, *, step: float = 100, limit: int = 12) -> None:
    for _ in range(limit):
        desk.advance(step)
        desk.cycle()
        if desk.order(order_id).status != OrderStatus.WORKING:
            return
    raise AssertionError(f"order {order_id} still working after {limit} cycles")


def enter(desk: Desk, market: str) -> str:
    desk.set_price("BTCUSDT", "65000")
    entry = desk.submit(
        symbol=SYMBOL[market], quantity="0.03", take_profit="70000", stop_loss="60000"
    )
    assert desk.run(entry).status == "done"
    return entry


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_exit_twap_that_ends_closes_the_position_and_brackets_nothing(
    desk: Desk, market: str
) -> None:
    enter(desk, market)
    exit_id = desk.submit(
        action="exit", symbol=SYMBOL[market], side=None, execution={"type": "twap", "duration": 600}
    )
    assert desk.run(exit_id).status == "working"
    (exit_order,) = desk.orders(signal_id=exit_id)

    run_until_ended(desk, exit_order.id)
    desk.advance(100)
    desk.cycle()  # one more cycle: nothing is placed for a closed position

    exit_order = desk.order(exit_order.id)
    assert exit_order.leg == "exit" and exit_order.status == OrderStatus.FILLED
    assert exit_order.executed_qty == HELD[market]
    (position,) = desk.positions()
    assert position.status == "closed" and position.closed_at is not None
    assert position.exit_quantity == HELD[market] and position.realized_pnl == 0
    signal = desk.signal(exit_id)
    assert signal.status == SignalStatus.DONE
    assert "position closed" in (signal.status_reason or "")
    # No bracket after the first (cancelled by the exit), and nothing live on the exchange.
    brackets = [o for o in desk.orders(position_id=position.id) if o.leg.startswith("bracket")]
    assert brackets and all(o.status == OrderStatus.CANCELLED for o in brackets)
    assert all(o.leg != "bracket2" for o in brackets)
    kind, live = LIVE_BRACKET[market]
    assert not [e for e in desk.ledger(kind=kind) if e["status"] == live]

    # The strategy can enter again: nothing open refuses it.
    again = desk.submit(symbol=SYMBOL[market], quantity="0.01")
    outcome = desk.run(again)
    assert outcome.status == "done", outcome.reason


def test_exit_twap_cancelled_part_way_with_remainder_cancel_brackets_only_the_rest(
    desk: Desk,
) -> None:
    enter(desk, "spot")
    execution = {"type": "twap", "duration": 600, "remainder": "cancel"}
    exit_id = desk.submit(action="exit", side=None, execution=execution)
    assert desk.run(exit_id).status == "working"
    (exit_order,) = desk.orders(signal_id=exit_id)

    desk.advance(100)
    desk.cycle()
    desk.fill_ratio(exit_order.client_id, "0")  # children stop executing: the stall ends it
    run_until_ended(desk, exit_order.id)

    exit_order = desk.order(exit_order.id)
    sold = exit_order.executed_qty
    assert exit_order.status == OrderStatus.CANCELLED and D(0) < sold < HELD["spot"]
    (position,) = desk.positions()
    assert position.status == "open" and position.exit_quantity == sold
    rebracket = [o for o in desk.orders(position_id=position.id) if o.leg == "bracket2"]
    assert [(o.kind, o.status, o.quantity) for o in rebracket] == [
        ("oco", OrderStatus.WORKING, HELD["spot"] - sold)
    ]
    assert [e["quantity"] for e in desk.ledger(kind="oco") if e["status"] == "EXECUTING"] == [
        f"{(HELD['spot'] - sold).normalize():f}"
    ]
