"""Bursts: Pacekeeper (receiver + queue + workers) against the usual synchronous webhook bot.

Starts, each in its own process on 127.0.0.1 and over real HTTP:

- two paper exchanges (``bench.harness:paper_factory``: each notes when each order
  arrives), one account for each design, with a latency fault on every Binance path
  (``--latency``, 300 ms by default: Binance's own answer time plus the network, for every
  call, to both designs alike). One account each: Binance counts orders per account (spot:
  100 per 10 s), and one design's orders must not spend the other's budget; each scenario
  starts in a fresh 10-second window for the same reason;
- two baselines, the synchronous webhook bot: a FastAPI handler that checks the secret,
  places a market order inline through the same exchange client
  (``BinanceClient.new_order``) and answers afterwards. Most webhook bots run one of two
  ways, and the bench runs both, each with its own paper account:
  - ``serial``: an ``async def`` handler calling the blocking client, so one order at a
    time (as a single-threaded Flask server does). The issue's bot was this one: its 50
    orders left one after another, 15 s for 50 at 300 ms;
  - ``threaded``: a ``def`` handler, so FastAPI runs it in its thread pool (40 threads)
    and places up to 40 orders at once;
- Pacekeeper: the receiver (``app.main:create_app``) and ``--workers`` RQ worker processes
  (``worker.main.build_worker``) on a private queue of the shared Redis; a SQLite file by
  default. ``PACEKEEPER_WORKER_CONCURRENCY``, when set, is passed to the workers.

Scenarios, in the same run and for both designs: a burst of ``--burst`` alerts at once, and
``--rate`` alerts per second for ``--seconds`` seconds (open loop: latency counts from each
alert's due time). Each prints ack p50/p99, signal -> order-on-the-exchange p50/p99 and the
time from the first alert until the last order reached the exchange (waited for at most
``--drain`` seconds), with baseline/Pacekeeper ratios (above 1: Pacekeeper is faster),
and the floor: the same alerts from the same client to a bare FastAPI endpoint that answers
202 at once (fifty new connections from one Python client cost tens of milliseconds on two
cores by themselves).
The burst runs ``--rounds`` times (3 by default), each design in turn within a round, and
each figure printed is the median of the rounds; each ratio is the median of the rounds'
own ratios, and the ack p99 and last-order ratios are printed round by round as well.
The rate scenario runs 4 s by default: at 20/s for 10 s an account places 200 orders in 10 s,
past Binance's 100 (spot), so the paper exchange would refuse the baselines' surplus and
Pacekeeper's guard would hold its own, and the figures would measure the limit.

Then signal -> order at ``--rate`` for ``--s2o-signals`` signals with the exchange answering
at once, on each ``--database`` (SQLite file; PostgreSQL in a database of its own on
127.0.0.1:5432, dropped afterwards): the pipeline's own cost, as bench/signal_to_order.py
measures it (its ``drive`` is used). And the workers' resident memory, in total.

    .venv/bin/python bench/burst.py
    .venv/bin/python bench/burst.py --latency 300 --burst 50 --rate 20 --seconds 10 --workers 2
    PACEKEEPER_WORKER_CONCURRENCY=8 .venv/bin/python bench/burst.py --database sqlite

Bounded: under five minutes with the defaults (three and a half when the workers keep up;
the serial bot's bursts take 15 s each). Needs Redis on PACEKEEPER_REDIS_URL (default
redis://127.0.0.1:6379/9); deletes the keys it made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
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
    """The threaded synchronous bot: the order is placed before the answer goes out."""
    return _bot(serial=False)


def serial_baseline_app() -> FastAPI:
    """The serial synchronous bot: a blocking call in an ``async def`` handler."""
    return _bot(serial=True)


def _bot(*, serial: bool) -> FastAPI:
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

    def webhook(body: dict[str, Any]) -> JSONResponse:
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

    if serial:

        @app.post("/webhook")
        async def serial_webhook(request: Request, body: dict[str, Any]) -> JSONResponse:
            return webhook(body)  # blocks the event loop: one order at a time

    else:

        @app.post("/webhook")
        def threaded_webhook(request: Request, body: dict[str, Any]) -> JSONResponse:
            return webhook(body)

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


def _alert_id(body: dict[str, Any], answer: dict[str, Any]) -> str:
    return str(body["id"])


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


def times(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.2f}x"


def report(
    name: str, rounds: dict[str, list[Run]], drain: float, floors: list[Run] | None = None
) -> None:
    """Each figure is the median over the rounds (one round: the figure itself), and each
    ratio the median of the rounds' ratios (baseline and Pacekeeper of the same round)."""
    designs = ("serial", "threaded", "pacekeeper")
    count = len(rounds["pacekeeper"])
    title = name if count == 1 else f"{name}: medians of {count} rounds"
    print(f"\n  {title}")
    print(f"    {'':22} {'serial':>8} {'threaded':>9} {'pacekeeper':>11} "
          f"{'serial/pk':>10} {'threaded/pk':>12}   (ms)")  # fmt: skip
    rows: list[tuple[str, Callable[[Run], float | None]]] = [
        ("ack p50", lambda r: pct(r.acks, 50) if r.acks else None),
        ("ack p99", lambda r: pct(r.acks, 99) if r.acks else None),
        ("signal->order p50", lambda r: _p(r.orders, 50)),
        ("signal->order p90", lambda r: _p(r.orders, 90)),
        ("signal->order p99", lambda r: _p(r.orders, 99)),
        ("last order at", lambda r: r.last),
        ("CPU/alert: front", lambda r: r.front_cpu),
        ("CPU/alert: workers", lambda r: r.worker_cpu),
        ("CPU/alert: exchange", lambda r: r.exchange_cpu),
    ]
    per_round: dict[str, list[tuple[float | None, float | None]]] = {}
    for label, figure in rows:
        s, t, o = (_median([figure(run) for run in rounds[d]]) for d in designs)
        together = zip(rounds["serial"], rounds["threaded"], rounds["pacekeeper"], strict=True)
        ratios = [
            (_ratio(figure(sr), figure(pr)), _ratio(figure(tr), figure(pr)))
            for sr, tr, pr in together
        ]
        per_round[label] = ratios
        sp = _median([r[0] for r in ratios])
        tp = _median([r[1] for r in ratios])
        print(f"    {label:22} {ms(s):>8} {ms(t):>9} {ms(o):>11} "
              f"{times(sp):>10} {times(tp):>12}")  # fmt: skip
    if count > 1:
        for label in ("ack p99", "last order at"):
            each = ", ".join(times(r[0]).strip() for r in per_round[label])
            print(f"    serial/pk {label}, round by round: {each}")
    if floors:
        pairs = zip(rounds["pacekeeper"], floors, strict=True)
        bare50 = _median([pct(f.acks, 50) for f in floors if f.acks])
        bare99 = _median([pct(f.acks, 99) for f in floors if f.acks])
        above = _median([pct(o.acks, 99) - pct(f.acks, 99) for o, f in pairs if o.acks and f.acks])
        if bare50 is not None and bare99 is not None and above is not None:
            print(f"    floor: a bare endpoint answering 202 at once, same client: ack p50 "
                  f"{bare50 * 1000:.0f} ms, p99 {bare99 * 1000:.0f} ms (pacekeeper's p99 "
                  f"{above * 1000:+.0f} ms above it)")  # fmt: skip
    for design in designs:
        for n, run in enumerate(rounds[design], 1):
            if run.missing:
                total = len(run.sent) + run.failed
                print(f"    {design}, round {n}: {run.missing} of {total} orders not on "
                      f"the exchange within {drain:g} s ({run.failed} alerts refused or "
                      "failed)")  # fmt: skip


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _ratio(base: float | None, ours: float | None) -> float | None:
    return base / ours if base and ours else None


