"""Restart and drift: algos that ended while nobody watched converge (bracket placed once),
what the exchange has that we never placed is flagged once."""

from __future__ import annotations

from decimal import Decimal

from app.exchange.filters import Market
from app.models import OrderStatus, SignalStatus
from app.monitoring.reconcile import INVISIBLE_AFTER
from paper.clock import ManualClock
from tests.monitoring.desk import Desk

D = Decimal
BRACKET = {"take_profit": {"price": "70000"}, "stop_loss": {"stop_price": "60000"}}


def test_restart_converges_algos_that_ended_while_down(desk: Desk) -> None:
    finished = desk.entry(quantity="0.3", duration=30, bracket=BRACKET)
    cancelled = desk.entry(quantity="0.2", duration=30)
    desk.advance(3)
    found = desk.ctx.client.find_algo(Market.SPOT, cancelled.client_id)
    assert found is not None
    desk.ctx.client.cancel_algo(Market.SPOT, found.algoId)  # by hand, on the exchange
    desk.advance(60)  # the monitor was down all along

    report = desk.reconcile()

    assert not report.skipped and report.cycle.finished == 2 and report.cycle.cancels == 0
    order = desk.order(finished.order_id)
    assert order.status == OrderStatus.FILLED and order.executed_qty == D("0.3")
    assert (
        desk.fills_qty(finished.order_id) == D("0.3") and len(desk.fills(finished.order_id)) == 30
    )
    position = desk.position(finished.position_id)
    assert position.quantity == D("0.2997")  # 0.3 less the 0.1% fee taken in BTC
    (oco,) = desk.ledger(kind="oco")
    assert oco["quantity"] == "0.2997" and oco["side"] == "SELL"
    assert desk.signal(finished.signal_id).status == SignalStatus.DONE
    gone = desk.order(cancelled.order_id)
    assert gone.status == OrderStatus.CANCELLED and gone.executed_qty == desk.fills_qty(gone.id)
    signal = desk.signal(cancelled.signal_id)
    assert signal.status == SignalStatus.DONE  # it had filled some before the hand cancel
    assert "cancelled on the exchange, not by Pacekeeper" in (signal.status_reason or "")

    again = desk.reconcile()
    desk.cycle()
    assert again.cycle.finished == 0 and again.cycle.brackets_placed == 0
    assert len(desk.ledger(kind="oco")) == 1  # the bracket was placed once


def test_foreign_orders_are_flagged_once(desk: Desk) -> None:
    ours = desk.entry(duration=600)
    client = desk.ctx.client
    client.new_spot_twap(
        symbol="ETHUSDT", side="BUY", quantity=D("1"), duration=600, client_algo_id="f" * 32
    )
    client.new_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", time_in_force="GTC", quantity=D("0.01"),
        price=D("50000"), new_client_order_id="manual-order-1",
    )  # fmt: skip

    first = desk.reconcile()
    second = desk.reconcile()

    assert len(first.foreign) == 2 and second.foreign == []
    messages = sorted(e.message for e in desk.events("foreign"))
    assert len(messages) == 2
    assert "spot TWAP BUY 1" in messages[1] and "ETHUSDT" in messages[1]
    assert "spot LIMIT BUY 0.01" in messages[0]
    assert all(ours.client_id not in m for m in messages)
    assert not desk.events("drift")


def test_working_order_the_exchange_does_not_have_is_drift(desk: Desk) -> None:
    # The order's age is judged on the context's clock: stepped past INVISIBLE_AFTER.
    desk.ctx.clock = clock = ManualClock()
    ghost = desk.entry(place=False)  # the database says working; the exchange never had it
    desk.advance(60)
    clock.advance(INVISIBLE_AFTER.total_seconds() - 60)

    desk.reconcile()  # young: could still be read-after-write lag
    assert not desk.events("drift")
    clock.advance(120)
    # An account without USD-M access: those listings fail, the spot picture is still whole.
    desk.fault(action="fail_before", path="/fapi/", status=401, code=-2015, msg="Invalid API-key")
    report = desk.reconcile()
    desk.reconcile()

    assert report.listing_errors == 2 and report.drift == [f"order:{ghost.order_id}"]
    (drift,) = desk.events("drift")
    assert drift.order_id == ghost.order_id
    assert desk.order(ghost.order_id).status == OrderStatus.WORKING  # flagged, not guessed
