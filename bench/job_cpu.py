"""CPU of one signal job: the worker's own work beside its exchange calls, and RQ's share.

bench/burst.py measures the workers' CPU per alert in a burst, where fifty threads, two
processes and everything else on two cores share the time. This measures one job at a time,
in this process and one thread, so that the figure is the job's and nothing else's:

- **job**: ``worker.jobs.process_signal`` on stored market-entry signals (the receiver stored
  them; no worker runs), against the paper exchange over HTTP, after a warm-up (connections,
  exchangeInfo, price). Thread CPU per job, and the SQL statements and transactions it ran
  (counted on the engine, so exact);
- **exchange calls**: the requests the jobs made (counted at the paper exchange, by path),
  each made again on their own through the jobs' own client (``worker.resources``: the
  weight and order counts it shares through Redis, its call metrics): their CPU in this
  process is what the job spends *on* exchange calls (signing, HTTP, the shared limits,
  parsing the answer);
- **own work** = job - exchange calls: the issue's "worker's own work per job";
- **RQ**: a no-op job (``os.getpid``) through Pacekeeper's worker (``build_worker``, burst
  mode): what RQ and the worker loop spend per job around the function (process CPU: the
  worker runs jobs in threads);
- a fixed pure-Python loop, for the machine's speed in this run (a shared VM's CPU time per
  unit of work varies by tens of percent from minute to minute).

Rounds interleave the parts; it prints the median of each over the rounds. Each round starts
in a fresh 10-second order window (the account's order count is not what is measured).

    .venv/bin/python bench/job_cpu.py                  # 5 rounds of 40 jobs
    .venv/bin/python bench/job_cpu.py --rounds 3 --jobs 20

Bounded: about a minute with the defaults. Needs Redis on PACEKEEPER_REDIS_URL (default
redis://127.0.0.1:6379/9); deletes the keys it made.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    DEFAULT_REDIS_URL,
    SECRET,
    cleanup_redis,
    free_port,
    pacekeeper_env,
    start,
    stop,
    uvicorn,
    wait_ready,
)

if TYPE_CHECKING:
    from app.exchange.client import BinanceClient
    from worker.main import PacekeeperWorker

ORDER_WINDOW = 10  # seconds: the paper exchange's (and Binance's) shortest order window


def thread_ms(fn: Callable[[Any], Any], args: Sequence[Any]) -> float:
    """Thread CPU milliseconds per call of ``fn``, once for each of ``args``."""
    started = time.thread_time()
    for arg in args:
        fn(arg)
    return (time.thread_time() - started) * 1000 / len(args)


def calibration_ms() -> float:
    """A fixed pure-Python loop: CPU milliseconds, for this run's machine speed."""

    def loop(_: int) -> None:
        total = 0
        for n in range(200_000):
            total += n

    return thread_ms(loop, range(5))


def market_buy(client: BinanceClient, cid: str) -> None:
    client.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=Decimal("0.001"),
                     new_client_order_id=cid)  # fmt: skip


def burst(worker: PacekeeperWorker) -> None:
    worker.work(burst=True, logging_level="WARNING")


def post_signals(receiver: str, count: int, tag: str) -> list[str]:
    """Store ``count`` market entries through the receiver; their ids."""
    ids = []
    with httpx.Client(base_url=receiver, timeout=10) as http:
        for n in range(count):
            body = {
                "secret": SECRET, "id": f"cpu-{tag}-{n}", "action": "entry",
                "symbol": "BTCUSDT", "side": "buy", "quantity": "0.001",
                "strategy": f"cpu-{tag}-{n}",
            }  # fmt: skip
            response = http.post("/webhook", json=body)
            response.raise_for_status()
            ids.append(str(response.json()["signal_id"]))
    return ids


def requests_by_path(trace: Path, since: float) -> Counter[str]:
    seen: Counter[str] = Counter()
    for line in trace.read_text().splitlines():
        stamp, _port, method, path = line.split()
        if float(stamp) >= since and not path.startswith("/_bench"):
            seen[f"{method} {path}"] += 1
    return seen


