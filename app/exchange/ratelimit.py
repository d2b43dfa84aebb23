"""Rate-limit governor: wait rather than cross Binance's weight limits, obey 429 and 418.

Binance counts request weight per fixed one-minute window:

| family | budget per minute                       | header with the used weight   |
| ------ | --------------------------------------- | ----------------------------- |
| /api   | 6,000 per IP, shared by every endpoint  | ``X-MBX-USED-WEIGHT-1M``      |
| /fapi  | 2,400 per IP, shared by every endpoint  | ``X-MBX-USED-WEIGHT-1M``      |
| /sapi  | 12,000 per IP, per IP-limited endpoint  | ``X-SAPI-USED-IP-WEIGHT-1M``  |
| /sapi  | 180,000 per UID, per UID-limited one    | ``X-SAPI-USED-UID-WEIGHT-1M`` |

Before each request the governor reserves the endpoint's weight (from ``WEIGHTS``) in the
current window, keeping ``margin`` of every budget unused, and sleeps to the next window when
the reservation does not fit. After each response it raises its count to what the headers say
(other programs may share the IP). Blocks are per Binance host: the spot host
(api.binance.com) carries /api and /sapi, the USD-M host (fapi.binance.com) /fapi, and each
has its own limits and its own IP bans. A 429 blocks every call to the same host (its server,
host and port, and its side: spot or fapi, so a paper exchange serving both on one port
keeps them apart) for ``Retry-After`` seconds; a 418 (IP ban) blocks every call to that
side, whatever server: a spot ban never stops a USD-M stop or close. Blocks longer than
``max_wait`` raise ``Temporary`` at once; shorter ones are waited out.

Order placements also count against the account's order limits, reported after each one as
``X-MBX-ORDER-COUNT-10S`` / ``-1D`` (spot: 100 and 200,000) and ``-10S`` / ``-1M`` (USD-M: 300
and 1,200). A count within ``margin`` of its limit holds back further placements on that
server until the count's window ends (a 10-second wait; the daily one raises ``Temporary``);
other requests go on.

State lives in Redis under a prefix (``pk:rl:`` by default) so every worker and the monitor
share one budget; ``MemoryRateStore`` keeps it in the process for tests and single processes.

With several accounts (``app/accounts.py``) each account's client has its own governor on the
same store, named by ``account``: what Binance counts per IP (request weight, bans, 429
back-offs) stays shared, what it counts per account (UID) is the account's own: the order
counts and the UID-limited ``/sapi`` weights. The account ``default`` keeps the keys it
always had.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.exchange.errors import (
    DEFAULT_BACKOFF_SECONDS,
    DEFAULT_BAN_SECONDS,
    Temporary,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

LIMITS = {"api": 6_000, "fapi": 2_400, "sapi-ip": 12_000, "sapi-uid": 180_000}
HEADERS = {
    "api": "x-mbx-used-weight-1m",
    "fapi": "x-mbx-used-weight-1m",
    "sapi-ip": "x-sapi-used-ip-weight-1m",
    "sapi-uid": "x-sapi-used-uid-weight-1m",
}
WINDOW = 60  # seconds
KEY_TTL = 2 * WINDOW

# Request weight per endpoint, from Binance's docs (see reference/binance-api.md).
WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/ticker/price"): 2,  # 4 without a symbol
    ("GET", "/api/v3/avgPrice"): 2,
    ("GET", "/api/v3/account"): 20,
    ("POST", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/openOrders"): 6,  # 80 without a symbol
    ("GET", "/api/v3/myTrades"): 20,  # with orderId
    ("POST", "/api/v3/orderList/oco"): 1,
    ("GET", "/api/v3/orderList"): 4,
    ("GET", "/api/v3/openOrderList"): 6,
    ("DELETE", "/api/v3/orderList"): 1,
    ("GET", "/sapi/v1/account/apiRestrictions"): 1,
    ("POST", "/sapi/v1/algo/spot/newOrderTwap"): 3000,
    ("POST", "/sapi/v1/algo/spot/newOrderVp"): 3000,  # not documented: budgeted as the futures VP
    ("DELETE", "/sapi/v1/algo/spot/order"): 1,
    ("GET", "/sapi/v1/algo/spot/openOrders"): 1,
    ("GET", "/sapi/v1/algo/spot/historicalOrders"): 1,
    ("GET", "/sapi/v1/algo/spot/subOrders"): 1,
    ("POST", "/sapi/v1/algo/futures/newOrderTwap"): 3000,
    ("POST", "/sapi/v1/algo/futures/newOrderVp"): 3000,  # 300 in English docs, 3000 in zh-CN
    ("DELETE", "/sapi/v1/algo/futures/order"): 1,
    ("GET", "/sapi/v1/algo/futures/openOrders"): 1,
    ("GET", "/sapi/v1/algo/futures/historicalOrders"): 1,
    ("GET", "/sapi/v1/algo/futures/subOrders"): 1,
    ("GET", "/fapi/v1/time"): 1,
    ("GET", "/fapi/v1/exchangeInfo"): 1,
    ("GET", "/fapi/v1/ticker/price"): 1,  # 2 without a symbol
    ("GET", "/fapi/v1/premiumIndex"): 1,  # 10 without a symbol
    ("POST", "/fapi/v1/order"): 0,  # counted on the order-count limits instead
    ("GET", "/fapi/v1/order"): 1,
    ("DELETE", "/fapi/v1/order"): 1,
    ("GET", "/fapi/v1/openOrders"): 1,  # 40 without a symbol
    ("POST", "/fapi/v1/algoOrder"): 0,
    ("GET", "/fapi/v1/algoOrder"): 1,
    ("DELETE", "/fapi/v1/algoOrder"): 1,
    ("GET", "/fapi/v1/openAlgoOrders"): 1,  # 40 without a symbol
    ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v1/positionSide/dual"): 30,
    ("GET", "/fapi/v3/positionRisk"): 5,
    ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v1/commissionRate"): 20,
}
WITHOUT_SYMBOL = {
    ("GET", "/api/v3/openOrders"): 80,
    ("GET", "/fapi/v1/openOrders"): 40,
    ("GET", "/api/v3/ticker/price"): 4,
    ("GET", "/fapi/v1/ticker/price"): 2,
    ("GET", "/fapi/v1/premiumIndex"): 10,
    ("GET", "/fapi/v1/openAlgoOrders"): 40,
}
UID_LIMITED = {
    "/sapi/v1/algo/spot/newOrderTwap",
    "/sapi/v1/algo/spot/newOrderVp",
    "/sapi/v1/algo/futures/newOrderTwap",
    "/sapi/v1/algo/futures/newOrderVp",
}
BAN = "ban"
# Order-count limits per interval header suffix, by limit kind (from exchangeInfo rateLimits).
ORDER_LIMITS: dict[str, dict[str, int]] = {
    "api": {"10s": 100, "1d": 200_000},
    "fapi": {"10s": 300, "1m": 1_200},
}
ORDER_WINDOWS = {"10s": 10, "1m": 60, "1d": 86_400}
PLACES_ORDER = {
    ("POST", "/api/v3/order"),
    ("POST", "/api/v3/order/oco"),
    ("POST", "/api/v3/orderList/oco"),
    ("POST", "/fapi/v1/order"),
    ("POST", "/fapi/v1/batchOrders"),
    ("POST", "/fapi/v1/algoOrder"),
}
HOSTS = ("fapi", "spot")


@dataclass(frozen=True)
class Cost:
    """What one request counts against: its server (the scope of a 429), bucket and weight."""

    server: str
    bucket: str
    kind: str  # a key of LIMITS
    weight: int
    places_order: bool = False  # counted on the order-count limits too
    host: str = "spot"  # the Binance host: "spot" (/api, /sapi) or "fapi" (/fapi)

    @property
    def ban_key(self) -> str:
        return f"{BAN}:{self.host}"


def family_of(path: str) -> str:
    return path.split("/", 2)[1] if path.count("/") >= 2 else "api"


def cost_of(
    method: str, path: str, params: Mapping[str, Any] | None = None, server: str = ""
) -> Cost:
    """The weight and bucket of one request (unknown endpoints count 1 on their family)."""
    key = (method, path)
    weight = WEIGHTS.get(key, 1)
    if key in WITHOUT_SYMBOL and not (params and params.get("symbol")):
        weight = WITHOUT_SYMBOL[key]
    family = family_of(path)
    places = key in PLACES_ORDER
    host = HOSTS[0] if family == "fapi" else HOSTS[1]
    if server:
        server = f"{server} {host}"
    if family == "sapi":
        kind = "sapi-uid" if path in UID_LIMITED else "sapi-ip"
        return Cost(server or family, f"{kind}:{path}", kind, weight, host=host)
    kind = "fapi" if family == "fapi" else "api"
    return Cost(server or kind, kind, kind, weight, places_order=places, host=host)


# What stopped a reservation: a block key and its remaining seconds, or FULL.
Refusal = tuple[str, float]
FULL: Refusal = ("full", 0.0)


class RateStore(Protocol):
    def reserve(
        self, key: str, weight: int, limit: int, blocks: Sequence[str]
    ) -> Refusal | None: ...
    def observe(self, key: str, used: int) -> None: ...
    def used(self, key: str) -> int: ...
    def block(self, key: str, seconds: float) -> None: ...
    def blocked_for(self, key: str) -> float: ...


class MemoryRateStore:
    """Counters and blocks in this process (tests about logic, single-process tools)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}
        self._blocks: dict[str, float] = {}

    def _get(self, key: str) -> int:
        used, expires = self._counts.get(key, (0, 0.0))
        return used if expires > self._clock() else 0

    def reserve(self, key: str, weight: int, limit: int, blocks: Sequence[str]) -> Refusal | None:
        with self._lock:
            for block in blocks:
                remaining = self._blocks.get(block, 0.0) - self._clock()
                if remaining > 0:
                    return block, remaining
            if weight == 0:
                return None
            used = self._get(key)
            if used > 0 and used + weight > limit:
                return FULL
            self._counts[key] = (used + weight, self._clock() + KEY_TTL)
            return None

    def observe(self, key: str, used: int) -> None:
        with self._lock:
            if used > self._get(key):
                self._counts[key] = (used, self._clock() + KEY_TTL)

    def used(self, key: str) -> int:
        with self._lock:
            return self._get(key)

    def block(self, key: str, seconds: float) -> None:
        with self._lock:
            self._blocks[key] = max(self._blocks.get(key, 0.0), self._clock() + seconds)

    def blocked_for(self, key: str) -> float:
        with self._lock:
            return max(0.0, self._blocks.get(key, 0.0) - self._clock())


