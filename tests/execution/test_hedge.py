"""USD-M hedge mode: every order names the position it opens or closes (LONG / SHORT), never
reduceOnly (the paper refuses both mistakes as Binance does), a long and a short of one symbol
live side by side, each with its own bracket, and each closes without touching the other."""

from __future__ import annotations

from decimal import Decimal

import httpx

from app.execution.context import ExecContext
from app.models import Order
from tests.execution.conftest import (
    MakeContext,
    Paper,
    fault,
    ledger,
    orders,
    positions,
    run,
    set_price,
    submit,
)

D = Decimal


def sides(ctx: ExecContext) -> dict[str, Decimal]:
    return {row.positionSide: row.positionAmt for row in ctx.client.position_risk("BTCUSDT")}


def brackets(ctx: ExecContext, signal_id: str) -> list[Order]:
    return [o for o in orders(ctx, signal_id) if o.leg.startswith("bracket")]


def test_a_long_and_a_short_on_one_symbol_each_protected_and_closed_alone(
    ctx: ExecContext, control: httpx.Client, paper: Paper
) -> None:
    set_price(control, "BTCUSDT", "65000")
    ctx.client.change_position_mode(True)
    long_id = submit(
        ctx, symbol="BTCUSDT.P", quantity="0.1", take_profit="70000", stop_loss="60000",
        strategy="up",
    )  # fmt: skip
    short_id = submit(
        ctx, symbol="BTCUSDT.P", side="sell", quantity="0.2", take_profit="60000",
        stop_loss="70000", strategy="down",
    )  # fmt: skip

    for sid in (long_id, short_id):
        outcome = run(ctx, sid)
        assert outcome.status == "done", outcome.reason

    # One-way mode would have refused the short: here it is a position of its own.
    assert sides(ctx) == {"LONG": D("0.1"), "SHORT": D("-0.2")}
    live = {c.clientAlgoId: c for c in ctx.client.open_conditional_orders("BTCUSDT")}
    for sid, position_side, closing in ((long_id, "LONG", "SELL"), (short_id, "SHORT", "BUY")):
        placed = brackets(ctx, sid)
        assert len(placed) == 2
        for order in placed:
            on_exchange = live[order.client_id]
            assert (on_exchange.positionSide, on_exchange.side) == (position_side, closing)
            assert on_exchange.quantity == (D("0.1") if position_side == "LONG" else D("0.2"))

    # Closing the long leaves the short and its bracket as they were.
    exit_long = submit(ctx, action="exit", symbol="BTCUSDT.P", side=None, strategy="up")
    outcome = run(ctx, exit_long)
    assert outcome.status == "done", outcome.reason
    assert sides(ctx) == {"LONG": D(0), "SHORT": D("-0.2")}
    assert all(o.status == "cancelled" for o in brackets(ctx, long_id))
    live_ids = {c.clientAlgoId for c in ctx.client.open_conditional_orders("BTCUSDT")}
    assert live_ids == {o.client_id for o in brackets(ctx, short_id)}
    (close,) = orders(ctx, exit_long)
    assert (close.side, close.quantity, close.status) == ("SELL", D("0.1"), "filled")

    # ... and the short's own stop still protects it.
    set_price(control, "BTCUSDT", "70100")
    assert sides(ctx) == {"LONG": D(0), "SHORT": D(0)}
    exit_short = submit(ctx, action="exit", symbol="BTCUSDT.P", side=None, strategy="down")
    run(ctx, exit_short)
    assert sides(ctx) == {"LONG": D(0), "SHORT": D(0)}  # nothing closed twice
    assert [e["side"] for e in ledger(control, kind="futures_order")] == ["BUY", "SELL", "SELL"]
    by_strategy = {p.strategy: p for p in positions(ctx)}
    assert by_strategy["up"].status == "closed" and by_strategy["up"].exit_quantity == D("0.1")
    # The mode was known from the switch: the client never needed to read it.
    reads = [e for e in paper.log.entries if e[1:] == ("GET", "/fapi/v1/positionSide/dual")]
    assert reads == []


def test_a_mode_changed_behind_the_clients_back_is_read_again_on_4061(
    ctx: ExecContext, make_ctx: MakeContext, control: httpx.Client, paper: Paper
) -> None:
    set_price(control, "BTCUSDT", "65000")
    assert ctx.client.dual_side() is False  # read and cached
    make_ctx().client.change_position_mode(True)  # another process switches the account

    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.1", stop_loss="60000")
    outcome = run(ctx, sid)

    assert outcome.status == "done", outcome.reason
    assert ctx.client.dual_side() is True
    reads = [e for e in paper.log.entries if e[1:] == ("GET", "/fapi/v1/positionSide/dual")]
    assert len(reads) == 2  # first use, then once more after -4061
    assert sides(ctx) == {"LONG": D("0.1"), "SHORT": D(0)}
    (stop,) = brackets(ctx, sid)
    (live,) = ctx.client.open_conditional_orders("BTCUSDT")
    assert (live.clientAlgoId, live.positionSide) == (stop.client_id, "LONG")
    # the refused first attempt placed nothing: one entry order on the exchange
    assert [e["side"] for e in ledger(control, kind="futures_order")] == ["BUY"]


def test_one_way_mode_still_refuses_an_opposite_entry(
    ctx: ExecContext, control: httpx.Client
) -> None:
    assert run(ctx, submit(ctx, symbol="BTCUSDT.P", quantity="0.1", strategy="up")).status == (
        "done"
    )
    outcome = run(ctx, submit(ctx, symbol="BTCUSDT.P", side="sell", quantity="0.1"))
    assert outcome.status == "refused" and "one-way" in (outcome.reason or "")


def test_an_unreadable_position_mode_defers_the_entry_with_nothing_sent(
    ctx: ExecContext, control: httpx.Client
) -> None:
    fault(control, action="fail_before", path="/fapi/v1/positionSide/dual", method="GET")
    sid = submit(ctx, symbol="BTCUSDT.P", quantity="0.1")

    outcome = run(ctx, sid)

    assert outcome.status not in ("done", "failed", "refused"), outcome
    assert outcome.retry_in is not None
    assert ledger(control) == [] and orders(ctx, sid) == []
    control.delete("/faults").raise_for_status()
    again = run(ctx, sid)
    assert again.status == "done", again.reason
    assert [e["side"] for e in ledger(control, kind="futures_order")] == ["BUY"]
