"""Exits and tp/sl signals never leave a position bare, and never sell what no signal bought."""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy import select

from app.db import session_scope
from app.execution.context import ExecContext
from app.execution.protection import held, protect_position
from app.execution.resting import follow_resting_orders
from app.models import Event, Position
from tests.execution.conftest import (
    Paper,
    fault,
    ledger,
    orders,
    positions,
    run,
    set_price,
    signal_row,
    submit,
)

D = Decimal


def enter(ctx: ExecContext, control: httpx.Client, **fields: object) -> str:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000", **fields)
    outcome = run(ctx, sid)
    assert outcome.status == "done", outcome.reason
    return sid


def events(ctx: ExecContext) -> list[Event]:
    with session_scope(ctx.sessions) as session:
        return list(session.scalars(select(Event).order_by(Event.id)))


def working_brackets(ctx: ExecContext) -> list:
    return [o for o in orders(ctx) if o.leg.startswith("bracket") and o.status == "working"]


def test_an_exit_refused_by_planning_leaves_the_bracket_in_place(
    ctx: ExecContext, control: httpx.Client
) -> None:
    enter(ctx, control)
    (oco,) = working_brackets(ctx)

    # 0.00999 BTC at 65,000 is far below the TWAP minimum of 1,000 USDT.
    sl = submit(ctx, action="sl", side=None, execution={"type": "twap", "duration": 600})
    outcome = run(ctx, sl)

    assert outcome.status == "refused" and "at least 1000" in (outcome.reason or "")
    assert [o.id for o in working_brackets(ctx)] == [oco.id]
    assert [e["status"] for e in ledger(control, kind="oco")] == ["EXECUTING"]


def test_an_exit_the_exchange_rejects_restores_the_bracket_in_the_same_job(
    ctx: ExecContext, control: httpx.Client
) -> None:
    enter(ctx, control)
    (oco,) = working_brackets(ctx)
    refusal = "Account has insufficient balance for requested action."
    fault(control, action="fail_before", path="/api/v3/order", method="POST", status=400,
          code=-2010, msg=refusal, count=1)  # fmt: skip

    outcome = run(ctx, submit(ctx, action="exit", side=None))

    assert outcome.status == "failed" and "-2010" in (outcome.reason or "")
    (position,) = positions(ctx)
    assert position.status == "open"
    (restored,) = working_brackets(ctx)
    assert restored.id != oco.id and restored.quantity == oco.quantity == held(position)
    assert [e["status"] for e in ledger(control, kind="oco")] == ["ALL_DONE", "EXECUTING"]


def test_an_exit_with_no_position_is_refused_and_sells_nothing(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, action="exit", side="sell", quantity="0.01")

    outcome = run(ctx, sid)

    assert outcome.status == "refused"
    assert "nothing to close" in (outcome.reason or "")
    assert orders(ctx, sid) == []
    assert ledger(control, kind="spot_order") == []


def test_an_exit_never_sells_more_than_the_position_holds(
    ctx: ExecContext, control: httpx.Client
) -> None:
    enter(ctx, control)
    (position,) = positions(ctx)

    outcome = run(ctx, submit(ctx, action="exit", side=None, quantity="5"))

    assert outcome.status == "done", outcome.reason
    (sold,) = ledger(control, kind="spot_order")[1:]
    assert D(sold["quantity"]) == held(position) == D("0.00999")
    (closed,) = positions(ctx)
    assert closed.status == "closed"
    assert signal_row(ctx, closed.opened_by or "").status == "done"