# KEYS[1]: the window counter; KEYS[2..]: blocks. One round trip per request.
_RESERVE = """
for i = 2, #KEYS do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl > 0 then return {i - 1, ttl} end
end
if tonumber(ARGV[1]) == 0 then return {0, 0} end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 and used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return {-1, 0} end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {0, 0}
"""
_OBSERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > used then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 0
"""
_BLOCK = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""


class RedisRateStore:
    """Counters and blocks shared by every process through Redis (blocks use Redis's clock).

    If Redis fails, the store carries on in process memory for ``retry_after`` seconds before
    trying Redis again, so an outage neither stops trading nor slows every call down; it only
    stops sharing the budget meanwhile.
    """

    def __init__(
        self,
        redis: Any,
        prefix: str = "pk:rl:",
        *,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._observe = redis.register_script(_OBSERVE)
        self._block = redis.register_script(_BLOCK)
        self._fallback = MemoryRateStore(clock)
        self._retry_after = retry_after
        self._down_until = 0.0

    def _run(self, shared: Callable[[], Any], local: Callable[[MemoryRateStore], Any]) -> Any:
        if time.monotonic() < self._down_until:
            return local(self._fallback)
        try:
            return shared()
        except Exception as exc:
            log.warning("rate-limit store unavailable, using process memory: %s", exc)
            self._down_until = time.monotonic() + self._retry_after
            return local(self._fallback)

    def reserve(self, key: str, weight: int, limit: int, blocks: Sequence[str]) -> Refusal | None:
        def shared() -> Refusal | None:
            keys = [self._prefix + k for k in (key, *blocks)]
            code, ms = (int(v) for v in self._reserve(keys, [weight, limit, KEY_TTL]))
            if code == 0:
                return None
            return FULL if code < 0 else (blocks[code - 1], ms / 1000)

        result: Refusal | None = self._run(shared, lambda m: m.reserve(key, weight, limit, blocks))
        return result

    def observe(self, key: str, used: int) -> None:
        self._run(
            lambda: self._observe([self._prefix + key], [used, KEY_TTL]),
            lambda m: m.observe(key, used),
        )

    def used(self, key: str) -> int:
        return int(
            self._run(lambda: int(self._redis.get(self._prefix + key) or 0), lambda m: m.used(key))
        )

    def block(self, key: str, seconds: float) -> None:
        self._run(
            lambda: self._block([self._prefix + key], [max(1, int(seconds * 1000))]),
            lambda m: m.block(key, seconds),
        )

    def blocked_for(self, key: str) -> float:
        def shared() -> float:
            ttl = int(self._redis.pttl(self._prefix + key))
            return ttl / 1000 if ttl > 0 else 0.0

        return float(self._run(shared, lambda m: m.blocked_for(key)))


class RateGovernor:
    """Reserves weight before a request and records what the exchange reported after it."""

    def __init__(
        self,
        store: RateStore | None = None,
        *,
        margin: float = 0.1,
        max_wait: float = 60.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        limits: Mapping[str, int] = LIMITS,
        order_limits: Mapping[str, Mapping[str, int]] = ORDER_LIMITS,
        account: str = "",
    ) -> None:
        self.store: RateStore = store if store is not None else MemoryRateStore(clock)
        self.account = account
        self.margin = margin
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._limits = dict(limits)
        self._order_limits = {kind: dict(v) for kind, v in order_limits.items()}
        self._buckets: dict[str, str] = {"api": "api", "fapi": "fapi"}  # bucket -> kind
        self._servers: set[str] = set()
        # Weight this process has sent, per limit kind, since it started (for per-run figures).
        self.spent: dict[str, int] = dict.fromkeys(self._limits, 0)
        self._spent_lock = threading.Lock()

    def budget(self, kind: str) -> int:
        return int(self._limits[kind] * (1 - self.margin))

    def _window_key(self, bucket: str) -> str:
        return f"w:{int(self._clock() // WINDOW)}:{bucket}"

    def _bucket(self, cost: Cost) -> str:
        """The cost's weight bucket: per account for UID limits, else the IP's."""
        if cost.kind == "sapi-uid" and self.account:
            return f"{cost.bucket}@{self.account}"
        return cost.bucket

    def _orders_key(self, cost: Cost) -> str:
        """The block of placements whose order count is near its limit: per account."""
        return f"orders:{self.account}:{cost.server}" if self.account else f"orders:{cost.server}"

    def _wait(self, seconds: float, why: str, method: str, path: str) -> None:
        if seconds > self.max_wait:
            raise Temporary(why, retry_after=seconds, method=method, path=path)
        log.info("rate limit: waiting %.1fs (%s)", seconds, why)
        self._sleep(seconds)

    def acquire(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, server: str = ""
    ) -> Cost:
        """Block until the request fits its budgets; raise ``Temporary`` if that is too long."""
        cost = cost_of(method, path, params, server)
        bucket = self._bucket(cost)
        self._buckets[bucket] = cost.kind
        self._servers.add(cost.server)
        blocks: tuple[str, ...] = (cost.ban_key, f"backoff:{cost.server}")
        if cost.places_order:
            blocks = (*blocks, self._orders_key(cost))
        while True:
            refusal = self.store.reserve(
                self._window_key(bucket), cost.weight, self.budget(cost.kind), blocks
            )
            if refusal is None:
                with self._spent_lock:
                    self.spent[cost.kind] = self.spent.get(cost.kind, 0) + cost.weight
                return cost
            if refusal != FULL:
                block, remaining = refusal
                why = (
                    f"IP banned (418) by {cost.host}"
                    if block == cost.ban_key
                    else f"order count near its limit on {cost.server}"
                    if block.startswith("orders:")
                    else f"Retry-After from {cost.server}"
                )
                self._wait(remaining, why, method, path)
                continue
            # At most a minute, so always waited: waiting is the point of the governor.
            to_next_window = WINDOW - self._clock() % WINDOW + 0.05
            log.info("rate limit: %s budget spent, waiting %.1fs", bucket, to_next_window)
            self._sleep(to_next_window)

    def record(self, cost: Cost, status: int, headers: Mapping[str, str]) -> None:
        """Take the used weight from the headers; start a back-off on 429, a ban on 418."""
        reported = headers.get(HEADERS[cost.kind])
        if reported is not None and reported.strip().isdigit():
            self.store.observe(self._window_key(self._bucket(cost)), int(reported))
        self._record_order_counts(cost, headers)
        if status in (418, 429):
            retry_after = retry_after_seconds(headers)
            if status == 418:
                self.store.block(cost.ban_key, retry_after or DEFAULT_BAN_SECONDS)
            else:
                self.store.block(f"backoff:{cost.server}", retry_after or DEFAULT_BACKOFF_SECONDS)

    def _record_order_counts(self, cost: Cost, headers: Mapping[str, str]) -> None:
        """Hold back placements on this server while an order count is near its limit."""
        for interval, limit in self._order_limits.get(cost.kind, {}).items():
            reported = headers.get(f"x-mbx-order-count-{interval}")
            if reported is None or not reported.strip().isdigit():
                continue
            if int(reported) >= int(limit * (1 - self.margin)):
                window = ORDER_WINDOWS[interval]
                remaining = window - self._clock() % window
                log.warning(
                    "order count %s/%s per %s on %s: holding placements %.1fs",
                    reported, limit, interval, cost.server, remaining,
                )  # fmt: skip
                self.store.block(self._orders_key(cost), remaining)

    def uid_usage(self) -> dict[str, dict[str, int]]:
        """This governor's account's UID-limited weight in the current window, by bucket
        (one per UID-limited endpoint), with its limit."""
        usage = {}
        for path in sorted(UID_LIMITED):
            cost = cost_of("POST", path)
            used = self.store.used(self._window_key(self._bucket(cost)))
            usage[cost.bucket] = {"used": used, "limit": self._limits[cost.kind]}
        return usage

    def snapshot(self) -> dict[str, Any]:
        """Used weight per bucket in the current window, and any ban or back-off in force
        (``banned_for``: the longest ban of either host; ``banned``: per host)."""
        banned = {host: self.store.blocked_for(f"{BAN}:{host}") for host in HOSTS}
        buckets = {
            bucket: {
                "used": self.store.used(self._window_key(bucket)),
                "limit": self._limits[kind],
            }
            for bucket, kind in sorted(self._buckets.items())
        }
        return {
            "buckets": buckets,
            "banned_for": max(banned.values()),
            "banned": banned,
            "backoff_for": {s: self.store.blocked_for(f"backoff:{s}") for s in self._servers},
        }
