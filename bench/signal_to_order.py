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
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-webhook-secret-0123456789abcdef"
ORDER_PATHS = (
    "/api/v3/order",
    "/api/v3/orderList/oco",
    "/sapi/v1/algo/spot/newOrderTwap",
    "/sapi/v1/algo/futures/newOrderTwap",
    "/sapi/v1/algo/futures/newOrderVp",
    "/fapi/v1/order",
    "/fapi/v1/algoOrder",
)
ID_FIELDS = ("newClientOrderId", "clientAlgoId", "listClientOrderId")


# ---- the paper exchange with arrival times (runs in its own process) ---------------------


class Arrivals:
    """ASGI wrapper: wall time at which each order POST arrived, by its client id."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: dict[str, float] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        path = scope["path"]
        if path == "/_bench/arrivals":
            body = json.dumps(self.seen).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        if scope["method"] != "POST" or path not in ORDER_PATHS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    form = parse_qs(
                        b"".join(chunks).decode() + "&" + scope["query_string"].decode()
                    )
                    for name in ID_FIELDS:
                        if name in form:
                            self.seen.setdefault(form[name][0], arrived)
            return message

        await self.app(scope, recording_receive, send)


def paper_factory() -> Any:
    from app.config import Settings
    from app.paper.app import create_app

    settings = Settings(paper_volatility=Decimal(0), paper_rate_limits=False)  # type: ignore[call-arg]
    return Arrivals(create_app(settings))


# ---- the harness -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def uvicorn(target: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


WORKER = """
import sys
from redis import Redis
from rq import Worker
from rq.serializers import JSONSerializer
from app.config import get_settings
from worker.main import build_worker
settings = get_settings()
redis = Redis.from_url(settings.redis_url)
if sys.argv[1] == "simple":
    worker = build_worker(settings, redis)
else:
    # Fair to the forking worker: the job's modules are imported once, in the parent.
    import app.execution.service, worker.jobs, worker.resources  # noqa: F401, E401
    worker = Worker([settings.queue_name], connection=redis, serializer=JSONSerializer,
                    maintenance_interval=settings.worker_maintenance_interval)
worker.work(logging_level="WARNING")
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {pct(ms, 50):6.2f} ms  p90 {pct(ms, 90):6.2f}  p99 {pct(ms, 99):6.2f}  "
        f"max {max(ms):6.2f}  (n={len(ms)})"
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
    settings = Settings(_env_file=None, binance_api_url=paper_url, binance_fapi_url=paper_url)  # type: ignore[call-arg]
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACEKEEPER_")}
    env.update(
        {
            "PACEKEEPER_ENV": "test",
            "PACEKEEPER_WEBHOOK_SECRET": SECRET,
            "PACEKEEPER_DATABASE_URL": database_url,
            "PACEKEEPER_REDIS_URL": redis_url,
            "PACEKEEPER_QUEUE_NAME": queue,
            "PACEKEEPER_BINANCE_API_URL": paper_url,
            "PACEKEEPER_BINANCE_FAPI_URL": paper_url,
            "PACEKEEPER_LOG_LEVEL": "WARNING",
            # One sender driving the receiver: the per-sender limit is not what is measured.
            "PACEKEEPER_WEBHOOK_RATE_LIMIT": "0",
            "PYTHONPATH": str(ROOT),
        }
    )
    log = tmp / "processes.log"
    procs: list[subprocess.Popen[bytes]] = []
    print(f"signal -> first order on the exchange: {args.signals} signals at {args.rate:g}/s, "
          f"{'SQLite file' if args.database_url is None else database_url.split('://')[0]}, "
          f"queue {queue}")  # fmt: skip
    try:
        paper = start(uvicorn("bench.signal_to_order:paper_factory", paper_port), env, log)
        procs.append(paper)
        wait_ready(f"{paper_url}/api/v3/ping", paper)
        receiver = start(uvicorn("app.main:create_app", api_port), env, log)
        procs.append(receiver)
        wait_ready(f"{api_url}/health", receiver)
        fixed_costs(redis_url, paper_url, env, 200)
        for kind in args.workers.split(","):
            worker = start([sys.executable, "-c", WORKER, kind], env, log)
            procs.append(worker)
            drive(api_url, paper_url, args.warmup, 10, f"warm-{kind}-{uuid.uuid4().hex[:6]}")
            tag = f"{kind}-{uuid.uuid4().hex[:6]}"
            latencies, acks, missing = drive(api_url, paper_url, args.signals, args.rate, tag)
            label = "SimpleWorker" if kind == "simple" else "Worker (fork per job)"
            print(f"  {label}:")
            print(f"    signal -> order on the exchange    {summary(latencies)}"
                  + (f"  MISSING {missing}" if missing else ""))  # fmt: skip
            print(f"    webhook ack (client side)          {summary(acks)}")
            worker.terminate()
            worker.wait(20)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        _cleanup_redis(redis_url, queue)
    print(f"  logs: {log}")
    return 0


def _cleanup_redis(redis_url: str, queue: str) -> None:
    from redis import Redis

    redis = Redis.from_url(redis_url)
    keys = list(redis.scan_iter(match=f"rq:*{queue}*", count=1000))
    for key in redis.scan_iter(match="rq:job:signal-*", count=1000):
        if redis.hget(key, "origin") == queue.encode():
            keys.append(key)
    if keys:
        redis.delete(*keys)
    redis.close()


if __name__ == "__main__":
    sys.exit(main())
