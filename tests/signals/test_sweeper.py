"""The sweeper recovers every queued signal no job will run, whatever its attempt count:
a job RQ failed, stopped or cancelled, or one started by a worker that died."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import utcformat
from sqlalchemy import text

from app.db import make_engine
from app.models import utcnow
from app.queue import enqueue_signals, job_id, make_queue
from app.signals import service
from app.signals.sweeper import recovery_delay, sweep_intake
from tests.signals.conftest import entry


@pytest.fixture
def queue(redis_conn: redis.Redis, queue_name: str) -> Any:
    return make_queue(redis_conn, queue_name)


def queued_signal(db_url: str, queue: Any, name: str) -> str:
    """A signal stored and enqueued as the receiver does it (``queued``, 0 attempts)."""
    engine = make_engine(db_url)
    now = utcnow() - timedelta(minutes=1)
    try:
        prepared = service.prepare(
            entry(id=name), now=now, dedupe_window=60, twap_min_duration=10,
            twap_max_duration=86_400,
        )  # fmt: skip
        sid = service.record(engine, prepared, now=now).signal_id
        done, error = enqueue_signals(queue, [sid])
        assert error is None
        service.mark_queued(engine, done, now=now, job_ids={sid: job_id(sid)})
    finally:
        engine.dispose()
    return sid


def take(queue: Any, redis_conn: redis.Redis, sid: str) -> Job:
    """A worker took the signal's job off the queue (and then something happened to it)."""
    job = Job.fetch(job_id(sid), connection=redis_conn, serializer=JSONSerializer)
    queue.remove(job)
    return job


def sweep(db_url: str, queue: Any) -> Any:
    engine = make_engine(db_url)
    try:
        return sweep_intake(engine, queue, now=utcnow())
    finally:
        engine.dispose()


def rows(db_url: str, sql: str, **params: Any) -> list[Any]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


@pytest.mark.parametrize("ended", [JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED])
def test_a_queued_signal_whose_job_ended_is_run_again_even_with_no_attempt(
    db_url: str, queue: Any, redis_conn: redis.Redis, job_keys: Any, ended: JobStatus
) -> None:
    sid = queued_signal(db_url, queue, f"ended-{ended.value}")
    # Its worker died before claiming it; RQ ended the job and keeps it (a year, if failed).
    take(queue, redis_conn, sid).set_status(ended)

    report = sweep(db_url, queue)

    assert (report.recovered, report.requeued, report.left) == (1, 0, 0)
    assert queue.job_ids == [job_id(sid)]
    again = Job.fetch(job_id(sid), connection=redis_conn, serializer=JSONSerializer)
    assert again.get_status() == JobStatus.QUEUED and again.args == [sid]
    (note,) = rows(db_url, "SELECT message FROM events WHERE kind = 'requeued'")
    assert f"its job {ended.value}" in note.message
    # Once is enough: the new job will run it.
    assert sweep(db_url, queue).recovered == 0


@pytest.mark.parametrize("death", ["heartbeat lapsed", "never claimed"])
def test_a_job_started_by_a_worker_that_died_is_abandoned_and_run_again(
    db_url: str, queue: Any, redis_conn: redis.Redis, job_keys: Any, death: str
) -> None:
    sid = queued_signal(db_url, queue, f"abandoned-{death}")
    job = take(queue, redis_conn, sid)
    job.set_status(JobStatus.STARTED)
    registry = StartedJobRegistry(queue.name, connection=redis_conn)
    member = f"{job.id}:execution-1"
    # While the worker's heartbeat holds its entry, a job just started counts as running.
    redis_conn.zadd(registry.key, {member: time.time() + 1800})
    redis_conn.hset(job.key, "started_at", utcformat(utcnow()))
    try:
        assert sweep(db_url, queue).recovered == 0
        if death == "heartbeat lapsed":
            redis_conn.zadd(registry.key, {member: time.time() - 1})
        else:
            # A job claims its signal first thing: started two minutes ago and the signal
            # still `queued` means its worker died (the registry entry of a SimpleWorker's
            # job outlives it by the job timeout, half an hour).
            redis_conn.hset(job.key, "started_at", utcformat(utcnow() - timedelta(minutes=2)))
        report = sweep(db_url, queue)
        left_in_registry = redis_conn.zcard(registry.key)
    finally:
        redis_conn.delete(registry.key)

    assert report.recovered == 1
    assert queue.job_ids == [job_id(sid)]
    assert left_in_registry == 0  # RQ's clean-up will not fail the job enqueued again
    (note,) = rows(db_url, "SELECT message FROM events WHERE kind = 'requeued'")
    assert "its job abandoned" in note.message


