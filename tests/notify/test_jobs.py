"""The notification jobs as they run: registered with the cron process on the notification
queue, taken by the worker after the signals' queue, against real Redis, a real database,
real readiness checks and a JSON webhook over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import select

from app.config import Settings
from app.models import Event, Notification
from tests.notify.receiver import Receiver
from tests.support import free_port
from worker import resources
from worker.cron import build_scheduler, periodic_jobs
from worker.main import build_worker


def test_the_notification_jobs_are_periodic_on_their_own_queue(
    settings: Settings, redis_conn: redis.Redis
) -> None:
    changed = settings.model_copy(update={"notify_interval": 3, "component_check_interval": 45})
    intervals = dict(periodic_jobs(changed))
    assert intervals["worker.jobs.deliver_notifications"] == 3
    assert intervals["worker.jobs.watch_components"] == 45
    queues = {j.func_name: j.queue_name for j in build_scheduler(changed, redis_conn).get_jobs()}
    assert queues["worker.jobs.deliver_notifications"] == f"{settings.queue_name}-notify"
    assert queues["worker.jobs.watch_components"] == f"{settings.queue_name}-notify"
    assert queues["worker.jobs.monitor_algos"] == f"{settings.queue_name}-monitor"


def test_a_worker_takes_signals_before_notifications(
    settings: Settings, redis_conn: redis.Redis
) -> None:
    worker = build_worker(settings, redis_conn)
    assert worker.queue_names() == [
        settings.monitor_queue_name,
        settings.queue_name,
        settings.notify_queue_name,
    ]


@pytest.fixture
def worker_resources(notify_settings: Settings) -> Iterator[Settings]:
    # Nothing listens on this port: the exchange check fails for real.
    dead = f"http://127.0.0.1:{free_port()}"
    settings = notify_settings.model_copy(
        update={"binance_api_url": dead, "binance_fapi_url": dead, "exchange_read_retries": 0}
    )
    built = resources.build(settings)
    previous = resources.install(built)
    try:
        yield settings
    finally:
        resources.install(previous)
        built.close()


def test_an_unreachable_exchange_reaches_the_webhook_through_the_worker(
    worker_resources: Settings, redis_conn: redis.Redis, receiver: Receiver
) -> None:
    settings = worker_resources
    queue = Queue(settings.notify_queue_name, connection=redis_conn, serializer=JSONSerializer)
    worker = build_worker(settings, redis_conn)
    for _ in range(2):  # two readings in a row confirm it
        queue.enqueue("worker.jobs.watch_components")
        assert worker.work(burst=True)

    with resources.resources().sessions() as session:
        downs = session.execute(
            select(Event.message, Notification.status)
            .join(Notification, Notification.event_id == Event.id)
            .where(Notification.kind == "component_down")
        ).all()
    assert ("exchange down: unreachable", "pending") in [(m[:26], s) for m, s in downs]

    job = queue.enqueue("worker.jobs.deliver_notifications")
    assert worker.work(burst=True)

    assert job.get_status(refresh=True) == "finished"
    assert "[pacekeeper] Component down: exchange" in receiver.titles()
