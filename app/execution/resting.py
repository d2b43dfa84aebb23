"""Resting limit orders (a GTC limit entry, a limit exit): follow them until they end.

The monitor owns TWAP/VP algos and brackets; a plain LIMIT order that did not fill at once
leaves its signal ``working`` too. ``follow_resting_orders`` looks each one up by client id,
records what executed since the last look, updates the position (and brackets an entry that
has filled), and moves the signal to ``done`` once none of its orders is working any more
(``expired`` when nothing at all executed). Run it periodically (each monitor cycle);
it is safe to run from several processes at once.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select

from app.db import session_scope
from app.exchange.errors import ExchangeError
from app.execution import venue
from app.execution.book import LIVE_ORDER
from app.execution.brackets import protect_position
from app.execution.claims import transition
from app.execution.context import ExecContext
from app.execution.journal import event
from app.execution.positions import ENTRY_LEG, apply_entry_fills, apply_exit_fills
from app.models import TERMINAL_ORDER_STATUSES, Order, OrderStatus, Position, SignalStatus

log = logging.getLogger(__name__)

TERMINAL = frozenset(s.value for s in TERMINAL_ORDER_STATUSES)


def follow_resting_orders(ctx: ExecContext, *, limit: int = 200) -> int:
    """One pass over working LIMIT orders; returns how many changed."""
    with session_scope(ctx.sessions) as session:
        ids = list(
            session.scalars(
                select(Order.id)
                .where(Order.kind == "limit", Order.status == OrderStatus.WORKING.value)
                .order_by(Order.id)
                .limit(limit)
            )
        )
    changed = 0
    for order_id in ids:
        try:
            changed += _follow(ctx, order_id)
        except ExchangeError as exc:  # one order's trouble never stops the others
            log.warning("resting order %s: %s", order_id, exc)
    return changed


def _follow(ctx: ExecContext, order_id: int) -> int:
    with session_scope(ctx.sessions) as session:
        order = session.get(Order, order_id)
        assert order is not None
    found = venue.lookup(ctx.client, order)
    if found is None:
        return 0  # not visible (lag, or archived): the monitor's reconcile flags drift
    with session_scope(ctx.sessions) as session:
        row = session.get(Order, order_id, populate_existing=True)
        assert row is not None
        before = (row.status, row.executed_qty)
        venue.apply(session, row, found)
        if (row.status, row.executed_qty) == before:
            return 0
        event(session, "fill" if row.status not in TERMINAL else row.status,
              f"{row.kind} {row.venue_status}: executed {row.executed_qty}",
              signal_id=row.signal_id, order_id=row.id)  # fmt: skip
        position = session.get(Position, row.position_id) if row.position_id else None
        if position is not None:
            if row.leg == ENTRY_LEG:
                apply_entry_fills(session, position)
            else:
                apply_exit_fills(session, position)
        entry_done = row.leg == ENTRY_LEG and row.status in TERMINAL
        signal_id = row.signal_id
    if entry_done and position is not None:
        with session_scope(ctx.sessions) as session:
            held = session.get(Position, position.id)
            assert held is not None
            if held.quantity > 0:
                protect_position(ctx, session, held, reason="limit entry filled")
            elif held.status == "open":
                held.status = "closed"
                held.bracket_note = "entry ended with nothing filled"
    if signal_id is not None:
        _settle_signal(ctx, signal_id)
    return 1


def _settle_signal(ctx: ExecContext, signal_id: str) -> None:
    """``working`` -> ``done`` (or ``expired``) once none of the signal's orders works."""
    with session_scope(ctx.sessions) as session:
        orders = list(session.scalars(select(Order).where(Order.signal_id == signal_id)))
        if any(o.status in LIVE_ORDER and not o.leg.startswith("bracket") for o in orders):
            return
        executed = sum((o.executed_qty or Decimal(0) for o in orders), Decimal(0))
        status = SignalStatus.DONE if executed else SignalStatus.EXPIRED
        reason = f"executed {executed}" if executed else "ended with nothing executed"
        transition(session, signal_id, (SignalStatus.WORKING.value,), status, reason)
