"""Signals of one strategy and symbol run in the order they arrived; others do not wait."""

from __future__ import annotations

import threading
from decimal import Decimal

import httpx

from app.execution.context import ExecContext
from app.execution.service import Outcome
from paper.clock import ManualClock
from tests.execution.conftest import MakeContext, ledger, orders, run, set_price, signal_row, submit


def entry(ctx: ExecContext, **fields: object) -> str:
    return submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000", **fields)


def exit_(ctx: ExecContext, **fields: object) -> str:
    return submit(ctx, action="exit", side=None, **fields)


def test_an_exit_taken_before_its_entry_waits_for_it(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    ctx = make_ctx(turn_patience=0)
    set_price(control, "BTCUSDT", "65000")
    first = entry(ctx, strategy="s1")
    second = exit_(ctx, strategy="s1")

    waited = run(ctx, second)
    assert waited.status == "waiting" and waited.retry_in
    assert first in (waited.reason or "")
    assert signal_row(ctx, second).status == "received"  # not claimed: nothing was tried
    assert orders(ctx, second) == []

    assert run(ctx, first).status == "done"
    assert run(ctx, second).status == "done"
    sides = [row["side"] for row in ledger(control, kind="spot_order")]
    assert sides == ["BUY", "SELL"]


def test_a_signal_waits_its_turn_for_turn_patience_on_the_context_clock(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    ctx = make_ctx(turn_patience=1)
    ctx.clock = clock = ManualClock()
    set_price(control, "BTCUSDT", "65000")
    entry(ctx, strategy="s1")  # never run: unsettled all along
    second = exit_(ctx, strategy="s1")
    started = clock.monotonic()

    waited = run(ctx, second)

    assert waited.status == "waiting" and waited.retry_in
    assert 1 <= clock.monotonic() - started < 1.2  # stepped by its polls, not slept
    assert signal_row(ctx, second).status == "received"


def test_a_waiting_signal_goes_on_as_soon_as_the_earlier_one_settles(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    ctx = make_ctx(turn_patience=30)
    set_price(control, "BTCUSDT", "65000")
    first = entry(ctx, strategy="s1")
    second = exit_(ctx, strategy="s1")
    outcome: list[Outcome] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(run(make_ctx(turn_patience=30), second))
    )
    waiter.start()
    assert run(ctx, first).status == "done"
    waiter.join(timeout=60)
    assert [o.status for o in outcome] == ["done"]
    sold = orders(ctx, second)
    assert sold and sold[0].side == "SELL"
    # What the entry bought, net of the fee taken in BTC: never more.
    assert Decimal("0") < Decimal(sold[0].executed_qty or 0) <= Decimal("0.01")


def test_other_symbols_and_other_strategies_do_not_wait(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    ctx = make_ctx(turn_patience=0)
    set_price(control, "BTCUSDT", "65000")
    set_price(control, "ETHUSDT", "3000")
    entry(ctx, strategy="s1")  # never run: unsettled all along
    other_symbol = submit(ctx, symbol="ETHUSDT", quantity="0.1", strategy="s1")
    other_strategy = entry(ctx, strategy="s2")
    no_strategy = entry(ctx)

    assert run(ctx, other_symbol).status == "done"
    assert run(ctx, other_strategy).status == "done"
    assert run(ctx, no_strategy).status == "done"


def test_a_settled_earlier_signal_does_not_hold_up_the_next(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    ctx = make_ctx(turn_patience=0)
    set_price(control, "BTCUSDT", "65000")
    refused = submit(ctx, action="exit", side=None, strategy="s1")  # no position: refused
    assert run(ctx, refused).status == "refused"
    later = entry(ctx, strategy="s1")
    assert run(ctx, later).status == "done"
