"""Bursts: Pacekeeper (receiver + queue + workers) against the usual synchronous webhook bot.

Starts, each in its own process on 127.0.0.1 and over real HTTP:

- two paper exchanges (``bench.harness:paper_factory``: each notes when each order
  arrives), one account for each design, with a latency fault on every Binance path
  (``--latency``, 300 ms by default: Binance's own answer time plus the network, for every
  call, to both designs alike). One account each: Binance counts orders per account (spot:
  100 per 10 s), and one design's orders must not spend the other's budget; each scenario
  starts in a fresh 10-second window for the same reason;
- the baseline: a FastAPI handler that checks the secret, places a market order inline
  through the same exchange client (``BinanceClient.new_order``) and answers afterwards;
  a ``def`` handler, so FastAPI runs it in its thread pool (40 threads), which is how most
  webhook bots run (Flask or FastAPI with a blocking Binance client);
- Pacekeeper: the receiver (``app.main:create_app``) and ``--workers`` RQ worker processes
  (``worker.main.build_worker``) on a private queue of the shared Redis; a SQLite file by
  default. ``PACEKEEPER_WORKER_CONCURRENCY``, when set, is passed to the workers.

Scenarios, in the same run and for both designs: a burst of ``--burst`` alerts at once, and
``--rate`` alerts per second for ``--seconds`` seconds (open loop: latency counts from each
alert's due time). Each prints ack p50/p99, signal -> order-on-the-exchange p50/p99 and the
time from the first alert until the last order reached the exchange (waited for at most
``--drain`` seconds), with baseline/Pacekeeper ratios (above 1: Pacekeeper is faster).

Then signal -> order at ``--rate`` for ``--s2o-signals`` signals with the exchange answering
at once, on each ``--database`` (SQLite file; PostgreSQL in a database of its own on
127.0.0.1:5432, dropped afterwards): the pipeline's own cost, as bench/signal_to_order.py
measures it (its ``drive`` is used). And the workers' resident memory, in total.

    .venv/bin/python bench/burst.py
    .venv/bin/python bench/burst.py --latency 300 --burst 50 --rate 20 --seconds 10 --workers 2
    PACEKEEPER_WORKER_CONCURRENCY=8 .venv/bin/python bench/burst.py --database sqlite

Bounded: under three minutes with the defaults (about one when the workers keep up). Needs Redis
on PACEKEEPER_REDIS_URL (default redis://127.0.0.1:6379/9); deletes the keys it made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    DEFAULT_REDIS_URL,
    SECRET,
    arrivals,
    cleanup_redis,
    cpu_seconds,
    free_port,
    pacekeeper_env,
    pct,
    rss_bytes,
    start,
    stop,
    summary,
    uvicorn,
    wait_ready,
    worker,
)

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"
ORDER_WINDOW = 10  # seconds: Binance's (and the paper's) shortest order-count window


# ---- the baseline (served in its own process) --------------------------------------------


def baseline_app() -> FastAPI:
    """The synchronous webhook bot: the order is placed before the answer goes out."""
    from app.config import Settings
    from app.exchange.client import BinanceClient
    from app.exchange.ids import client_order_id
    from app.exchange.ratelimit import LIMITS, RateGovernor

    settings = Settings()  # the bench's environment: the paper exchange's URL
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=100))
    # Its weight budget is not what is measured (Pacekeeper's workers keep theirs).
    governor = RateGovernor(limits={kind: 10**9 for kind in LIMITS})
    client = BinanceClient(http, settings, governor=governor)
    client.server_time()
    app = FastAPI()

    @app.post("/webhook")
    def webhook(request: Request, body: dict[str, Any]) -> JSONResponse:
        if body.get("secret") != SECRET:
            return JSONResponse({"error": "bad secret"}, status_code=401)
        cid = client_order_id(str(body["id"]), "entry")
        order = client.new_order(
            symbol=str(body["symbol"]),
            side=str(body["side"]).upper(),
            type="MARKET",
            quantity=Decimal(str(body["quantity"])),
            new_client_order_id=cid,
        )
        return JSONResponse({"client_order_id": cid, "status": order.status}, status_code=200)

    return app


# ---- driving -----------------------------------------------------------------------------


@dataclass
class Run:
    """One scenario against one design."""

    sent: dict[str, float] = field(default_factory=dict)  # client order id -> wall time sent
    acks: list[float] = field(default_factory=list)  # seconds from due time to the answer
    failed: int = 0
    first: float = 0.0  # wall time the first alert was due
    orders: list[float] = field(default_factory=list)  # signal -> order, seconds
    last: float | None = None  # first alert -> last order on the exchange, seconds
    missing: int = 0
    # CPU seconds per alert (user + system, from the send until the last order settled):
    # the front process (the baseline's, or Pacekeeper's receiver) and the workers.
    front_cpu: float | None = None
    worker_cpu: float | None = None
    exchange_cpu: float | None = None  # the paper exchange's (on these cores, not Binance's)


def alert(tag: str, n: int) -> dict[str, Any]:
    return {
        "secret": SECRET, "id": f"burst-{tag}-{n}", "action": "entry", "symbol": "BTCUSDT",
        "side": "buy", "quantity": "0.001", "strategy": f"burst-{tag}-{n}",
    }  # fmt: skip


async def send(url: str, count: int, rate: float | None, tag: str, cid: Callable[..., str]) -> Run:
    """``count`` alerts, all at once (``rate`` None) or ``rate`` a second; open loop."""
    run = Run()
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(n: int, due: float, wall: float) -> None:
            body = alert(tag, n)
            try:
                response = await client.post("/webhook", json=body)
            except httpx.HTTPError:
                run.failed += 1
                return
            run.acks.append(time.perf_counter() - due)
            if response.status_code >= 300:
                run.failed += 1
                return
            run.sent[cid(body, response.json())] = wall

        begin, wall0 = time.perf_counter() + 0.05, time.time() + 0.05
        run.first = wall0
        tasks = []
        for n in range(count):
            offset = n / rate if rate else 0.0
            pause = begin + offset - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            tasks.append(asyncio.create_task(one(n, begin + offset, wall0 + offset)))
        await asyncio.gather(*tasks)
    return run


def settle(run: Run, paper_url: str, drain: float) -> None:
    """Wait (at most ``drain`` s) for every order of ``run`` to reach the exchange."""
    deadline = time.monotonic() + drain
    seen: dict[str, float] = {}
    while True:
        seen = arrivals(paper_url)
        if all(c in seen for c in run.sent) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    run.orders = [seen[c] - t for c, t in run.sent.items() if c in seen]
    run.missing = len(run.sent) - len(run.orders) + run.failed
    if run.orders and not run.missing:
        run.last = max(seen[c] for c in run.sent) - run.first


def baseline_cid(body: dict[str, Any], answer: dict[str, Any]) -> str:
    return str(answer["client_order_id"])


def pacekeeper_cid(body: dict[str, Any], answer: dict[str, Any]) -> str:
    from app.exchange.ids import client_order_id

    return client_order_id(str(answer["signal_id"]), "entry")


# ---- processes ---------------------------------------------------------------------------


@dataclass
class Pacekeeper:
    url: str
    receiver: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


@contextmanager
def pacekeeper(env: dict[str, str], workers: int, log: Path) -> Iterator[Pacekeeper]:
    """The receiver and ``workers`` worker processes, stopped (and their queue emptied) after."""
    port = free_port()
    env = {**env, "PACEKEEPER_QUEUE_NAME": f"bench-burst-{uuid.uuid4().hex[:8]}"}
    receiver = start(uvicorn("app.main:create_app", port), env, log)
    procs = [receiver]
    try:
        procs += [worker("simple", env, log) for _ in range(workers)]
        wait_ready(f"http://127.0.0.1:{port}/health", receiver)
        yield Pacekeeper(f"http://127.0.0.1:{port}", receiver, procs[1:])
    finally:
        stop(procs)
        cleanup_redis(env["PACEKEEPER_REDIS_URL"], env["PACEKEEPER_QUEUE_NAME"])


@contextmanager
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of the bench's own, migrated; dropped afterwards."""
    from sqlalchemy import create_engine, text

    from app import migrate

    name = f"pk_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = f"{POSTGRES}/{name}"
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---- figures -----------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "      -" if value is None else f"{value * 1000:7.0f}"


