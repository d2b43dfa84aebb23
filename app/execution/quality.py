"""Execution quality of one signal: what it paid against the market, what it cost, how long
each step took.

Figures, for the orders that carry out the signal itself (its entry, or its close; a
reverse's entry; never the bracket's legs):

- ``arrival_price``: the market when the worker first took the signal, milliseconds after it
  arrived: the last spot price, or the USD-M mark price (the ``arrival`` event, written with
  the entry's planning, which reads that price anyway).
- ``avg_price``: the volume-weighted price of its fills; ``filled_qty``.
- ``slippage_arrival_bps``: avg against arrival in basis points, signed so that positive is
  a cost (paid more on a buy, received less on a sell).
- ``vwap`` and ``slippage_vwap_bps``: the market's VWAP over the minutes of the execution
  window (first to last fill, one-minute klines: quote volume / volume), recorded by the
  monitor once the execution has ended (the ``quality`` event), since it needs the exchange.
- ``fees_quote``: fees in the quote asset; a fee paid in the base asset is valued at its
  fill's price; one paid in a third asset (BNB) leaves the total unknown (``None``) and is
  listed in ``fees_other``.
- ``delays``: seconds from receipt to being queued, to the first order sent, to the first fill
  and to the last fill (the exchange's fill times; one earlier than our send is the clocks'
  skew, and counts as the send).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.exchange.filters import Market
from app.execution import journal
from app.execution.context import ExecContext
from app.execution.planning import BRACKET
from app.execution.positions import ENTRY_LEG
from app.models import Event, Fill, Order
from app.models import Signal as SignalRow
from app.signals.schemas import Action

log = logging.getLogger(__name__)

ARRIVAL = "arrival"
QUALITY = "quality"
STEPS = ("queued", "first_order", "first_fill", "last_fill")
BPS = Decimal(10000)
CENTS = Decimal("0.01")

# (symbol, market, start, end) -> the market's VWAP over those minutes, or None.
VwapSource = Callable[[str, str, datetime, datetime], Decimal | None]


@dataclass(frozen=True)
class Quality:
    side: str | None
    arrival_price: Decimal | None
    avg_price: Decimal | None
    filled_qty: Decimal
    fees_quote: Decimal | None
    fees_other: dict[str, Decimal] = field(default_factory=dict)
    slippage_arrival_bps: Decimal | None = None
    vwap: Decimal | None = None
    slippage_vwap_bps: Decimal | None = None
    delays: dict[str, float | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {
            "side": self.side,
            "arrival_price": text(self.arrival_price),
            "avg_price": text(self.avg_price),
            "filled_qty": str(self.filled_qty),
            "fees_quote": text(self.fees_quote),
            "fees_other": {asset: str(fee) for asset, fee in self.fees_other.items()},
            "slippage_arrival_bps": text(self.slippage_arrival_bps),
            "vwap": text(self.vwap),
            "slippage_vwap_bps": text(self.slippage_vwap_bps),
            "delays": dict(self.delays),
        }


def slippage_bps(side: str, paid: Decimal, reference: Decimal) -> Decimal:
    """``paid`` against ``reference`` in basis points; positive is a cost to the trader."""
    sign = 1 if side.upper() == "BUY" else -1
    return (sign * (paid - reference) / reference * BPS).quantize(CENTS)


def vwap_of_klines(klines: Sequence[Sequence[Any]]) -> Decimal | None:
    """VWAP from Binance klines (``[open time, open, high, low, close, volume, close time,
    quote volume, ...]``): total quote volume over total volume."""
    volume = sum((Decimal(str(k[5])) for k in klines), Decimal(0))
    quote = sum((Decimal(str(k[7])) for k in klines), Decimal(0))
    return (quote / volume) if volume > 0 else None


def record_arrival(session: Session, signal_id: str, price: Decimal, source: str) -> None:
    """The market as the worker first saw it, for ``arrival_price``."""
    # A plain INSERT (app.execution.journal.event): the ORM's unit of work costs more.
    journal.event(session, ARRIVAL, f"arrival price {price} ({source})", signal_id=signal_id,
                  price=str(price), source=source)  # fmt: skip


def _own_orders(session: Session, signal_id: str) -> list[Order]:
    rows = session.scalars(select(Order).where(Order.signal_id == signal_id).order_by(Order.id))
    own = [o for o in rows if not o.leg.startswith(BRACKET)]
    signal = session.get(SignalRow, signal_id)
    if signal is not None and signal.action == Action.REVERSE.value:
        # A reverse is measured on its entry: its close is the other side's.
        return [o for o in own if o.leg == ENTRY_LEG]
    return own


def _fees(symbol: str, fills: Sequence[Fill]) -> tuple[Decimal | None, dict[str, Decimal]]:
    quote_total = Decimal(0)
    other: dict[str, Decimal] = {}
    for fill in fills:
        if not fill.fee:
            continue
        asset = (fill.fee_asset or "").upper()
        if asset and symbol.endswith(asset):  # the quote asset (USDT, BTC on ETHBTC, ...)
            quote_total += fill.fee
        elif asset and symbol.startswith(asset):  # the base asset, valued at the fill
            quote_total += fill.fee * fill.price
        else:
            other[asset or "?"] = other.get(asset or "?", Decimal(0)) + fill.fee
    return (None if other else quote_total), other


def _seconds(start: datetime, moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return round((moment - start).total_seconds(), 3)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _not_before(moment: datetime, floor: datetime | None) -> datetime:
    if floor is None:
        return _aware(moment)
    return max(_aware(moment), _aware(floor))


def measure(session: Session, signal_id: str) -> Quality | None:
    """The signal's figures from the database (VWAP as the monitor recorded it)."""
    signal = session.get(SignalRow, signal_id)
    if signal is None:
        return None
    orders = _own_orders(session, signal_id)
    ids = [o.id for o in orders]
    fills = list(
        session.scalars(select(Fill).where(Fill.order_id.in_(ids)).order_by(Fill.id)) if ids else []
    )
    side = orders[0].side if orders else (signal.side or None)
    qty = sum((f.qty for f in fills), Decimal(0))
    quote = sum((f.quote_qty for f in fills), Decimal(0))
    avg = (quote / qty) if qty > 0 else None
    events: dict[str, Any] = {}
    for kind, data in session.execute(
        select(Event.kind, Event.data)
        .where(Event.signal_id == signal_id, Event.kind.in_((ARRIVAL, QUALITY)))
        .order_by(Event.id)
    ):
        events.setdefault(kind, data)  # the first: the arrival of the first run
    arrival = Decimal(events[ARRIVAL]["price"]) if ARRIVAL in events else None
    recorded = events.get(QUALITY) or {}
    vwap = Decimal(recorded["vwap"]) if recorded.get("vwap") else None
    first_sent = session.scalar(
        select(func.min(Event.created_at)).where(Event.order_id.in_(ids), Event.kind == "sent")
    ) if ids else None  # fmt: skip
    # The exchange's fill times; one before our own send is the two clocks' skew: the send.
    times = [_not_before(f.time or f.created_at, first_sent) for f in fills]
    fees, other = _fees(signal.symbol, fills)
    return Quality(
        side=side,
        arrival_price=arrival,
        avg_price=avg.quantize(Decimal("0.00000001")) if avg is not None else None,
        filled_qty=qty,
        fees_quote=fees,
        fees_other=other,
        slippage_arrival_bps=(
            slippage_bps(side, avg, arrival) if side and avg is not None and arrival else None
        ),
        vwap=vwap,
        slippage_vwap_bps=slippage_bps(side, avg, vwap) if side and avg and vwap else None,
        delays={
            "queued": _seconds(signal.received_at, signal.enqueued_at),
            "first_order": _seconds(signal.received_at, first_sent),
            "first_fill": _seconds(signal.received_at, min(times) if times else None),
            "last_fill": _seconds(signal.received_at, max(times) if times else None),
        },
    )


