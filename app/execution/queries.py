"""Database look-ups execution needs: positions, live entries, exposure, the guard lock."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.orm import Session

from app.execution.positions import ENTRY_LEG
from app.models import Order, OrderStatus, Position, SignalStatus
from app.models import Signal as SignalRow
from app.signals.schemas import OPENING

DEFAULT_STRATEGY = "default"
LIVE_ORDER = (
    OrderStatus.PLANNED.value,
    OrderStatus.SENDING.value,
    OrderStatus.UNKNOWN.value,
    OrderStatus.WORKING.value,
)
LIVE_SIGNAL = (SignalStatus.PROCESSING.value, SignalStatus.WORKING.value)
OPENING_ACTIONS = tuple(action.value for action in OPENING)


def strategy_of(strategy: str | None) -> str:
    return strategy or DEFAULT_STRATEGY


def lock_key(session: Session, *parts: str) -> None:
    """Serialise writers of one (strategy, market, symbol) until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: every write transaction already
    holds the database's write lock from BEGIN IMMEDIATE.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def open_positions(
    session: Session, strategy: str, market: str, symbol: str, *, account: str
) -> list[Position]:
    return list(
        session.scalars(
            select(Position)
            .where(
                Position.account == account,
                Position.strategy == strategy,
                Position.market == market,
                Position.symbol == symbol,
                Position.status == "open",
            )
            .order_by(Position.id)
        )
    )


# What every entry job runs, built once: only parameters change from call to call.
_POSITION_OF = select(Position).where(Position.opened_by == bindparam("signal_id"))
_CLIENT_IDS = (
    select(Order.client_id).where(Order.signal_id == bindparam("signal_id")).order_by(Order.id)
)
_OPEN_POSITION = select(Position.id).where(
    Position.account == bindparam("account"),
    Position.strategy == bindparam("strategy"),
    Position.market == bindparam("market"),
    Position.symbol == bindparam("symbol"),
    Position.status == "open",
    Position.opened_by != bindparam("exclude"),
)
_LIVE_ENTRY_SIGNAL = select(SignalRow.id).where(
    SignalRow.action.in_(OPENING_ACTIONS),
    SignalRow.account == bindparam("account"),
    func.coalesce(SignalRow.strategy, DEFAULT_STRATEGY) == bindparam("strategy"),
    SignalRow.market == bindparam("market"),
    SignalRow.symbol == bindparam("symbol"),
    SignalRow.status.in_(LIVE_SIGNAL),
    SignalRow.id != bindparam("exclude"),
)


def position_of(session: Session, signal_id: str) -> Position | None:
    return session.scalars(_POSITION_OF, {"signal_id": signal_id}).first()


def signal_orders(session: Session, signal_id: str) -> list[Order]:
    return list(
        session.scalars(select(Order).where(Order.signal_id == signal_id).order_by(Order.id))
    )


def signal_client_ids(session: Session, signal_id: str) -> tuple[str, ...]:
    """The client ids of a signal's orders, in the order they were written."""
    return tuple(session.scalars(_CLIENT_IDS, {"signal_id": signal_id}))


def live_entry(
    session: Session, strategy: str, market: str, symbol: str, *, exclude: str, account: str
) -> str | None:
    """What makes an entry for this key live: an open position, or an entry being placed."""
    key = {
        "account": account,
        "strategy": strategy,
        "market": market,
        "symbol": symbol,
        "exclude": exclude,
    }
    position = session.scalars(_OPEN_POSITION, key).first()
    if position is not None:
        return f"open position {position}"
    other = session.scalars(_LIVE_ENTRY_SIGNAL, key).first()
    return f"signal {other}" if other is not None else None


def exposure(
    session: Session, market: str, symbol: str, price: Decimal, *, exclude: str, account: str
) -> Decimal:
    """Notional on a symbol in one account: open positions' holdings and working entries'
    unfilled part."""
    held = sum(
        (
            p.quantity
            for p in session.scalars(
                select(Position).where(
                    Position.account == account,
                    Position.market == market,
                    Position.symbol == symbol,
                    Position.status == "open",
                )
            )
        ),
        Decimal(0),
    )
    total = held * price
    for order in session.scalars(
        select(Order).where(
            Order.account == account,
            Order.market == market,
            Order.symbol == symbol,
            Order.leg == ENTRY_LEG,
            Order.status.in_(LIVE_ORDER),
            Order.signal_id != exclude,
        )
    ):
        if order.quantity is not None:
            total += max(order.quantity - (order.executed_qty or 0), Decimal(0)) * price
        elif order.quote_quantity is not None:
            total += max(order.quote_quantity - (order.executed_amt or 0), Decimal(0))
    return total


def live_orders(session: Session, ids: Sequence[int]) -> list[Order]:
    if not ids:
        return []
    return list(
        session.scalars(select(Order).where(Order.id.in_(list(ids)), Order.status.in_(LIVE_ORDER)))
    )
