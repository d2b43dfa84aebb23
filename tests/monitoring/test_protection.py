"""Never naked, as the monitor keeps it: a TWAP entry is protected as it fills, a bracket lost
outside Pacekeeper comes back, a stop crossed while the entry buys stops the position out,
and an entry that filled nothing leaves no position behind."""

from __future__ import annotations

from decimal import Decimal

from app.execution.protection import held
from app.models import OrderStatus
from tests.monitoring.desk import Desk

D = Decimal
BRACKET = {"take_profit": {"price": "70000"}, "stop_loss": {"stop_price": "60000"}}
INTERVAL = 5.0


def live(desk: Desk, kind: str) -> list:
    return [
        o
        for o in desk.orders(kind=kind)
        if o.status in (OrderStatus.WORKING, OrderStatus.PLANNED, OrderStatus.SENDING)
    ]


def test_a_twap_entry_is_protected_as_it_fills_never_beyond_what_it_holds(desk: Desk) -> None:
    entry = desk.entry(quantity="0.3", duration=60, bracket=BRACKET)
    covered_each_cycle = []
    for _ in range(16):
        desk.advance(INTERVAL)
        desk.cycle()
        position = desk.position(entry.position_id)
        ocos = live(desk, "oco")
        assert len(ocos) <= 1
        covered = ocos[0].quantity if ocos else D(0)
        # Never more than held (it could not be sold), never more than a step short.
        assert covered <= held(position)
        if held(position) > 0:
            assert held(position) - covered < D("0.00001")
        covered_each_cycle.append(covered)
        if desk.order(entry.order_id).status != OrderStatus.WORKING:
            break
    # Protected from the first cycle with fills, and resized as the fills arrived.
    assert covered_each_cycle[0] > 0
    assert len({c for c in covered_each_cycle}) >= 3
    assert covered_each_cycle == sorted(covered_each_cycle)
    assert desk.position(entry.position_id).quantity == covered_each_cycle[-1]


def test_usdm_entry_is_protected_as_it_fills_with_reduce_only_legs(desk: Desk) -> None:
    entry = desk.entry(market="usdm", quantity="0.3", duration=60, bracket=BRACKET)
    desk.advance(INTERVAL * 2)
    desk.cycle()
    desk.advance(INTERVAL * 2)
    desk.cycle()
    position = desk.position(entry.position_id)
    legs = live(desk, "conditional")
    assert sorted(o.leg.rsplit("-", 1)[1] for o in legs) == ["sl", "tp"]
    for leg in legs:
        assert leg.quantity is not None and D(0) < leg.quantity <= held(position)
        assert leg.params is not None and leg.params.get("reduce_only") is not False
    placed = {e["client_id"]: e for e in desk.ledger(kind="futures_conditional")}
    for leg in legs:
        assert placed[leg.client_id]["status"] == "NEW"


def test_a_bracket_cancelled_outside_is_placed_again_next_cycle(desk: Desk) -> None:
    entry = desk.entry(quantity="0.03", duration=30, bracket=BRACKET)
    for _ in range(10):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(entry.order_id).status != OrderStatus.WORKING:
            break
    (oco,) = live(desk, "oco")
    # A human cancels it in Binance's app.
    desk.ctx.client.cancel_order_list("BTCUSDT", list_client_order_id=oco.client_id)

    report = desk.cycle()

    assert desk.order(oco.id).status == OrderStatus.CANCELLED
    (again,) = live(desk, "oco")
    assert again.id != oco.id and again.status == OrderStatus.WORKING
    assert again.quantity == oco.quantity
    assert report.brackets_placed == 1
    assert [e["status"] for e in desk.ledger(kind="oco")][-1] == "EXECUTING"


def test_a_stop_crossed_while_the_entry_buys_cancels_it_and_closes_what_filled(
    desk: Desk,
) -> None:
    entry = desk.entry(quantity="0.3", duration=60, bracket=BRACKET)
    desk.advance(INTERVAL * 2)
    desk.cycle()
    bought = desk.fills_qty(entry.order_id)
    assert bought > 0

    desk.set_price("BTCUSDT", "59000")  # through the stop while the TWAP still buys
    report = desk.cycle()

    # The exchange's stop sold what it covered; the entry would go on buying below the stop:
    # the same cycle cancels it and closes whatever it bought since.
    assert report.stop_outs == 1
    assert desk.order(entry.order_id).status == OrderStatus.CANCELLED
    desk.advance(INTERVAL * 4)
    desk.cycle()
    position = desk.position(entry.position_id)
    assert position.status == "closed" and held(position) == 0
    assert position.exit_quantity == position.quantity >= bought * D("0.999")
    (event,) = desk.events("stop_out")
    assert "crossed the stop" in event.message