def measure_each(session: Session, signal_ids: Iterable[str | None]) -> dict[str, Quality]:
    """``measure`` for each distinct signal of a list (of algos, say), by signal id."""
    found = {}
    for signal_id in dict.fromkeys(s for s in signal_ids if s):
        if (quality := measure(session, signal_id)) is not None:
            found[signal_id] = quality
    return found


def execution_window(session: Session, signal_id: str) -> tuple[datetime, datetime] | None:
    """First to last fill of the signal's own orders."""
    ids = [o.id for o in _own_orders(session, signal_id)]
    if not ids:
        return None
    first, last = session.execute(
        select(
            func.min(func.coalesce(Fill.time, Fill.created_at)),
            func.max(func.coalesce(Fill.time, Fill.created_at)),
        ).where(Fill.order_id.in_(ids))
    ).one()
    if first is None or last is None:
        return None
    return first, last


ENDED = ("filled", "cancelled", "expired", "rejected", "failed")
# How far back the job looks for executions that ended without their figures recorded.
DUE_WITHIN = timedelta(days=1)


def due(
    session: Session, *, now: datetime, since: timedelta = DUE_WITHIN, limit: int = 20
) -> list[str]:
    """Signals whose own orders have all ended, with fills, in the ``since`` before ``now``,
    and no recorded ``quality`` yet (oldest first)."""
    cutoff = now - since
    recorded = select(Event.signal_id).where(Event.kind == QUALITY, Event.signal_id.isnot(None))
    candidates = session.scalars(
        select(Order.signal_id)
        .where(
            Order.signal_id.isnot(None),
            Order.executed_qty > 0,
            Order.updated_at >= cutoff,
            Order.signal_id.notin_(recorded),
            ~Order.leg.startswith(BRACKET),
        )
        .group_by(Order.signal_id)
        .order_by(func.min(Order.id))
        .limit(limit * 3)
    ).all()
    ready = []
    for signal_id in candidates:
        assert signal_id is not None
        own = _own_orders(session, signal_id)
        if own and all(o.status in ENDED for o in own):
            ready.append(signal_id)
        if len(ready) >= limit:
            break
    return ready


