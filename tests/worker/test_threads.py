"""A worker runs many jobs at once on threads, the monitor's before any signal, and a stop
lets the running ones finish."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from app.config import Settings
from tests.processes import Process, process_env
from tests.support import wait_until
from worker.main import build_worker

JOBS = "tests.worker.jobfuncs"


def settings_for(redis_url: str, queue_name: str, concurrency: int) -> Settings:
    return Settings(
        _env_file=None, redis_url=redis_url, queue_name=queue_name, worker_concurrency=concurrency
    )


def queue(conn: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=conn, serializer=JSONSerializer)


@pytest.fixture
def keys(redis_conn: redis.Redis) -> Iterator[str]:
    prefix = f"pacekeeper:test:threads:{uuid.uuid4().hex[:8]}"
    yield prefix
    for key in redis_conn.scan_iter(f"{prefix}*"):
        redis_conn.delete(key)


def test_a_worker_runs_a_burst_of_jobs_at_the_same_time(
    redis_conn: redis.Redis, redis_url: str, queue_name: str, keys: str
) -> None:
    burst = 20
    jobs = [
        queue(redis_conn, queue_name).enqueue_call(
            f"{JOBS}.gather", kwargs={"redis_url": redis_url, "key": keys, "count": burst}
        )
        for _ in range(burst)
    ]
    worker = build_worker(settings_for(redis_url, queue_name, burst), redis_conn)
    assert worker.concurrency == burst
    assert worker.work(burst=True)

    # Every job got past the wait for all the others: they ran side by side, not in turn.
    assert [job.get_status(refresh=True) for job in jobs] == [JobStatus.FINISHED] * burst
    assert worker.running == 0


def test_a_worker_with_fewer_threads_than_a_burst_runs_them_in_turns(
    redis_conn: redis.Redis, redis_url: str, queue_name: str, keys: str
) -> None:
    # Two threads: pairs gather, one after the other; none waits for a third that never runs.
    jobs = [
        queue(redis_conn, queue_name).enqueue_call(
            f"{JOBS}.gather", kwargs={"redis_url": redis_url, "key": f"{keys}:{n // 2}", "count": 2}
        )
        for n in range(6)
    ]
    worker = build_worker(settings_for(redis_url, queue_name, 2), redis_conn)
    assert worker.work(burst=True)
    assert [job.get_status(refresh=True) for job in jobs] == [JobStatus.FINISHED] * 6


def test_the_monitors_jobs_run_before_a_backlog_of_signals(
    redis_conn: redis.Redis, redis_url: str, queue_name: str, keys: str
) -> None:
    settings = settings_for(redis_url, queue_name, 1)
    for n in range(3):
        queue(redis_conn, settings.queue_name).enqueue_call(
            f"{JOBS}.note", kwargs={"redis_url": redis_url, "key": keys, "name": f"signal{n}"}
        )
    queue(redis_conn, settings.notify_queue_name).enqueue_call(
        f"{JOBS}.note", kwargs={"redis_url": redis_url, "key": keys, "name": "notify"}
    )
    queue(redis_conn, settings.monitor_queue_name).enqueue_call(
        f"{JOBS}.note", kwargs={"redis_url": redis_url, "key": keys, "name": "monitor"}
    )
    assert build_worker(settings, redis_conn).work(burst=True)
    ran = [i.decode() if isinstance(i, bytes) else i for i in redis_conn.lrange(keys, 0, -1)]
    assert ran == ["monitor", "signal0", "signal1", "signal2", "notify"]


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.kill()


def test_a_stopping_worker_lets_its_running_jobs_finish_and_takes_no_more(
    redis_conn: redis.Redis,
    redis_url: str,
    queue_name: str,
    keys: str,
    processes: list[Process],
    tmp_path: Path,
) -> None:
    env = process_env(
        REDIS_URL=redis_url,
        QUEUE_NAME=queue_name,
        WORKER_CONCURRENCY="4",
        DATABASE_URL=f"sqlite:///{tmp_path / 'worker.db'}",
    )
    worker = Process(["worker"], env)
    processes.append(worker)
    release = tmp_path / "release"
    held = [
        queue(redis_conn, queue_name).enqueue_call(
            f"{JOBS}.hold",
            kwargs={"redis_url": redis_url, "key": f"{keys}:held{n}", "release": str(release)},
        )
        for n in range(3)
    ]
    wait_until(lambda: all(redis_conn.get(f"{keys}:held{n}") for n in range(3)), timeout=30)

    worker.proc.send_signal(signal.SIGTERM)
    worker.wait_for("warm shut down requested")
    later = queue(redis_conn, queue_name).enqueue_call(
        f"{JOBS}.record", kwargs={"redis_url": redis_url, "key": f"{keys}:later"}
    )
    time.sleep(0.5)  # it would have taken the new job by now, had it not been stopping
    assert worker.alive  # the three jobs still run
    release.touch()
    # No second signal: that would be a cold stop.
    assert worker.proc.wait(timeout=30) == 0, worker.output

    assert [job.get_status(refresh=True) for job in held] == [JobStatus.FINISHED] * 3
    assert later.get_status(refresh=True) == JobStatus.QUEUED
    later.delete()


def test_an_idle_worker_stops_at_once(
    redis_url: str, queue_name: str, processes: list[Process], tmp_path: Path
) -> None:
    env = process_env(
        REDIS_URL=redis_url, QUEUE_NAME=queue_name, DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}"
    )
    worker = Process(["worker"], env)
    processes.append(worker)
    worker.wait_for("Listening on")
    started = time.monotonic()
    assert worker.terminate() == 0, worker.output
    # RQ's own idle worker used to wait out a 60 s read; ours ends in well under a second.
    assert time.monotonic() - started < 10


def _stubborn_scheduler(ready: Any) -> None:
    """A scheduler fork that has not installed its own handler yet: the first SIGTERM lands
    on an inherited one that only sets a flag (the worker's StopFlag); the second ends it."""
    seen: list[int] = []

    def inherited(signum: int, _frame: Any) -> None:
        seen.append(signum)

    signal.signal(signal.SIGTERM, inherited)
    ready.set()
    while len(seen) < 2:
        time.sleep(0.01)


def test_a_worker_stops_a_scheduler_that_missed_the_first_sigterm(
    redis_conn: redis.Redis, redis_url: str, queue_name: str
) -> None:
    """A worker stopped as it starts used to wait forever for its scheduler process (RQ
    sends one SIGTERM, then joins without a limit): the fork had not yet installed its
    handler when the SIGTERM came. The worker asks again until the process ends."""
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_stubborn_scheduler, args=(ready,))
    child.start()
    try:
        assert ready.wait(10)
        worker = build_worker(settings_for(redis_url, queue_name, 1), redis_conn)
        worker.scheduler = cast(Any, SimpleNamespace(_process=child))
        stopping = threading.Thread(target=worker.stop_scheduler, daemon=True)
        stopping.start()
        stopping.join(20)
        assert not stopping.is_alive(), "the worker still waits for its scheduler"
        assert child.exitcode == 0  # it ended on the second SIGTERM, not killed
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
