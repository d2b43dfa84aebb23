"""Working TWAP/VP algos as the monitor keeps them: a snapshot of each row, the child fills
read from the exchange, and the writes that end an algo (its state, its signal's state).

``Order.executed_qty`` / ``executed_amt`` / ``avg_price`` add up the child fills recorded so
far, counting only children that are done (a child still open may fill more). The monitor
reads subOrders again whenever the exchange's ``executedQty`` differs from that sum, so the
two meet again once every child has ended.

A child's fill is stamped with the child's ``bookTime``, the only time subOrders gives for a
child (it carries no update or trade time): ``last_fill_at``, which the stall rule reads,
dates a fill from when its child was placed, a little before it executed, and a child still
open counts only once it ends. A stall is therefore judged early by up to one child's
lifetime; keep stall windows well above it.

The order's leg decides what its fills do to its position: an ``entry`` leg adds to what the
position holds (``apply_entry_fills``); an exit or close leg takes from it
(``apply_exit_fills``), closing it with its realised result once only dust is left.

An algo ended with quantity left that its signal's remainder policy acts on
(``remainder_policy.py``) is marked for ``remainders.py`` in the transaction that ends it,
and its signal stays ``working`` until that is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Update, select, update
from sqlalchemy.orm import Session

from app.exchange.filters import Market
from app.exchange.models import OPEN_ORDER_STATUSES, AlgoOrder, SubOrder
from app.execution.journal import entry_filled, event, exit_filled
from app.execution.parents import sum_up
from app.execution.positions import (
    ENTRY_LEG,
    apply_entry_fills,
    apply_exit_fills,
    record_fills,
    sub_order_fills,
)
from app.models import ALGO_KINDS, Fill, Order, OrderStatus, Position, Signal, SignalStatus
from app.monitoring import remainder_policy
from app.signals.schemas import Remainder

ZERO = Decimal(0)

# Legs of orders that close (part of) a position, as ``app/execution/closes.py`` names them.
CLOSE_PREFIXES = ("exit", "close")

# What the exchange's final algoStatus makes of our order.
FINISHED, CANCELLED, EXPIRED = "FINISHED", "CANCELLED", "EXPIRED"


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def qty(value: Decimal) -> str:
    return f"{value.normalize():f}"


def closing(leg: str) -> bool:
    """Does an order of this leg take from its position (an exit or close)?"""
    return leg.startswith(CLOSE_PREFIXES)


@dataclass(frozen=True)
class WatchedAlgo:
    """What the monitor needs of one working algo row, read once per cycle."""

    order_id: int
    signal_id: str | None
    position_id: int | None
    kind: str
    leg: str
    market: Market
    symbol: str
    client_id: str
    venue_id: int | None
    duration: int | None
    executed_qty: Decimal
    last_fill_at: datetime | None
    since: datetime  # bookTime when known, else when we wrote the row
    pace: dict[str, Any] | None
    expires_at: datetime | None
    remainder: Remainder = Remainder.CANCEL  # the signal's policy for what it leaves


def compare_and_set(session: Session, stmt: Update) -> bool:
    """Run an UPDATE guarded by the row's current status; True when it moved the row."""
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def load_working(session: Session, account: str) -> list[WatchedAlgo]:
    """Every TWAP/VP of ``account`` the database thinks is working, with its signal's pace
    and expiry."""
    rows = session.execute(
        select(Order, Signal.payload, Signal.expires_at)
        .outerjoin(Signal, Order.signal_id == Signal.id)
        .where(
            Order.account == account,
            Order.status == OrderStatus.WORKING,
            Order.kind.in_(ALGO_KINDS),
        )
        .order_by(Order.id)
    ).all()
    out = []
    for order, payload, expires_at in rows:
        payload = payload or {}
        if expires_at is None and payload.get("expires_at"):
            expires_at = datetime.fromisoformat(str(payload["expires_at"]))
        since = aware(order.book_time) or aware(order.created_at)
        assert since is not None
        out.append(
            WatchedAlgo(
                order_id=order.id,
                signal_id=order.signal_id,
                position_id=order.position_id,
                kind=order.kind,
                leg=order.leg,
                market=Market(order.market),
                symbol=order.symbol,
                client_id=order.client_id,
                venue_id=order.venue_id,
                duration=order.duration,
                executed_qty=order.executed_qty or ZERO,
                last_fill_at=aware(order.last_fill_at),
                since=since,
                pace=payload.get("pace"),
                expires_at=aware(expires_at),
                remainder=remainder_policy.policy_of(payload, order.leg),
            )
        )
    return out


