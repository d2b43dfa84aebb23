"""Monitor cycle time and exchange weight per cycle for 10, 100 and 1,000 working TWAPs.

    .venv/bin/python bench/monitor.py                      # N = 10, 100, 1000
    .venv/bin/python bench/monitor.py -n 100 --concurrency 16
    .venv/bin/python bench/monitor.py --database-url postgresql+psycopg://postgres@127.0.0.1/db

The paper exchange runs as its own process (``pacekeeper paper`` on a free port, manual clock,
its weight 429s off so that placing 1,000 TWAPs at UID weight 3,000 each is not a 17-minute
set-up); the monitor runs here with a normal rate governor, which counts what each cycle
sends. The database is a fresh SQLite file (or ``--database-url``, migrated; its tables are
emptied between runs). Bounded: four cycles per N.

For each N, spot TWAPs of one hour (60 children, about one a minute each, on the paper's
default Binance-like cadence) written as the execution layer leaves them, a tenth of them
limited out of reach; then, in exchange time:

    first     +60 s: every algo has a new child, so N subOrders reads and N fills
    quiet     at once: nothing new, yet N subOrders reads: pace is judged on the children
              (a working spot algo's executedQty shows nothing until it ends)
    moved     +60 s: every algo has a new child again (the worst steady-state cycle)
    laggards  +300 s, past the 10% grace: N subOrders reads and N/10 cancels
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import httpx

from app import migrate
from app.config import Settings
from app.db import Base, make_engine, make_sessionmaker
from app.exchange.client import BinanceClient
from app.exchange.filters import Market
from app.exchange.ids import client_algo_id
from app.exchange.ratelimit import LIMITS, RateGovernor, RedisRateStore
from app.execution.context import ExecContext
from app.models import Order, OrderStatus, Signal, SignalStatus, new_id
from app.monitoring.service import CycleReport, run_cycle

QTY, DURATION, OUT_OF_REACH = Decimal("0.02"), 3600, Decimal("50000")
# (name, seconds of exchange time before the cycle)
CYCLES = (("first", 60), ("quiet", 0), ("moved", 60), ("laggards", 300))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_paper(port: int, workdir: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PACEKEEPER_PAPER_PORT": str(port),
        "PACEKEEPER_PAPER_HOST": "127.0.0.1",
        "PACEKEEPER_PAPER_MANUAL_CLOCK": "true",
        "PACEKEEPER_PAPER_RATE_LIMITS": "false",
        "PACEKEEPER_PAPER_VOLATILITY": "0",
        "PACEKEEPER_MAX_OPEN_TWAP_SPOT": "5000",
        "PACEKEEPER_LOG_LEVEL": "WARNING",
    }
    exe = str(Path(sys.executable).with_name("pacekeeper"))
    proc = subprocess.Popen([exe, "paper"], cwd=workdir, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v3/time", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the paper exchange did not start")


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, database_url: str) -> None:
        self.settings = Settings(
            _env_file=None,
            binance_api_url=url,
            binance_fapi_url=url,
            database_url=database_url,
            monitor_interval=args.interval,
            monitor_concurrency=args.concurrency,
            queue_name="bench-monitor",
        )
        self.control = httpx.Client(base_url=f"{url}/paper", timeout=30)
        self.engine = make_engine(database_url, pool_size=args.concurrency + 4)
        redis = None
        if args.redis:
            from redis import Redis

            redis = Redis.from_url(args.redis)
        store = RedisRateStore(redis, "pk:bench:rl:") if redis is not None else None
        self.http = httpx.Client(timeout=30)
        client = BinanceClient(self.http, self.settings, governor=RateGovernor(store))
        self.ctx = ExecContext(self.settings, client, make_sessionmaker(self.engine), redis)
        # Set-up only: placing is not what is measured, and 1,000 TWAPs at UID 3,000 each
        # would wait out the governor for a quarter of an hour.
        self.placer = BinanceClient(
            self.http, self.settings, governor=RateGovernor(limits={k: 10**9 for k in LIMITS})
        )
        self.market_ms = 0

    def close(self) -> None:
        self.http.close()
        self.control.close()
        self.engine.dispose()

    def advance(self, seconds: float) -> None:
        response = self.control.post("/clock", json={"advance": seconds})
        response.raise_for_status()
        self.market_ms = int(response.json()["time"])

    def now_ms(self) -> int:
        # A real cycle asks the exchange for its time; the paper answers wall time on /time
        # (its market runs on the manual clock), so ask, then use the market's time.
        self.ctx.client.server_time(Market.SPOT)
        return self.market_ms

    def setup(self, n: int) -> None:
        self.control.post("/reset").raise_for_status()  # also clears faults
        self.control.post("/balances", json={"balances": {"USDT": "1000000000"}}).raise_for_status()
        with self.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        laggards = max(1, n // 10)
        with self.ctx.sessions() as session:
            for i in range(n):
                signal_id = new_id()
                limit = OUT_OF_REACH if i < laggards else None
                client_id = client_algo_id(signal_id, "entry")
                session.add(
                    Signal(
                        id=signal_id,
                        idempotency_key=f"bench:{signal_id}",
                        body_digest=hashlib.sha256(signal_id.encode()).hexdigest(),
                        action="entry",
                        market="spot",
                        symbol="BTCUSDT",
                        side="buy",
                        payload={"action": "entry"},
                        status=SignalStatus.WORKING,
                    )
                )
                session.add(
                    Order(
                        signal_id=signal_id, leg="entry", kind="twap", market="spot",
                        symbol="BTCUSDT", side="BUY", client_id=client_id,
                        status=OrderStatus.WORKING, quantity=QTY, duration=DURATION,
                        limit_price=limit,
                    )
                )  # fmt: skip
                self.placer.new_spot_twap(
                    symbol="BTCUSDT", side="BUY", quantity=QTY, duration=DURATION,
                    client_algo_id=client_id, limit_price=limit,
                )  # fmt: skip
            session.commit()
        self.advance(0)

    def cycle(self) -> tuple[CycleReport, float]:
        """One cycle, and the CPU seconds this process spent on it (all its threads)."""
        cpu = time.process_time()
        report = run_cycle(self.ctx, now_ms=self.now_ms)
        return report, time.process_time() - cpu

    def latency(self, ms: int) -> None:
        """Every exchange call answers ``ms`` later, as over a real network."""
        self.control.delete("/faults").raise_for_status()
        if ms:
            self.control.post(
                "/faults", json={"action": "latency", "path": "/", "delay_ms": ms}
            ).raise_for_status()


def row(n: int, name: str, r: CycleReport, cpu: float) -> str:
    weight = ", ".join(f"{k} {v}" for k, v in sorted(r.weight.items())) or "-"
    return (
        f"{n:>6} {name:<9} {r.duration_s:>8.3f} {cpu:>6.2f} {r.algos_checked:>6}"
        f" {r.sub_order_reads:>8} {r.fills_recorded:>6} {r.cancels:>7} {r.errors:>6}  {weight}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, action="append", help="working algos (repeatable)")
    parser.add_argument("--concurrency", type=int, default=Settings.model_fields[
        "monitor_concurrency"].default)  # fmt: skip
    parser.add_argument("--interval", type=float, default=5.0, help="monitor interval, s")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--redis", help="Redis URL for the lock and rate store (optional)")
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="added to every exchange answer (network)"
    )
    args = parser.parse_args()
    sizes = args.n or [10, 100, 1000]

    with tempfile.TemporaryDirectory() as workdir:
        database_url = args.database_url or f"sqlite:///{workdir}/bench.db"
        migrate.upgrade(database_url)
        port = free_port()
        paper = start_paper(port, workdir)
        bench = Bench(args, f"http://127.0.0.1:{port}", database_url)
        try:
            print(
                f"database {database_url.split('://')[0]}, concurrency {args.concurrency},"
                f" added latency {args.latency_ms} ms; cpu = this process (not the exchange)"
            )
            print(
                f"{'algos':>6} {'cycle':<9} {'seconds':>8} {'cpu':>6} {'seen':>6} {'subOrds':>8}"
                f" {'fills':>6} {'cancels':>7} {'errors':>6}  weight by budget"
            )
            for n in sizes:
                started = time.perf_counter()
                bench.setup(n)
                placed = time.perf_counter() - started
                bench.latency(args.latency_ms)
                for name, advance in CYCLES:
                    bench.advance(advance)
                    print(row(n, name, *bench.cycle()))
                # Every cycle reads every algo's subOrders (one page each for an hour's
                # 60 children) and openOrders once; each endpoint has its own 12,000 a minute.
                cycles = 60 / args.interval
                print(
                    f"{'':>6} set-up {placed:.1f} s; per minute in steady state: subOrders"
                    f" {n * cycles:.0f}, openOrders {cycles:.0f}, /api/v3/time {cycles:.0f}"
                )
        finally:
            bench.close()
            paper.terminate()
            paper.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
