"""The whole deployment as real processes on free ports, for the fault battery.

A private redis-server with AOF (``appendfsync everysec``), the database (a SQLite file, or
with ``database="postgresql"`` a private PostgreSQL cluster made by ``initdb`` in a temporary
directory on a free port), the paper exchange, the receiver, two workers and the monitor
(cron) process, each started by a :class:`~app.devstack.Supervisor` that starts it again
when it dies (as systemd or docker would), so a test can SIGKILL any of them by pid, freeze
one (SIGSTOP), or stop some and start them again later (:meth:`Stack.hold`). The paper
exchange's ledger is the oracle: it is never killed.

Settings are those of production except where a test would otherwise wait minutes for a
timer: a 5 s execution lease, 1 s monitor and sweep intervals, 5 s RQ maintenance, a 5 s
read-after-write window before an order in doubt counts as absent (30 s in production, for
Binance's lag; the paper exchange has none unless a test asks for it) and a 5 s longest wait
for the rate limiter (60 s), which bounds how long an order left ``sending`` by a dead worker
stays in doubt. The secrets
(webhook secret, admin token, API key and secret) are fresh canary values for every stack:
:meth:`Stack.canary_hits` looks for them in the logs, the database and Redis.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import MetaData, create_engine, select, text

from app import migrate
from app.db import make_engine
from app.devstack import Child, ChildSpec, PrivateRedis, Supervisor, app_command
from tests.paper.binance import BinanceTestClient
from tests.processes import process_env
from tests.support import free_port, wait_until

TERMINAL = ("done", "failed", "refused", "cancelled", "expired")
WORKERS = 2


def _canary(name: str) -> str:
    return f"canary{name}{secrets.token_hex(20)}"


class PrivatePostgres:
    """A PostgreSQL cluster for one stack: ``initdb`` in a temporary directory, 127.0.0.1 on
    a free port, trust authentication. :meth:`stop` and :meth:`start` take it down and up
    again on the same data (``-m immediate`` is a crash: recovery replays the WAL)."""

    def __init__(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        found = binaries[-1] if binaries else shutil.which("pg_ctl")
        if found is None:
            raise RuntimeError("pg_ctl is not installed")
        self.bin = Path(found).parent
        self.dir = Path(tempfile.mkdtemp(prefix="pacekeeper-pg-"))
        self.port = free_port()
        # initdb refuses to run as root: run the server as the postgres user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/faults"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def create(self) -> str:
        data = str(self.dir / "data")
        self._run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()
        admin = create_engine(
            self.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE faults"))
        admin.dispose()
        return self.url

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "-t", "60", "stop")

    def cleanup(self) -> None:
        with suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Stack:
    """Start with :meth:`start`, stop with :meth:`stop`; :meth:`kill` SIGKILLs a part.

    ``database`` is ``sqlite`` or ``postgresql``; ``settings`` override the environment of
    every process (names without the ``PACEKEEPER_`` prefix)."""

    workdir: Path
    database: str = "sqlite"
    settings: dict[str, str] = field(default_factory=dict)
    queue: str = field(default_factory=lambda: f"faults-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "stack.log"
        self.log = self.log_path.open("w", buffering=1)
        self.supervisor = Supervisor(out=self.log, stop_timeout=10)
        self.redis = PrivateRedis(appendonly=True)
        self.postgres = PrivatePostgres() if self.database == "postgresql" else None
        self.database_url = f"sqlite:///{self.workdir / 'faults.db'}"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        self.paper_url = f"http://127.0.0.1:{free_port()}"
        self.webhook_secret = _canary("hook")
        self.canaries = {
            "WEBHOOK_SECRET": self.webhook_secret,
            "ADMIN_TOKEN": _canary("admin"),
            "BINANCE_API_KEY": _canary("apikey"),
            "BINANCE_API_SECRET": _canary("apisecret"),
        }
        self._stopping = threading.Event()
        self._parts = threading.Lock()  # the watcher's restarts against hold/release
        self._held: dict[str, ChildSpec] = {}
        self._watcher: threading.Thread | None = None
        self.engine: Any = None

    # -- life ---------------------------------------------------------------------------
    def start(self) -> Stack:
        redis_url = self.redis.start(self.supervisor)
        if self.postgres is not None:
            self.database_url = self.postgres.create()
        migrate.upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        settings = dict(
            **self.canaries,
            DATABASE_URL=self.database_url,
            REDIS_URL=redis_url,
            QUEUE_NAME=self.queue,
            API_PORT=self.api_url.rsplit(":", 1)[1],
            PAPER_PORT=self.paper_url.rsplit(":", 1)[1],
            BINANCE_API_URL=self.paper_url,
            BINANCE_FAPI_URL=self.paper_url,
            LOG_LEVEL="WARNING",
            # Timers shortened so that a recovery takes seconds, not minutes.
            EXECUTION_LEASE="5",
            MONITOR_INTERVAL="1",
            SWEEP_INTERVAL="1",
            WORKER_MAINTENANCE_INTERVAL="5",
            WORKER_TTL="15",
            RECONCILE_LAG_WINDOW="5",
            # An order whose worker died while it was `sending` may be resent only after the
            # in-flight horizon (ExecContext.in_flight_horizon), twice this wait plus the
            # HTTP timeout: 136 s in production, 26 s here. No test needs longer waits (the
            # rate-limit test's Retry-After is 2 s).
            RATE_LIMIT_MAX_WAIT="5",
            # The load comes from one address, and the exchange's limits are not under test.
            WEBHOOK_RATE_LIMIT="0",
            PAPER_RATE_LIMITS="false",
            PAPER_VOLATILITY="0",
        )
        env = process_env(**{**settings, **self.settings})  # a test's own settings win
        # A hung process shows where it hangs: SIGABRT prints every thread's stack.
        env["PYTHONFAULTHANDLER"] = "1"
        self.supervisor.start(ChildSpec("paper", app_command("paper"), env))
        with httpx.Client(timeout=5) as http:
            wait_until(lambda: _answers(http, f"{self.paper_url}/api/v3/time"), timeout=60)
            http.post(
                f"{self.paper_url}/paper/balances",
                json={"balances": {"USDT": "100000000", "BTC": "1000", "ETH": "10000"}},
            ).raise_for_status()
        parts = [ChildSpec("api", app_command("api"), env, restart=True)]
        parts += [
            ChildSpec(f"worker{n}", app_command("worker"), env, restart=True)
            for n in range(1, WORKERS + 1)
        ]
        parts.append(ChildSpec("monitor", app_command("monitor"), env, restart=True))
        self.supervisor.start(*parts)
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()
        # Ready: database, Redis, workers, a monitor cycle and the exchange all answer.
        with httpx.Client(timeout=5) as http:
            wait_until(lambda: _answers(http, f"{self.api_url}/health/ready"), timeout=90)
        return self

    def _watch(self) -> None:
        # What a service manager does: start a dead part again.
        while not self._stopping.wait(0.1):
            with self._parts:
                failed = self.supervisor.check()
            if failed is not None:
                self.log.write(f"{failed.name} died for good ({failed.proc.returncode})\n")
                return

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.supervisor.stop()
        self.redis.cleanup()
        if self.engine is not None:
            self.engine.dispose()
        if self.postgres is not None:
            self.postgres.cleanup()
        self.log.close()

    # -- faults -------------------------------------------------------------------------
    def child(self, name: str) -> Child:
        return next(c for c in self.supervisor.children if c.name == name)

    def kill(self, name: str) -> int:
        """SIGKILL one part (its supervisor starts it again); returns the pid killed. A part
        that is already dead (killed a moment before by another fault, its restart pending)
        is left to its supervisor: the two moments met in one death."""
        proc = self.child(name).proc
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        return proc.pid

    def freeze(self, name: str) -> None:
        """SIGSTOP one part: it holds its sockets open and answers nothing (a hung server)."""
        os.kill(self.child(name).proc.pid, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        os.kill(self.child(name).proc.pid, signal.SIGCONT)

    def hold(self, *names: str) -> None:
        """Stop these parts (SIGTERM, as a deployment would) and keep them down until
        :meth:`release`."""
        with self._parts:
            children = [self.child(name) for name in names]
            for child in children:
                self.supervisor.discard(child)
                self._held[child.name] = child.spec
        for child in children:
            child.proc.terminate()
        for child in children:
            try:
                child.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
            child.reader.join(timeout=2)

    def release(self, *names: str) -> None:
        """Start parts held by :meth:`hold` again."""
        with self._parts:
            self.supervisor.start(*(self._held.pop(name) for name in names))

    @contextmanager
    def exchange(self) -> Iterator[BinanceTestClient]:
        """A signed client of the paper exchange, with the stack's API key."""
        client = BinanceTestClient(
            self.paper_url,
            key=self.canaries["BINANCE_API_KEY"],
            secret=self.canaries["BINANCE_API_SECRET"],
        )
        try:
            yield client
        finally:
            client.close()

    def price(self, symbol: str) -> Decimal:
        with httpx.Client(timeout=10) as http:
            response = http.get(f"{self.paper_url}/api/v3/ticker/price", params={"symbol": symbol})
            response.raise_for_status()
            return Decimal(response.json()["price"])

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the paper exchange's price (resting orders it crosses fill)."""
        with httpx.Client(timeout=10) as http:
            body = {"symbol": symbol, "price": f"{price:f}"}
            http.post(f"{self.paper_url}/paper/price", json=body).raise_for_status()

    def fault(self, **spec: Any) -> int:
        """Add a paper exchange fault rule (``paper.faults.FaultSpec``); its id."""
        with httpx.Client(timeout=10) as http:
            response = http.post(f"{self.paper_url}/paper/faults", json=spec)
            response.raise_for_status()
            return int(response.json()["id"])

    def faults(self) -> dict[str, Any]:
        """The paper exchange's fault rules (with how often each applied) and its counters."""
        with httpx.Client(timeout=10) as http:
            response = http.get(f"{self.paper_url}/paper/faults")
            response.raise_for_status()
            answer: dict[str, Any] = response.json()
        return answer

    def clear_faults(self) -> None:
        with httpx.Client(timeout=10) as http:
            http.delete(f"{self.paper_url}/paper/faults").raise_for_status()

    # -- what happened ------------------------------------------------------------------
    def unsettled(self, signal_ids: list[str]) -> int:
        """How many of these signals are not in a final state yet."""
        if not signal_ids:
            return 0
        with self.engine.connect() as conn:
            settled = 0
            for chunk in range(0, len(signal_ids), 500):
                ids = signal_ids[chunk : chunk + 500]
                marks = ", ".join(f":s{i}" for i in range(len(ids)))
                states = ", ".join(f"'{s}'" for s in TERMINAL)
                settled += conn.execute(
                    text(f"SELECT count(*) FROM signals WHERE id IN ({marks})"
                         f" AND status IN ({states})"),
                    {f"s{i}": sid for i, sid in enumerate(ids)},
                ).scalar() or 0  # fmt: skip
        return len(signal_ids) - settled

    def statuses(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.id: r.status for r in conn.execute(text("SELECT id, status FROM signals"))}

    def signal_by_sender_id(self, sender_id: str) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                text("SELECT id FROM signals WHERE idempotency_key = :k"), {"k": sender_id}
            ).scalar()
        return str(found) if found is not None else None

    def orders(self) -> list[Any]:
        """Every order row (client id, status, signal id, exchange id)."""
        with self.engine.connect() as conn:
            query = "SELECT client_id, status, signal_id, venue_id FROM orders"
            return list(conn.execute(text(query)))

    def canary_hits(self) -> dict[str, int]:
        """How often a secret of this stack appears in its logs (the paper exchange's own
        lines aside: it is the exchange, holding the key by design), in any row of any
        table, and in Redis (every key and value now, and the AOF: everything ever written)."""
        needles = [value.encode() for value in self.canaries.values()]

        def count(blob: bytes) -> int:
            return sum(blob.count(needle) for needle in needles)

        self.log.flush()
        ours = b"".join(
            line for line in self.log_path.read_bytes().splitlines(keepends=True)
            if not line.startswith(b"paper ")
        )  # fmt: skip
        hits = {"logs": count(ours), "database": 0, "redis": 0}
        tables = MetaData()
        tables.reflect(self.engine)
        with self.engine.connect() as conn:
            for table in tables.sorted_tables:
                for row in conn.execute(select(table)):
                    hits["database"] += count(repr(tuple(row)).encode())
        conn_redis = redis.Redis.from_url(self.redis.url)
        try:
            for key in conn_redis.scan_iter(count=1000):
                hits["redis"] += count(key) + count(repr(_redis_value(conn_redis, key)).encode())
        finally:
            conn_redis.close()
        for path in Path(self.redis.dir or self.workdir).rglob("*"):
            if path.is_file():
                hits["redis"] += count(path.read_bytes())
        return hits

    def ledger(self) -> list[dict[str, Any]]:
        with httpx.Client(timeout=30) as http:
            response = http.get(f"{self.paper_url}/paper/ledger")
            response.raise_for_status()
            entries: list[dict[str, Any]] = response.json()["entries"]
        return entries


def _redis_value(conn: redis.Redis, key: bytes) -> Any:
    kind = conn.type(key)
    if kind == b"string":
        return conn.get(key)
    if kind == b"hash":
        return conn.hgetall(key)
    if kind == b"list":
        return conn.lrange(key, 0, -1)
    if kind == b"set":
        return conn.smembers(key)
    if kind == b"zset":
        return conn.zrange(key, 0, -1, withscores=True)
    if kind == b"stream":
        return conn.xrange(key)
    return None


def _answers(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False
