"""ORM rows: signals, orders, fills, positions, events, notifications and operator controls.

Columns mirrored from Binance keep Binance's names (``clientAlgoId`` becomes ``client_id``
on an order of any kind, with ``venue_id`` for ``algoId`` / ``orderId`` / ``orderListId``).
Quantities and prices are :class:`~app.db.Money` (exact decimals).
"""

from __future__ import annotations

import enum
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import event as orm_events
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, validates

from app.db import Base, Money
from app.notify.kinds import notification_kind


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A 32-hex-character id that sorts by creation time (48-bit ms clock + 80 random bits)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


class SignalStatus(enum.StrEnum):
    RECEIVED = "received"  # committed, not yet on the queue
    QUEUED = "queued"  # a job exists for it
    PROCESSING = "processing"  # a worker claimed it and is placing orders
    WORKING = "working"  # orders are live; the monitor owns it now
    DONE = "done"  # everything it asked for happened
    FAILED = "failed"  # the exchange rejected it, or it could not be placed
    REFUSED = "refused"  # a guard stopped it before anything was sent
    CANCELLED = "cancelled"  # cancelled by an operator or a later signal
    EXPIRED = "expired"  # its expiry passed before it was done

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_SIGNAL_STATUSES


TERMINAL_SIGNAL_STATUSES = frozenset(
    {
        SignalStatus.DONE,
        SignalStatus.FAILED,
        SignalStatus.REFUSED,
        SignalStatus.CANCELLED,
        SignalStatus.EXPIRED,
    }
)


class OrderStatus(enum.StrEnum):
    PLANNED = "planned"  # written, not yet sent
    SENDING = "sending"  # a request is (or may be) in flight
    UNKNOWN = "unknown"  # the venue may or may not have it: reconcile by client id
    WORKING = (
        "working"  # live on the venue (algo WORKING, order NEW/PARTIALLY_FILLED, list EXECUTING)
    )
    FILLED = "filled"  # fully executed (algo FINISHED with fills, order FILLED, list leg filled)
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"  # the venue refused it; never retried

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_ORDER_STATUSES


TERMINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)


class OrderKind(enum.StrEnum):
    """What an order row is (``orders.kind``); the value is what the database stores."""

    MARKET = "market"
    LIMIT = "limit"
    TWAP = "twap"  # a Binance algo
    VP = "vp"  # a Binance algo: volume participation
    OCO = "oco"  # a spot order list (take-profit and stop legs)
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    STOP_LOSS_LIMIT = "stop_loss_limit"
    STOP_LOSS = "stop_loss"
    CONDITIONAL = "conditional"  # a USD-M conditional (algo) order: TP/SL or trailing stop


# The kinds Binance runs as algos (/sapi/v1/algo): the monitor paces them, cancels go there.
ALGO_KINDS = frozenset({OrderKind.TWAP, OrderKind.VP})


class Signal(Base):
    """One accepted webhook signal; the payload is stored without its secret."""

    __tablename__ = "signals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # The sender's id, or "digest:<sha256 of the canonical body>" when it sent none.
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    body_digest: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str | None] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    market: Mapped[str] = mapped_column(String(8))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str | None] = mapped_column(String(8))
    strategy: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=SignalStatus.RECEIVED)
    status_reason: Mapped[str | None] = mapped_column(Text)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Digest keys stop counting as repeats after this time (sender ids never do).
    dedupe_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The named account it executes on (app/accounts.py). A signal for several accounts is
    # a parent (status summed from its children) with one child row per account.
    account: Mapped[str] = mapped_column(String(24), default="default", server_default="default")
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("signals.id"), index=True)

    orders: Mapped[list[Order]] = relationship(back_populates="signal", order_by="Order.id")

    __table_args__ = (
        Index("ix_signals_status_received_at", "status", "received_at"),
        Index("ix_signals_strategy_symbol", "strategy", "symbol"),
    )


class Position(Base):
    """What a (strategy, market, symbol) holds because of our entries, and its bracket."""

    __tablename__ = "positions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    strategy: Mapped[str] = mapped_column(String(64), default="default")
    account: Mapped[str] = mapped_column(String(24), default="default", server_default="default")
    market: Mapped[str] = mapped_column(String(8))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))  # BUY opens a long, SELL a short
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / closed
    quantity: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))  # net of fees
    entry_avg_price: Mapped[Decimal | None] = mapped_column(Money)
    entry_cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))  # quote spent/received
    exit_quantity: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    exit_proceeds: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    # Take-profit / stop-loss levels waiting for the entry to fill: {"take_profit": {...}, ...}
    # None is SQL NULL (not JSON null), so "has a pending bracket" is `IS NOT NULL`.
    pending_bracket: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    bracket_note: Mapped[str | None] = mapped_column(Text)
    # The latest bracket generation claimed (compare-and-set 0 -> 1 -> 2 ...): a bracket's
    # client ids derive from (position id, generation), so of any two placers one places it.
    bracket_gen: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # usdm: the leverage and margin type ("isolated" / "cross") the entry set on the symbol
    leverage: Mapped[int | None] = mapped_column(Integer)
    margin_type: Mapped[str | None] = mapped_column(String(8))
    opened_by: Mapped[str | None] = mapped_column(ForeignKey("signals.id"))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        Index("ix_positions_key", "account", "strategy", "market", "symbol", "status"),
    )

    @validates("status")
    def _stamp_closed(self, _key: str, status: str) -> str:
        """A position set ``closed`` without a ``closed_at`` gets the time now (a caller
        with its own clock sets ``closed_at`` itself, after)."""
        if status == "closed" and self.closed_at is None:
            self.closed_at = utcnow()
        return status


