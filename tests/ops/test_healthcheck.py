"""`python -m app.healthcheck`: the checks docker-compose and the Dockerfile run.

Redis checks run against a private redis-server (global RQ registries and the monitor key
must not be shared with other tests).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler

from app import healthcheck
from app.config import Settings
from app.healthcheck import (
    check_monitor_cycle,
    main,
    monitor_heartbeat_key,
    record_monitor_cycle,
    role_from_cmdline,
)
from tests.ops.stubs import paper_app
from tests.support import ThreadedServer, free_port, serve

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()


@pytest.fixture
def conn(private_redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(private_redis_url)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture
def settings(private_redis_url: str) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=private_redis_url,
        queue_name=f"pk-hc-{uuid.uuid4().hex[:8]}",
        monitor_interval=5,
    )


def run(argv: list[str], settings: Settings) -> tuple[int, str]:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(argv, settings)
    return code, buffer.getvalue()


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (["/opt/venv/bin/python", "/opt/venv/bin/pacekeeper", "worker"], "worker"),
        (["/sbin/docker-init", "--", "pacekeeper", "api", "--host", "0.0.0.0"], "api"),
        (["python", "-m", "app.cli", "monitor"], "monitor"),
        (["pacekeeper", "paper", "--host", "0.0.0.0"], "paper"),
        (["pacekeeper", "db", "upgrade"], None),
        (["redis-server", "--port", "6379"], None),
    ],
)
def test_role_is_read_from_the_container_command(cmdline: list[str], role: str | None) -> None:
    assert role_from_cmdline(cmdline) == role


def health_app(ready_status: int) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        body = {"status": "fail", "failing": ["monitor"]} if ready_status >= 500 else {}
        return JSONResponse(body, status_code=ready_status)

    return app


def test_api_liveness_and_readiness(settings: Settings) -> None:
    with serve(health_app(503)) as server:
        assert run(["api", "--url", server.url], settings)[0] == 0
        code, output = run(["api", "--ready", "--url", server.url], settings)
    assert code == 1
    assert "503" in output and "monitor" in output
    with serve(health_app(200)) as server:
        assert run(["api", "--ready", "--url", server.url], settings)[0] == 0


def test_api_that_does_not_answer_is_unhealthy(settings: Settings) -> None:
    code, output = run(["api", "--url", f"http://127.0.0.1:{free_port()}"], settings)
    assert code == 1
    assert output.startswith("FAIL api:")


def test_paper_check_runs_as_compose_runs_it() -> None:
    server = ThreadedServer(paper_app()).start()
    try:
        command = [sys.executable, "-m", "app.healthcheck", "paper", "--url", server.url]
        ok = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    finally:
        server.stop()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("ok paper:")
    down = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert down.returncode == 1


def make_worker(conn: redis.Redis, queue_name: str) -> SimpleWorker:
    return SimpleWorker([Queue(queue_name, connection=conn)], connection=conn)


def test_worker_is_healthy_only_while_a_worker_on_this_host_serves_the_queue(
    conn: redis.Redis, settings: Settings
) -> None:
    assert run(["worker"], settings)[0] == 1
    other_queue = make_worker(conn, "some-other-queue")
    other_queue.register_birth()
    assert run(["worker"], settings)[0] == 1

    worker = make_worker(conn, settings.queue_name)
    worker.register_birth()
    code, output = run(["worker"], settings)
    assert code == 0
    assert f"1 live worker(s) on {HOST}" in output

    worker.register_death()
    conn.delete(worker.key)
    assert run(["worker"], settings)[0] == 1


def test_a_worker_on_another_host_counts_only_with_any_host(
    conn: redis.Redis, settings: Settings
) -> None:
    worker = make_worker(conn, settings.queue_name)
    worker.hostname = "another-container"
    worker.register_birth()
    assert run(["worker"], settings)[0] == 1
    assert run(["worker", "--any-host"], settings)[0] == 0


def test_worker_check_from_the_environment(conn: redis.Redis, settings: Settings) -> None:
    make_worker(conn, settings.queue_name).register_birth()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACEKEEPER_")}
    assert settings.redis_url is not None
    env.update(PACEKEEPER_REDIS_URL=settings.redis_url, PACEKEEPER_QUEUE_NAME=settings.queue_name)
    result = subprocess.run(
        [sys.executable, "-m", "app.healthcheck", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def start_scheduler(conn: redis.Redis, hostname: str = HOST) -> CronScheduler:
    scheduler = CronScheduler(connection=conn, name=f"{hostname}:{os.getpid()}:test")
    scheduler.register_birth()
    return scheduler


def test_monitor_needs_a_live_scheduler_and_a_recent_cycle(
    conn: redis.Redis, settings: Settings
) -> None:
    code, output = run(["monitor"], settings)
    assert code == 1
    assert "no live cron scheduler" in output and "no monitor cycle recorded yet" in output

    start_scheduler(conn)
    assert run(["monitor"], settings)[0] == 1  # alive, but no cycle has completed

    record_monitor_cycle(conn, settings.queue_name)
    code, output = run(["monitor"], settings)
    assert code == 0, output
    assert conn.get(monitor_heartbeat_key(settings.queue_name)) is not None

    record_monitor_cycle(conn, settings.queue_name, now=time.time() - 3600)
    code, output = run(["monitor"], settings)
    assert code == 1
    assert "stale after 30s" in output


def test_monitor_on_another_host_counts_only_with_any_host(
    conn: redis.Redis, settings: Settings
) -> None:
    start_scheduler(conn, hostname="monitor-container")
    record_monitor_cycle(conn, settings.queue_name)
    assert run(["monitor"], settings)[0] == 1
    assert run(["monitor", "--any-host"], settings)[0] == 0


def test_monitor_cycle_is_stale_after_three_intervals_and_at_least_thirty_seconds(
    conn: redis.Redis,
) -> None:
    record_monitor_cycle(conn, "q", now=1000.0)
    assert check_monitor_cycle(conn, 5, "q", now=1029.0).ok
    assert not check_monitor_cycle(conn, 5, "q", now=1031.0).ok
    assert check_monitor_cycle(conn, 60, "q", now=1179.0).ok
    assert not check_monitor_cycle(conn, 60, "q", now=1181.0).ok
    figures = check_monitor_cycle(conn, 60, "q", now=1100.0).figures
    assert figures["last_cycle_age"] == 100.0 and figures["stale_after"] == 180.0
    assert not check_monitor_cycle(conn, 5, "another-queue", now=1001.0).ok  # not its cycle
    conn.set(monitor_heartbeat_key("q"), "not-a-number")
    assert not check_monitor_cycle(conn, 5, "q").ok


def test_unreachable_redis_is_reported(settings: Settings) -> None:
    dead = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    for role in ("worker", "monitor"):
        code, output = run([role], dead)
        assert code == 1
        assert output.startswith("FAIL redis: unreachable")


def test_auto_role_falls_back_to_api(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(healthcheck, "_container_role", lambda: None)
    with serve(health_app(200)) as server:
        code, output = run(["--url", server.url], settings)
    assert code == 0
    assert output.startswith("ok api:")