def test_an_alert_only_stop_crossed_records_an_unprotected_event_and_sends_nothing(
    desk: Desk,
) -> None:
    levels = {**BRACKET, "stop_loss": {"stop_price": "60000", "if_crossed": "alert"}}
    entry = desk.entry(quantity="0.3", duration=60, bracket=levels)
    desk.advance(INTERVAL * 2)
    desk.cycle()
    desk.set_price("BTCUSDT", "59000")
    desk.cycle()

    assert desk.order(entry.order_id).status == OrderStatus.WORKING
    assert not desk.orders(kind="market")
    (event,) = desk.events("unprotected")
    assert "if_crossed: alert" in event.message


def test_an_entry_that_fills_nothing_closes_its_position(desk: Desk) -> None:
    entry = desk.entry(quantity="0.3", duration=60, bracket=BRACKET)
    desk.fill_ratio(entry.client_id, "0")
    for _ in range(20):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(entry.order_id).status != OrderStatus.WORKING:
            break
    desk.cycle()
    position = desk.position(entry.position_id)
    assert position.status == "closed" and position.quantity == 0
    assert position.closed_at is not None  # closed positions say when
    assert position.bracket_note == "entry ended with nothing filled"
    assert not desk.orders(kind="oco")
    # ... so the strategy's next entry on the symbol is not refused by a stale position.
    again = desk.submit(quantity="0.01")
    assert desk.run(again).status == "done"


def test_a_stop_limit_the_price_gapped_past_is_stopped_out_at_market(desk: Desk) -> None:
    levels = {
        "take_profit": {"price": "70000"},
        "stop_loss": {"stop_price": "60000", "limit_price": "59700", "type": "limit"},
    }
    entry = desk.entry(quantity="0.03", duration=30, bracket=levels)
    for _ in range(10):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(entry.order_id).status != OrderStatus.WORKING:
            break
    (oco,) = live(desk, "oco")
    assert oco.extra is not None and oco.extra["below"]["type"] == "STOP_LOSS_LIMIT"

    # The market jumps from above the stop to below its limit: the stop triggers, its
    # limit sell rests unfilled, and the list still reads EXECUTING.
    desk.paper("POST", "/gap", {"symbol": "BTCUSDT", "from": "60500", "to": "58000"})
    report = desk.cycle()

    assert report.stop_outs == 1
    position = desk.position(entry.position_id)
    assert position.status == "closed" and held(position) == 0
    (close,) = desk.orders(kind="market")
    assert close.leg.startswith("close-stop") and close.status == OrderStatus.FILLED
    assert desk.order(oco.id).status == OrderStatus.CANCELLED
    (event,) = desk.events("stop_out")
    assert "gapped past the stop-limit" in event.message


def test_a_stop_out_ends_the_entry_signal_so_the_next_entry_is_not_refused(desk: Desk) -> None:
    entry = desk.entry(quantity="0.3", duration=60, bracket=BRACKET)
    desk.advance(INTERVAL * 2)
    desk.cycle()
    desk.set_price("BTCUSDT", "59000")
    desk.cycle()
    assert desk.order(entry.order_id).status == OrderStatus.CANCELLED

    signal = desk.signal(entry.signal_id)
    assert signal.status == "cancelled"
    assert "stop-out" in (signal.status_reason or "")
    desk.advance(INTERVAL)
    desk.cycle()
    assert desk.position(entry.position_id).status == "closed"
    again = desk.submit(quantity="0.01")
    assert desk.run(again).status == "done"


def test_less_than_a_lot_left_by_the_exchanges_stop_while_the_entry_bought_closes_it(
    desk: Desk,
) -> None:
    # Children of 0.25/60 BTC less the 0.1 % fee: the holding has digits below the lot step,
    # the bracket covers it rounded down, and the stop sells exactly that.
    entry = desk.entry(quantity="0.25", duration=60, bracket=BRACKET)
    desk.advance(INTERVAL * 4)
    desk.cycle()
    desk.set_price("BTCUSDT", "59000")  # the OCO's stop sells what it covers, now
    desk.cycle()  # records that exit, then stops the entry out: only dust is left

    position = desk.position(entry.position_id)
    assert position.status == "closed"
    assert D(0) < held(position) < D("0.00001")
    assert not desk.events("unprotected")
    assert desk.signal(entry.signal_id).status == "cancelled"
    again = desk.submit(quantity="0.01")
    assert desk.run(again).status == "done"


