"""Fills and positions: what an order executed, and what a position holds because of it.

A position's ``quantity`` is what its entry orders actually received: the sum of their fills
minus commissions charged in the base asset (Binance takes a spot BUY's fee from the coins
bought unless BNB pays it). Brackets are sized from it, so they never try to sell coins the
account did not receive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.exchange import models as venue
from app.models import Fill, Order, Position

ZERO = Decimal(0)
ENTRY_LEG = "entry"
# Legs that take from the position: exits, tp/sl closes and bracket legs.
EXIT_PREFIXES = ("exit", "close", "bracket")
# When the quote asset of a symbol is unknown, these suffixes name it (longest first).
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "EUR", "TRY", "BTC", "ETH", "BNB")


@dataclass(frozen=True)
class FillData:
    """One execution as the venue reported it; ``fee`` is positive when paid."""

    venue_fill_id: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    fee: Decimal = ZERO
    fee_asset: str | None = None
    time: datetime | None = None


def ms_time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def spot_fills(order: venue.Order) -> list[FillData]:
    """The fills of a FULL spot answer (one per trade)."""
    when = ms_time(order.transactTime or order.updateTime)
    return [
        FillData(
            venue_fill_id=str(f.tradeId) if f.tradeId is not None else f"{order.orderId}-{n}",
            price=f.price,
            qty=f.qty,
            quote_qty=f.price * f.qty,
            fee=f.commission,
            fee_asset=f.commissionAsset,
            time=when,
        )
        for n, f in enumerate(order.fills, start=1)
    ]


def aggregate_fill(
    order_id: int,
    executed: Decimal | None,
    quote: Decimal | None,
    avg: Decimal | None,
    when: int | None,
) -> list[FillData]:
    """One fill summing an order whose answer lists no trades (USD-M RESULT, cancel answers).
    Its fee is unknown here; USD-M fees are charged in the margin asset, not the contract."""
    if not executed:
        return []
    quote = quote if quote else executed * (avg or ZERO)
    price = avg if avg else (quote / executed if executed else ZERO)
    return [FillData(f"order-{order_id}", price, executed, quote, ZERO, None, ms_time(when))]


def top_up_fill(
    session: Session,
    order: Order,
    *,
    ref: str,
    executed: Decimal | None,
    quote: Decimal | None,
    avg: Decimal | None = None,
    when: int | None = None,
) -> list[FillData]:
    """The part of an order's cumulative ``executed`` not yet recorded, as one fill (for
    answers that list no trades: an order query, a cancel answer, a USD-M RESULT).

    Its id is ``<ref>@<executed>``: two readers of the same state make the same fill, and
    a later read with more executed adds only the difference. Commission is not in these
    answers; USD-M pays it in the margin asset, and a spot bracket is also capped by the
    free balance.
    """
    if not executed:
        return []
    rows = session.execute(select(Fill.qty, Fill.quote_qty).where(Fill.order_id == order.id)).all()
    done_qty = sum((r.qty for r in rows), ZERO)
    done_quote = sum((r.quote_qty for r in rows), ZERO)
    delta = executed - done_qty
    if delta <= 0:
        return []
    delta_quote = quote - done_quote if quote else delta * (avg or ZERO)
    price = delta_quote / delta if delta_quote > 0 else (avg or ZERO)
    fill_id = f"{ref}@{executed.normalize():f}"
    return [FillData(fill_id, price, delta, max(delta_quote, ZERO), ZERO, None, ms_time(when))]


def sub_order_fills(subs: Iterable[venue.SubOrder]) -> list[FillData]:
    """The fills of a TWAP/VP from its child orders (``feeAmt`` is negative when paid)."""
    out = []
    for sub in subs:
        if not sub.executedQty:
            continue
        price = sub.avgPrice or (sub.executedAmt / sub.executedQty)
        out.append(
            FillData(
                venue_fill_id=str(sub.orderId),
                price=price,
                qty=sub.executedQty,
                quote_qty=sub.executedAmt,
                fee=abs(sub.feeAmt) if sub.feeAmt is not None else ZERO,
                fee_asset=sub.feeAsset,
                time=ms_time(sub.bookTime),
            )
        )
    return out


def _insert_ignore(session: Session) -> type[sqlite.Insert] | type[postgresql.Insert]:
    return sqlite.Insert if session.get_bind().dialect.name == "sqlite" else postgresql.Insert


def record_fills(
    session: Session,
    order: Order,
    fills: Iterable[FillData],
    *,
    now: datetime,
    known: set[str] | None = None,
    load: bool = True,
) -> list[Fill]:
    """Store fills not seen before (unique by ``(order_id, venue_fill_id)``), recorded at
    ``now``; returns the new ones (none when not ``load``: a caller that does not use them
    saves the read). Safe to call again with the same fills, and from two processes at once.
    ``known``: the order's stored fill ids, when the caller has just read them."""
    rows = [
        {
            "order_id": order.id,
            "venue_fill_id": f.venue_fill_id,
            "price": f.price,
            "qty": f.qty,
            "quote_qty": f.quote_qty,
            "fee": f.fee,
            "fee_asset": f.fee_asset,
            "time": f.time,
            "created_at": now,
        }
        for f in fills
    ]
    if not rows:
        return []
    # Fills already stored are skipped with one read; the rest go in one multi-row INSERT
    # whose statement is the same every time (compiled once), and ON CONFLICT DO NOTHING
    # keeps a concurrent writer's copies out: RETURNING names only the rows this call added.
    if known is None:
        known = stored_fill_ids(session, order)
    fresh: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = str(row["venue_fill_id"])
        if key not in known:
            fresh.setdefault(key, row)
    if not fresh:
        return []
    table = cast(Table, Fill.__table__)
    stmt = (
        _insert_ignore(session)(table)
        .on_conflict_do_nothing(index_elements=["order_id", "venue_fill_id"])
        .returning(table.c.id)
    )
    new_ids = list(session.execute(stmt, list(fresh.values())).scalars())
    if not new_ids:
        return []
    latest = max((f.time for f in fills if f.time is not None), default=None)
    if latest is not None and (order.last_fill_at is None or _aware(order.last_fill_at) < latest):
        order.last_fill_at = latest
    if not load:
        return []
    return list(session.scalars(select(Fill).where(Fill.id.in_(new_ids)).order_by(Fill.id)))