class Order(Base):
    """Every order, algo or order list we send, written before it is sent."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signal_id: Mapped[str | None] = mapped_column(ForeignKey("signals.id"), index=True)
    position_id: Mapped[int | None] = mapped_column(ForeignKey("positions.id"), index=True)
    leg: Mapped[str] = mapped_column(String(24))  # entry, bracket, tp, sl, exit, ...
    account: Mapped[str] = mapped_column(String(24), default="default", server_default="default")
    # an OrderKind value
    kind: Mapped[str] = mapped_column(String(24))
    market: Mapped[str] = mapped_column(String(8))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    # clientAlgoId / newClientOrderId / listClientOrderId
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    # algoId / orderId / orderListId; Binance ids exceed 2^53 but fit in a signed 64-bit integer
    venue_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PLANNED)
    venue_status: Mapped[str | None] = mapped_column(String(32))
    quantity: Mapped[Decimal | None] = mapped_column(Money)
    quote_quantity: Mapped[Decimal | None] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    stop_price: Mapped[Decimal | None] = mapped_column(Money)
    limit_price: Mapped[Decimal | None] = mapped_column(Money)
    duration: Mapped[int | None] = mapped_column(Integer)
    urgency: Mapped[str | None] = mapped_column(String(8))
    executed_qty: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    executed_amt: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    avg_price: Mapped[Decimal | None] = mapped_column(Money)
    # Request parameters as sent (never the signature, key or timestamp).
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Extra venue facts: leg ids of an order list, pace policy, ...
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_msg: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    book_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_fill_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    signal: Mapped[Signal | None] = relationship(back_populates="orders")
    fills: Mapped[list[Fill]] = relationship(back_populates="order", order_by="Fill.id")

    __table_args__ = (Index("ix_orders_status_kind", "status", "kind"),)


class Fill(Base):
    """One execution: a TWAP/VP sub-order's fill, or a trade of a plain order."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    # subOrders orderId, or tradeId; unique per order so a re-read never doubles a fill
    venue_fill_id: Mapped[str] = mapped_column(String(64))
    price: Mapped[Decimal] = mapped_column(Money)
    qty: Mapped[Decimal] = mapped_column(Money)
    quote_qty: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))  # positive = paid
    fee_asset: Mapped[str | None] = mapped_column(String(16))
    time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    order: Mapped[Order] = relationship(back_populates="fills")

    __table_args__ = (UniqueConstraint("order_id", "venue_fill_id", name="uq_fills_order_venue"),)


class Event(Base):
    """An append-only history: state changes and every step taken for a signal or order."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signal_id: Mapped[str | None] = mapped_column(ForeignKey("signals.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    # state, planned, sent, accepted, rejected, unknown, reconciled, adopted, fill, pace, ...
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Control(Base):
    """Operator switches that every process reads: the kill switch lives here."""

    __tablename__ = "controls"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) delivery attempt, at ``due_at``
    SENDING = "sending"  # claimed by a delivery run until ``lease_until``
    SENT = "sent"  # every configured target accepted it
    FAILED = "failed"  # out of attempts; ``last_error`` says why
    SKIPPED = "skipped"  # not notified: its kind is filtered out, or no target is configured


class Notification(Base):
    """The outbox of notifications: one row per notifiable event, written in the event's
    transaction (see :func:`_add_notifications`), delivered by ``app.notify.service``."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), unique=True)
    # A name of app.notify.kinds.NOTIFY_KINDS (what PACEKEEPER_NOTIFY_EVENTS filters on).
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Ids of the targets (app.notify.targets) that accepted it: a retry skips them.
    delivered: Mapped[list[str] | None] = mapped_column(JSON)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    event: Mapped[Event] = relationship()

    __table_args__ = (Index("ix_notifications_status_due_at", "status", "due_at"),)


@orm_events.listens_for(Session, "before_flush")
def _add_notifications(session: Session, _context: Any, _instances: Any) -> None:
    """Every notifiable ``Event`` added through the ORM (``journal.event``, ``session.add``)
    gets its outbox row in the same flush, so in the same transaction: a notification exists
    exactly when its event was committed, and writing it costs execution one INSERT, never a
    request. (Bulk ``insert(Event)`` rows, the signals' ``state`` history, are not notified.)"""
    for obj in list(session.new):
        if isinstance(obj, Event):
            kind = notification_kind(obj.kind, obj.data, order_id=obj.order_id)
            if kind is not None:
                session.add(Notification(event=obj, kind=kind))
