"""The claim's statements are Core UPDATEs on the table: a signal object the same session
already holds must not keep the status it was read with."""

from __future__ import annotations

import httpx
import pytest

from app.db import session_scope
from app.execution import journal
from app.execution.claims import LeaseLost, claim_signal, finish, heartbeat
from app.execution.context import ExecContext
from app.execution.turns import read_turn
from app.models import Signal as SignalRow
from app.models import SignalStatus
from tests.execution.conftest import event_kinds, run, set_price, signal_row, submit


def test_a_claim_and_its_end_show_in_the_session_that_made_them(ctx: ExecContext) -> None:
    signal_id = submit(ctx, quantity="0.01")
    now = ctx.clock.now()
    with session_scope(ctx.sessions) as session:
        held = session.get(SignalRow, signal_id)
        assert held is not None and held.status == SignalStatus.RECEIVED.value
        claim = claim_signal(
            session, signal_id, now=now, lease=60, read=read_turn(session, signal_id)
        )
        assert not isinstance(claim, str)
        assert (held.status, held.attempts) == (SignalStatus.PROCESSING.value, claim.fence)
        heartbeat(session, claim, now=now)
        finish(session, claim, SignalStatus.QUEUED, "later", now=now)
        assert (held.status, held.status_reason) == (SignalStatus.QUEUED.value, "later")
        assert held.enqueued_at is not None
    stored = signal_row(ctx, signal_id)
    assert (stored.status, stored.attempts) == (SignalStatus.QUEUED.value, 1)
    assert event_kinds(ctx, signal_id).count("state") == 3  # received, processing, queued


def test_a_second_claim_on_a_live_lease_is_refused_and_the_fence_stops_the_first(
    ctx: ExecContext,
) -> None:
    signal_id = submit(ctx, quantity="0.01")
    now = ctx.clock.now()
    with session_scope(ctx.sessions) as session:
        first = claim_signal(
            session, signal_id, now=now, lease=60, read=read_turn(session, signal_id)
        )
    with session_scope(ctx.sessions) as session:
        again = claim_signal(
            session, signal_id, now=now, lease=60, read=read_turn(session, signal_id)
        )
    assert again == SignalStatus.PROCESSING.value  # its lease is live: not taken
    later = now.replace(year=now.year + 1)
    with session_scope(ctx.sessions) as session:
        second = claim_signal(
            session, signal_id, now=later, lease=60, read=read_turn(session, signal_id)
        )
    assert not isinstance(first, str) and not isinstance(second, str)
    assert second.fence == first.fence + 1
    with session_scope(ctx.sessions) as session, pytest.raises(LeaseLost):
        heartbeat(session, first, now=later)


def test_an_entrys_history_reads_in_the_order_things_happened(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    signal_id = submit(ctx, quantity="0.01")
    assert run(ctx, signal_id).status == "done"
    kinds = event_kinds(ctx, signal_id)
    # The fill is recorded in the transaction that ends the signal, before its end.
    assert kinds.index("entry_filled") < len(kinds) - 1 - kinds[::-1].index("state"), kinds
    assert kinds.index("arrival") < kinds.index("planned") < kinds.index("sent")


def test_history_added_before_a_state_change_is_written_before_it(ctx: ExecContext) -> None:
    """A notifiable event goes through the ORM (its outbox row rides its flush); the state
    change after it is a Core statement, run through the session, which flushes first."""
    signal_id = submit(ctx, quantity="0.01")
    now = ctx.clock.now()
    with session_scope(ctx.sessions) as session:
        claim = claim_signal(
            session, signal_id, now=now, lease=60, read=read_turn(session, signal_id)
        )
        assert not isinstance(claim, str)
        journal.event(session, "refused", "account may not trade", signal_id=signal_id)
        finish(session, claim, SignalStatus.REFUSED, "account may not trade", now=now)
    kinds = event_kinds(ctx, signal_id)
    assert kinds[-2:] == ["refused", "state"], kinds
