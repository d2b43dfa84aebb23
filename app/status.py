"""Working algos and their pace, for ``pacekeeper status``, the admin API and the dashboard;
``status`` also prints each algo's execution quality (``app.execution.quality``).

The verdict shown is the monitor's own (``app.monitoring.verdicts``): reached with
``pace.judge`` on the sub-orders it had just read, at exchange time, and published with that
time (``as_of``). So every reader shows what the monitor acts on. An algo the monitor has not
judged yet (just placed, or no monitor running) is judged here with the same function from
the fills in the database at ``now`` on this machine's clock, and marked ``source:
"database"``: those fills can be up to a cycle old, and unfilled children are not in them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.execution.quality import STEPS, Quality, measure_each
from app.models import ALGO_KINDS, Order, OrderStatus, Signal
from app.monitoring.pace import Child, PacePolicy, PaceVerdict, judge, progress_of
from app.monitoring.verdicts import Published

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
    from app.models import Fill

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


# ---- pacekeeper status ---------------------------------------------------------------------


def _pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _duration(seconds: Decimal) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def as_dict(algo: AlgoPace, quality: Quality | None = None) -> dict[str, Any]:
    order, verdict = algo.order, algo.verdict
    return {
        "order_id": order.id,
        "signal_id": order.signal_id,
        "strategy": algo.signal.strategy if algo.signal else None,
        "market": order.market,
        "kind": order.kind,
        "symbol": order.symbol,
        "side": order.side,
        "client_id": order.client_id,
        "venue_id": order.venue_id,
        "quantity": None if order.quantity is None else format(order.quantity, "f"),
        "executed_qty": format(order.executed_qty or Decimal(0), "f"),
        "duration": order.duration,
        "start": algo.start.isoformat(),
        "state": verdict.state.value if verdict else None,
        "schedule": None if verdict is None or verdict.schedule is None else str(verdict.schedule),
        "fill_fraction": None if verdict is None else str(verdict.fill_fraction),
        "elapsed": None if verdict is None else int(verdict.elapsed),
        "reason": verdict.reason if verdict else None,
        "required": None if verdict is None or verdict.required is None else str(verdict.required),
        "child_interval": None
        if verdict is None or verdict.cadence is None
        else str(int(verdict.cadence.interval)),
        "children": None if verdict is None else verdict.children,
        "as_of": None if algo.as_of is None else algo.as_of.isoformat(),
        "source": algo.source,
        "quality": None if quality is None else quality.as_json(),
    }


def _judged(algo: AlgoPace) -> str:
    """When and by whom the verdict was reached: ``12:00:05 monitor``."""
    if algo.as_of is None:
        return "-"
    return f"{algo.as_of.astimezone(UTC):%H:%M:%S} {algo.source}"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Fixed-width columns; the last one is left unpadded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def _text(value: Decimal | float | None) -> str:
    if value is None:
        return "-"
    return format(value, "f") if isinstance(value, Decimal) else str(value)


QUALITY_HEADER = (
    "ORDER", "ARRIVAL", "AVG FILL", "FILLED", "BPS VS ARRIVAL", "BPS VS VWAP", "VWAP",
    "FEES (QUOTE)", "QUEUED", "FIRST ORDER", "FIRST FILL", "LAST FILL",
)  # fmt: skip
QUALITY_TITLE = "Execution quality (slippage: positive is a cost; delays: seconds after receipt)"


def _quality_row(order_id: int, q: Quality) -> tuple[str, ...]:
    prices = (q.arrival_price, q.avg_price, q.filled_qty, q.slippage_arrival_bps,
              q.slippage_vwap_bps, q.vwap)  # fmt: skip
    other = "".join(f" +{_text(fee)} {asset}" for asset, fee in q.fees_other.items())
    return (
        str(order_id),
        *(_text(value) for value in prices),
        _text(q.fees_quote) + other,
        *(_text(q.delays.get(step)) for step in STEPS),
    )


def render(
    algos: Sequence[AlgoPace],
    *,
    halted: str | None = None,
    qualities: Mapping[str, Quality] | None = None,
) -> str:
    """A fixed-width table of the algos, one line each; then, for those whose signal has
    figures (``qualities``, by signal id), their execution quality."""
    lines = []
    if halted is not None:
        lines.append(f"HALTED: {halted}")
    if not algos:
        lines.append("no working algos")
        return "\n".join(lines)
    header = (
        "ORDER", "SYMBOL", "SIDE", "KIND", "EXECUTED/TOTAL", "FILL", "SCHEDULE", "ELAPSED",
        "JUDGED",
    )  # fmt: skip
    rows = [(*header, "VERDICT")]
    for algo in algos:
        order, verdict = algo.order, algo.verdict
        total = "?" if order.quantity is None else format(order.quantity, "f")
        rows.append(
            (
                str(order.id),
                order.symbol,
                order.side,
                f"{order.market} {order.kind}",
                f"{format(order.executed_qty or Decimal(0), 'f')}/{total}",
                _pct(verdict.fill_fraction if verdict else None),
                _pct(verdict.schedule if verdict else None),
                _duration(verdict.elapsed) if verdict else "-",
                _judged(algo),
                f"{verdict.state.value}: {verdict.reason}" if verdict else "unknown quantity",
            )
        )
    lines += _table(rows)
    measured = [
        _quality_row(algo.order.id, quality)
        for algo in algos
        if (quality := (qualities or {}).get(algo.order.signal_id or "")) is not None
    ]
    if measured:
        lines += ["", QUALITY_TITLE, *_table([QUALITY_HEADER, *measured])]
    return "\n".join(lines)


def _published(settings: Settings, order_ids: list[int]) -> dict[int, Published]:
    """The monitor's verdicts, read from Redis when it is configured and answers."""
    from redis import Redis

    from app.monitoring.verdicts import fetch

    if not settings.redis_url or not order_ids:
        return {}
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return fetch(redis, settings.queue_name, order_ids)
    finally:
        redis.close()


def status_main(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """``pacekeeper status [--json] [--recent HOURS]``: print the working algos (and those
    ended in the last ``HOURS``) with the monitor's verdicts and their execution quality."""
    from app.config import ConfigError, get_settings
    from app.controls import current_halt
    from app.db import make_engine, make_sessionmaker, missing_sqlite_file

    settings = settings or get_settings()
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        raise ConfigError(
            f"no database at {missing}: run `pacekeeper status` where `pacekeeper dev` runs, "
            "or set PACEKEEPER_DATABASE_URL"
        )
    engine = make_engine(settings.database_url, read_only=True)
    try:
        with make_sessionmaker(engine)() as session:
            now = datetime.now(UTC)
            published = _published(settings, working_ids(session))
            algos = working_algos(session, settings, now=now, published=published)
            if getattr(args, "recent", 0):
                since = now - timedelta(hours=args.recent)
                algos += recent_algos(session, settings, now=now, since=since)
            qualities = measure_each(session, [a.order.signal_id for a in algos])
            halt = current_halt(session)
    finally:
        engine.dispose()
    halted = None if halt is None else f"{halt.reason} (since {halt.since.isoformat()})"
    if getattr(args, "json", False):
        print(
            json.dumps(
                {
                    "now": now.isoformat(),
                    "halted": halted,
                    "algos": [as_dict(a, qualities.get(a.order.signal_id or "")) for a in algos],
                },
                indent=2,
            )
        )
    else:
        print(render(algos, halted=halted, qualities=qualities))
    return 0