def test_a_retried_signal_is_recovered_under_its_latest_job_id(
    db_url: str, queue: Any, redis_conn: redis.Redis, job_keys: Any
) -> None:
    sid = queued_signal(db_url, queue, "retried")
    take(queue, redis_conn, sid).set_status(JobStatus.FAILED)
    # Two runs claimed it before; both were released to `queued` and their jobs ended.
    long_ago = utcnow() - timedelta(hours=1)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE signals SET attempts = 2, enqueued_at = :t WHERE id = :s"),
                {"t": long_ago, "s": sid},
            )
    finally:
        engine.dispose()

    assert sweep(db_url, queue).recovered == 1
    assert queue.job_ids == [job_id(sid, 2)]


def test_a_signal_that_keeps_failing_waits_longer_each_time(
    db_url: str, queue: Any, redis_conn: redis.Redis, job_keys: Any
) -> None:
    assert recovery_delay(0) == timedelta(seconds=5)
    assert recovery_delay(3) == timedelta(seconds=40)
    assert recovery_delay(50) == timedelta(minutes=5)

    sid = queued_signal(db_url, queue, "crash-loop")
    take(queue, redis_conn, sid).set_status(JobStatus.FAILED)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE signals SET attempts = 3, enqueued_at = :t WHERE id = :s"),
                {"t": utcnow() - timedelta(seconds=20), "s": sid},
            )
        assert sweep_intake(engine, queue, now=utcnow()).recovered == 0
        later = utcnow() + timedelta(seconds=25)
        assert sweep_intake(engine, queue, now=later).recovered == 1
    finally:
        engine.dispose()
    assert queue.job_ids == [job_id(sid, 3)]


def test_a_queued_job_still_waiting_is_left_alone(
    db_url: str, queue: Any, redis_conn: redis.Redis, job_keys: Any
) -> None:
    sid = queued_signal(db_url, queue, "waiting")
    report = sweep(db_url, queue)
    assert (report.recovered, report.requeued, report.enqueued) == (0, 0, 0)
    assert queue.job_ids == [job_id(sid)]


def test_a_job_taken_off_the_queue_by_a_worker_that_died_is_run_again(
    db_url: str, queue: Any, redis_conn: redis.Redis, job_keys: Any
) -> None:
    sid = queued_signal(db_url, queue, "intermediate")
    # A worker moved the job to its intermediate list (RQ's BLMOVE) and died before it
    # started it: the job still says `queued`, but it is on no queue.
    jid = job_id(sid)
    redis_conn.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT")
    engine = make_engine(db_url)
    try:
        assert sweep_intake(engine, queue, now=utcnow()).recovered == 0  # seen: maybe starting
        later = utcnow() + timedelta(seconds=61)
        assert sweep_intake(engine, queue, now=later).recovered == 1
    finally:
        engine.dispose()
    assert queue.job_ids == [jid]
    assert redis_conn.lrange(queue.intermediate_queue_key, 0, -1) == []
    (note,) = rows(db_url, "SELECT message FROM events WHERE kind = 'requeued'")
    assert "its job abandoned" in note.message
    assert not redis_conn.exists(f"pacekeeper:sweep:{queue.name}:off_queue:{jid}")
