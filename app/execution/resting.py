"""Resting limit orders (a GTC limit entry, a limit exit), and market orders answered NEW:
follow them until they end.

The monitor owns TWAP/VP algos and brackets; a plain LIMIT order that did not fill at once
leaves its signal ``working`` too. ``follow_resting_orders`` looks each one up by client id,
records what executed since the last look, updates the position (and brackets an entry that
has filled), and moves the signal to ``done`` once none of its orders is working any more
(``expired`` when nothing at all executed), in the transaction that records the order's end.
An order whose signal's ``expires_at`` has passed on ``ctx.clock`` is cancelled, and the
signal ends ``expired`` (what executed before is kept: a partly filled entry is bracketed, a
partly filled exit's remainder re-bracketed). A ``working`` signal left without any live
order of its own (its settlement was lost) is settled too. Run it periodically (each monitor
cycle); it is safe to run from several processes at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import session_scope
from app.exchange.errors import ExchangeError
from app.execution import venue
from app.execution.cancels import cancel_order
from app.execution.claims import transition
from app.execution.context import ExecContext
from app.execution.journal import entry_filled, event, exit_filled
from app.execution.planning import BRACKET
from app.execution.positions import ENTRY_LEG, apply_entry_fills, apply_exit_fills
from app.execution.protection import protect_position
from app.execution.queries import LIVE_ORDER
from app.models import (
    ALGO_KINDS,
    TERMINAL_ORDER_STATUSES,
    Order,
    OrderStatus,
    Position,
    SignalStatus,
)
from app.models import Signal as SignalRow

log = logging.getLogger(__name__)

TERMINAL = frozenset(s.value for s in TERMINAL_ORDER_STATUSES)
# A resting LIMIT, and a MARKET order the exchange answered NEW (USD-M can, under load):
# both are followed until they end, and an entry is bracketed for what it received.
FOLLOWED = ("limit", "market")
# A `working` signal whose own orders all ended this long ago, yet is still `working`, lost
# its settlement (a crash between the order's end and the signal's): settle it.
SETTLE_GRACE = timedelta(seconds=60)


def follow_resting_orders(ctx: ExecContext, *, limit: int = 200) -> int:
    """One pass over working LIMIT orders; returns how many changed."""
    with session_scope(ctx.sessions) as session:
        rows = session.execute(
            select(Order.id, SignalRow.expires_at, Order.extra)
            .outerjoin(SignalRow, Order.signal_id == SignalRow.id)
            .where(
                Order.account == ctx.account,
                Order.kind.in_(FOLLOWED),
                Order.status == OrderStatus.WORKING.value,
            )
            .order_by(Order.id)
            .limit(limit)
        ).all()
    changed = 0
    now = ctx.clock.now()
    for order_id, expires_at, extra in rows:
        if (extra or {}).get("remainder_of"):
            continue  # an algo's remainder: app/monitoring/remainders.py follows it
        try:
            if _expired(expires_at, now):
                changed += _expire(ctx, order_id, expires_at)
            else:
                changed += follow_order(ctx, order_id)
        except ExchangeError as exc:  # one order's trouble never stops the others
            log.warning("resting order %s: %s", order_id, exc)
    # Other errors (the database) escape: the monitor records them and its next cycle retries.
    return changed + settle_orphaned_signals(ctx, now=now, limit=limit)


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    if expires_at is None:
        return False
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    return expires_at <= now


def follow_order(ctx: ExecContext, order_id: int) -> int:
    """Look one working order up and record what changed (1) or nothing (0)."""
    with session_scope(ctx.sessions) as session:
        order = session.get(Order, order_id)
        assert order is not None
    found = venue.lookup(ctx.client, order)
    if found is None:
        return 0  # not visible (lag, or archived): the monitor's reconcile flags drift
    with session_scope(ctx.sessions) as session:
        now = ctx.clock.now()
        row = session.get(Order, order_id, populate_existing=True)
        assert row is not None
        before = (row.status, row.executed_qty)
        venue.apply(session, row, found, now=now)
        if (row.status, row.executed_qty) == before:
            return 0
        event(session, "fill" if row.status not in TERMINAL else row.status,
              f"{row.kind} {row.venue_status}: executed {row.executed_qty}",
              signal_id=row.signal_id, order_id=row.id)  # fmt: skip
        position = _apply_to_position(session, row, now=now)
        ended = row.status in TERMINAL
        if ended and position is not None:
            _record_end(session, row, position)
        if row.signal_id is not None:
            # The order's end and its signal's, in one transaction.
            _settle_signal(session, row.signal_id, now=now)
    if ended and position is not None:
        _after_end(ctx, row, position.id, reason="limit entry filled")
    return 1


def _expire(ctx: ExecContext, order_id: int, expires_at: datetime | None) -> int:
    """The signal expired while its limit order rests: cancel it, keep what it executed."""
    stamp = expires_at.isoformat() if expires_at is not None else "?"
    reason = f"signal expired at {stamp}"
    row = cancel_order(ctx, order_id, reason=reason)
    if row.status not in TERMINAL:
        return 0  # not confirmed yet: the next pass tries again
    with session_scope(ctx.sessions) as session:
        fresh = session.get(Order, order_id, populate_existing=True)
        assert fresh is not None
        row = fresh
        now = ctx.clock.now()
        position = _apply_to_position(session, row, now=now)
        ended = True
        if row.signal_id is not None:
            executed = row.executed_qty or Decimal(0)
            note = f"{reason}; resting {row.kind} {row.status}, executed {executed}"
            ended = _settle_signal(session, row.signal_id, now=now, expired=note)
            if ended:
                event(session, "expired", note, signal_id=row.signal_id, order_id=row.id)
        if ended and position is not None:  # once: the signal's end is a compare-and-set
            _record_end(session, row, position)
    if position is not None:
        _after_end(ctx, row, position.id, reason=reason)
    return 1


def _apply_to_position(session: Session, row: Order, *, now: datetime) -> Position | None:
    position = session.get(Position, row.position_id) if row.position_id else None
    if position is not None:
        if row.leg == ENTRY_LEG:
            apply_entry_fills(session, position)
        else:
            apply_exit_fills(session, position, now=now)
    return position


def _record_end(session: Session, row: Order, position: Position) -> None:
    """What an ended order executed, as its position's history tells it (notifications)."""
    if row.leg == ENTRY_LEG:
        entry_filled(session, row, position)
    else:
        exit_filled(session, row, position)


