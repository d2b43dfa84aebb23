"""A position's bracket orders: finding them, placing one row, cancelling them.

Client ids come from the position and the bracket's generation (leg ``bracket``, then
``bracket2``, ``bracket3``... after a replacement), the generation claimed by compare-and-set
on ``positions.bracket_gen`` (``app.execution.protection``, which decides when a position
needs a new bracket): placing the same bracket from the worker, the monitor and the
resting-order follower at once makes one order.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.execution.cancels import cancel_order
from app.execution.claims import Claim
from app.execution.context import ExecContext
from app.execution.journal import event
from app.execution.placement import OrderRejected, place
from app.execution.planning import BRACKET
from app.models import TERMINAL_ORDER_STATUSES, Order, Position

log = logging.getLogger(__name__)

TERMINAL = frozenset(s.value for s in TERMINAL_ORDER_STATUSES)
REJECTED_NOTE = "bracket rejected"
UNPROTECTED = "unprotected:"
# Generations another placer claimed first, in one call, before leaving it to the next pass.
MAX_GENERATION_RACES = 5


def bracket_orders(session: Session, position: Position) -> list[Order]:
    """Every bracket order the position ever had, oldest first."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.position_id == position.id, Order.leg.startswith(BRACKET))
            .order_by(Order.id)
        )
    )


def live_brackets(session: Session, position: Position) -> list[Order]:
    return [o for o in bracket_orders(session, position) if o.status not in TERMINAL]


def current_price(ctx: ExecContext, market: str, symbol: str) -> Decimal:
    """Last spot price, or the USD-M mark price (what futures triggers and limits use)."""
    if market == "usdm":
        return ctx.client.mark_price(symbol).markPrice
    return ctx.client.ticker_price(symbol)


def bracket_key(position_id: int) -> str:
    """What a position's bracket client ids derive from, with the leg ``bracket<gen>``."""
    return f"position-{position_id}"


def place_bracket_row(
    ctx: ExecContext, session: Session, position: Position, row: Order, claim: Claim | None
) -> Order | None:
    """Place (or reconcile) one bracket row; None when the exchange refused it, with the
    refusal on the position's note and as an ``unprotected`` event. Commits."""
    try:
        return place(ctx, row.id, claim)
    except OrderRejected as exc:
        position.bracket_note = f"{UNPROTECTED} {REJECTED_NOTE}: {exc.msg} (code {exc.code})"
        event(session, "unprotected", position.bracket_note, signal_id=row.signal_id,
              order_id=row.id, position_id=position.id)  # fmt: skip
        session.commit()
        return None


def cancel_brackets(
    ctx: ExecContext,
    session: Session,
    position: Position,
    *,
    reason: str,
    legs: tuple[str, ...] = ("tp", "sl", "both"),
    claim: Claim | None = None,
) -> list[Order]:
    """Cancel the position's live bracket orders (those protecting ``legs``); commits."""
    live = [
        o
        for o in live_brackets(session, position)
        if (o.extra or {}).get("bracket_leg", "both") in legs
    ]
    session.commit()
    return [cancel_order(ctx, o.id, reason=reason, claim=claim) for o in live]
