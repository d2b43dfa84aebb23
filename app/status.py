"""``pacekeeper status``: the working algos (and those ended lately) with their pace, as the
monitor judged it, and their execution quality (``app.execution.quality``), printed as a table
or as JSON. The algos and verdicts come from ``app.monitoring.queries``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.config import Settings
from app.execution.quality import STEPS, Quality, measure_each
from app.monitoring.queries import (
    AlgoPace,
    published_verdicts,
    recent_algos,
    working_algos,
    working_ids,
)


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
            published = published_verdicts(settings, working_ids(session))
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
