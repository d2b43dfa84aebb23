"""Request weights per minute, reported in Binance's headers and enforced with 429.

``/api`` and ``/fapi`` each share one IP budget (6,000 and 2,400 a minute) reported as
``X-MBX-USED-WEIGHT-1M``; every ``/sapi`` endpoint has its own budget, IP (12,000) or UID
(180,000), reported as ``X-SAPI-USED-IP-WEIGHT-1M`` / ``X-SAPI-USED-UID-WEIGHT-1M``.
Windows are wall-clock minutes (rate limits are about real request rates, whatever the
market clock does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Weight = int | Callable[[Mapping[str, str]], int]


def _by_symbol(single: int, every: int) -> Weight:
    return lambda q: single if q.get("symbol") else every


def _by_limit(default: int, steps: tuple[tuple[int, int], ...]) -> Weight:
    """Weight by the ``limit`` parameter: the first (up to, weight) step it fits."""

    def weight(q: Mapping[str, str]) -> int:
        raw = q.get("limit", "")
        limit = int(raw) if raw.isdigit() else default
        return next((w for most, w in steps if limit <= most), steps[-1][1])

    return weight


# (method, path) -> (limit kind, weight); kind "ip" or "uid" matters for /sapi only.
WEIGHTS: dict[tuple[str, str], tuple[str, Weight]] = {
    ("GET", "/api/v3/time"): ("ip", 1),
    ("GET", "/api/v3/exchangeInfo"): ("ip", 20),
    ("GET", "/api/v3/ticker/price"): ("ip", _by_symbol(2, 4)),
    ("GET", "/api/v3/avgPrice"): ("ip", 2),
    ("GET", "/api/v3/depth"): (
        "ip",
        _by_limit(100, ((100, 5), (500, 25), (1000, 50), (5000, 250))),
    ),
    ("GET", "/api/v3/klines"): ("ip", 2),
    ("GET", "/api/v3/ticker/24hr"): ("ip", _by_symbol(2, 80)),
    ("GET", "/api/v3/account"): ("ip", 20),
    ("POST", "/api/v3/order"): ("ip", 1),
    ("GET", "/api/v3/order"): ("ip", 4),
    ("DELETE", "/api/v3/order"): ("ip", 1),
    ("GET", "/api/v3/openOrders"): ("ip", _by_symbol(6, 80)),
    ("GET", "/api/v3/myTrades"): ("ip", 20),
    ("POST", "/api/v3/orderList/oco"): ("ip", 1),
    ("GET", "/api/v3/orderList"): ("ip", 4),
    ("DELETE", "/api/v3/orderList"): ("ip", 1),
    ("GET", "/api/v3/openOrderList"): ("ip", 6),
    ("POST", "/sapi/v1/algo/spot/newOrderTwap"): ("uid", 3000),
    ("GET", "/sapi/v1/capital/config/getall"): ("ip", 10),
    ("GET", "/sapi/v1/margin/isolated/allPairs"): ("ip", 10),
    ("POST", "/sapi/v1/algo/spot/newOrderVp"): ("uid", 3000),  # as the futures VP (zh-CN)
    ("POST", "/sapi/v1/algo/futures/newOrderTwap"): ("uid", 3000),
    ("POST", "/sapi/v1/algo/futures/newOrderVp"): ("uid", 300),
    ("GET", "/fapi/v1/time"): ("ip", 1),
    ("GET", "/fapi/v1/exchangeInfo"): ("ip", 1),
    ("GET", "/fapi/v1/ticker/price"): ("ip", _by_symbol(1, 2)),
    ("GET", "/fapi/v1/premiumIndex"): ("ip", _by_symbol(1, 10)),
    ("GET", "/fapi/v1/depth"): ("ip", _by_limit(500, ((50, 2), (100, 5), (500, 10), (1000, 20)))),
    ("GET", "/fapi/v1/klines"): ("ip", _by_limit(500, ((99, 1), (499, 2), (1000, 5), (1500, 10)))),
    ("GET", "/fapi/v1/ticker/24hr"): ("ip", _by_symbol(1, 40)),
    ("GET", "/fapi/v1/userTrades"): ("ip", 5),
    ("POST", "/fapi/v1/order"): ("ip", 0),
    ("GET", "/fapi/v1/order"): ("ip", 1),
    ("DELETE", "/fapi/v1/order"): ("ip", 1),
    ("GET", "/fapi/v1/openOrders"): ("ip", _by_symbol(1, 40)),
    ("POST", "/fapi/v1/algoOrder"): ("ip", 0),
    ("GET", "/fapi/v1/algoOrder"): ("ip", 1),
    ("DELETE", "/fapi/v1/algoOrder"): ("ip", 1),
    ("DELETE", "/fapi/v1/algoOpenOrders"): ("ip", 1),
    ("GET", "/fapi/v1/openAlgoOrders"): ("ip", _by_symbol(1, 40)),
    ("GET", "/fapi/v2/positionRisk"): ("ip", 5),
    ("GET", "/fapi/v3/positionRisk"): ("ip", 5),
    ("GET", "/fapi/v2/account"): ("ip", 5),
    ("GET", "/fapi/v3/account"): ("ip", 5),
    ("GET", "/fapi/v2/balance"): ("ip", 5),
    ("GET", "/fapi/v3/balance"): ("ip", 5),
    ("GET", "/fapi/v1/commissionRate"): ("ip", 20),
}
LIMITS = {"/api": 6000, "/fapi": 2400, "ip": 12_000, "uid": 180_000}
# Order placements (orders each request places) and the account's order-count limits per
# family, as exchangeInfo's ORDERS rate limits state them: (header suffix, window s, limit).
ORDER_PLACEMENTS = {
    ("POST", "/api/v3/order"): 1,
    ("POST", "/api/v3/orderList/oco"): 2,
    ("POST", "/fapi/v1/order"): 1,
}
ORDER_LIMITS = {
    "/api": (("10S", 10, 100, "10 SECOND"), ("1D", 86_400, 200_000, "1 DAY")),
    "/fapi": (("10S", 10, 300, "10 SECOND"), ("1M", 60, 1_200, "1 MINUTE")),
}


@dataclass(frozen=True)
class Charge:
    headers: dict[str, str]
    limit: int | None = None  # set when this request crossed the limit
    scope: str = ""
    retry_after: int = 0


def family(path: str) -> str:
    for prefix in ("/sapi", "/fapi", "/api"):
        if path.startswith(prefix + "/"):
            return prefix
    return ""


class WeightCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[str, tuple[int, int]] = {}  # bucket -> (minute, weight)
        self._orders: dict[str, tuple[int, int]] = {}  # interval -> (window, orders)

    def reset(self) -> None:
        with self._lock:
            self._used.clear()
            self._orders.clear()

    def count_orders(
        self, method: str, path: str, key: str = ""
    ) -> tuple[dict[str, str], str | None, int]:
        """Count an order placement against its API key's account (order counts are per UID):
        its ``X-MBX-ORDER-COUNT-*`` headers, and the limit
        it would cross (``"100 orders per 10 SECOND"``) with the seconds left in that window;
        an order over a limit is refused and not counted."""
        orders = ORDER_PLACEMENTS.get((method, path), 0)
        if not orders:
            return {}, None, 0
        now = time.time()
        fam = family(path)
        with self._lock:
            counts = {}
            for name, seconds, limit, label in ORDER_LIMITS[fam]:
                window = int(now // seconds)
                last_window, used = self._orders.get(f"{key}:{fam}:{name}", (window, 0))
                counts[name] = (window, 0 if last_window != window else used)
                if counts[name][1] + orders > limit:
                    headers = {f"X-MBX-ORDER-COUNT-{n}": str(c[1]) for n, c in counts.items()}
                    left = max(1, int(seconds - now % seconds))
                    return headers, f"{limit} orders per {label}", left
            for name, (window, used) in counts.items():
                self._orders[f"{key}:{fam}:{name}"] = (window, used + orders)
            return (
                {f"X-MBX-ORDER-COUNT-{n}": str(c[1] + orders) for n, c in counts.items()},
                None,
                0,
            )

    def charge(self, method: str, path: str, query: Mapping[str, str]) -> Charge:
        fam = family(path)
        if not fam:
            return Charge({})
        kind, weight = WEIGHTS.get((method, path), ("ip", 1))
        cost = weight(query) if callable(weight) else weight
        if fam == "/sapi":
            bucket, limit = f"{kind}:{path}", LIMITS[kind]
            header = f"X-SAPI-USED-{kind.upper()}-WEIGHT-1M"
        else:
            bucket, limit, header = fam, LIMITS[fam], "X-MBX-USED-WEIGHT-1M"
        now = time.time()
        minute = int(now // 60)
        with self._lock:
            last_minute, used = self._used.get(bucket, (minute, 0))
            if last_minute != minute:
                used = 0
            used += cost
            self._used[bucket] = (minute, used)
        headers = {header: str(used)}
        if used > limit:
            scope = path if fam == "/sapi" else fam
            return Charge(headers, limit, scope, max(1, int(60 - now % 60)))
        return Charge(headers)
