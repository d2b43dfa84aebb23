"""The whole deployment as real processes on free ports, for the fault battery.

A private redis-server with AOF (``appendfsync everysec``), a SQLite file, the paper
exchange, the receiver, two workers and the monitor (cron) process, each started by a
:class:`~app.devstack.Supervisor` that starts it again when it dies (as systemd or
docker would), so a test can SIGKILL any of them by pid. The paper exchange's ledger is the
oracle: it is never killed. Settings are those of production except where a test would
otherwise wait minutes for a timer: a 5 s execution lease, 1 s monitor and sweep intervals,
5 s RQ maintenance.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app import migrate
from app.db import make_engine
from app.devstack import Child, ChildSpec, PrivateRedis, Supervisor, app_command
from tests.conftest import TEST_ADMIN_TOKEN, TEST_WEBHOOK_SECRET
from tests.processes import process_env
from tests.support import free_port, wait_until

TERMINAL = ("done", "failed", "refused", "cancelled", "expired")
WORKERS = 2


@dataclass
class Stack:
    """Start with :meth:`start`, stop with :meth:`stop`; :meth:`kill` SIGKILLs a part."""

    workdir: Path
    queue: str = field(default_factory=lambda: f"faults-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self.log = (self.workdir / "stack.log").open("w", buffering=1)
        self.supervisor = Supervisor(out=self.log, stop_timeout=10)
        self.redis = PrivateRedis(appendonly=True)
        self.database_url = f"sqlite:///{self.workdir / 'faults.db'}"
        self.api_url = f"http://127.0.0.1:{free_port()}"
        self.paper_url = f"http://127.0.0.1:{free_port()}"
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.engine: Any = None

    # -- life ---------------------------------------------------------------------------
    def start(self) -> Stack:
        redis_url = self.redis.start(self.supervisor)
        migrate.upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        env = process_env(
            DATABASE_URL=self.database_url,
            REDIS_URL=redis_url,
            QUEUE_NAME=self.queue,
            WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
            ADMIN_TOKEN=TEST_ADMIN_TOKEN,
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
            # The load comes from one address, and the exchange's limits are not under test.
            WEBHOOK_RATE_LIMIT="0",
            PAPER_RATE_LIMITS="false",
            PAPER_VOLATILITY="0",
        )
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
        self.log.close()

    # -- faults -------------------------------------------------------------------------
    def child(self, name: str) -> Child:
        return next(c for c in self.supervisor.children if c.name == name)

    def kill(self, name: str) -> int:
        """SIGKILL one part (its supervisor starts it again); returns the pid killed."""
        pid = self.child(name).proc.pid
        os.kill(pid, signal.SIGKILL)
        return pid

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

    def ledger(self) -> list[dict[str, Any]]:
        with httpx.Client(timeout=30) as http:
            response = http.get(f"{self.paper_url}/paper/ledger")
            response.raise_for_status()
            entries: list[dict[str, Any]] = response.json()["entries"]
        return entries


def _answers(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False
