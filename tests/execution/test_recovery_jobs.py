"""Recovery never parks a signal behind a spent RQ job id: a job that already ended under
the id a recovery derives is replaced, not taken for a job that will still run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import utcformat
from sqlalchemy import update

from app.db import session_scope
from app.execution.context import ExecContext
from app.models import Signal as SignalRow
from app.models import utcnow
from app.queue import JOB_FAILURE_TTL, enqueue_signals, job_id, make_queue
from app.signals.service import mark_queued
from app.signals.sweeper import recover_stalled, sweep_intake
from tests.execution.conftest import ledger, orders, signal_row, submit, work_once
from tests.support import free_port


def stalled_with_a_job(
    ctx: ExecContext, queue: Any, redis_conn: redis.Redis, attempts: int, status: JobStatus
) -> tuple[str, Job]:
    """A signal whose worker died mid-job (``processing`` at ``attempts``, its lease long
    stale) and the job of the id a recovery derives, taken off the queue in ``status``."""
    sid = submit(ctx, quantity="0.01")
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(SignalRow)
            .where(SignalRow.id == sid)
            .values(
                status="processing", attempts=attempts, updated_at=utcnow() - timedelta(hours=1)
            )
        )
    jid = job_id(sid, attempts)
    enqueue_signals(queue, [sid], {sid: jid}, register=False)
    job = Job.fetch(jid, connection=redis_conn, serializer=JSONSerializer)
    queue.remove(job)
    job.set_status(status)
    return sid, job


def test_recovery_reenqueues_over_a_job_id_that_already_ended(
    ctx: ExecContext, redis_conn: redis.Redis, queue_name: str
) -> None:
    queue = make_queue(redis_conn, queue_name)
    engine = ctx.sessions.kw["bind"]
    # An earlier recovery already used job_id(sid, 2): that job ran, found the lease
    # refreshed meanwhile, skipped, and finished (a hash left by a version that kept them a day).
    sid, job = stalled_with_a_job(ctx, queue, redis_conn, 2, JobStatus.FINISHED)
    spent = job.id
    assert spent not in queue.job_ids

    requeued, recovered, left = recover_stalled(
        engine, queue, now=utcnow(), lease=timedelta(seconds=60)
    )
    assert (requeued, recovered, left) == (0, 1, 0)

    assert spent in queue.job_ids  # a worker will run it again
    again = Job.fetch(spent, connection=redis_conn, serializer=JSONSerializer)
    assert again.get_status() == JobStatus.QUEUED and again.args == [sid]


def test_a_takeover_job_started_by_a_worker_that_died_is_replaced(
    ctx: ExecContext, redis_conn: redis.Redis, queue_name: str
) -> None:
    """The fault battery's worker kill: a stale signal's takeover job was taken by a worker
    killed before it claimed the signal. RQ keeps that job ``started`` for the job timeout
    (half an hour), so enqueueing its id again did nothing, sweep after sweep, and the
    signal stayed ``processing`` with nothing placed."""
    queue = make_queue(redis_conn, queue_name)
    engine = ctx.sessions.kw["bind"]
    sid, job = stalled_with_a_job(ctx, queue, redis_conn, 1, JobStatus.STARTED)
    takeover = job.id
    registry = queue.started_job_registry.key
    member = f"{takeover}:execution-1"
    redis_conn.zadd(registry, {member: utcnow().timestamp() + 1800})  # the job timeout
    redis_conn.hset(job.key, "started_at", utcformat(utcnow() - timedelta(minutes=2)))
    try:
        recovered = recover_stalled(engine, queue, now=utcnow(), lease=timedelta(seconds=60))
        in_registry = redis_conn.zscore(registry, member)
    finally:
        redis_conn.delete(registry)

    assert recovered == (0, 1, 0)
    assert takeover in queue.job_ids  # a worker will run it again
    assert in_registry is None  # RQ's clean-up will not fail the job enqueued again
    again = Job.fetch(takeover, connection=redis_conn, serializer=JSONSerializer)
    assert again.get_status() == JobStatus.QUEUED and again.args == [sid]


def test_a_job_that_will_still_run_is_not_replaced(
    ctx: ExecContext, redis_conn: redis.Redis, queue_name: str
) -> None:
    queue = make_queue(redis_conn, queue_name)
    sid = submit(ctx, quantity="0.01")
    first, _ = enqueue_signals(queue, [sid], register=False)
    second, _ = enqueue_signals(queue, [sid], register=False)

    assert first == second == [sid]
    assert queue.job_ids == [job_id(sid)]  # one job, still queued


def test_a_signal_whose_job_failed_before_its_claim_is_placed_once(
    ctx: ExecContext, control: httpx.Client, redis_conn: redis.Redis, queue_name: str
) -> None:
    """The lost signal of issue 11: its job was taken, its worker could not even claim it
    (here: the database unreachable from that worker), RQ failed the job and the signal
    stayed ``queued`` with no attempt. The sweeper runs it again, and it is placed once."""
    queue = make_queue(redis_conn, queue_name)
    engine = ctx.sessions.kw["bind"]
    sid = submit(ctx, quantity="0.01")
    done, _ = enqueue_signals(queue, [sid])
    mark_queued(engine, done, now=utcnow(), job_ids={sid: job_id(sid)})

    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"
    work_once(ctx.settings.model_copy(update={"database_url": unreachable}), redis_conn)
    job = Job.fetch(job_id(sid), connection=redis_conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED
    assert 0 < redis_conn.ttl(job.key) <= JOB_FAILURE_TTL  # kept a while, not RQ's year
    row = signal_row(ctx, sid)
    assert (row.status, row.attempts) == ("queued", 0)

    later = utcnow() + timedelta(seconds=10)
    assert sweep_intake(engine, queue, now=later).recovered == 1
    work_once(ctx.settings, redis_conn)

    assert signal_row(ctx, sid).status == "done"
    (order,) = orders(ctx, sid)
    assert len(ledger(control, client_id=order.client_id)) == 1
    for key in redis_conn.scan_iter(match=f"rq:job:{job_id(sid)}*"):
        redis_conn.delete(key)
