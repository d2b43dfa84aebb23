"""Signal to order: from a webhook's receipt to the exchange receiving the first order.

Starts, each in its own process on 127.0.0.1 and over real HTTP: the paper exchange (with a
thin ASGI wrapper that notes the wall time each order request arrives, keyed by its client
id), the receiver (``app.main:create_app`` under uvicorn, SQLite file with its durable
commit, real Redis on a private queue) and one RQ worker. It posts market-entry signals at
a fixed rate (open loop) and measures, per signal, the time from just before the webhook
POST to the order request reaching the exchange. In the same run it measures the fixed
costs on that path: one Redis round trip (PING) and one HTTP call to the paper exchange
(a kept-alive GET /api/v3/ticker/price, and a signed POST /api/v3/order through the
exchange client).

The worker runs as ``SimpleWorker`` (jobs in the worker process, resources reused) and,
for comparison, as RQ's forking ``Worker`` (one fork per job).

    .venv/bin/python bench/signal_to_order.py                      # 200 signals at 20/s
    .venv/bin/python bench/signal_to_order.py --signals 100 --workers simple

Bounded: about 15 s per worker class with the defaults. Needs Redis on
PACEKEEPER_REDIS_URL (default redis://127.0.0.1:6379/9); deletes the keys it made.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    SECRET,
    cleanup_redis,
    free_port,
    pacekeeper_env,
    start,
    stop,
    summary,
    uvicorn,
    wait_ready,
    worker,
)


def fixed_costs(redis_url: str, paper_url: str, env: dict[str, str], samples: int) -> None:
    from redis import Redis

    from app.config import Settings
    from app.exchange.client import BinanceClient
    from app.exchange.ids import client_order_id

    redis = Redis.from_url(redis_url)
    pings = []
    for _ in range(samples):
        t = time.perf_counter()
        redis.ping()
        pings.append(time.perf_counter() - t)
    redis.close()
    gets = []
    with httpx.Client(base_url=paper_url) as http:
        for _ in range(samples):
            t = time.perf_counter()
            http.get("/api/v3/ticker/price", params={"symbol": "BTCUSDT"}).raise_for_status()
            gets.append(time.perf_counter() - t)
    settings = Settings(_env_file=None, binance_api_url=paper_url, binance_fapi_url=paper_url)
    client = BinanceClient(httpx.Client(timeout=10), settings)
    client.server_time()
    posts = []
    run = uuid.uuid4().hex[:8]
    for n in range(min(samples, 50)):
        t = time.perf_counter()
        client.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=Decimal("0.0001"),
                         new_client_order_id=client_order_id(f"fixed-{run}-{n}", "x"))  # fmt: skip
        posts.append(time.perf_counter() - t)
    client.close()
    print(f"  fixed: Redis PING round trip          {summary(pings)}")
    print(f"  fixed: HTTP GET ticker (paper)        {summary(gets)}")
    print(f"  fixed: signed POST order (client)     {summary(posts)}")


def drive(
    receiver: str, paper: str, signals: int, rate: float, tag: str
) -> tuple[list[float], list[float], int]:
    """Post ``signals`` entries at ``rate``/s; returns (signal-to-order, ack) latencies."""
    from app.exchange.ids import client_order_id

    sent: dict[str, float] = {}
    acks: list[float] = []
    lock = threading.Lock()
    with httpx.Client(base_url=receiver, timeout=10) as http:
        begin = time.perf_counter() + 0.05
        for n in range(signals):
            due = begin + n / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            body = {
                "secret": SECRET, "id": f"bench-{tag}-{n}", "action": "entry",
                "symbol": "BTCUSDT", "side": "buy", "quantity": "0.001",
                "strategy": f"bench-{tag}-{n}",
            }  # fmt: skip
            t0 = time.time()
            p0 = time.perf_counter()
            response = http.post("/webhook", json=body)
            acks.append(time.perf_counter() - p0)
            response.raise_for_status()
            with lock:
                sent[client_order_id(response.json()["signal_id"], "entry")] = t0
    deadline = time.monotonic() + 60
    arrivals: dict[str, float] = {}
    while time.monotonic() < deadline:
        arrivals = httpx.get(f"{paper}/_bench/arrivals").json()
        if all(cid in arrivals for cid in sent):
            break
        time.sleep(0.2)
    latencies = [arrivals[cid] - t0 for cid, t0 in sent.items() if cid in arrivals]
    return latencies, acks, len(sent) - len(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--workers", default="simple,fork")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()

    redis_url = os.environ.get("PACEKEEPER_REDIS_URL", "redis://127.0.0.1:6379/9")
    queue = f"bench-s2o-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="pk-s2o-"))
    database_url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    from app import migrate

    migrate.upgrade(database_url)
    paper_port, api_port = free_port(), free_port()
    paper_url, api_url = f"http://127.0.0.1:{paper_port}", f"http://127.0.0.1:{api_port}"
    env = pacekeeper_env(
        database_url=database_url, redis_url=redis_url, queue=queue, exchange_url=paper_url
    )
    log = tmp / "processes.log"
    procs: list[subprocess.Popen[bytes]] = []
    print(f"signal -> first order on the exchange: {args.signals} signals at {args.rate:g}/s, "
          f"{'SQLite file' if args.database_url is None else database_url.split('://')[0]}, "
          f"queue {queue}")  # fmt: skip
    try:
        paper = start(uvicorn("bench.harness:paper_factory", paper_port), env, log)
        procs.append(paper)
        wait_ready(f"{paper_url}/api/v3/ping", paper)
        receiver = start(uvicorn("app.main:create_app", api_port), env, log)
        procs.append(receiver)
        wait_ready(f"{api_url}/health", receiver)
        fixed_costs(redis_url, paper_url, env, 200)
        for kind in args.workers.split(","):
            rq_worker = worker(kind, env, log)
            procs.append(rq_worker)
            drive(api_url, paper_url, args.warmup, 10, f"warm-{kind}-{uuid.uuid4().hex[:6]}")
            tag = f"{kind}-{uuid.uuid4().hex[:6]}"
            latencies, acks, missing = drive(api_url, paper_url, args.signals, args.rate, tag)
            label = "SimpleWorker" if kind == "simple" else "Worker (fork per job)"
            print(f"  {label}:")
            print(f"    signal -> order on the exchange    {summary(latencies)}"
                  + (f"  MISSING {missing}" if missing else ""))  # fmt: skip
            print(f"    webhook ack (client side)          {summary(acks)}")
            stop([rq_worker])
    finally:
        stop(procs)
        cleanup_redis(redis_url, queue)
    print(f"  logs: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
