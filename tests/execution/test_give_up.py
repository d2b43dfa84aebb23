"""A signal that keeps meeting temporary errors is given up on without leaving unsent rows
behind, and without calling failed what already executed."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from app.db import session_scope
from app.execution import queries
from app.execution.protection import protect_position
from app.models import Position
from tests.execution.conftest import (
    MakeContext,
    event_kinds,
    fault,
    ledger,
    orders,
    positions,
    run,
    set_price,
    submit,
)

D = Decimal
pytestmark = pytest.mark.slow


def test_giving_up_drops_the_unsent_entry(make_ctx: MakeContext, control: httpx.Client) -> None:
    ctx = make_ctx(execution_max_attempts=2)
    set_price(control, "BTCUSDT", "65000")
    fault(control, action="fail_before", path="/api/v3/order", method="POST",
          status=400, code=-1015, msg="Too many new orders.")  # fmt: skip
    sid = submit(ctx, quantity="0.01")

    assert run(ctx, sid).status == "queued"
    last = run(ctx, sid)

    assert last.status == "failed" and "not sent: entry" in (last.reason or "")
    (entry,) = orders(ctx, sid)
    assert entry.status == "cancelled"  # not `planned`: it no longer counts as exposure
    with session_scope(ctx.sessions) as session:
        assert (
            queries.exposure(session, "spot", "BTCUSDT", D("65000"), exclude="", account="default")
            == 0
        )
    assert ledger(control) == []


def test_giving_up_on_the_bracket_keeps_the_filled_entry_done(
    make_ctx: MakeContext, control: httpx.Client
) -> None:
    # The entry filled; only its bracket keeps failing. The signal did what it asked for
    # (the position is real): `done`, with the bracket left for the monitor to place.
    ctx = make_ctx(execution_max_attempts=2)
    set_price(control, "BTCUSDT", "65000")
    fault(control, action="fail_before", path="/api/v3/orderList/oco", method="POST",
          status=400, code=-1015, msg="Too many new orders.")  # fmt: skip
    sid = submit(ctx, quantity="0.01", take_profit="70000", stop_loss="60000")

    assert run(ctx, sid).status == "queued"
    last = run(ctx, sid)

    assert last.status == "done", last.reason
    assert "gave up after 2 attempts" in (last.reason or "")
    assert "gave_up" in event_kinds(ctx, sid)
    entry, bracket = orders(ctx, sid)
    assert entry.status == "filled" and bracket.status == "planned"
    assert len(ledger(control, kind="spot_order")) == 1 and ledger(control, kind="oco") == []

    # The monitor places it once the exchange answers again.
    control.delete("/faults").raise_for_status()
    with session_scope(ctx.sessions) as session:
        (position,) = positions(ctx)
        row = session.get(Position, position.id)
        assert row is not None
        placed = protect_position(ctx, session, row, reason="monitor")
    assert placed is not None and placed.status == "working"
    assert len(ledger(control, kind="oco")) == 1
