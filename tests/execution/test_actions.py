"""Each action on spot and USD-M, placed on the paper exchange over real HTTP; the paper
ledger says what was placed, the database what we recorded."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from app.db import session_scope
from app.exchange.ids import client_algo_id, client_order_id
from app.execution.brackets import bracket_key
from app.execution.context import ExecContext
from app.execution.resting import follow_resting_orders
from app.models import Event, OrderStatus
from tests.execution.conftest import (
    event_kinds,
    ledger,
    orders,
    positions,
    run,
    set_price,
    signal_row,
    submit,
)

D = Decimal
pytestmark = pytest.mark.slow


def test_market_entry_brackets_what_it_received_net_of_base_asset_fees(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01", take_profit="70000", stop_loss={"stop_price": "60000"})

    outcome = run(ctx, sid)

    assert outcome.status == "done", outcome.reason
    entry, oco = orders(ctx, sid)
    assert (entry.leg, entry.status, entry.executed_qty) == ("entry", "filled", D("0.01"))
    (position,) = positions(ctx)
    # The paper exchange charges 0.1 % of what a spot order receives, in that asset.
    assert position.quantity == D("0.00999")
    assert (oco.kind, oco.status, oco.side, oco.quantity) == (
        "oco",
        "working",
        "SELL",
        D("0.00999"),
    )
    (placed,) = ledger(control, kind="oco")
    assert placed["quantity"] == "0.00999" and placed["client_id"] == client_order_id(
        bracket_key(position.id), "bracket"
    )
    # The stop is a STOP_LOSS (market once triggered) unless the signal asks for a limit.
    assert placed["order_type"] == "LIMIT_MAKER/STOP_LOSS"
    assert len(ledger(control, kind="spot_order")) == 1
    kinds = event_kinds(ctx, sid)
    for kind in ("planned", "sent", "accepted", "bracket"):
        assert kind in kinds
    assert signal_row(ctx, sid).status == "done"


def test_spot_twap_entry_with_levels_is_working_with_a_pending_bracket(
    ctx: ExecContext, control: httpx.Client
) -> None:
    sid = submit(
        ctx, quantity="0.05", execution={"type": "twap", "duration": 600, "limit_price": "66000"},
        take_profit="70000", stop_loss={"stop_price": "60000", "limit_price": "59900"},
    )  # fmt: skip

    outcome = run(ctx, sid)

    assert outcome.status == "working", outcome.reason
    (twap,) = orders(ctx, sid)
    assert twap.client_id == client_algo_id(sid, "entry") and len(twap.client_id) == 32
    assert twap.venue_id is not None and twap.status == "working"  # algoId found and stored
    (position,) = positions(ctx)
    assert position.quantity == 0 and position.pending_bracket == {
        "take_profit": {"price": "70000"},
        "stop_loss": {
            "stop_price": "60000", "limit_price": "59900", "type": "limit", "if_crossed": "exit"
        },
    }  # fmt: skip
    (placed,) = ledger(control, kind="spot_twap")
    assert placed["id"] == twap.venue_id and placed["client_id"] == twap.client_id


@pytest.mark.parametrize(
    ("execution", "kind", "ledger_kind"),
    [
        ({"type": "market"}, "market", "futures_order"),
        ({"type": "limit", "price": "63000"}, "limit", "futures_order"),
        ({"type": "twap", "duration": 600}, "twap", "futures_twap"),
        ({"type": "vp", "urgency": "medium"}, "vp", "futures_vp"),
    ],
)
def test_usdm_entries(
    ctx: ExecContext, control: httpx.Client, execution: dict[str, str], kind: str, ledger_kind: str
) -> None:
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.5", execution=execution)

    outcome = run(ctx, sid)

    (order,) = orders(ctx, sid)
    assert order.kind == kind
    (placed,) = ledger(control, kind=ledger_kind)
    assert placed["client_id"] == order.client_id and placed["quantity"] == "0.5"
    expected = "done" if kind == "market" else "working"
    assert outcome.status == expected, outcome.reason


def test_usdm_market_entry_protects_with_close_position_conditionals(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.02", take_profit="70000", stop_loss="60000")

    assert run(ctx, sid).status == "done"

    entry, tp, sl = orders(ctx, sid)
    assert entry.status == "filled"
    assert [(o.kind, o.side, o.status) for o in (tp, sl)] == [
        ("conditional", "SELL", "working")
    ] * 2
    placed = ledger(control, kind="futures_conditional")
    assert sorted(p["order_type"] for p in placed) == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]
    assert {p["client_id"] for p in placed} == {tp.client_id, sl.client_id}


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_exit_cancels_the_bracket_then_closes_at_market(
    ctx: ExecContext, control: httpx.Client, market: str
) -> None:
    symbol = "BTCUSDT" if market == "spot" else "BTCUSDT.P"
    set_price(control, "BTCUSDT", "65000")
    entry_id = submit(ctx, symbol=symbol, quantity="0.02", take_profit="70000", stop_loss="60000")
    assert run(ctx, entry_id).status == "done"

    exit_id = submit(ctx, action="exit", symbol=symbol, side=None)
    outcome = run(ctx, exit_id)

    assert outcome.status == "done", outcome.reason
    brackets = [o for o in orders(ctx, entry_id) if o.leg.startswith("bracket")]
    assert brackets and all(o.status == OrderStatus.CANCELLED.value for o in brackets)
    (close,) = orders(ctx, exit_id)
    held = D("0.01998") if market == "spot" else D("0.02")  # spot: net of the 0.1 % fee
    assert (close.leg, close.side, close.status, close.quantity) == ("exit", "SELL", "filled", held)
    (position,) = positions(ctx)
    assert position.status == "closed" and position.exit_quantity == held
    kind = "spot_order" if market == "spot" else "futures_order"
    assert [e["side"] for e in ledger(control, kind=kind)] == ["BUY", "SELL"]


def test_tp_signal_replaces_the_spot_bracket_keeping_the_stop(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    entry_id = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000")
    assert run(ctx, entry_id).status == "done"

    tp_id = submit(ctx, action="tp", side=None, execution={"type": "limit", "price": "72000"})
    outcome = run(ctx, tp_id)

    assert outcome.status == "done", outcome.reason
    old = next(o for o in orders(ctx, entry_id) if o.kind == "oco")
    (new,) = orders(ctx, tp_id)
    assert old.status == "cancelled" and new.status == "working" and new.kind == "oco"
    (position,) = positions(ctx)
    # Bracket ids derive from (position, generation), whoever places it.
    assert new.client_id == client_order_id(bracket_key(position.id), "bracket2")
    assert position.bracket_gen == 2
    assert new.extra is not None and new.extra["above"]["price"] == "72000"
    assert new.extra["below"]["stop_price"] == "60000"
    assert position.pending_bracket == {
        "take_profit": {"price": "72000"},
        "stop_loss": {"stop_price": "60000", "type": "market", "if_crossed": "exit"},
    }
    assert [e["status"] for e in ledger(control, kind="oco")] == ["ALL_DONE", "EXECUTING"]


def test_sl_signal_on_usdm_places_the_new_bracket_before_cancelling_the_old(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    entry_id = submit(ctx, symbol="BTCUSDT.P", quantity="0.02", take_profit="70000",
                      stop_loss="60000")  # fmt: skip
    assert run(ctx, entry_id).status == "done"

    sl_id = submit(ctx, action="sl", symbol="BTCUSDT.P", side=None,
                   execution={"type": "limit", "price": "62000"})  # fmt: skip
    assert run(ctx, sl_id).status == "done"

    by_leg = {o.leg: o.status for o in orders(ctx, entry_id)}
    assert by_leg == {"entry": "filled", "bracket-tp": "cancelled", "bracket-sl": "cancelled"}
    new = {o.leg: o for o in orders(ctx, sl_id)}
    assert {leg: (o.stop_price, o.status, o.quantity) for leg, o in new.items()} == {
        "bracket2-tp": (D("70000"), "working", D("0.02")),
        "bracket2-sl": (D("62000"), "working", D("0.02")),
    }
    # Reduce-only orders for the position's own quantity, the new ones accepted before the
    # old ones were cancelled: never a moment without a stop.
    with session_scope(ctx.sessions) as session:
        history = list(session.scalars(select(Event).order_by(Event.id)))
    old_ids = {o.id for o in orders(ctx, entry_id) if o.leg.startswith("bracket")}
    new_ids = {o.id for o in new.values()}
    accepted = [e.id for e in history if e.kind == "accepted" and e.order_id in new_ids]
    cancelled = [e.id for e in history if e.kind == "cancelled" and e.order_id in old_ids]
    assert len(accepted) == 2 and len(cancelled) == 2 and max(accepted) < min(cancelled)


def test_standalone_tp_without_position_places_a_take_profit_limit(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, action="tp", side="sell", quantity="0.01",
                 execution={"type": "limit", "price": "70000"})  # fmt: skip

    assert run(ctx, sid).status == "done"

    (order,) = orders(ctx, sid)
    assert (order.kind, order.side, order.price, order.stop_price) == (
        "take_profit_limit", "SELL", D("70000"), D("70000"),
    )  # fmt: skip
    (placed,) = ledger(control, kind="spot_order")
    assert placed["order_type"] == "TAKE_PROFIT_LIMIT"


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_cancel_by_target_stops_a_working_twap_and_cancels_the_signal(
    ctx: ExecContext, control: httpx.Client, market: str
) -> None:
    symbol = "BTCUSDT" if market == "spot" else "BTCUSDT.P"
    entry_id = submit(ctx, id="tv-twap-1", symbol=symbol, quantity="0.05",
                      execution={"type": "twap", "duration": 600}, strategy="s1")  # fmt: skip
    assert run(ctx, entry_id).status == "working"

    cancel_id = submit(ctx, action="cancel", target_id="tv-twap-1", side=None, symbol=None)
    outcome = run(ctx, cancel_id)

    assert outcome.status == "done", outcome.reason
    (twap,) = orders(ctx, entry_id)
    assert twap.status == "cancelled"
    assert signal_row(ctx, entry_id).status == "cancelled"
    (placed,) = ledger(control, kind="spot_twap" if market == "spot" else "futures_twap")
    assert placed["status"] == "CANCELLED"
    (position,) = positions(ctx)
    assert position.status == "closed"  # nothing had filled


def test_cancel_by_symbol_and_strategy_cancels_a_queued_signal_before_it_runs(
    ctx: ExecContext, control: httpx.Client
) -> None:
    queued = submit(ctx, quantity="0.01", strategy="s2")
    cancel_id = submit(ctx, action="cancel", strategy="s2", side=None)

    assert run(ctx, cancel_id).status == "done"
    assert signal_row(ctx, queued).status == "cancelled"
    assert run(ctx, queued).status == "skipped"
    assert ledger(control) == []


def test_exit_during_a_twap_entry_cancels_it_and_sells_what_it_bought(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    entry_id = submit(ctx, quantity="0.06", execution={"type": "twap", "duration": 600},
                      take_profit="70000", stop_loss="60000")  # fmt: skip
    assert run(ctx, entry_id).status == "working"
    control.post("/clock", json={"advance": 100}).raise_for_status()  # 10 of 60 slices

    outcome = run(ctx, submit(ctx, action="exit", side=None))

    assert outcome.status == "done", outcome.reason
    (twap,) = orders(ctx, entry_id)
    assert twap.status == "cancelled" and twap.executed_qty == D("0.01")
    assert signal_row(ctx, entry_id).status == "cancelled"
    (position,) = positions(ctx)
    # Bought 0.01 in TWAP slices, 0.1 % of each taken in BTC: 0.00999 held and sold.
    assert position.quantity == D("0.00999") and position.exit_quantity == D("0.00999")
    assert position.status == "closed"
    sells = [e for e in ledger(control, kind="spot_order") if e["side"] == "SELL"]
    assert [e["quantity"] for e in sells] == ["0.00999"]
    assert ledger(control, kind="oco") == []  # never bracketed: it was closed instead


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_resting_limit_entry_is_followed_until_filled_then_bracketed(
    ctx: ExecContext, control: httpx.Client, market: str
) -> None:
    symbol = "BTCUSDT" if market == "spot" else "BTCUSDT.P"
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, symbol=symbol, quantity="0.01", execution={"type": "limit", "price": "64000"},
                 take_profit="70000", stop_loss="60000")  # fmt: skip
    assert run(ctx, sid).status == "working"
    assert follow_resting_orders(ctx) == 0  # still resting: nothing changed

    set_price(control, "BTCUSDT", "63900")
    control.post("/clock", json={"advance": 2}).raise_for_status()
    assert follow_resting_orders(ctx) == 1

    entry, *brackets = orders(ctx, sid)
    assert entry.status == "filled" and entry.executed_qty == D("0.01")
    assert brackets and all(b.status == "working" for b in brackets)
    (position,) = positions(ctx)
    assert position.quantity > 0 and position.entry_avg_price == D("64000")
    assert signal_row(ctx, sid).status == "done"
    assert follow_resting_orders(ctx) == 0


def test_monitor_cycle_follows_a_resting_limit_entry(
    ctx: ExecContext, control: httpx.Client
) -> None:
    from app.monitoring.service import run_cycle

    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01", execution={"type": "limit", "price": "64000"},
                 take_profit="70000", stop_loss="60000")  # fmt: skip
    assert run(ctx, sid).status == "working"
    assert run_cycle(ctx).resting_orders_changed == 0

    set_price(control, "BTCUSDT", "63900")
    control.post("/clock", json={"advance": 2}).raise_for_status()
    report = run_cycle(ctx)

    assert report.resting_orders_changed == 1
    entry, *brackets = orders(ctx, sid)
    assert entry.status == "filled" and brackets
    assert signal_row(ctx, sid).status == "done"
