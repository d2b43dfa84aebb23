"""The prices the monitor read this cycle, for readers that must not call the exchange.

The protection pass reads each open position's market price (the last spot price, or the
USD-M mark price) every cycle. It publishes them here, in one Redis hash per deployment
(queue), each with the time it was read; the admin API values open positions with them
(unrealised PnL) without a request of its own to the exchange. A price older than
``MAX_AGE`` is not shown: a stopped monitor leaves no stale valuation behind. Both sides
say what time it is (``now``, seconds since the epoch): the monitor its context's clock, the
API the time of the request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from decimal import Decimal

from redis import Redis

log = logging.getLogger(__name__)

KEY_PREFIX = "pk:marks:"
MAX_AGE = 120.0  # seconds


def key(queue_name: str) -> str:
    return f"{KEY_PREFIX}{queue_name}"


def publish(
    redis: Redis | None,
    queue_name: str,
    prices: Mapping[tuple[str, str], Decimal],
    *,
    now: float,
) -> None:
    """Keep ``(market, symbol) -> price`` read at ``now``; never fails the caller."""
    if redis is None or not prices:
        return
    fields: dict[str | bytes, str | bytes] = {
        f"{market}:{symbol}": json.dumps({"price": str(price), "at": now})
        for (market, symbol), price in prices.items()
    }
    try:
        with redis.pipeline(transaction=False) as pipe:
            pipe.hset(key(queue_name), mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key(queue_name), int(MAX_AGE * 2))
            pipe.execute()
    except Exception as exc:  # a valuation must never break a monitor cycle
        log.warning("marks not published: %s", type(exc).__name__)


def fetch(redis: Redis | None, queue_name: str, *, now: float) -> dict[tuple[str, str], Decimal]:
    """The prices read within ``MAX_AGE`` seconds before ``now``, by (market, symbol)."""
    if redis is None:
        return {}
    try:
        raw = redis.hgetall(key(queue_name))
    except Exception as exc:
        log.warning("marks not read: %s", type(exc).__name__)
        return {}
    out: dict[tuple[str, str], Decimal] = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        data = json.loads(value)
        if now - float(data["at"]) <= MAX_AGE:
            market, _, symbol = name.partition(":")
            out[(market, symbol)] = Decimal(data["price"])
    return out
