"""Recovery never parks a signal behind a spent RQ job id: a job that already ended under
the id a recovery derives is replaced, not taken for a job that will still run."""

from __future__ import annotations

from datetime import timedelta

import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import update

from app.db import session_scope
from app.execution.context import ExecContext
from app.models import Signal as SignalRow
from app.models import utcnow
from app.queue import enqueue_signals, job_id, make_queue, recover_stalled
from tests.execution.conftest import submit


def test_recovery_reenqueues_over_a_job_id_that_already_ended(
    ctx: ExecContext, redis_conn: redis.Redis, queue_name: str
) -> None:
    queue = make_queue(redis_conn, queue_name)
    engine = ctx.sessions.kw["bind"]
    sid = submit(ctx, quantity="0.01")
    # Its worker died mid-job: `processing`, attempt 2, lease long stale.
    with session_scope(ctx.sessions) as session:
        session.execute(
            update(SignalRow)
            .where(SignalRow.id == sid)
            .values(status="processing", attempts=2, updated_at=utcnow() - timedelta(hours=1))
        )
    # An earlier recovery already used job_id(sid, 2): that job ran, found the lease
    # refreshed meanwhile, skipped, and finished (kept JOB_RESULT_TTL = 24 h).
    spent = job_id(sid, 2)
    enqueue_signals(queue, [sid], {sid: spent}, register=False)
    job = Job.fetch(spent, connection=redis_conn, serializer=JSONSerializer)
    queue.remove(job)
    job.set_status(JobStatus.FINISHED)
    assert spent not in queue.job_ids

    assert recover_stalled(engine, queue, now=utcnow(), lease=timedelta(seconds=60)) == 1

    assert spent in queue.job_ids  # a worker will run it again
    again = Job.fetch(spent, connection=redis_conn, serializer=JSONSerializer)
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