def ratio(base: float | None, ours: float | None) -> str:
    return "    -" if not base or not ours else f"{base / ours:5.2f}x"


def report(name: str, runs: dict[str, Run], drain: float) -> None:
    base, ours = runs["baseline"], runs["pacekeeper"]
    print(f"\n  {name}")
    print(f"    {'':22} {'baseline':>9} {'pacekeeper':>11} {'ratio b/p':>10}   (ms)")
    rows = [
        ("ack p50", pct(base.acks, 50), pct(ours.acks, 50)),
        ("ack p99", pct(base.acks, 99), pct(ours.acks, 99)),
        ("signal->order p50", _p(base.orders, 50), _p(ours.orders, 50)),
        ("signal->order p99", _p(base.orders, 99), _p(ours.orders, 99)),
        ("last order at", base.last, ours.last),
        ("CPU/alert: front", base.front_cpu, ours.front_cpu),
        ("CPU/alert: workers", base.worker_cpu, ours.worker_cpu),
        ("CPU/alert: exchange", base.exchange_cpu, ours.exchange_cpu),
    ]
    for label, b, o in rows:
        print(f"    {label:22} {ms(b):>9} {ms(o):>11} {ratio(b, o):>10}")
    for design, run in runs.items():
        if run.missing:
            total = len(run.sent) + run.failed
            print(f"    {design}: {run.missing} of {total} orders not on the exchange within "
                  f"{drain:g} s ({run.failed} alerts refused or failed)")  # fmt: skip