def done_children(subs: Iterable[SubOrder]) -> list[SubOrder]:
    return [s for s in subs if s.orderStatus not in OPEN_ORDER_STATUSES]


def settled(row: AlgoOrder, subs: Sequence[SubOrder]) -> bool:
    """Every child has ended and they add up to what the algo says it executed."""
    ended = done_children(subs)
    return len(ended) == len(subs) and sum((s.executedQty for s in ended), ZERO) == row.executedQty


def mirror(order: Order, row: AlgoOrder) -> None:
    """Keep the exchange's id, status and times on our row."""
    order.venue_id = row.algoId
    order.venue_status = str(row.algoStatus)
    order.book_time = from_ms(row.bookTime)
    if row.endTime:
        order.end_time = from_ms(row.endTime)


def recorded_fill_ids(session: Session, order_ids: Sequence[int]) -> dict[int, set[str]]:
    """The venue fill ids already stored, per order (one query for a batch)."""
    known: dict[int, set[str]] = {i: set() for i in order_ids}
    rows = session.execute(
        select(Fill.order_id, Fill.venue_fill_id).where(Fill.order_id.in_(list(order_ids)))
    )
    for order_id, venue_fill_id in rows:
        known[order_id].add(venue_fill_id)
    return known


def apply_children(
    session: Session,
    order: Order,
    subs: Sequence[SubOrder],
    known: set[str] | None = None,
    *,
    now: datetime,
) -> int:
    """Record the child fills not stored yet (``known``: their ids, read if not given) and
    the sums on the order; returns how many fills were new."""
    fills = sub_order_fills(done_children(subs))
    if known is None:
        known = recorded_fill_ids(session, [order.id])[order.id]
    new = record_fills(session, order, [f for f in fills if f.venue_fill_id not in known], now=now)
    executed = sum((f.qty for f in fills), ZERO)
    amount = sum((f.quote_qty for f in fills), ZERO)
    order.executed_qty = executed
    order.executed_amt = amount
    order.avg_price = (amount / executed) if executed else None
    if order.position_id is not None and new:
        position = session.get(Position, order.position_id)
        if position is not None and closing(order.leg):
            apply_exit_fills(session, position, now=now)
        elif position is not None:
            apply_entry_fills(session, position)
    return len(new)


def final_status(algo_status: str, executed: Decimal) -> OrderStatus:
    if algo_status == FINISHED:
        return OrderStatus.FILLED if executed > 0 else OrderStatus.EXPIRED
    if algo_status == CANCELLED:
        return OrderStatus.CANCELLED
    return OrderStatus.EXPIRED