def _p(values: list[float], q: float) -> float | None:
    return pct(values, q) if values else None


# ---- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=int, default=300, help="exchange latency, ms")
    parser.add_argument("--burst", type=int, default=50, help="alerts sent at once")
    parser.add_argument("--rate", type=float, default=20.0, help="alerts per second")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="of alerts at --rate (keep rate x seconds under 100)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--rounds", type=int, default=3,
                        help="bursts per design; figures are medians of the rounds")  # fmt: skip
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
    bots = ("serial", "threaded")
    # One paper exchange (one account) per design: Pacekeeper's, then each bot's.
    papers = {design: free_port() for design in ("pacekeeper", *bots)}
    paper_urls = {design: f"http://127.0.0.1:{port}" for design, port in papers.items()}
    paper_url = paper_urls["pacekeeper"]

    def env_for(design: str) -> dict[str, str]:
        url = paper_urls[design]
        return pacekeeper_env(
            database_url=sqlite_url, redis_url=redis_url, queue="unused", exchange_url=url
        )

    env = env_for("pacekeeper")
    concurrency = env.get("PACEKEEPER_WORKER_CONCURRENCY", "unset")
    print(f"burst: exchange latency {args.latency} ms, {args.workers} worker process(es), "
          f"PACEKEEPER_WORKER_CONCURRENCY={concurrency}, bursts on {args.burst_database}, "
          f"load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    exchanges: dict[str, int] = {}  # design -> its paper exchange's pid
    bot_procs: dict[str, subprocess.Popen[bytes]] = {}
    bot_urls: dict[str, str] = {}
    try:
        for design, port in papers.items():
            paper = start(uvicorn("bench.harness:paper_factory", port), env, log)
            procs.append(paper)
            exchanges[design] = paper.pid
            url = paper_urls[design]
            wait_ready(f"{url}/api/v3/ping", paper)
            fault = {"action": "latency", "path": "", "delay_ms": args.latency}
            httpx.post(f"{url}/paper/faults", json=fault, timeout=10).raise_for_status()
        for bot in bots:
            port = free_port()
            factory = "serial_baseline_app" if bot == "serial" else "baseline_app"
            bot_procs[bot] = start(uvicorn(f"bench.burst:{factory}", port), env_for(bot), log)
            procs.append(bot_procs[bot])
            bot_urls[bot] = f"http://127.0.0.1:{port}"
            wait_ready(f"{bot_urls[bot]}/docs", bot_procs[bot])
        # The floor: a bare FastAPI endpoint answering 202 at once, driven by the same client
        # (its connections, its own CPU on this machine), to read the acks against.
        bare_port = free_port()
        procs.append(start(uvicorn("bench.webhook:bare_app", bare_port), env, log))
        bare_url = f"http://127.0.0.1:{bare_port}"
        wait_ready(f"{bare_url}/docs", procs[-1])

        # name -> (alerts, rate (None: all at once), rounds)
        scenarios = {
            f"burst of {args.burst} alerts at once": (args.burst, None, args.rounds),
            f"{args.rate:g} alerts/s for {args.seconds:g} s": (
                round(args.rate * args.seconds),
                args.rate,
                1,
            ),
        }
        results: dict[str, dict[str, list[Run]]] = {name: {} for name in scenarios}
        floors: dict[str, list[Run]] = {name: [] for name in scenarios}
        rss = 0
        burst_db = ExitStack()
        env["PACEKEEPER_DATABASE_URL"] = burst_db.enter_context(
            _database(args.burst_database, sqlite_url)
        )
        with burst_db, pacekeeper(env, args.workers, log) as pk:
            designs = {bot: (bot_urls[bot], baseline_cid, paper_urls[bot]) for bot in bots}
            designs["pacekeeper"] = (pk.url, pacekeeper_cid, paper_url)
            fronts = {bot: bot_procs[bot].pid for bot in bots}
            fronts["pacekeeper"] = pk.receiver.pid
            backs: dict[str, list[int]] = {bot: [] for bot in bots}
            backs["pacekeeper"] = [w.pid for w in pk.workers]
            for url, cid, exchange in designs.values():  # warm: connections, caches, clock
                run = asyncio.run(send(url, 3, 10, f"warm-{uuid.uuid4().hex[:6]}", cid))
                settle(run, exchange, args.drain)
            for name, (count, rate, rounds) in scenarios.items():
                # Round by round, each design in turn: a noisy minute then touches every
                # design of a round alike, and a ratio compares runs of the same round.
                for _ in range(rounds):
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
                        results[name].setdefault(design, []).append(run)
                    tag = f"bare-{uuid.uuid4().hex[:6]}"
                    floors[name].append(asyncio.run(send(bare_url, count, rate, tag, _alert_id)))
            rss = sum(rss_bytes(p.pid) for p in pk.workers)
        for name, rounds in results.items():
            report(name, rounds, args.drain, floors[name])
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
                    # A fresh order-count window: the scenarios above used this account,
                    # and the placement guard rightly holds orders near its limit.
                    time.sleep(ORDER_WINDOW - time.time() % ORDER_WINDOW + 0.05)
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