def _after_end(ctx: ExecContext, row: Order, position_id: int, *, reason: str) -> None:
    """An entry that ended brackets what it received (or closes an empty position); an exit
    that ended with the position still open re-brackets the remainder."""
    with session_scope(ctx.sessions) as session:
        held = session.get(Position, position_id)
        assert held is not None
        if row.leg == ENTRY_LEG:
            if held.quantity > 0:
                protect_position(ctx, session, held, reason=reason)
            elif held.status == "open":
                held.status = "closed"
                held.bracket_note = "entry ended with nothing filled"
        elif held.status == "open":
            protect_position(ctx, session, held, reason=f"rest of a limit exit ({reason})")


def _settle_signal(
    session: Session, signal_id: str, *, now: datetime, expired: str | None = None
) -> bool:
    """``working`` -> ``done`` (or ``expired``) once none of the signal's orders works; in
    the caller's transaction. ``expired``: end it ``expired`` with that reason."""
    orders = list(session.scalars(select(Order).where(Order.signal_id == signal_id)))
    if any(o.status in LIVE_ORDER and not o.leg.startswith(BRACKET) for o in orders):
        return False
    executed = sum((o.executed_qty or Decimal(0) for o in orders), Decimal(0))
    if expired is not None:
        status, reason = SignalStatus.EXPIRED, expired
    elif executed:
        status, reason = SignalStatus.DONE, f"executed {executed}"
    else:
        status, reason = SignalStatus.EXPIRED, "ended with nothing executed"
    return transition(session, signal_id, (SignalStatus.WORKING.value,), status, reason, now=now)


def settle_orphaned_signals(ctx: ExecContext, *, now: datetime, limit: int = 200) -> int:
    """Settle ``working`` signals with resting limit orders, none of them live any more for
    ``SETTLE_GRACE``: their settlement was lost (a crash after the order's end was recorded)."""
    cutoff = now - SETTLE_GRACE
    with session_scope(ctx.sessions) as session:
        candidates = list(
            session.scalars(
                select(SignalRow.id)
                .join(Order, Order.signal_id == SignalRow.id)
                .where(
                    SignalRow.status == SignalStatus.WORKING.value,
                    Order.kind.in_(FOLLOWED),
                    Order.status.in_(TERMINAL),
                    Order.updated_at <= cutoff,
                )
                .distinct()
                .limit(limit)
            )
        )
    settled = 0
    for signal_id in candidates:
        with session_scope(ctx.sessions) as session:
            mine = [
                o
                for o in session.scalars(select(Order).where(Order.signal_id == signal_id))
                if not o.leg.startswith(BRACKET)
            ]
            if any(o.kind in ALGO_KINDS for o in mine):
                continue  # the monitor settles algo signals
            if any(_aware(o.updated_at) > cutoff for o in mine):
                continue
            if not _settle_signal(session, signal_id, now=now):
                continue
            event(session, "settled", "its orders had ended; the signal was still working",
                  signal_id=signal_id)  # fmt: skip
            settled += 1
            for order in mine:
                position = _apply_to_position(session, order, now=now)
                if order.leg == ENTRY_LEG and position is not None and not position.quantity:
                    # As _after_end: an entry that ended empty leaves no open position (one
                    # that received something is bracketed by the monitor's retry pass).
                    position.status = "closed"
                    position.bracket_note = "entry ended with nothing filled"
    return settled


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