def finish(
    session: Session,
    order_id: int,
    row: AlgoOrder,
    subs: Sequence[SubOrder],
    *,
    now: datetime,
    dust: Decimal = ZERO,
    remainder: Remainder = Remainder.CANCEL,
    step: Decimal = ZERO,
) -> bool:
    """End a working algo the exchange has confirmed terminal: its fills, its state, its
    signal. An exit or close leg also settles its position: closed (with its realised
    result) when what is left is ``dust`` or less. When the signal's ``remainder`` policy
    acts on what is left (a step or more), the algo is marked for it and the signal left
    working. False when another monitor ended it first (the status moves only once)."""
    order = session.get(Order, order_id)
    if order is None:
        return False
    status = final_status(str(row.algoStatus), row.executedQty)
    working = Order.id == order_id, Order.status == OrderStatus.WORKING
    if not compare_and_set(session, update(Order).where(*working).values(status=status)):
        return False
    session.refresh(order)
    mirror(order, row)
    apply_children(session, order, subs, now=now)
    decision = (order.extra or {}).get("monitor_cancel") or {}
    total = order.quantity or ZERO
    done = f"{qty(order.executed_qty)} of {qty(total)} filled"
    if order.avg_price is not None:
        done += f" at avg {qty(order.avg_price)}"
    position = session.get(Position, order.position_id) if order.position_id else None
    if position is not None and closing(order.leg):
        left = apply_exit_fills(session, position, now=now, dust=dust)
        done += "; position closed" if position.status == "closed" else f"; {qty(left)} left open"
    cause = decision.get("cause")
    if row.algoStatus == FINISHED:
        what = f"{order.kind.upper()} finished: {done}"
        if cause:
            what += f" (it ended before the monitor's cancel: {decision.get('reason')})"
    elif row.algoStatus == CANCELLED and cause:
        what = f"cancelled by the monitor ({decision.get('reason')}): {done}"
    elif row.algoStatus == CANCELLED:
        what = f"cancelled on the exchange, not by Pacekeeper: {done}"
    else:
        what = f"the exchange ended it as {row.algoStatus}: {done}"
    event(
        session,
        "state",
        what,
        signal_id=order.signal_id,
        order_id=order.id,
        status=status.value,
        algoStatus=str(row.algoStatus),
        executed_qty=qty(order.executed_qty),
        total=qty(total),
        cause=cause,
    )
    if position is not None and closing(order.leg):
        exit_filled(session, order, position)
    elif order.leg == ENTRY_LEG:
        entry_filled(session, order, position)
    pending = order.signal_id is not None and remainder_policy.due(
        remainder, cause=cause, algo_status=str(row.algoStatus),
        executed=order.executed_qty, total=total, dust=step,
    )  # fmt: skip
    if pending:
        left = total - order.executed_qty
        order.extra = {
            **(order.extra or {}),
            "remainder": {"policy": remainder.value, "state": "pending", "orders": [],
                          "what": what, "cause": cause},
        }  # fmt: skip
        event(session, "remainder", f"{qty(left)} left: {remainder.value} to follow",
              signal_id=order.signal_id, order_id=order.id, policy=remainder.value,
              left=qty(left))  # fmt: skip
    elif order.signal_id is not None:
        settle_signal(session, order, cause, str(row.algoStatus), what, now=now)
    return True


def settle_signal(
    session: Session,
    order: Order,
    cause: str | None,
    algo_status: str,
    reason: str,
    *,
    now: datetime,
) -> None:
    """Move a working signal to its end once none of its algos is still working."""
    signal = session.get(Signal, order.signal_id)
    if signal is None or signal.status != SignalStatus.WORKING:
        return
    live = session.scalar(
        select(Order.id).where(
            Order.signal_id == signal.id,
            Order.kind.in_(ALGO_KINDS),
            Order.status.not_in([s.value for s in OrderStatus if s.terminal]),
        )
    )
    if live is not None:
        return
    if cause == "expiry":
        status = SignalStatus.EXPIRED
    elif order.executed_qty > 0 or algo_status == FINISHED:
        status = SignalStatus.DONE
    elif algo_status == EXPIRED:
        status = SignalStatus.FAILED
        reason += " (balance, margin or position checks failed after acceptance)"
    else:
        status = SignalStatus.CANCELLED
    signal.status = status
    signal.status_reason = reason
    event(session, "state", f"signal {status}: {reason}", signal_id=signal.id, order_id=order.id)
    sum_up(session, signal.id, now=now)
    if status is SignalStatus.FAILED:
        event(session, "failed", reason, signal_id=signal.id, order_id=order.id)
