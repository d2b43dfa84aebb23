"""Client overhead per call: BinanceClient vs the raw httpx round trip, same server, same run.

    .venv/bin/python bench/exchange.py                 # minimal Binance-shaped server
    .venv/bin/python bench/exchange.py --target paper  # the paper exchange, if present
    .venv/bin/python bench/exchange.py -n 3000 --redis redis://127.0.0.1:6379/9

The server runs in this process (uvicorn on 127.0.0.1, own thread). Raw and client calls
alternate so both see the same machine load. "Overhead" is client minus raw, per call: URL and
parameter encoding, timestamp, HMAC signature, governor (memory, or Redis when --redis is
given), stdlib-JSON decoding with Decimal and pydantic validation. Bounded: -n calls of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn

from app.config import Settings
from app.exchange.client import BinanceClient
from app.exchange.ratelimit import RateGovernor, RedisRateStore

ORDER = {
    "symbol": "BTCUSDT", "orderId": 8389765519993908929, "orderListId": -1,
    "clientOrderId": "pk-entry-0123456789abcdef01234567", "price": "64000.00000000",
    "origQty": "0.01000000", "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000",
    "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY",
    "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": 1499827319559,
    "updateTime": 1499827319559, "isWorking": True, "workingTime": 1499827319559,
    "origQuoteOrderQty": "0.000000", "selfTradePreventionMode": "NONE",
}  # fmt: skip


async def minimal_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Fixed Binance-shaped answers; no signature check (it measures the client, not this)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.endswith("/time"):
        body: Any = {"serverTime": int(time.time() * 1000)}
    elif path == "/api/v3/ticker/price":
        body = {"symbol": "BTCUSDT", "price": "64000.01000000"}
    elif path == "/api/v3/order":
        body = ORDER
    else:
        body = {"code": -1, "msg": "unknown"}
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"x-mbx-used-weight-1m", b"10")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def start_server(app: Any) -> tuple[uvicorn.Server, str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def measure(pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], n: int) -> None:
    for name, (raw, client) in pairs.items():
        for _ in range(min(100, n)):  # warm up connections, caches, the clock offset
            raw()
            client()
        raw_ms: list[float] = []
        client_ms: list[float] = []
        for _ in range(n):
            for fn, out in ((raw, raw_ms), (client, client_ms)):
                started = time.perf_counter()
                fn()
                out.append((time.perf_counter() - started) * 1000)
        over = [c - r for c, r in zip(client_ms, raw_ms, strict=True)]
        print(
            f"{name:<34} raw median {_median(raw_ms):6.3f} p99 {_p99(raw_ms):6.3f} ms | "
            f"client median {_median(client_ms):6.3f} p99 {_p99(client_ms):6.3f} ms | "
            f"overhead median {_median(over):6.3f} p99 {_p99(over):6.3f} ms"
        )


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="calls of each kind (bounded run)")
    parser.add_argument("--target", choices=["minimal", "paper"], default="minimal")
    parser.add_argument("--redis", help="share the governor through this Redis URL")
    args = parser.parse_args()

    settings = Settings(_env_file=None)
    if args.target == "paper":
        from paper.app import create_app
        from paper.settings import PaperSettings

        app: Any = create_app(PaperSettings(_env_file=None))
    else:
        app = minimal_app
    server, url = start_server(app)
    settings = settings.model_copy(update={"binance_api_url": url, "binance_fapi_url": url})

    governor = None
    if args.redis:
        import redis

        prefix = f"pk:bench:{uuid.uuid4().hex[:8]}:"
        conn = redis.Redis.from_url(args.redis)
        governor = RateGovernor(RedisRateStore(conn, prefix), margin=0.0)
        # The bench sends far more than Binance would allow; keep the budget out of the way.
        governor.budget = lambda kind: 10**12  # type: ignore[method-assign]

    raw = httpx.Client()
    client = BinanceClient(httpx.Client(), settings, governor=governor)
    if governor is None:
        client.governor.budget = lambda kind: 10**12  # type: ignore[method-assign]

    ticker_url = httpx.URL(f"{url}/api/v3/ticker/price", params={"symbol": "BTCUSDT"})
    pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "GET /api/v3/ticker/price (public)": (
            lambda: raw.get(ticker_url).json(),
            lambda: client.ticker_price("BTCUSDT"),
        ),
    }
    if args.target == "minimal":
        order_url = httpx.URL(
            f"{url}/api/v3/order",
            params={"symbol": "BTCUSDT", "origClientOrderId": ORDER["clientOrderId"],
                    "recvWindow": 5000, "timestamp": 1, "signature": "0" * 64},
        )  # fmt: skip
        pairs["GET /api/v3/order (signed)"] = (
            lambda: raw.get(order_url).json(),
            lambda: client.get_order("BTCUSDT", orig_client_order_id=str(ORDER["clientOrderId"])),
        )
    print(f"target={args.target} n={args.n} governor={'redis' if args.redis else 'memory'}")
    try:
        measure(pairs, args.n)
    finally:
        server.should_exit = True
        if args.redis:
            keys = list(conn.scan_iter(match=f"{prefix}*"))
            if keys:
                conn.delete(*keys)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
