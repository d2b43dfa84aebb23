"""Working and recently ended algos with their pace: what ``pacekeeper status``, the admin API
and the dashboard show (``app.status`` renders it for the terminal).

The verdict shown is the monitor's own (``app.monitoring.verdicts``): reached with
``pace.judge`` on the sub-orders it had just read, at exchange time, and published with that
time (``as_of``). So every reader shows what the monitor acts on. An algo the monitor has not
judged yet (just placed, or no monitor running) is judged here with the same function from
the fills in the database at ``now`` on this machine's clock, and marked ``source:
"database"``: those fills can be up to a cycle old, and unfilled children are not in them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import ALGO_KINDS, Fill, Order, OrderStatus, Signal
from app.monitoring.pace import Child, PacePolicy, PaceVerdict, judge, progress_of
from app.monitoring.verdicts import Published, fetch

MONITOR, DATABASE = "monitor", "database"


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AlgoPace:
    """One working algo order with its signal and its pace verdict as of ``as_of``."""

    order: Order
    signal: Signal | None
    start: datetime
    policy: PacePolicy
    verdict: PaceVerdict | None  # None when the order has no base quantity to measure against
    as_of: datetime | None = None
    source: str = DATABASE  # "monitor": the monitor's verdict; "database": judged here


def policy_for(settings: Settings, signal: Signal | None) -> PacePolicy:
    """The configured pace policy with the signal's ``pace`` overrides."""
    policy = PacePolicy.from_settings(settings)
    overrides = (signal.payload or {}).get("pace") if signal is not None else None
    return policy.with_overrides(overrides if isinstance(overrides, dict) else None)


def pace_of(
    order: Order,
    signal: Signal | None,
    settings: Settings,
    now: datetime,
    published: Published | None = None,
) -> AlgoPace:
    start = aware(order.book_time) or aware(order.created_at) or now
    policy = policy_for(settings, signal)
    if published is not None:
        return AlgoPace(order, signal, start, policy, published.verdict, published.as_of, MONITOR)
    verdict = None
    if order.quantity:
        verdict = judge(
            total=order.quantity,
            progress=progress_of(
                Child(aware(f.time) or start, f.qty, f.qty) for f in order.fills if f.qty > 0
            ),
            start=start,
            duration=order.duration,
            now=now,
            policy=policy,
        )
    return AlgoPace(order, signal, start, policy, verdict, now, DATABASE)


def recent_algos(
    session: Session, settings: Settings, *, now: datetime, since: datetime
) -> list[AlgoPace]:
    """TWAP/VP orders that ended (filled, cancelled, expired) since ``since``, newest first,
    each judged as of its end: what the dashboard keeps after an algo is done."""
    ended = (OrderStatus.FILLED.value, OrderStatus.CANCELLED.value, OrderStatus.EXPIRED.value)
    rows = session.execute(
        select(Order, Signal)
        .outerjoin(Signal, Order.signal_id == Signal.id)
        .where(Order.kind.in_(ALGO_KINDS), Order.status.in_(ended), Order.updated_at >= since)
        .order_by(Order.id.desc())
        .limit(50)
    ).all()
    return [
        pace_of(order, signal, settings, min(now, aware(order.end_time or order.updated_at) or now))
        for order, signal in rows
    ]


def fill_paths(
    session: Session, order_ids: Sequence[int]
) -> dict[int, list[tuple[datetime, Decimal]]]:
    """Each order's fills in time order as (time, quantity filled so far): the plotted line."""
    paths: dict[int, list[tuple[datetime, Decimal]]] = {order_id: [] for order_id in order_ids}
    if not order_ids:
        return paths
    rows = session.execute(
        select(Fill.order_id, Fill.time, Fill.created_at, Fill.qty)
        .where(Fill.order_id.in_(order_ids), Fill.qty > 0)
        .order_by(Fill.order_id, Fill.time, Fill.id)
    )
    for order_id, time, created, qty in rows:
        path = paths[order_id]
        total = (path[-1][1] if path else Decimal(0)) + qty
        moment = aware(time or created)
        assert moment is not None
        path.append((moment, total))
    return paths


def working_algos(
    session: Session,
    settings: Settings,
    *,
    now: datetime,
    published: Mapping[int, Published] | None = None,
) -> list[AlgoPace]:
    """Every TWAP/VP order working on the venue, oldest first, with the monitor's verdict
    (``published``, by order id) or, without one, a verdict judged here at ``now``."""
    rows = session.execute(
        select(Order, Signal)
        .outerjoin(Signal, Order.signal_id == Signal.id)
        .where(Order.kind.in_(ALGO_KINDS), Order.status == OrderStatus.WORKING.value)
        .order_by(Order.id)
    ).all()
    published = published or {}
    return [
        pace_of(order, signal, settings, now, published.get(order.id)) for order, signal in rows
    ]


def working_ids(session: Session) -> list[int]:
    """The ids of the working TWAP/VP orders (whose published verdicts to fetch)."""
    return list(
        session.scalars(
            select(Order.id).where(
                Order.kind.in_(ALGO_KINDS), Order.status == OrderStatus.WORKING.value
            )
        )
    )


def published_verdicts(settings: Settings, order_ids: list[int]) -> dict[int, Published]:
    """The monitor's verdicts, read from Redis when it is configured and answers."""
    from redis import Redis

    if not settings.redis_url or not order_ids:
        return {}
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return fetch(redis, settings.queue_name, order_ids)
    finally:
        redis.close()
