"""The written record of execution: order rows (written before anything is sent) and events.

Every step leaves an ``events`` row (planned, sent, accepted, adopted, rejected, unknown,
reconciled, deferred, refused, cancelled, bracket, ...), so the history of a signal or an
order can be read back in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.accounts import DEFAULT_ACCOUNT
from app.exchange.filters import to_wire
from app.execution.planning import OrderIntent
from app.models import Event, Order, OrderStatus, Position, utcnow
from app.models import Signal as SignalRow
from app.notify.kinds import notification_kind

# The tables themselves: Core INSERTs built once, without the ORM's bulk path.
EVENTS = cast(Table, Event.__table__)
ORDERS = cast(Table, Order.__table__)
_INSERT_EVENT = insert(EVENTS)
_INSERT_ORDER = {
    name: dialect.insert(ORDERS)
    .on_conflict_do_nothing(index_elements=[ORDERS.c.client_id])
    .returning(ORDERS.c.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_ORDERS_BY_CLIENT_ID = select(Order).where(
    Order.client_id.in_(bindparam("client_ids", expanding=True))
)


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
    payload = data or None
    row: dict[str, Any] = {
        "signal_id": signal_id,
        "order_id": order_id,
        "kind": kind,
        "message": message,
        "data": payload,
        # Wall time, as intake stamps received_at: history, and the delays measured from
        # received_at (quality), read as real time; no decision reads it against a clock.
        "created_at": utcnow(),
    }
    if notification_kind(kind, payload, order_id=order_id) is not None:
        # Through the ORM: its flush writes the notification's outbox row beside it
        # (app.models._add_notifications).
        session.add(Event(**row))
    else:
        # Most history is not notified: one plain INSERT, no unit of work around it.
        session.execute(_INSERT_EVENT, row)


def _num(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def entry_filled(session: Session, order: Order, position: Position | None) -> bool:
    """Record that an entry order ended having executed something (an ``entry_filled`` event,
    which is a notification); False when it executed nothing. Call it once, where the order's
    end is recorded."""
    executed = order.executed_qty or Decimal(0)
    if executed <= 0:
        return False
    avg = order.avg_price or (position.entry_avg_price if position is not None else None)
    of = f" of {_num(order.quantity)}" if order.quantity and order.quantity != executed else ""
    text = f"{order.side} {_num(executed)}{of} {order.symbol} ({order.kind})"
    if avg:
        text += f" at avg {_num(avg)}"
    held = position.quantity if position is not None else None
    if held is not None and held != executed:
        text += f"; holding {_num(held)} net of fees"
    event(session, "entry_filled", text, signal_id=order.signal_id, order_id=order.id,
          position_id=position.id if position is not None else None, side=order.side,
          symbol=order.symbol, market=order.market, executed_qty=_num(executed),
          quantity=_num(order.quantity), avg_price=_num(avg), held=_num(held))  # fmt: skip
    return True


def exit_filled(session: Session, order: Order, position: Position, **data: Any) -> bool:
    """Record that an order closing (part of) ``position`` executed, after its fills were
    applied to the position: an ``exit`` event with the position's realised PnL so far (a
    notification); False when it executed nothing."""
    executed = order.executed_qty or Decimal(0)
    if executed <= 0:
        return False
    left = max(
        (position.quantity or Decimal(0)) - (position.exit_quantity or Decimal(0)), Decimal(0)
    )
    pnl = position.realized_pnl or Decimal(0)
    closed = position.status == "closed"
    text = (
        f"{order.kind} exit: {_num(executed)} at {_num(order.avg_price or Decimal(0))}"
        f"; realised PnL {_num(pnl)}; "
        + ("position closed" if closed else f"{_num(left)} left open")
    )
    event(session, "exit", text, signal_id=order.signal_id, order_id=order.id,
          position_id=position.id, side=order.side, symbol=order.symbol, market=order.market,
          executed_qty=_num(executed), avg_price=_num(order.avg_price), realized_pnl=_num(pnl),
          left=_num(left), closed=closed, **data)  # fmt: skip
    return True


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
    now: datetime,
    account: str | None = None,
) -> list[Order]:
    """Write ``planned`` rows for intents whose client id is new; return the rows of every
    intent (existing ones too: a re-run or a concurrent caller wrote them first).

    ``sending``: write new rows as ``sending`` right away, for a caller that holds the claim
    and sends them as soon as this transaction commits (``placement.place(marked=...)``);
    one commit before the request instead of two. ``now`` stamps them (the caller's clock).
    ``account``: the rows' account when the caller knows it (else their position's, or
    their signal's)."""
    if not intents:
        return []
    insert_order = _INSERT_ORDER[session.get_bind().dialect.name]
    account = account or _account_of(session, signal_id, position_id)
    for intent in intents:
        row = {
            "signal_id": signal_id,
            "position_id": position_id,
            "account": account,
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
            "extra": {**intent.extra(), "sent_at": now.timestamp()} if sending else intent.extra(),
            "attempts": 1 if sending else 0,
            "created_at": now,
            "updated_at": now,
        }
        new_id = session.execute(insert_order, row).scalar()
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
            _ORDERS_BY_CLIENT_ID, {"client_ids": [i.client_id for i in intents]}
        )
    }
    return [by_client[i.client_id] for i in intents]


def _account_of(session: Session, signal_id: str | None, position_id: int | None) -> str:
    """An order's account: its position's, else its signal's (``default`` for neither)."""
    if position_id is not None:
        account = session.scalar(select(Position.account).where(Position.id == position_id))
        if account is not None:
            return account
    if signal_id is not None:
        account = session.scalar(select(SignalRow.account).where(SignalRow.id == signal_id))
        if account is not None:
            return account
    return DEFAULT_ACCOUNT
