"""A signal the exchange refuses for good ends ``refused`` at once, with the exchange's reason.

The execution layer turns the rejection of an order it sends into a ``failed`` signal
itself. A rejection of anything else it asks first (exchangeInfo for an unknown symbol:
-1121 "Invalid symbol.", a price, a filter) escapes it as an unexpected error: it hands the
signal back (``queued``) and the job fails, and the intake sweeper ran it again and again,
each time meeting the same answer. A ``Rejected`` answer is permanent by definition
(``app.exchange.errors``), so the RQ job (``worker/jobs.py``) settles the signal here
instead: refused, with the code and message, and an event saying so.

Only while nothing it sent is in doubt: with an order ``sending``/``unknown``/``working`` the
signal is left to the next run, which reconciles that order first.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import session_scope
from app.exchange.errors import Rejected
from app.execution.claims import transition
from app.models import Event, Order, OrderStatus, Position, SignalStatus

log = logging.getLogger(__name__)

SETTLED_ORDER_STATES = {s.value for s in OrderStatus if s.terminal} | {OrderStatus.PLANNED.value}


def rejection_reason(exc: Rejected) -> str:
    code = f" (code {exc.code})" if exc.code is not None else ""
    return f"rejected by the exchange: {exc.msg}{code}"


def refuse_rejected(
    sessions: sessionmaker[Session], signal_id: str, exc: Rejected, *, now: datetime
) -> bool:
    """Settle a signal handed back after ``exc``: ``queued`` -> ``refused`` at ``now``; True
    if done."""
    reason = rejection_reason(exc)
    with session_scope(sessions) as session:
        mine = list(session.scalars(select(Order).where(Order.signal_id == signal_id)))
        if any(o.status not in SETTLED_ORDER_STATES for o in mine):
            return False  # an order may be live: the next run reconciles it first
        data = {"code": exc.code, "path": exc.path}
        if not transition(session, signal_id, (SignalStatus.QUEUED.value,),
                          SignalStatus.REFUSED, reason, now=now, **data):  # fmt: skip
            return False
        for order in mine:
            if order.status == OrderStatus.PLANNED.value:
                order.status = OrderStatus.CANCELLED.value
                order.updated_at = now
                session.add(
                    Event(signal_id=signal_id, order_id=order.id, kind="cancelled",
                          message=f"never sent ({reason})", created_at=now)
                )  # fmt: skip
        session.execute(
            update(Position)
            .where(
                Position.opened_by == signal_id,
                Position.status == "open",
                Position.quantity == 0,
            )
            .values(status="closed", closed_at=now, bracket_note=reason)
        )
        session.add(
            Event(signal_id=signal_id, kind="refused", message=reason, data=data, created_at=now)
        )
    log.warning("signal %s refused: %s", signal_id, reason)
    return True
