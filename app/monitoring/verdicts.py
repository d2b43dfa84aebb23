"""The pace verdicts the monitor reached, for everyone else who shows pace: one judge, one
reading.

The dashboard once showed a healthy 300 s TWAP "behind schedule" for about 45 s: it judged
fills up to one cycle old at its own ``now``, while the monitor judged fresh sub-orders.
Now only the monitor judges (``pace.judge`` on the sub-orders it has just read, at exchange
time) and publishes each verdict here; ``/api/algos``, the dashboard and ``pacekeeper
status`` show that verdict, with the time it was reached (``as_of``). Only an algo the
monitor has not judged yet (just placed, or the monitor is down) is judged by the reader
from the fills in the database, and says so (``source: "database"``).

Storage: one Redis hash per deployment (its queue name), field = order id, value = the
verdict as JSON. The monitor rewrites the fields of the algos it judged every cycle and
drops those it ended; the hash expires when no monitor has written it for a while.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from redis import Redis

from app.monitoring.pace import Cadence, PaceState, PaceVerdict

log = logging.getLogger(__name__)

KEY_PREFIX = "pk:pace:"
MIN_TTL = 120.0


@dataclass(frozen=True)
class Published:
    """A verdict and when the monitor reached it (exchange time)."""

    verdict: PaceVerdict
    as_of: datetime


def key(queue_name: str) -> str:
    return f"{KEY_PREFIX}{queue_name}"


def ttl(monitor_interval: float) -> int:
    """How long a published verdict outlives the monitor that wrote it."""
    return int(max(MIN_TTL, 10 * monitor_interval))


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _undec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def to_json(verdict: PaceVerdict, as_of: datetime) -> str:
    cadence = verdict.cadence
    return json.dumps(
        {
            "state": verdict.state.value,
            "schedule": _dec(verdict.schedule),
            "fill_fraction": _dec(verdict.fill_fraction),
            "elapsed": _dec(verdict.elapsed),
            "reason": verdict.reason,
            "required": _dec(verdict.required),
            "children": verdict.children,
            "stall_since": _dec(verdict.stall_since),
            "interval": _dec(cadence.interval) if cadence else None,
            "size": _dec(cadence.size) if cadence else None,
            "learned": cadence.learned if cadence else None,
            "as_of": as_of.isoformat(),
        }
    )


def from_json(raw: str | bytes) -> Published:
    data = json.loads(raw)
    cadence = None
    if data.get("interval") is not None:
        cadence = Cadence(
            Decimal(data["interval"]), Decimal(data["size"]), bool(data.get("learned"))
        )
    verdict = PaceVerdict(
        state=PaceState(data["state"]),
        schedule=_undec(data.get("schedule")),
        fill_fraction=Decimal(data["fill_fraction"]),
        elapsed=Decimal(data["elapsed"]),
        reason=str(data["reason"]),
        required=_undec(data.get("required")),
        cadence=cadence,
        children=int(data.get("children") or 0),
        stall_since=_undec(data.get("stall_since")),
    )
    return Published(verdict, datetime.fromisoformat(data["as_of"]))


def publish(
    redis: Redis,
    queue_name: str,
    verdicts: Mapping[int, Published],
    *,
    ended: Iterable[int] = (),
    expire: int,
) -> None:
    """Store this cycle's verdicts and forget the algos that ended (one round trip)."""
    gone = [str(i) for i in ended]
    if not verdicts and not gone:
        return
    name = key(queue_name)
    pipe = redis.pipeline(transaction=True)
    if verdicts:
        pipe.hset(name, mapping={str(i): to_json(p.verdict, p.as_of) for i, p in verdicts.items()})
    if gone:
        pipe.hdel(name, *gone)
    pipe.expire(name, expire)
    pipe.execute()


def fetch(redis: Redis | None, queue_name: str, order_ids: Iterable[int]) -> dict[int, Published]:
    """The published verdicts of these orders; none when Redis cannot be read (the readers
    then judge from the database)."""
    ids = list(order_ids)
    if redis is None or not ids:
        return {}
    try:
        raw = redis.hmget(key(queue_name), [str(i) for i in ids])
    except Exception as exc:  # a display must not fail because Redis did
        log.warning("pace verdicts unreadable: %s", exc)
        return {}
    out = {}
    for order_id, value in zip(ids, raw, strict=True):
        if value is not None:
            out[order_id] = from_json(value)
    return out
