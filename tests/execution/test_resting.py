"""Resting limit orders followed by the monitor's pass: a signal always ends, in the same
transaction as its order, and an expired signal's resting order is cancelled."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import update

from app.db import session_scope
from app.execution import resting
from app.execution.context import ExecContext
from app.execution.resting import follow_resting_orders
from app.models import Order
from app.monitoring.algos import aware
from paper.clock import ManualClock
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


def test_a_crash_after_the_fill_still_ends_the_signal(
    ctx: ExecContext, control: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pass dies right after recording the fill (here: while bracketing). The signal's
    # end was committed with the order's, so it does not stay `working` for ever (which
    # would refuse every later entry of the strategy on this symbol).
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01", execution={"type": "limit", "price": "64000"},
                 take_profit="70000", stop_loss="60000")  # fmt: skip
    assert run(ctx, sid).status == "working"
    set_price(control, "BTCUSDT", "63900")
    control.post("/clock", json={"advance": 2}).raise_for_status()

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("worker killed")

    monkeypatch.setattr(resting, "protect_position", crash)
    with contextlib.suppress(RuntimeError):
        follow_resting_orders(ctx)

    (entry,) = orders(ctx, sid)
    assert entry.status == "filled"
    assert signal_row(ctx, sid).status == "done"


def test_a_working_signal_whose_orders_ended_is_settled(
    ctx: ExecContext, control: httpx.Client
) -> None:
    # A settlement lost before this fix (or by a crash in between): the order ended, the
    # signal still says `working`. Once the order has been over for SETTLE_GRACE on the
    # context's clock (stepped, not waited for), the next pass settles it.
    ctx.clock = clock = ManualClock()
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, quantity="0.01", execution={"type": "limit", "price": "64000"})
    assert run(ctx, sid).status == "working"
    (entry,) = orders(ctx, sid)
    ctx.client.cancel_order("BTCUSDT", orig_client_order_id=entry.client_id)
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(Order)
            .where(Order.id == entry.id)
            .values(status="cancelled", updated_at=clock.now())
        )
    assert follow_resting_orders(ctx) == 0  # its end may still be settling
    clock.advance(resting.SETTLE_GRACE.total_seconds() + 1)

    assert follow_resting_orders(ctx) == 1

    row = signal_row(ctx, sid)
    assert row.status == "expired" and row.status_reason == "ended with nothing executed"
    assert "settled" in event_kinds(ctx, sid)
    # A newer entry of the same strategy/symbol is no longer refused as "live".
    assert run(ctx, submit(ctx, quantity="0.01")).status == "done"


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_an_expired_signal_cancels_its_resting_limit(
    ctx: ExecContext, control: httpx.Client, market: str
) -> None:
    # Expiry is judged on the context's clock, which moves only when stepped: a slow run
    # cannot make the signal expire early, and its expiry comes without a wait.
    ctx.clock = clock = ManualClock()
    symbol = "BTCUSDT" if market == "spot" else "BTCUSDT.P"
    set_price(control, "BTCUSDT", "65000")
    sid = submit(ctx, symbol=symbol, quantity="0.01", ttl=600,
                 execution={"type": "limit", "price": "64000"})  # fmt: skip
    assert run(ctx, sid).status == "working"
    assert follow_resting_orders(ctx) == 0  # not expired yet
    expires_at = aware(signal_row(ctx, sid).expires_at)
    assert expires_at is not None
    clock.set(int(expires_at.timestamp() * 1000) - 1000)
    assert follow_resting_orders(ctx) == 0  # a second before its expiry
    clock.advance(2)

    assert follow_resting_orders(ctx) == 1

    (entry,) = orders(ctx, sid)
    assert entry.status == "cancelled"
    kind = "spot_order" if market == "spot" else "futures_order"
    (placed,) = ledger(control, kind=kind)
    assert placed["status"] == "CANCELED"
    row = signal_row(ctx, sid)
    assert row.status == "expired" and "signal expired at" in (row.status_reason or "")
    (position,) = positions(ctx)
    assert position.status == "closed" and not position.quantity
    assert follow_resting_orders(ctx) == 0
