"""A signal job leaves nothing behind in Redis once it has run: no job hash, no result, no
finished-registry entry (a day of one key per signal piled up under bursts)."""

from __future__ import annotations

import asyncio

import httpx
import redis
from rq.registry import FinishedJobRegistry

from app.execution.context import ExecContext
from app.models import utcnow
from app.queue import Enqueuer, connect_async, enqueue_signals, job_id, make_queue
from app.signals.service import mark_queued
from tests.execution.conftest import ledger, orders, signal_row, submit, work_once


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