def test_two_strategies_on_one_usdm_symbol_each_keep_their_own_stop(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    for strategy, quantity in (("alpha", "0.02"), ("beta", "0.05")):
        sid = submit(ctx, symbol="BTCUSDT.P", quantity=quantity, strategy=strategy,
                     take_profit="70000", stop_loss="60000")  # fmt: skip
        assert run(ctx, sid).status == "done"

    legs = working_brackets(ctx)
    by_position: dict[int | None, set[tuple[str, Decimal | None]]] = {}
    for leg in legs:
        by_position.setdefault(leg.position_id, set()).add((leg.leg, leg.quantity))
    assert sorted(by_position.values(), key=str) == sorted(
        [
            {("bracket-tp", D("0.02")), ("bracket-sl", D("0.02"))},
            {("bracket-tp", D("0.05")), ("bracket-sl", D("0.05"))},
        ],
        key=str,
    )
    sent = ledger(control, kind="futures_conditional")
    assert len(sent) == 4 and all(e["status"] == "NEW" for e in sent)


def test_an_exit_waits_for_the_cancelled_entry_algos_final_fills(
    ctx: ExecContext, control: httpx.Client, paper: Paper
) -> None:
    set_price(control, "BTCUSDT", "65000")
    entry = submit(ctx, quantity="0.05", execution={"type": "twap", "duration": 600},
                   take_profit="70000", stop_loss="60000")  # fmt: skip
    assert run(ctx, entry).status == "working"
    paper.clock.advance(120)  # a fifth of it executes
    # The algo's listings lag: after the cancel nobody can see how it ended.
    fault(control, action="read_lag", path="/sapi/v1/algo", seconds=3600)

    exit_id = submit(ctx, action="exit", side=None)
    waiting = run(ctx, exit_id)

    assert waiting.status == "queued" and "final fills" in (waiting.reason or "")
    (twap,) = orders(ctx, entry)
    assert twap.status == "working" and (twap.extra or {}).get("cancel_requested") is True
    assert [o for o in orders(ctx, exit_id)] == []  # nothing sold on a guess
    (position,) = positions(ctx)
    assert position.status == "open"

    control.delete("/faults").raise_for_status()
    done = run(ctx, exit_id)

    assert done.status in ("done", "refused"), done.reason
    (twap,) = orders(ctx, entry)
    assert twap.status in ("cancelled", "filled")
    (position,) = positions(ctx)
    # Closed from the algo's final fills: everything it bought, nothing more.
    assert D("0.005") < position.quantity < D("0.05")
    assert position.exit_quantity == position.quantity
    assert position.status == "closed"


def test_a_bracket_refused_for_good_is_an_unprotected_event_and_not_resent_as_is(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    fault(control, action="fail_before", path="/api/v3/orderList/oco", method="POST", status=400,
          code=-1013, msg="Filter failure: MAX_NUM_ALGO_ORDERS", count=1)  # fmt: skip
    sid = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000")

    outcome = run(ctx, sid)

    assert outcome.status == "done"
    (position,) = positions(ctx)
    assert (position.bracket_note or "").startswith("unprotected: bracket rejected")
    assert "-1013" in (position.bracket_note or "")
    assert any(e.kind == "unprotected" for e in events(ctx))
    assert working_brackets(ctx) == []
    # The same bracket for the same holding would be refused again: not resent ...
    with session_scope(ctx.sessions) as session:
        row = session.get(Position, position.id)
        assert row is not None
        assert protect_position(ctx, session, row, reason="test") is None
    assert len(ledger(control, kind="oco")) == 0
    # ... but a new level is tried, and clears the note once it is live.
    tp = submit(ctx, action="tp", side=None, execution={"type": "limit", "price": "72000"})
    assert run(ctx, tp).status == "done"
    (oco,) = working_brackets(ctx)
    (position,) = positions(ctx)
    assert position.bracket_note is None and oco.quantity == held(position)


def test_a_usdm_replacement_cut_short_cancels_the_superseded_bracket_next_pass(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.02", take_profit="70000",
                 stop_loss="60000")  # fmt: skip
    assert run(ctx, sid).status == "done"
    # The new generation goes out, then cancelling the old one fails for a while.
    fault(control, action="fail_before", path="/fapi/v1/algoOrder", method="DELETE",
          status=503, code=-1001, count=20)  # fmt: skip
    sl = submit(ctx, action="sl", symbol="BTCUSDT.P", side=None,
                execution={"type": "limit", "price": "62000"})  # fmt: skip
    deferred = run(ctx, sl)
    assert deferred.status == "queued"  # a cancel in doubt is retried, never a crash
    assert len(working_brackets(ctx)) == 4  # both generations live: covered twice over
    control.delete("/faults").raise_for_status()

    (position,) = positions(ctx)
    with session_scope(ctx.sessions) as session:
        row = session.get(Position, position.id)
        assert row is not None
        protect_position(ctx, session, row, reason="monitor")

    live = working_brackets(ctx)
    assert sorted((o.leg, o.stop_price) for o in live) == [
        ("bracket2-sl", D("62000")), ("bracket2-tp", D("70000")),
    ]  # fmt: skip
    assert [e for e in ledger(control, kind="futures_conditional") if e["status"] == "NEW"] == [
        e for e in ledger(control, kind="futures_conditional") if e["client_id"] in
        {o.client_id for o in live}
    ]  # fmt: skip


def test_a_usdm_market_entry_answered_new_is_followed_until_filled_then_protected(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    control.post("/futures-busy", json={"on": True}).raise_for_status()
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.02", take_profit="70000",
                 stop_loss="60000")  # fmt: skip

    outcome = run(ctx, sid)

    assert outcome.status == "working", outcome.reason
    (entry,) = orders(ctx, sid)
    assert (entry.kind, entry.status, entry.executed_qty) == ("market", "working", D(0))
    assert working_brackets(ctx) == []

    set_price(control, "BTCUSDT", "65010")  # the exchange gets to it
    assert follow_resting_orders(ctx) >= 1

    entry = next(o for o in orders(ctx, sid) if o.leg == "entry")
    assert (entry.status, entry.executed_qty) == ("filled", D("0.02"))
    legs = working_brackets(ctx)
    assert sorted((o.leg, o.quantity) for o in legs) == [
        ("bracket-sl", D("0.02")), ("bracket-tp", D("0.02")),
    ]  # fmt: skip
    assert signal_row(ctx, sid).status == "done"


def test_an_opposite_usdm_entry_of_another_strategy_is_refused_in_one_way_mode(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    long = submit(ctx, symbol="BTCUSDT.P", quantity="0.02", strategy="alpha",
                  take_profit="70000", stop_loss="60000")  # fmt: skip
    assert run(ctx, long).status == "done"

    short = submit(ctx, symbol="BTCUSDT.P", side="sell", quantity="0.01", strategy="beta",
                   take_profit="60000", stop_loss="70000")  # fmt: skip
    outcome = run(ctx, short)

    assert outcome.status == "refused" and "one-way mode" in (outcome.reason or "")
    assert orders(ctx, short) == []
    # The same side for another strategy is fine: each keeps its own reduce-only bracket.
    same = submit(ctx, symbol="BTCUSDT.P", quantity="0.01", strategy="beta",
                  take_profit="70000", stop_loss="60000")  # fmt: skip
    assert run(ctx, same).status == "done"


def test_a_usdm_exit_closes_only_what_the_exchange_still_holds(
    ctx: ExecContext, control: httpx.Client
) -> None:
    """The position was cut on the exchange behind our back (0.02 -> 0.012): the exit reads
    positionRisk and sells 0.012, the position ends closed and nothing is re-bracketed."""
    set_price(control, "BTCUSDT", "65000")
    entry = submit(ctx, symbol="BTCUSDT.P", quantity="0.02", take_profit="70000", stop_loss="60000")
    assert run(ctx, entry).status == "done"
    cut = {"symbol": "BTCUSDT", "positionAmt": "0.012"}
    control.post("/positions", json=cut).raise_for_status()

    outcome = run(ctx, submit(ctx, action="exit", symbol="BTCUSDT.P", side=None))

    assert outcome.status == "done", outcome.reason
    sold = [e for e in ledger(control, kind="futures_order") if e["side"] == "SELL"]
    assert [D(e["quantity"]) for e in sold] == [D("0.012")]
    (position,) = positions(ctx)
    assert position.status == "closed" and position.exit_quantity == D("0.012")
    assert "exchange" in (position.bracket_note or "")
    assert working_brackets(ctx) == []
    assert "BTCUSDT" not in control.get("/state").json()["positions"]  # closed, not reversed


def test_a_usdm_exit_with_nothing_left_on_the_exchange_sends_nothing(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    entry = submit(ctx, symbol="BTCUSDT.P", quantity="0.02", stop_loss="60000")
    assert run(ctx, entry).status == "done"
    control.post("/positions", json={"symbol": "BTCUSDT", "positionAmt": "0"}).raise_for_status()

    outcome = run(ctx, submit(ctx, action="exit", symbol="BTCUSDT.P", side=None))

    assert outcome.status == "done", outcome.reason
    assert outcome.reason is not None and "exchange" in outcome.reason
    assert [e["side"] for e in ledger(control, kind="futures_order")] == ["BUY"]
    (position,) = positions(ctx)
    assert position.status == "closed" and position.exit_quantity == 0
    assert working_brackets(ctx) == []  # a stale reduce-only stop would hit a later position
    assert [e["status"] for e in ledger(control, kind="futures_conditional")] == ["CANCELED"]
