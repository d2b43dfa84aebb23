"""A signal job leaves nothing behind in Redis once it has run: no job hash, no result, no
finished-registry entry (a day of one key per signal piled up under bursts)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import httpx
import redis
import redis.client
from rq.registry import FinishedJobRegistry, StartedJobRegistry

from app.execution.context import ExecContext
from app.models import utcnow
from app.queue import Enqueuer, connect_async, enqueue_signals, job_id, make_queue
from app.signals.service import mark_queued
from tests.execution.conftest import ledger, orders, signal_row, submit, work_once
from worker import resources as worker_resources
from worker.main import PacekeeperWorker, build_worker


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


class _RoundTrips:
    """Round trips to Redis, per thread: each command sent on its own, each pipeline."""

    def __init__(self) -> None:
        self.by_thread: Counter[int] = Counter()
        self._lock = threading.Lock()

    def note(self) -> None:
        with self._lock:
            self.by_thread[threading.get_ident()] += 1

    def connect(self, url: str) -> redis.Redis:
        trips = self

        class Pipeline(redis.client.Pipeline):
            def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
                trips.note()  # WATCH and the reads under it
                return super().immediate_execute_command(*args, **options)

            def execute(self, raise_on_error: bool = True) -> list[Any]:
                trips.note()
                return super().execute(raise_on_error)

        class Redis(redis.Redis):
            def execute_command(self, *args: Any, **options: Any) -> Any:
                trips.note()
                return super().execute_command(*args, **options)

            def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
                return Pipeline(self.connection_pool, self.response_callbacks, transaction,
                                shard_hint)  # fmt: skip

        return Redis.from_url(url)


def test_a_signal_jobs_success_is_booked_in_full_and_leaves_no_trace_of_its_run(
    ctx: ExecContext, redis_conn: redis.Redis, redis_url: str, queue_name: str
) -> None:
    """The worker books a signal job's success in one transaction (worker.main), one round
    trip to Redis (RQ's own handling takes about ten): what RQ's handling would do must all
    be there. The worker's counters move, the run leaves the started registry and the
    worker's list of executions, and no key of the job stays."""
    queue = make_queue(redis_conn, queue_name)
    sids = [submit(ctx, quantity="0.01", strategy=f"s{n}") for n in range(2)]
    done, error = enqueue_signals(queue, sids)
    assert (done, error) == (sids, None)
    trips = _RoundTrips()
    connection = trips.connect(redis_url)
    booked: list[int] = []

    class Measured(PacekeeperWorker):
        def handle_job_success(self, *args: Any, **kwargs: Any) -> None:
            me = threading.get_ident()
            before = trips.by_thread[me]
            super().handle_job_success(*args, **kwargs)
            booked.append(trips.by_thread[me] - before)

    previous = worker_resources.install(worker_resources.build(ctx.settings))
    try:
        worker = build_worker(ctx.settings, connection)
        worker.__class__ = Measured
        worker.work(burst=True)
    finally:
        installed = worker_resources.install(previous)
        assert installed is not None
        installed.close()
        connection.close()

    assert booked == [1, 1]
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
