"""The written record of execution: order rows (written before anything is sent) and events.

Every step leaves an ``events`` row (planned, sent, accepted, adopted, rejected, unknown,
reconciled, deferred, refused, cancelled, bracket, ...), so the history of a signal or an
order can be read back in order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.exchange.filters import to_wire
from app.execution.planning import OrderIntent
from app.models import Event, Order, OrderStatus, utcnow


def event(
    session: Session,
    kind: str,
    message: str,
    /,
    *,
    signal_id: str | None = None,
    order_id: int | None = None,
    **data: Any,
) -> None:
    """Append one history row in the session's transaction."""
    session.add(
        Event(
            signal_id=signal_id,
            order_id=order_id,
            kind=kind,
            message=message,
            data=data or None,
            created_at=utcnow(),
        )
    )


def _wire(value: Any) -> Any:
    return to_wire(value) if value is not None and not isinstance(value, str | int) else value


def request_params(intent: OrderIntent) -> dict[str, Any]:
    """What will be sent, as text (never a signature, key or timestamp)."""
    params = {
        "symbol": intent.symbol,
        "side": intent.side,
        "kind": intent.kind,
        "quantity": _wire(intent.quantity),
        "quote_quantity": _wire(intent.quote_quantity),
        "price": _wire(intent.price),
        "stop_price": _wire(intent.stop_price),
        "limit_price": _wire(intent.limit_price),
        "duration": intent.duration,
        "urgency": intent.urgency,
    }
    return {k: v for k, v in params.items() if v is not None}


def add_orders(
    session: Session,
    intents: Sequence[OrderIntent],
    *,
    signal_id: str | None,
    position_id: int | None,
    sending: bool = False,
) -> list[Order]:
    """Write ``planned`` rows for intents whose client id is new; return the rows of every
    intent (existing ones too: a re-run or a concurrent caller wrote them first).

    ``sending``: write new rows as ``sending`` right away, for a caller that holds the claim
    and sends them as soon as this transaction commits (``placement.place(marked=...)``);
    one commit before the request instead of two."""
    if not intents:
        return []
    now = utcnow()
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    table = Order.__table__
    for intent in intents:
        row = {
            "signal_id": signal_id,
            "position_id": position_id,
            "leg": intent.leg,
            "kind": intent.kind,
            "market": intent.market,
            "symbol": intent.symbol,
            "side": intent.side,
            "client_id": intent.client_id,
            "status": (OrderStatus.SENDING if sending else OrderStatus.PLANNED).value,
            "quantity": intent.quantity,
            "quote_quantity": intent.quote_quantity,
            "price": intent.price,
            "stop_price": intent.stop_price,
            "limit_price": intent.limit_price,
            "duration": intent.duration,
            "urgency": intent.urgency,
            "executed_qty": 0,
            "executed_amt": 0,
            "params": request_params(intent),
            "extra": {**intent.extra(), "sent_at": time.time()} if sending else intent.extra(),
            "attempts": 1 if sending else 0,
            "created_at": now,
            "updated_at": now,
        }
        stmt = (
            dialect.insert(table)
            .values(row)
            .on_conflict_do_nothing(index_elements=["client_id"])
            .returning(table.c.id)
        )
        new_id = session.execute(stmt).scalar()
        if new_id is not None:
            event(
                session,
                "planned",
                f"{intent.kind} {intent.side} {intent.symbol} ({intent.leg})",
                signal_id=signal_id,
                order_id=new_id,
                client_id=intent.client_id,
                **request_params(intent),
            )
            if sending:
                event(session, "sent", f"sending {intent.kind} {intent.side} {intent.symbol}",
                      signal_id=signal_id, order_id=new_id, client_id=intent.client_id)  # fmt: skip
    by_client = {
        o.client_id: o
        for o in session.scalars(
            select(Order).where(Order.client_id.in_([i.client_id for i in intents]))
        )
    }
    return [by_client[i.client_id] for i in intents]
