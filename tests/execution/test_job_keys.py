"""A signal job leaves nothing behind in Redis once it has run: no job hash, no result, no
finished-registry entry (a day of one key per signal piled up under bursts)."""

from __future__ import annotations

import asyncio

import httpx
import redis
from rq.registry import FinishedJobRegistry, StartedJobRegistry

from app.execution.context import ExecContext
from app.models import utcnow
from app.queue import Enqueuer, connect_async, enqueue_signals, job_id, make_queue
from app.signals.service import mark_queued
from tests.execution.conftest import ledger, orders, signal_row, submit, work_once
from worker import resources as worker_resources
from worker.main import build_worker


def _leftovers(redis_conn: redis.Redis, signal_id: str) -> list[bytes]:
    return sorted(redis_conn.scan_iter(match=f"rq:*{job_id(signal_id)}*", count=1000))


def test_a_job_enqueued_by_the_receiver_leaves_no_keys_once_it_ran(
    ctx: ExecContext,
    control: httpx.Client,
    redis_conn: redis.Redis,
    redis_url: str,
    queue_name: str,
) -> None:
    queue = make_queue(redis_conn, queue_name)
    sid = submit(ctx, quantity="0.01")

    async def enqueue() -> None:
        enqueuer = Enqueuer(queue, connect_async(redis_url), lambda signal_ids, **_: None)
        enqueuer.submit([sid])
        await enqueuer.close()

    asyncio.run(enqueue())
    assert _leftovers(redis_conn, sid)  # the job is there, waiting
    work_once(ctx.settings, redis_conn)

    assert signal_row(ctx, sid).status == "done"
    (order,) = orders(ctx, sid)
    assert len(ledger(control, client_id=order.client_id)) == 1
    assert _leftovers(redis_conn, sid) == []
    assert FinishedJobRegistry(queue=queue).get_job_ids() == []


def test_a_job_enqueued_by_the_sweeper_leaves_no_keys_once_it_ran(
    ctx: ExecContext, control: httpx.Client, redis_conn: redis.Redis, queue_name: str
) -> None:
    queue = make_queue(redis_conn, queue_name)
    engine = ctx.sessions.kw["bind"]
    sid = submit(ctx, quantity="0.01")
    done, error = enqueue_signals(queue, [sid])
    assert (done, error) == ([sid], None)
    mark_queued(engine, done, now=utcnow(), job_ids={sid: job_id(sid)})
    work_once(ctx.settings, redis_conn)

    assert signal_row(ctx, sid).status == "done"
    assert _leftovers(redis_conn, sid) == []
    assert FinishedJobRegistry(queue=queue).get_job_ids() == []


def test_a_signal_jobs_success_is_booked_in_full_and_leaves_no_trace_of_its_run(
    ctx: ExecContext, redis_conn: redis.Redis, queue_name: str
) -> None:
    """The worker books a signal job's success in one transaction (worker.main): what RQ's
    own handling would do must all be there. The worker's counters move, the run leaves
    the started registry and the worker's list of executions, and no key of the job stays."""
    queue = make_queue(redis_conn, queue_name)
    sids = [submit(ctx, quantity="0.01", strategy=f"s{n}") for n in range(2)]
    done, error = enqueue_signals(queue, sids)
    assert (done, error) == (sids, None)
    previous = worker_resources.install(worker_resources.build(ctx.settings))
    try:
        worker = build_worker(ctx.settings, redis_conn)
        worker.work(burst=True)
    finally:
        installed = worker_resources.install(previous)
        assert installed is not None
        installed.close()

    assert [signal_row(ctx, sid).status for sid in sids] == ["done", "done"]
    worker.refresh()
    assert worker.successful_job_count == 2
    assert worker.failed_job_count == 0
    assert worker.total_working_time > 0
    assert StartedJobRegistry(queue=queue).get_job_ids() == []
    assert redis_conn.smembers(worker.executions_key) == set()
    for sid in sids:
        assert _leftovers(redis_conn, sid) == []
    assert FinishedJobRegistry(queue=queue).get_job_ids() == []
