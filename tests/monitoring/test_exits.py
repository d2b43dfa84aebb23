"""Protect what filled, then watch the bracket: a leg that fills records the exit and the
position's realised result, and closes the position."""

from __future__ import annotations

from decimal import Decimal

from app.models import OrderStatus
from tests.monitoring.desk import Desk

D = Decimal
BRACKET = {"take_profit": {"price": "70000"}, "stop_loss": {"stop_price": "60000"}}
INTERVAL = 5.0


def finish_entry(desk: Desk, **entry: object) -> object:
    placed = desk.entry(bracket=BRACKET, **entry)  # type: ignore[arg-type]
    for _ in range(20):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(placed.order_id).status != OrderStatus.WORKING:
            return placed
    raise AssertionError("the entry did not end")


def test_laggard_cancelled_then_what_filled_is_protected(desk: Desk) -> None:
    entry = desk.entry(quantity="0.3", duration=60, bracket=BRACKET)
    desk.advance(10)
    desk.cycle()
    # Protected as it fills: the first children's coins are under an OCO already.
    (first,) = desk.orders(kind="oco", status=OrderStatus.WORKING)
    assert first.quantity is not None and D(0) < first.quantity < D("0.3")
    desk.fill_ratio(entry.client_id, "0")  # children stop executing: it falls behind

    for _ in range(10):
        desk.advance(INTERVAL)
        report = desk.cycle()
        if report.cancels:
            break

    order = desk.order(entry.order_id)
    assert order.status == OrderStatus.CANCELLED
    position = desk.position(entry.position_id)
    filled = desk.fills_qty(entry.order_id)
    assert D(0) < filled < D("0.3")
    assert position.quantity == filled - sum(f.fee for f in desk.fills(entry.order_id))
    (oco,) = desk.orders(kind="oco", status=OrderStatus.WORKING)
    assert oco.quantity is not None
    assert position.quantity - D("0.00001") < oco.quantity <= position.quantity


def test_spot_take_profit_fill_closes_the_position_with_its_pnl(desk: Desk) -> None:
    entry = finish_entry(desk, quantity="0.3", duration=30)
    position = desk.position(entry.position_id)  # type: ignore[attr-defined]
    (oco_row,) = desk.orders(kind="oco", status=OrderStatus.WORKING)
    assert oco_row.quantity == position.quantity

    desk.set_price("BTCUSDT", "70000")  # the take-profit (LIMIT_MAKER at 70000) fills
    report = desk.cycle()

    assert report.exits == 1
    oco_row = desk.order(oco_row.id)
    assert oco_row.status == OrderStatus.FILLED and oco_row.venue_status == "ALL_DONE"
    assert oco_row.extra is not None
    legs = {leg["type"]: leg["status"] for leg in oco_row.extra["legs"]}
    assert legs == {"LIMIT_MAKER": "FILLED", "STOP_LOSS": "EXPIRED"}
    closed = desk.position(position.id)
    assert closed.status == "closed" and closed.exit_quantity == oco_row.quantity
    assert closed.realized_pnl == oco_row.quantity * (D("70000") - D("65000"))
    (exit_event,) = desk.events("exit")
    assert "position closed" in exit_event.message
    assert desk.cycle().exits == 0  # settled once


def test_usdm_stop_fill_cancels_the_take_profit_and_closes(desk: Desk) -> None:
    entry = finish_entry(desk, market="usdm", quantity="0.1", duration=30)
    legs = desk.orders(kind="conditional", status=OrderStatus.WORKING)
    assert sorted(o.leg.rsplit("-", 1)[1] for o in legs) == ["sl", "tp"]
    assert {o.quantity for o in legs} == {D("0.1")}
    cancels = desk.count("DELETE", "/fapi/v1/algoOrder")

    desk.set_price("BTCUSDT", "59000")  # the stop (STOP_MARKET at 60000) triggers
    report = desk.cycle()

    assert report.exits == 1 and desk.applied(cancels) == 1
    by_leg = {o.leg.rsplit("-", 1)[1]: desk.order(o.id) for o in legs}
    assert by_leg["sl"].status == OrderStatus.FILLED
    assert by_leg["tp"].status == OrderStatus.CANCELLED
    position = desk.position(entry.position_id)  # type: ignore[attr-defined]
    assert position.status == "closed" and position.exit_quantity == D("0.1")
    exit_price = by_leg["sl"].avg_price
    assert exit_price is not None
    assert position.realized_pnl == D("0.1") * (exit_price - D("65000")) < 0


def test_bracket_that_failed_to_place_is_retried_once(desk: Desk) -> None:
    # The price the bracket is checked against cannot be read when the entry ends.
    desk.fault(action="fail_before", path="/api/v3/ticker/price", status=400, code=-1102, count=1)

    entry = finish_entry(desk, quantity="0.3", duration=30)

    (error,) = desk.events("monitor_error")
    assert "ticker/price" in error.message
    (row,) = desk.orders(kind="oco", status=OrderStatus.WORKING)
    assert row.position_id == entry.position_id  # type: ignore[attr-defined]
    assert row.quantity == desk.position(row.position_id).quantity
    assert desk.cycle().brackets_placed == 0
    # One exchange order per generation: the failed read placed nothing twice.
    assert len(desk.ledger(kind="oco")) == len(desk.orders(kind="oco"))
