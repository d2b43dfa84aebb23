"""The prices the monitor read this cycle, for readers that must not call the exchange.

The protection pass reads each open position's market price (the last spot price, or the
USD-M mark price) every cycle. It publishes them here, in one Redis hash per deployment
(queue), each with the time it was read; the admin API values open positions with them
(unrealised PnL) without a request of its own to the exchange. A price older than
``MAX_AGE`` is not shown: a stopped monitor leaves no stale valuation behind.
"""

from __future__ import annotations

import json
import logging
import time
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
    now: float | None = None,
) -> None:
    """Keep ``(market, symbol) -> price`` with the time read; never fails the caller."""
    if redis is None or not prices:
        return
    stamp = time.time() if now is None else now
    fields: dict[str | bytes, str | bytes] = {
        f"{market}:{symbol}": json.dumps({"price": str(price), "at": stamp})
        for (market, symbol), price in prices.items()
    }
    try:
        with redis.pipeline(transaction=False) as pipe:
            pipe.hset(key(queue_name), mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key(queue_name), int(MAX_AGE * 2))
            pipe.execute()
    except Exception as exc:  # a valuation must never break a monitor cycle
        log.warning("marks not published: %s", type(exc).__name__)


def fetch(
    redis: Redis | None, queue_name: str, *, now: float | None = None
) -> dict[tuple[str, str], Decimal]:
    """The prices read within ``MAX_AGE`` seconds, by (market, symbol)."""
    if redis is None:
        return {}
    try:
        raw = redis.hgetall(key(queue_name))
    except Exception as exc:
        log.warning("marks not read: %s", type(exc).__name__)
        return {}
    current = time.time() if now is None else now
    out: dict[tuple[str, str], Decimal] = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        data = json.loads(value)
        if current - float(data["at"]) <= MAX_AGE:
            market, _, symbol = name.partition(":")
            out[(market, symbol)] = Decimal(data["price"])
    return out
