"""A worker imports what its jobs use before it takes the first one: the first jobs of a
burst place orders instead of waiting for one another's imports."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from tests.processes import Process, process_env
from tests.support import wait_until

# What the jobs import on first use (worker/jobs.py): signal execution, the monitor, the
# exchange client, notifications.
JOB_MODULES = [
    "app.execution.service",
    "app.signals.refusals",
    "app.exchange.client",
    "app.exchange.errors",
    "app.monitoring.service",
    "app.monitoring.reconcile",
    "app.notify.service",
    "app.notify.components",
    "app.execution.quality",
    "app.keyguard",
]


@pytest.fixture
def key(redis_conn: redis.Redis) -> Iterator[str]:
    name = f"pacekeeper:test:preload:{uuid.uuid4().hex[:8]}"
    yield name
    redis_conn.delete(name)


def test_a_fresh_worker_has_its_jobs_modules_imported_before_its_first_job(
    redis_conn: redis.Redis, redis_url: str, queue_name: str, key: str, tmp_path: Path
) -> None:
    # Queued before the worker starts: it is the first job the new process runs.
    Queue(queue_name, connection=redis_conn, serializer=JSONSerializer).enqueue_call(
        "tests.worker.jobfuncs.not_imported",
        kwargs={"redis_url": redis_url, "key": key, "modules": JOB_MODULES},
    )
    env = process_env(
        REDIS_URL=redis_url, QUEUE_NAME=queue_name, DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}"
    )
    worker = Process(["worker"], env)
    try:
        wait_until(lambda: redis_conn.get(key) is not None, timeout=60)
    finally:
        worker.terminate()
    assert json.loads(redis_conn.get(key) or b"null") == [], worker.output[-4000:]
