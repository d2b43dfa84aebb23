"""Working algos and their pace, for ``pacekeeper status`` and the admin API.

Pace is judged with :func:`app.monitoring.pace.assess` and the signal's own overrides, at
``now`` on this machine's clock. The monitor judges with the exchange's clock; the two differ by
the clock offset (milliseconds on a synchronised host), which does not matter for a display.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.metrics import ALGO_KINDS
from app.models import Order, OrderStatus, Signal
from app.monitoring.pace import PacePolicy, PaceVerdict, assess


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without their zone; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AlgoPace:
    """One working algo order with its signal and the pace verdict at ``now``."""

    order: Order
    signal: Signal | None
    start: datetime
    policy: PacePolicy
    verdict: PaceVerdict | None  # None when the order has no base quantity to measure against


def policy_for(settings: Settings, signal: Signal | None) -> PacePolicy:
    """The configured pace policy with the signal's ``pace`` overrides."""
    policy = PacePolicy.from_settings(settings)
    overrides = (signal.payload or {}).get("pace") if signal is not None else None
    return policy.with_overrides(overrides if isinstance(overrides, dict) else None)


def pace_of(order: Order, signal: Signal | None, settings: Settings, now: datetime) -> AlgoPace:
    start = aware(order.book_time) or aware(order.created_at) or now
    policy = policy_for(settings, signal)
    verdict = None
    if order.quantity:
        verdict = assess(
            total=order.quantity,
            executed=order.executed_qty or Decimal(0),
            start=start,
            duration=order.duration,
            now=now,
            policy=policy,
            last_fill_at=aware(order.last_fill_at),
        )
    return AlgoPace(order, signal, start, policy, verdict)


def working_algos(session: Session, settings: Settings, *, now: datetime) -> list[AlgoPace]:
    """Every TWAP/VP order working on the venue, oldest first, with its pace at ``now``."""
    rows = session.execute(
        select(Order, Signal)
        .outerjoin(Signal, Order.signal_id == Signal.id)
        .where(Order.kind.in_(ALGO_KINDS), Order.status == OrderStatus.WORKING.value)
        .order_by(Order.id)
    ).all()
    return [pace_of(order, signal, settings, now) for order, signal in rows]


# ---- pacekeeper status ---------------------------------------------------------------------


def _pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _duration(seconds: Decimal) -> str:
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def as_dict(algo: AlgoPace) -> dict[str, Any]:
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
    }


def render(algos: Sequence[AlgoPace], *, halted: str | None = None) -> str:
    """A fixed-width table of working algos, one line each."""
    lines = []
    if halted is not None:
        lines.append(f"HALTED: {halted}")
    if not algos:
        lines.append("no working algos")
        return "\n".join(lines)
    header = ("ORDER", "SYMBOL", "SIDE", "KIND", "EXECUTED/TOTAL", "FILL", "SCHEDULE", "ELAPSED")
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
                f"{verdict.state.value}: {verdict.reason}" if verdict else "unknown quantity",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def status_main(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """``pacekeeper status [--json]``: read the database and print the working algos."""
    from app.config import get_settings
    from app.controls import current_halt
    from app.db import make_engine, make_sessionmaker

    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            now = datetime.now(UTC)
            algos = working_algos(session, settings, now=now)
            halt = current_halt(session)
    finally:
        engine.dispose()
    halted = None if halt is None else f"{halt.reason} (since {halt.since.isoformat()})"
    if getattr(args, "json", False):
        print(
            json.dumps(
                {"now": now.isoformat(), "halted": halted, "algos": [as_dict(a) for a in algos]},
                indent=2,
            )
        )
    else:
        print(render(algos, halted=halted))
    return 0
