"""``action: reverse`` on the paper exchange over HTTP: the strategy's position is closed and
the other side entered, exactly once, protected as usual; the paper ledger is the judge."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from app import controls
from app.db import session_scope
from app.execution.context import ExecContext
from app.execution.quality import measure
from tests.execution.conftest import (
    MakeContext,
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
pytestmark = pytest.mark.slow
PERP = "BTCUSDT.P"


def paper_position(control: httpx.Client) -> str:
    state = control.get("/state").json()
    return str(state["positions"].get("BTCUSDT", {}).get("positionAmt", "0"))


def test_usdm_reverse_closes_the_long_then_enters_a_protected_short(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    long_id = submit(ctx, symbol=PERP, quantity="0.02", take_profit="70000", stop_loss="60000",
                     strategy="flip")  # fmt: skip
    assert run(ctx, long_id).status == "done"

    rev_id = submit(ctx, action="reverse", symbol=PERP, side="sell", quantity="0.03",
                    take_profit="60000", stop_loss="68000", strategy="flip")  # fmt: skip
    outcome = run(ctx, rev_id)

    assert outcome.status == "done", outcome.reason
    assert outcome.reason is not None and outcome.reason.startswith(
        "closed 0.02 BTCUSDT of the BUY position; entered 0.03"
    )
    placed = ledger(control, kind="futures_order")
    assert [(e["side"], e["quantity"]) for e in placed] == [
        ("BUY", "0.02"),  # the long
        ("SELL", "0.02"),  # the reverse's close: what the long held
        ("SELL", "0.03"),  # the reverse's entry
    ]
    by_leg = {o.leg: o for o in orders(ctx, rev_id)}
    assert set(by_leg) == {"close", "entry", "bracket-tp", "bracket-sl"}
    assert placed[1]["client_id"] == by_leg["close"].client_id
    assert placed[2]["client_id"] == by_leg["entry"].client_id
    assert (by_leg["close"].extra or {}).get("reduce_only") is True
    assert not (by_leg["entry"].extra or {}).get("reduce_only")
    # The long's bracket is gone, the short's is on the exchange: BUY side, 0.03.
    conditionals = ledger(control, kind="futures_conditional")
    live = [(c["side"], c["order_type"], c["quantity"]) for c in conditionals
            if c["status"] == "NEW"]  # fmt: skip
    assert sorted(live) == [("BUY", "STOP_MARKET", "0.03"), ("BUY", "TAKE_PROFIT_MARKET", "0.03")]
    old, new = positions(ctx)
    assert (old.side, old.status, old.exit_quantity) == ("BUY", "closed", D("0.02"))
    assert (new.side, new.status, new.quantity) == ("SELL", "open", D("0.03"))
    assert new.opened_by == rev_id
    assert D(paper_position(control)) == D("-0.03")
    with session_scope(ctx.sessions) as session:
        quality = measure(session, rev_id)
    # Execution quality is the entry's: the close is the other side's.
    assert quality is not None and (quality.side, quality.filled_qty) == ("SELL", D("0.03"))


def test_spot_reverse_buys_back_a_sell_position_then_buys(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    short_id = submit(ctx, side="sell", quantity="0.02", stop_loss="70000", strategy="flip")
    assert run(ctx, short_id).status == "done"

    rev_id = submit(ctx, action="reverse", side="buy", quantity="0.01", stop_loss="60000",
                    strategy="flip")  # fmt: skip
    outcome = run(ctx, rev_id)

    assert outcome.status == "done", outcome.reason
    spot = ledger(control, kind="spot_order")
    market = [(e["side"], e["quantity"]) for e in spot if e["order_type"] == "MARKET"]
    assert market == [("SELL", "0.02"), ("BUY", "0.02"), ("BUY", "0.01")]
    stops = [(e["side"], e["status"]) for e in spot if e["order_type"] == "STOP_LOSS"]
    assert stops == [("BUY", "CANCELED"), ("SELL", "NEW")]  # the old stop, then the new one
    old, new = positions(ctx)
    assert (old.status, new.side, new.status) == ("closed", "BUY", "open")


def test_reverse_with_nothing_open_simply_enters(ctx: ExecContext, control: httpx.Client) -> None:
    set_price(control, "BTCUSDT", "65000")
    rev_id = submit(ctx, action="reverse", symbol=PERP, side="sell", quantity="0.01")

    outcome = run(ctx, rev_id)

    assert outcome.status == "done", outcome.reason
    assert [(e["side"], e["quantity"]) for e in ledger(control, kind="futures_order")] == [
        ("SELL", "0.01")
    ]
    assert [o.leg for o in orders(ctx, rev_id)] == ["entry"]


def test_reverse_onto_the_side_already_held_is_refused_and_sends_nothing(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    long_id = submit(ctx, symbol=PERP, quantity="0.02", stop_loss="60000", strategy="flip")
    assert run(ctx, long_id).status == "done"
    before = len(ledger(control))

    rev_id = submit(ctx, action="reverse", symbol=PERP, side="buy", quantity="0.01",
                    strategy="flip")  # fmt: skip

    assert run(ctx, rev_id).status == "refused"
    assert "already holds a BUY position" in (signal_row(ctx, rev_id).status_reason or "")
    assert len(ledger(control)) == before
    (position,) = positions(ctx)
    assert position.status == "open"


def test_reverse_sized_by_balance_reads_the_margin_freed_by_the_close(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    control.post("/balances", json={"account": "usdm", "balances": {"USDT": "1000"}})
    long_id = submit(ctx, symbol=PERP, quantity="0.2", leverage=20, strategy="flip")
    assert run(ctx, long_id).status == "done"

    rev_id = submit(ctx, action="reverse", symbol=PERP, side="sell", balance_percent="50",
                    quantity=None, leverage=20, strategy="flip")  # fmt: skip
    outcome = run(ctx, rev_id)

    assert outcome.status == "done", outcome.reason
    entry = next(o for o in orders(ctx, rev_id) if o.leg == "entry")
    sizing = entry.extra["sizing"]  # type: ignore[index]
    # Read after the close: all the margin is free again (1000 less two fees of 5.2 USDT).
    assert D(sizing["free"]) == D("1000") - 2 * D("5.2")
    # 494.8 x 20 / (1 + 20 x 0.0004) = 9817.46 USDT: 0.151 BTC at 65,000.
    assert entry.quantity == D("0.151")
    assert ledger(control, kind="futures_order")[-1]["quantity"] == "0.151"


def test_a_reverse_interrupted_between_close_and_entry_sends_each_order_once(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    ctx = make_ctx()
    set_price(control, "BTCUSDT", "65000")
    long_id = submit(ctx, symbol=PERP, quantity="0.02", stop_loss="60000", strategy="flip")
    assert run(ctx, long_id).status == "done"
    # The close goes out, then reading the account for the entry's size fails: the job is
    # put back with the close done and no entry written.
    fault(control, action="fail_before", path="/fapi/v3/account", method="GET", count=10,
          status=503, code=None, raw_body="")  # fmt: skip
    rev_id = submit(ctx, action="reverse", symbol=PERP, side="sell", balance_percent="1",
                    quantity=None, strategy="flip")  # fmt: skip

    first = run(ctx, rev_id)

    assert first.status == "queued", first.reason
    assert [o.leg for o in orders(ctx, rev_id)] == ["close"]
    control.delete("/faults").raise_for_status()
    second = run(make_ctx(), rev_id)  # another worker takes it up

    assert second.status == "done", second.reason
    placed = ledger(control, kind="futures_order")
    assert [e["side"] for e in placed] == ["BUY", "SELL", "SELL"]
    for order in orders(ctx, rev_id):
        assert len(ledger(control, client_id=order.client_id)) == 1
    assert run(ctx, rev_id).status == "skipped"  # done: a third run sends nothing
    assert len(ledger(control, kind="futures_order")) == 3


def test_a_close_answer_lost_is_reconciled_not_resent(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    long_id = submit(ctx, symbol=PERP, quantity="0.02", strategy="flip")
    assert run(ctx, long_id).status == "done"
    # The close executes but its answer is lost (504): looked up by client id, adopted.
    fault(control, action="fail_after", path="/fapi/v1/order", method="POST", count=1,
          status=504, code=None, raw_body="")  # fmt: skip

    rev_id = submit(ctx, action="reverse", symbol=PERP, side="sell", quantity="0.01",
                    strategy="flip")  # fmt: skip
    outcome = run(ctx, rev_id)

    assert outcome.status == "done", outcome.reason
    assert [(e["side"], e["quantity"]) for e in ledger(control, kind="futures_order")] == [
        ("BUY", "0.02"), ("SELL", "0.02"), ("SELL", "0.01"),
    ]  # fmt: skip
    assert D(paper_position(control)) == D("-0.01")


def test_a_halt_lets_the_close_of_a_reverse_run_but_refuses_its_entry(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    long_id = submit(ctx, symbol=PERP, quantity="0.02", stop_loss="60000", strategy="flip")
    assert run(ctx, long_id).status == "done"
    with session_scope(ctx.sessions) as session:
        controls.halt(session, reason="maintenance")

    rev_id = submit(ctx, action="reverse", symbol=PERP, side="sell", quantity="0.01",
                    strategy="flip")  # fmt: skip
    outcome = run(ctx, rev_id)

    # Exits run while halted, entries do not: the long is closed, no short is opened.
    assert outcome.status == "refused"
    assert outcome.reason == (
        "closed 0.02 BTCUSDT of the BUY position; the entry was refused: "
        "trading is halted: maintenance"
    )
    assert [e["side"] for e in ledger(control, kind="futures_order")] == ["BUY", "SELL"]
    assert D(paper_position(control)) == 0
    assert [p.status for p in positions(ctx)] == ["closed"]
