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


# (method, path) -> (limit kind, weight); kind "ip" or "uid" matters for /sapi only.
WEIGHTS: dict[tuple[str, str], tuple[str, Weight]] = {
    ("GET", "/api/v3/time"): ("ip", 1),
    ("GET", "/api/v3/exchangeInfo"): ("ip", 20),
    ("GET", "/api/v3/ticker/price"): ("ip", _by_symbol(2, 4)),
    ("GET", "/api/v3/avgPrice"): ("ip", 2),
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
    ("POST", "/sapi/v1/algo/spot/newOrderVp"): ("uid", 3000),  # as the futures VP (zh-CN)
    ("POST", "/sapi/v1/algo/futures/newOrderTwap"): ("uid", 3000),
    ("POST", "/sapi/v1/algo/futures/newOrderVp"): ("uid", 300),
    ("GET", "/fapi/v1/time"): ("ip", 1),
    ("GET", "/fapi/v1/exchangeInfo"): ("ip", 1),
    ("GET", "/fapi/v1/ticker/price"): ("ip", _by_symbol(1, 2)),
    ("GET", "/fapi/v1/premiumIndex"): ("ip", _by_symbol(1, 10)),
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
}
LIMITS = {"/api": 6000, "/fapi": 2400, "ip": 12_000, "uid": 180_000}


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

    def reset(self) -> None:
        with self._lock:
            self._used.clear()

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