def _p(values: list[float], q: float) -> float | None:
    return pct(values, q) if values else None


# ---- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=300, help="exchange latency, ms")
    parser.add_argument("--burst", type=int, default=50, help="alerts sent at once")
    parser.add_argument("--rate", type=float, default=20.0, help="alerts per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="of alerts at --rate")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--database", default="sqlite,postgresql",
                        help="for signal -> order: sqlite, postgresql or both")  # fmt: skip
    parser.add_argument("--burst-database", default="sqlite",
                        help="for the burst scenarios: sqlite or postgresql")  # fmt: skip
    parser.add_argument("--s2o-signals", type=int, default=60)
    parser.add_argument("--drain", type=float, default=30.0,
                        help="longest wait for the last order of a scenario, s")  # fmt: skip
    args = parser.parse_args()

    from app import migrate

    redis_url = os.environ.get("PACEKEEPER_REDIS_URL", DEFAULT_REDIS_URL)
    tmp = Path(tempfile.mkdtemp(prefix="pk-burst-"))
    log = tmp / "processes.log"
    sqlite_url = f"sqlite:///{tmp / 'bench.db'}"
    migrate.upgrade(sqlite_url)
    paper_port, base_paper_port, base_port = free_port(), free_port(), free_port()
    paper_url = f"http://127.0.0.1:{paper_port}"  # Pacekeeper's account
    base_paper_url = f"http://127.0.0.1:{base_paper_port}"  # the baseline's
    env = pacekeeper_env(
        database_url=sqlite_url, redis_url=redis_url, queue="unused", exchange_url=paper_url
    )
    base_env = pacekeeper_env(
        database_url=sqlite_url, redis_url=redis_url, queue="unused", exchange_url=base_paper_url
    )
    concurrency = env.get("PACEKEEPER_WORKER_CONCURRENCY", "unset")
    print(f"burst: exchange latency {args.latency} ms, {args.workers} worker process(es), "
          f"PACEKEEPER_WORKER_CONCURRENCY={concurrency}, bursts on {args.burst_database}, "
          f"load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for url, port in ((paper_url, paper_port), (base_paper_url, base_paper_port)):
            paper = start(uvicorn("bench.harness:paper_factory", port), env, log)
            procs.append(paper)
            wait_ready(f"{url}/api/v3/ping", paper)
            fault = {"action": "latency", "path": "", "delay_ms": args.latency}
            httpx.post(f"{url}/paper/faults", json=fault, timeout=10).raise_for_status()
        baseline = start(uvicorn("bench.burst:baseline_app", base_port), base_env, log)
        procs.append(baseline)
        base_url = f"http://127.0.0.1:{base_port}"
        wait_ready(f"{base_url}/docs", baseline)

        scenarios = {
            f"burst of {args.burst} alerts at once": (args.burst, None),
            f"{args.rate:g} alerts/s for {args.seconds:g} s": (
                round(args.rate * args.seconds),
                args.rate,
            ),
        }
        results: dict[str, dict[str, Run]] = {name: {} for name in scenarios}
        rss = 0
        burst_db = ExitStack()
        env["PACEKEEPER_DATABASE_URL"] = burst_db.enter_context(
            _database(args.burst_database, sqlite_url)
        )
        with burst_db, pacekeeper(env, args.workers, log) as pk:
            designs = {
                "baseline": (base_url, baseline_cid, base_paper_url),
                "pacekeeper": (pk.url, pacekeeper_cid, paper_url),
            }
            fronts = {"baseline": baseline.pid, "pacekeeper": pk.receiver.pid}
            backs = {"baseline": [], "pacekeeper": [w.pid for w in pk.workers]}
            exchanges = {"baseline": procs[1].pid, "pacekeeper": procs[0].pid}
            for url, cid, exchange in designs.values():  # warm: connections, caches, clock
                run = asyncio.run(send(url, 3, 10, f"warm-{uuid.uuid4().hex[:6]}", cid))
                settle(run, exchange, args.drain)
            for name, (count, rate) in scenarios.items():
                for design, (url, cid, exchange) in designs.items():
                    time.sleep(ORDER_WINDOW - time.time() % ORDER_WINDOW + 0.05)
                    tag = f"{design[:4]}-{uuid.uuid4().hex[:6]}"
                    front = cpu_seconds(fronts[design])
                    venue = cpu_seconds(exchanges[design])
                    back = sum(cpu_seconds(pid) for pid in backs[design])
                    run = asyncio.run(send(url, count, rate, tag, cid))
                    settle(run, exchange, args.drain)
                    time.sleep(args.latency / 1000 + 1)  # the answers' handling
                    run.front_cpu = (cpu_seconds(fronts[design]) - front) / count
                    run.exchange_cpu = (cpu_seconds(exchanges[design]) - venue) / count
                    if backs[design]:
                        spent = sum(cpu_seconds(pid) for pid in backs[design]) - back
                        run.worker_cpu = spent / count
                    results[name][design] = run
            rss = sum(rss_bytes(p.pid) for p in pk.workers)
        for name, runs in results.items():
            report(name, runs, args.drain)
        print(f"\n  worker RSS: {rss / 2**20:.0f} MiB in total for {args.workers} process(es)")

        # The pipeline's own cost: the exchange answers at once.
        httpx.delete(f"{paper_url}/paper/faults", timeout=10).raise_for_status()
        from bench.signal_to_order import drive

        print(f"\n  signal -> order at {args.rate:g}/s, {args.s2o_signals} signals, exchange "
              "answering at once (as bench/signal_to_order.py):")  # fmt: skip
        for database in args.database.split(","):
            with _database(database, sqlite_url) as url:
                db_env = {**env, "PACEKEEPER_DATABASE_URL": url}
                with pacekeeper(db_env, args.workers, log) as pk:
                    drive(pk.url, paper_url, 5, 10, f"warm-{uuid.uuid4().hex[:6]}")
                    tag = f"s2o-{uuid.uuid4().hex[:6]}"
                    latencies, acks, missing = drive(
                        pk.url, paper_url, args.s2o_signals, args.rate, tag
                    )
                print(f"    {database:10} signal -> order  {summary(latencies)}"
                      + (f"  MISSING {missing}" if missing else ""))  # fmt: skip
                print(f"    {database:10} webhook ack      {summary(acks)}")
    finally:
        stop(procs)
    print(f"\n  logs: {log}")
    return 0


@contextmanager
def _database(kind: str, sqlite_url: str) -> Iterator[str]:
    if kind == "sqlite":
        yield sqlite_url
    elif kind in ("postgresql", "pg"):
        with postgres_database() as url:
            yield url
    else:
        raise SystemExit(f"--database: sqlite or postgresql, not {kind!r}")


if __name__ == "__main__":
    sys.exit(main())
