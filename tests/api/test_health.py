"""GET /health and GET /health/ready against a real database, a private Redis and the paper
exchange over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session, sessionmaker

from app import controls
from app.config import Settings
from app.healthcheck import record_monitor_cycle
from app.models import Position
from tests.api.conftest import make_settings
from tests.support import free_port

COMPONENTS = {
    "database", "redis", "queue", "workers", "monitor", "exchange", "kill_switch", "protection",
}  # fmt: skip


@pytest.fixture
def live_worker(rconn: redis.Redis, api_settings: Settings) -> Iterator[SimpleWorker]:
    """A worker registered in RQ's registry for the test queue (as `pacekeeper worker` is)."""
    queue = Queue(api_settings.queue_name, connection=rconn, serializer=JSONSerializer)
    worker = SimpleWorker([queue], connection=rconn, serializer=JSONSerializer)
    worker.register_birth()
    yield worker
    worker.register_death()


def app_settings(api: TestClient) -> Settings:
    assert isinstance(api.app, FastAPI)
    return api.app.state.settings


def ready(api: TestClient) -> tuple[int, dict]:
    response = api.get("/health/ready")
    return response.status_code, response.json()


def test_liveness_answers_even_when_everything_else_is_down(
    db_url: str, open_app: Callable[[Settings], TestClient]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    api = open_app(make_settings(db_url, f"redis://127.0.0.1:{free_port()}/0", dead))
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert api.get("/health/ready").status_code == 503


def test_ready_reports_every_component_with_its_figures(
    api: TestClient, rconn: redis.Redis, live_worker: SimpleWorker
) -> None:
    record_monitor_cycle(rconn, app_settings(api).queue_name)
    status, body = ready(api)
    assert status == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    components = body["components"]
    assert set(components) == COMPONENTS
    assert all(c["ok"] for c in components.values())
    assert components["database"]["figures"]["latency_ms"] >= 0
    assert components["redis"]["figures"]["latency_ms"] >= 0
    assert components["queue"]["figures"]["depth"] == 0
    assert components["workers"]["figures"]["live"] == 1
    assert components["monitor"]["figures"]["last_cycle_age"] < 30
    exchange = components["exchange"]["figures"]
    assert isinstance(exchange["clock_offset_ms"], int)
    assert exchange["used_weight"]["api"].endswith("/6000")
    assert int(exchange["used_weight"]["api"].split("/")[0]) >= 1  # the time request itself
    assert components["kill_switch"]["figures"] == {"state": "running"}


def test_missing_worker_and_monitor_make_it_unready_by_name(api: TestClient) -> None:
    status, body = ready(api)
    assert status == 503
    assert body["status"] == "unready"
    assert sorted(body["failing"]) == ["monitor", "workers"]
    assert "no live worker" in body["components"]["workers"]["detail"]
    assert "no monitor cycle" in body["components"]["monitor"]["detail"]


def test_a_stale_monitor_cycle_is_unready(
    api: TestClient, rconn: redis.Redis, live_worker: SimpleWorker
) -> None:
    record_monitor_cycle(rconn, app_settings(api).queue_name, now=time.time() - 3600)
    status, body = ready(api)
    assert status == 503 and body["failing"] == ["monitor"]
    assert body["components"]["monitor"]["figures"]["last_cycle_age"] >= 3600


def test_a_backlog_is_reported_but_never_fails_readiness(
    api: TestClient, api_settings: Settings, rconn: redis.Redis, live_worker: SimpleWorker
) -> None:
    record_monitor_cycle(rconn, api_settings.queue_name)
    queue = Queue(api_settings.queue_name, connection=rconn, serializer=JSONSerializer)
    job = queue.enqueue_call("worker.jobs.sweep_intake")
    queue.enqueue_call("worker.jobs.sweep_intake")
    status, body = ready(api)
    assert status == 200 and body["components"]["queue"]["figures"]["depth"] == 2
    assert body["components"]["queue"]["figures"]["backlog"] is False

    # The workers are busy: the oldest job has waited ten minutes. The stack can still take
    # traffic; restarting it would only make things worse.
    old = datetime.now(UTC) - timedelta(minutes=10)
    job.enqueued_at = old
    job.save()
    status, body = ready(api)
    assert status == 200 and body["failing"] == []
    queue_check = body["components"]["queue"]
    assert queue_check["ok"] is True and queue_check["figures"]["backlog"] is True
    assert queue_check["figures"]["oldest_job_age"] >= 600
    assert queue_check["detail"].startswith("backlog: 2 job(s) waiting")


def test_an_exchange_asking_busy_workers_to_slow_down_is_not_unreachable(
    api: TestClient, rconn: redis.Redis, live_worker: SimpleWorker, paper_control: httpx.Client
) -> None:
    record_monitor_cycle(rconn, app_settings(api).queue_name)
    # The workers' traffic has the exchange answering 429 with a Retry-After.
    paper_control.post(
        "/faults",
        json={"action": "rate_limit", "path": "/api/v3/time", "retry_after": 60, "count": 1},
    ).raise_for_status()
    for _ in range(2):  # the 429 itself, then the Retry-After it started
        status, body = ready(api)
        assert status == 200, body
        exchange = body["components"]["exchange"]
        assert exchange["ok"] is True and exchange["figures"]["busy"] is True
        assert "busy, not down" in exchange["detail"]


def test_a_halt_is_reported_but_does_not_fail_readiness(
    api: TestClient,
    rconn: redis.Redis,
    live_worker: SimpleWorker,
    sessions: sessionmaker[Session],
) -> None:
    record_monitor_cycle(rconn, app_settings(api).queue_name)
    with sessions() as session:
        controls.halt(session, reason="maintenance window", by="test")
        session.commit()
    status, body = ready(api)
    assert status == 200
    switch = body["components"]["kill_switch"]
    assert switch["ok"] is True
    assert switch["figures"]["state"] == "halted"
    assert switch["figures"]["reason"] == "maintenance window"


def test_an_unprotected_position_degrades_readiness_without_failing_it(
    api: TestClient,
    rconn: redis.Redis,
    live_worker: SimpleWorker,
    sessions: sessionmaker[Session],
) -> None:
    record_monitor_cycle(rconn, app_settings(api).queue_name)
    assert ready(api)[1]["status"] == "ready"
    with sessions() as session:
        position = Position(
            market="spot", symbol="BTCUSDT", side="BUY", quantity=Decimal("0.01"),
            bracket_note="unprotected: bracket rejected: Filter failure (code -1013)",
        )  # fmt: skip
        session.add(position)
        session.commit()
        position_id = position.id
    status, body = ready(api)
    assert status == 200 and body["status"] == "degraded"
    assert body["degraded"] == ["protection"] and body["failing"] == []
    (unprotected,) = body["components"]["protection"]["figures"]["unprotected"]
    assert unprotected["position"] == position_id and "-1013" in unprotected["note"]
    with sessions() as session:
        row = session.get(Position, position_id)
        assert row is not None
        row.bracket_note = None  # protected again
        session.commit()
    assert ready(api)[1]["status"] == "ready"


def test_an_unreachable_exchange_is_named(
    db_url: str,
    private_redis_url: str,
    rconn: redis.Redis,
    open_app: Callable[[Settings], TestClient],
) -> None:
    settings = make_settings(db_url, private_redis_url, f"http://127.0.0.1:{free_port()}")
    queue = Queue(settings.queue_name, connection=rconn, serializer=JSONSerializer)
    worker = SimpleWorker([queue], connection=rconn, serializer=JSONSerializer)
    worker.register_birth()
    record_monitor_cycle(rconn, settings.queue_name)
    try:
        status, body = ready(open_app(settings))
    finally:
        worker.register_death()
    assert status == 503 and body["failing"] == ["exchange"]
    assert "unreachable" in body["components"]["exchange"]["detail"]


def test_an_ip_ban_makes_the_exchange_unready(
    api: TestClient, api_settings: Settings, rconn: redis.Redis, live_worker: SimpleWorker
) -> None:
    record_monitor_cycle(rconn, api_settings.queue_name)
    rconn.set(f"{api_settings.rate_limit_prefix}ban:spot", "1", px=120_000)
    status, body = ready(api)
    assert status == 503 and body["failing"] == ["exchange"]
    assert body["components"]["exchange"]["figures"]["banned_for"] > 60


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung Redis."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_hung_redis_is_reported_within_the_deadline_not_waited_for(
    db_url: str, silent_redis: str, paper: object, open_app: Callable[[Settings], TestClient]
) -> None:
    settings = make_settings(db_url, silent_redis, paper.url)  # type: ignore[attr-defined]
    status, body = ready(open_app(settings))
    assert status == 503
    assert {"redis", "queue", "workers", "monitor"} <= set(body["failing"])
    assert "no answer within" in body["components"]["redis"]["detail"]
    # What does not need Redis is still judged on its own.
    assert body["components"]["database"]["ok"] is True
    assert body["components"]["kill_switch"]["ok"] is True


def test_a_busy_sqlite_writer_does_not_make_the_stack_unready(
    sqlite_only_url: str,
    private_redis_url: str,
    rconn: redis.Redis,
    paper: object,
    open_app: Callable[[Settings], TestClient],
) -> None:
    """Workers and the intake hold SQLite's write lock in turn under load: the readiness
    reads (database, kill switch) must not queue behind it."""
    import sqlite3

    settings = make_settings(sqlite_only_url, private_redis_url, paper.url)  # type: ignore[attr-defined]
    api = open_app(settings)
    queue = Queue(settings.queue_name, connection=rconn, serializer=JSONSerializer)
    worker = SimpleWorker([queue], connection=rconn, serializer=JSONSerializer)
    worker.register_birth()
    record_monitor_cycle(rconn, settings.queue_name)
    writer = sqlite3.connect(sqlite_only_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a long write transaction, elsewhere
        status, body = ready(api)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        worker.register_death()
    assert status == 200, body
    assert body["components"]["database"]["ok"] and body["components"]["kill_switch"]["ok"]