_STORED_FILL_IDS = select(Fill.venue_fill_id).where(Fill.order_id == bindparam("order_id"))
_ENTRY_ORDERS = (
    select(Order)
    .where(Order.position_id == bindparam("position_id"), Order.leg == ENTRY_LEG)
    .order_by(Order.id)
)
_FILLS_OF = (
    select(Fill).where(Fill.order_id.in_(bindparam("order_ids", expanding=True))).order_by(Fill.id)
)


def stored_fill_ids(session: Session, order: Order) -> set[str]:
    """The venue ids of the fills stored for ``order``."""
    if order.id is None:
        return set()
    return set(session.scalars(_STORED_FILL_IDS, {"order_id": order.id}))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def base_asset_of(order: Order) -> str:
    """The base asset of the order's symbol (recorded at planning; derived if missing)."""
    recorded = (order.extra or {}).get("base_asset")
    if recorded:
        return str(recorded)
    for quote in QUOTE_ASSETS:
        if order.symbol.endswith(quote) and len(order.symbol) > len(quote):
            return order.symbol[: -len(quote)]
    return order.symbol


def _orders(session: Session, position: Position, prefixes: Sequence[str]) -> list[Order]:
    """The position's orders whose leg starts with one of ``prefixes``."""
    legs = [Order.leg.startswith(p) for p in prefixes]
    return list(
        session.scalars(
            select(Order).where(Order.position_id == position.id, or_(*legs)).order_by(Order.id)
        )
    )


def _entry_orders(session: Session, position: Position) -> list[Order]:
    return list(session.scalars(_ENTRY_ORDERS, {"position_id": position.id}))


def _fills(session: Session, orders: Sequence[Order]) -> list[tuple[Order, Fill]]:
    if not orders:
        return []
    by_id = {o.id: o for o in orders}
    rows = session.scalars(_FILLS_OF, {"order_ids": list(by_id)})
    return [(by_id[f.order_id], f) for f in rows]


def entry_fills(session: Session, position: Position) -> list[Fill]:
    """Every fill of the position's entry orders, oldest first."""
    return [fill for _, fill in _fills(session, _entry_orders(session, position))]


def net_received(
    fills: Iterable[tuple[FillData, str]], *, market: str, side: str
) -> tuple[Decimal, Decimal, Decimal]:
    """(received quantity, gross quantity, quote amount) of entry fills, each paired with
    its symbol's base asset. A spot BUY receives the coins bought minus the commissions
    charged in those coins; a SELL (or any USD-M fill) holds what it traded."""
    gross = quote = base_fees = ZERO
    for fill, base_asset in fills:
        gross += fill.qty
        quote += fill.quote_qty
        if market == "spot" and fill.fee_asset == base_asset:
            base_fees += fill.fee
    received = gross - base_fees if side == "BUY" else gross
    return max(received, ZERO), gross, quote


def apply_entry_fills(session: Session, position: Position) -> Decimal:
    """Recompute the position's received quantity (fills minus base-asset commissions),
    entry cost and average price from its entry orders' fills; returns the quantity."""
    pairs = [
        (
            FillData(f.venue_fill_id, f.price, f.qty, f.quote_qty, f.fee, f.fee_asset),
            base_asset_of(o),
        )
        for o, f in _fills(session, _entry_orders(session, position))
    ]
    received, gross, quote = net_received(pairs, market=position.market, side=position.side)
    position.quantity = received
    position.entry_cost = quote
    position.entry_avg_price = (quote / gross) if gross else None
    return position.quantity


def apply_exit_fills(
    session: Session, position: Position, *, now: datetime, dust: Decimal = ZERO
) -> Decimal:
    """Recompute what exit orders closed and the realised result; close the position (at
    ``now``) when what is left is ``dust`` or less. Returns the quantity still open."""
    closed = proceeds = ZERO
    for _, fill in _fills(session, _orders(session, position, EXIT_PREFIXES)):
        closed += fill.qty
        proceeds += fill.quote_qty
    position.exit_quantity = closed
    position.exit_proceeds = proceeds
    left = position.quantity - closed
    if closed and position.entry_avg_price is not None:
        # Long: sold for proceeds what cost avg each; short: the reverse.
        cost = closed * position.entry_avg_price
        position.realized_pnl = proceeds - cost if position.side == "BUY" else cost - proceeds
    ends = closed and left <= dust and position.status == "open"
    if ends and not entry_live(session, position.id):
        # While an entry still buys, more is coming: the position stays open (and protected).
        position.status = "closed"
        position.closed_at = now
    return max(left, ZERO)


def entry_live(session: Session, position_id: int) -> bool:
    """Is an entry order of the position still planned, in flight, unknown or working?"""
    ended = ("filled", "cancelled", "expired", "rejected")
    return (
        session.scalar(
            select(Order.id).where(
                Order.position_id == position_id,
                Order.leg == ENTRY_LEG,
                Order.status.not_in(ended),
            )
        )
        is not None
    )