def record_quality(session: Session, signal_id: str, vwap_source: VwapSource | None) -> Quality:
    """Compute the figures with the market's VWAP over the execution window, and keep them
    as the signal's ``quality`` event. Commits nothing."""
    signal = session.get(SignalRow, signal_id)
    assert signal is not None
    window = execution_window(session, signal_id)
    vwap = None
    if window is not None and vwap_source is not None:
        vwap = vwap_source(signal.symbol, signal.market, *window)
    base = measure(session, signal_id)
    assert base is not None
    quality = Quality(
        **{
            **base.__dict__,
            "vwap": vwap,
            "slippage_vwap_bps": (
                slippage_bps(base.side, base.avg_price, vwap)
                if base.side and base.avg_price and vwap
                else None
            ),
        }
    )
    session.add(
        Event(
            signal_id=signal_id,
            kind=QUALITY,
            message=(
                f"avg {quality.avg_price} vs arrival {quality.arrival_price}: "
                f"{quality.slippage_arrival_bps} bps; vs VWAP {vwap}: "
                f"{quality.slippage_vwap_bps} bps"
            ),
            data=quality.as_json(),
        )
    )
    return quality


def klines_vwap(ctx: ExecContext) -> VwapSource:
    """The market's VWAP over whole minutes from one-minute klines."""

    def vwap(symbol: str, market: str, start: datetime, end: datetime) -> Decimal | None:
        def ms(moment: datetime) -> int:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp() * 1000)

        first = ms(start) // 60_000 * 60_000  # the minute the first fill fell in
        klines = ctx.client.klines(symbol, Market(market), "1m", first, ms(end))
        return vwap_of_klines(klines)

    return vwap


def record_due(ctx: ExecContext, *, limit: int = 20) -> int:
    """Record the execution quality of the signals whose execution has ended (a periodic
    job); an exchange that does not answer leaves them for the next run."""
    from app.db import session_scope
    from app.exchange.errors import ExchangeError
    from app.metrics import MetricsRecorder

    with session_scope(ctx.sessions) as session:
        signal_ids = due(session, now=ctx.clock.now(), limit=limit)
    source = klines_vwap(ctx)
    recorded = 0
    for signal_id in signal_ids:
        try:
            with session_scope(ctx.sessions) as session:
                quality = record_quality(session, signal_id, source)
        except ExchangeError as exc:
            log.info("quality of %s not recorded yet: %s", signal_id, exc)
            continue
        recorded += 1
        if ctx.redis is not None:
            MetricsRecorder.for_settings(ctx.redis, ctx.settings).execution_quality(
                {
                    "arrival": _float(quality.slippage_arrival_bps),
                    "vwap": _float(quality.slippage_vwap_bps),
                },
                quality.delays,
            )
    return recorded


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
