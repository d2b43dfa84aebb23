"""`pacekeeper api` rides out a database outage and a Redis crash: it answers 503 (never a
2xx it cannot keep) while the database is away, keeps accepting while Redis is, says what
is down in /health/ready and /metrics, logs each change once, and recovers by itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db import make_engine
from tests.conftest import TEST_ADMIN_TOKEN, TEST_WEBHOOK_SECRET
from tests.processes import Process, process_env
from tests.proxy import TcpProxy
from tests.signals.conftest import entry
from tests.support import free_port, wait_until
from tests.worker.test_outages import CrashableRedis

pytestmark = pytest.mark.slow


@pytest.fixture
def crashable() -> Iterator[CrashableRedis]:
    server = CrashableRedis()
    yield server
    server.close()


@pytest.fixture
def proxied_pg(pg_url: str) -> Iterator[tuple[TcpProxy, str]]:
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    proxy.stop()


def status_of(db_url: str, signal_id: str) -> str | None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT status FROM signals WHERE id = :s"), {"s": signal_id}
            ).scalar()
    finally:
        engine.dispose()


def test_the_receiver_rides_out_a_database_outage_and_a_redis_crash(
    pg_url: str, proxied_pg: tuple[TcpProxy, str], crashable: CrashableRedis, tmp_path: Path
) -> None:
    proxy, db_url = proxied_pg
    port = free_port()
    env = process_env(
        DATABASE_URL=db_url,
        REDIS_URL=crashable.url,
        QUEUE_NAME=f"outage-{uuid.uuid4().hex[:8]}",
        WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
        ADMIN_TOKEN=TEST_ADMIN_TOKEN,
        API_PORT=str(port),
        BINANCE_API_URL=f"http://127.0.0.1:{free_port()}",
    )
    api = Process(["api"], env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def post(name: str) -> httpx.Response:
                return http.post("/webhook", json=entry(id=f"{name}-{uuid.uuid4().hex[:6]}"))

            def failing() -> list[str]:
                failing: list[str] = http.get("/health/ready").json()["failing"]
                return failing

            def answers() -> Any:
                try:
                    return http.get("/health").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(answers, timeout=30)
            assert post("before").status_code == 202

            proxy.cut()
            during = post("during-db-outage")
            assert during.status_code == 503  # nothing accepted that could be lost
            assert "database" in failing()
            metrics = http.get("/metrics").text
            assert 'pacekeeper_metrics_source_up{source="database"} 0.0' in metrics
            api.wait_for("database unreachable")

            proxy.restore()
            after = wait_until(lambda: (r := post("after-db")).status_code == 202 and r, 30)
            assert status_of(pg_url, after.json()["signal_id"]) in ("received", "queued")
            api.wait_for("database reachable again")
            assert "database" not in failing()

            crashable.crash()
            stored = post("during-redis-outage")
            assert stored.status_code == 202  # in the database: the sweeper will queue it
            assert "redis" in failing()

            crashable.restart()
            wait_until(lambda: "redis" not in failing(), timeout=30)

            def queued_once_posted() -> bool:
                # The enqueuer skips Redis for a few seconds after a failure (the sweeper
                # takes what it skips): a signal posted after that pause is queued at once.
                sid = post("after-redis").json()["signal_id"]
                try:
                    wait_until(lambda: status_of(pg_url, sid) == "queued", timeout=3)
                except AssertionError:
                    return False
                return True

            wait_until(queued_once_posted, timeout=60)
            assert api.alive
            assert api.count("database unreachable") == 1
        # uvicorn ends its graceful shutdown by re-raising the signal.
        assert api.terminate() in (0, -15), api.output
    finally:
        api.kill()