def test_dust_left_after_an_exit_closes_the_position_once_its_entry_ends(desk: Desk) -> None:
    # An entry the pace policy never cancels, so it ends after the exit was recorded.
    entry = desk.entry(quantity="0.25", duration=60, bracket=BRACKET, pace={"min_ratio": 0})
    desk.advance(INTERVAL * 4)
    desk.cycle()
    desk.fill_ratio(entry.client_id, "0")  # the entry buys nothing more
    desk.set_price("BTCUSDT", "59000")  # the OCO's stop sells what it covers ...
    desk.set_price("BTCUSDT", "65000")  # ... and the price is back before the next cycle
    desk.cycle()
    assert desk.position(entry.position_id).status == "open"  # the entry may still buy
    for _ in range(20):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(entry.order_id).status != OrderStatus.WORKING:
            break
    desk.cycle()

    assert desk.signal(entry.signal_id).status == "done"
    position = desk.position(entry.position_id)
    assert position.status == "closed"
    assert D(0) < held(position) < D("0.00001")
    again = desk.submit(quantity="0.01")
    assert desk.run(again).status == "done"


def test_a_gap_past_a_stop_limit_stops_out_and_cancels_the_resting_leg(desk: Desk) -> None:
    levels = {**BRACKET, "stop_loss": {"stop_price": "60000", "limit_price": "59900"}}
    entry = desk.entry(quantity="0.03", duration=30, bracket=levels)
    for _ in range(10):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(entry.order_id).status != OrderStatus.WORKING:
            break
    desk.cycle()
    (oco,) = live(desk, "oco")
    start = D(desk.paper("GET", "/balances")["spot"]["BTC"]["free"]) + oco.quantity

    # One jump past the stop and its limit: the stop leg triggers, its OCO list is done,
    # and the leg rests as a limit sell above the market.
    desk.set_price("BTCUSDT", "59000")
    report = desk.cycle()

    assert report.stop_outs == 1
    assert desk.ctx.client.open_orders("BTCUSDT") == []  # the resting leg was cancelled
    position = desk.position(entry.position_id)
    assert position.status == "closed" and position.exit_quantity == oco.quantity
    (close,) = desk.orders(kind="market")
    assert close.executed_qty == oco.quantity
    # The price comes back through the old limit: nothing else sells.
    desk.set_price("BTCUSDT", "65000")
    desk.advance(INTERVAL)
    desk.cycle()
    btc = desk.paper("GET", "/balances")["spot"]["BTC"]
    assert D(btc["free"]) + D(btc["locked"]) == start - oco.quantity


def test_cancelling_a_bracket_whose_leg_already_filled_records_the_exit(desk: Desk) -> None:
    from app.execution.cancels import cancel_order

    entry = desk.entry(quantity="0.03", duration=30, bracket=BRACKET)
    for _ in range(10):
        desk.advance(INTERVAL)
        desk.cycle()
        if desk.order(entry.order_id).status != OrderStatus.WORKING:
            break
    desk.cycle()
    (oco,) = live(desk, "oco")
    desk.set_price("BTCUSDT", "71000")  # the take-profit fills before the monitor looks

    # A replacement (or a close) cancels it first: the list is done, the exit is not lost.
    ended = cancel_order(desk.ctx, oco.id, reason="replaced")

    assert ended.status == OrderStatus.FILLED
    assert ended.executed_qty == oco.quantity
    assert desk.fills_qty(oco.id) == oco.quantity


def test_a_small_usdm_entry_is_protected_lot_by_lot_as_it_fills(desk: Desk) -> None:
    # 0.02 BTC over 10 minutes: each interval adds a lot (0.001 BTC, 65 USDT) at most, less
    # than USD-M's minimum notional of 100 USDT. The replacement sells the whole holding, so
    # each lot is covered by the end of the interval it arrived in.
    entry = desk.entry(
        market="usdm", quantity="0.02", duration=600, bracket=BRACKET, pace={"min_ratio": 0}
    )
    seen = set()
    for _ in range(40):
        desk.advance(INTERVAL)
        desk.cycle()
        holding = held(desk.position(entry.position_id))
        stops = [o for o in live(desk, "conditional") if o.leg.endswith("-sl")]
        covered = sum((o.quantity or D(0) for o in stops), D(0))
        assert covered == holding
        seen.add(holding)
    assert len(seen) >= 3
