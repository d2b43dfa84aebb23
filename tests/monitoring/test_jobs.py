"""The monitor as it runs: cron jobs on the JSON worker, exchange time, the heartbeat."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from app.config import Settings
from app.execution.context import ExecContext
from app.healthcheck import monitor_heartbeat_key
from app.models import OrderStatus, Signal
from app.monitoring.service import run_cycle
from tests.monitoring.desk import Desk
from worker import resources
from worker.cron import build_scheduler
from worker.main import build_worker


def test_monitor_start_enqueues_reconcile_and_monitor_at_once(
    settings: Settings, redis_conn: redis.Redis
) -> None:
    scheduler = build_scheduler(settings, redis_conn)
    names = {job.func_name for job in scheduler.enqueue_jobs()}
    assert {"worker.jobs.monitor_algos", "worker.jobs.reconcile"} <= names


class FlakyResources:
    """This process's resources, whose first use fails (the database was unreachable).
    The worker runs jobs in threads at once: which job comes first is not known."""

    def __init__(self, ctx: ExecContext) -> None:
        self.ctx, self.calls, self.lock = ctx, 0, threading.Lock()

    def exec_context(self) -> ExecContext:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            raise ConnectionError("database unreachable")
        return self.ctx


def test_monitor_job_runs_on_the_worker_and_outlives_an_exception(
    desk: Desk, redis_conn: redis.Redis
) -> None:
    entry = desk.entry(limit_price="60000")
    desk.advance(10)
    # The exchange's clock is its market's: /time answers the manual clock's time from now on.
    desk.fault(action="clock_offset", offset_ms=desk.clock.now_ms() - int(time.time() * 1000))
    redis_conn.delete(monitor_heartbeat_key(desk.ctx.settings.queue_name))
    queue = Queue(desk.ctx.settings.queue_name, connection=redis_conn, serializer=JSONSerializer)
    jobs = [queue.enqueue("worker.jobs.monitor_algos") for _ in range(2)]
    previous = resources.install(FlakyResources(desk.ctx))  # type: ignore[arg-type]
    try:
        build_worker(desk.ctx.settings, redis_conn).work(burst=True)
    finally:
        resources.install(previous)

    # The worker runs its jobs at once: either may have been the one that failed.
    statuses = sorted(job.get_status(refresh=True).value for job in jobs)
    assert statuses == ["failed", "finished"], statuses
    (ran,) = [job for job in jobs if job.get_status() == "finished"]
    latest = ran.latest_result()
    assert latest is not None and isinstance(latest.return_value, dict), latest
    result: dict[str, Any] = latest.return_value
    assert ran.get_status(refresh=True) == "finished" and result["cancels"] == 1
    assert desk.order(entry.order_id).status == OrderStatus.CANCELLED
    assert redis_conn.get(monitor_heartbeat_key(desk.ctx.settings.queue_name))


def test_pace_uses_the_exchange_clock(desk: Desk) -> None:
    entry = desk.entry(duration=3600)
    with desk.ctx.sessions() as session:  # expires a minute from now by our own clock
        signal = session.get(Signal, entry.signal_id)
        assert signal is not None
        signal.expires_at = datetime.now(UTC) + timedelta(seconds=60)
        session.commit()

    run_cycle(desk.ctx)
    assert desk.order(entry.order_id).status == OrderStatus.WORKING
    desk.fault(action="clock_offset", offset_ms=600_000)  # the exchange is 10 minutes ahead
    run_cycle(desk.ctx)

    assert desk.order(entry.order_id).status == OrderStatus.CANCELLED
    assert desk.events("expiry")


def test_no_heartbeat_when_the_exchange_listing_failed(desk: Desk, redis_conn: redis.Redis) -> None:
    desk.entry()
    redis_conn.delete(monitor_heartbeat_key(desk.ctx.settings.queue_name))
    desk.fault(action="fail_before", path="/sapi/v1/algo/spot/openOrders", status=400, code=-1102)

    report = desk.cycle()

    assert report.incomplete and report.errors == 1
    assert redis_conn.get(monitor_heartbeat_key(desk.ctx.settings.queue_name)) is None