def next_window() -> None:
    time.sleep(ORDER_WINDOW - time.time() % ORDER_WINDOW + 0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=40, help="signal jobs per round (< 90)")
    args = parser.parse_args()
    if not 0 < args.jobs < 90:
        raise SystemExit("--jobs: 1 to 89 (one order window of the account)")

    from sqlalchemy import event

    from app import migrate

    redis_url = os.environ.get("PACEKEEPER_REDIS_URL", DEFAULT_REDIS_URL)
    tmp = Path(tempfile.mkdtemp(prefix="pk-jobcpu-"))
    log, trace = tmp / "processes.log", tmp / "trace.log"
    database_url = f"sqlite:///{tmp / 'bench.db'}"
    migrate.upgrade(database_url)
    paper_port, receiver_port = free_port(), free_port()
    paper_url = f"http://127.0.0.1:{paper_port}"
    env = pacekeeper_env(
        database_url=database_url,
        redis_url=redis_url,
        queue=f"bench-jobcpu-{uuid.uuid4().hex[:8]}",
        exchange_url=paper_url,
    )
    procs = [start(uvicorn("bench.harness:paper_factory", paper_port), {**env,
             "BENCH_TRACE": str(trace)}, log)]  # fmt: skip
    try:
        wait_ready(f"{paper_url}/api/v3/ping", procs[0])
        procs.append(start(uvicorn("app.main:create_app", receiver_port), env, log))
        receiver = f"http://127.0.0.1:{receiver_port}"
        wait_ready(f"{receiver}/health", procs[1])
        os.environ.update(env)  # this process runs the jobs: the same settings

        from redis import Redis

        from app.config import get_settings
        from app.exchange.ids import client_order_id
        from app.queue import make_queue
        from worker.jobs import process_signal
        from worker.main import build_worker
        from worker.resources import resources

        settings = get_settings()
        engine = resources().engine
        statements = Counter[str]()

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            statements["sql"] += 1

        @event.listens_for(engine, "commit")
        def _commits(*_: Any) -> None:
            statements["commit"] += 1

        # The jobs' own client: its calls keep the shared weight and order counts in Redis
        # and the call metrics, as the jobs' calls do.
        client = resources().client
        redis = Redis.from_url(redis_url)
        noop_queue = make_queue(redis, f"bench-jobcpu-noop-{uuid.uuid4().hex[:8]}")
        noop_worker_settings = settings.model_copy(update={"queue_name": noop_queue.name})

        # Warm: connections, exchangeInfo, the price, the worker's imports.
        for signal_id in post_signals(receiver, 3, f"warm-{uuid.uuid4().hex[:6]}"):
            process_signal(signal_id)
        rounds: list[dict[str, float]] = []
        paths: Counter[str] = Counter()
        for n in range(args.rounds):
            next_window()
            tag = uuid.uuid4().hex[:6]
            ids = post_signals(receiver, args.jobs, tag)
            statements.clear()
            since = time.time()
            job = thread_ms(process_signal, ids)
            made = requests_by_path(trace, since)
            paths = made
            figures = {
                "job": job,
                "sql": statements["sql"] / args.jobs,
                "commit": statements["commit"] / args.jobs,
                "calibration": calibration_ms(),
            }
            # The same requests on their own: the orders on a fresh window.
            next_window()
            exchange = 0.0
            for path, count in made.items():
                if path == "POST /api/v3/order":
                    cids = [client_order_id(f"cpu-{tag}-x{i}", "x") for i in range(count)]
                    cost = thread_ms(partial(market_buy, client), cids)
                elif path == "GET /api/v3/ticker/price":
                    cost = thread_ms(lambda _: client.ticker_price("BTCUSDT"), range(count))
                else:
                    raise SystemExit(f"a job made {path}: teach bench/job_cpu.py its cost")
                exchange += cost * count / args.jobs
            figures["exchange"] = exchange
            # RQ around a job: no-op jobs through the worker, in burst mode.
            for _ in range(args.jobs):
                noop_queue.enqueue("os.getpid")
            worker = build_worker(noop_worker_settings, redis)
            started = time.process_time()  # the process: the worker runs jobs in threads
            burst(worker)
            figures["rq"] = (time.process_time() - started) * 1000 / args.jobs
            rounds.append(figures)
            print(f"round {n + 1}: job {job:.2f} ms (exchange calls {exchange:.2f}), RQ "
                  f"{figures['rq']:.2f} ms, {figures['sql']:.1f} statements, calibration "
                  f"{figures['calibration']:.2f} ms", flush=True)  # fmt: skip
        cleanup_redis(redis_url, noop_queue.name)
        redis.close()
    finally:
        stop(procs)
        cleanup_redis(env["PACEKEEPER_REDIS_URL"], env["PACEKEEPER_QUEUE_NAME"])

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    own = statistics.median(r["job"] - r["exchange"] for r in rounds)
    print(f"\nmedians of {args.rounds} rounds of {args.jobs} market entries (one thread, SQLite):")
    print(f"  job, thread CPU                   {median('job'):6.2f} ms")
    calls = ", ".join(f"{c / args.jobs:g} {p}" for p, c in sorted(paths.items()))
    print(f"  of which exchange calls           {median('exchange'):6.2f} ms  ({calls} a job)")
    print(f"  own work beside exchange calls    {own:6.2f} ms  (target <= 10)")
    print(f"  RQ and the worker loop, a job     {median('rq'):6.2f} ms")
    print(f"  SQL statements / commits a job    {median('sql'):6.1f} / {median('commit'):.1f}")
    print(f"  calibration loop                  {median('calibration'):6.2f} ms  (machine speed)")
    print(f"  logs: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
