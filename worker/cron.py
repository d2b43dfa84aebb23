"""``pacekeeper monitor``: the rq cron process that enqueues the periodic jobs.

RQ's ``CronJob`` enqueues with the default (pickle) serializer; every Pacekeeper job is
JSON-serialized (ids only, never payloads), so the cron jobs here enqueue through a JSON
queue to be runnable by the same workers. Overlapping runs are harmless: each periodic job
takes its own single-flight lock in Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import Queue
from rq.cron import CronJob, CronScheduler
from rq.exceptions import StopRequested
from rq.job import Job
from rq.serializers import JSONSerializer

from app.config import Settings, get_settings
from app.outages import (
    CONFIG_ERROR,
    Backoff,
    Component,
    StopFlag,
    is_redis_outage,
    outage_recorder,
    redis_probe,
    wait_for,
)

log = logging.getLogger(__name__)


class JsonCronJob(CronJob):
    """Enqueued at the front of its queue. The monitor's jobs have a queue of their own,
    which every worker takes before the signals' (``queue_of``): a monitor cycle waiting
    behind a backlog of signals would leave fills unprotected and the monitor stale for as
    long as the backlog lasts; it runs as soon as a worker has a free slot instead."""

    def enqueue(self, connection: Redis) -> Job:
        if self.func is None:  # pragma: no cover - only for monitoring-only instances
            raise ValueError("cron job has no function")
        queue = Queue(self.queue_name, connection=connection, serializer=JSONSerializer)
        job = queue.enqueue(self.func, *self.args, **self.kwargs, **self.job_options, at_front=True)
        log.debug("enqueued %s on %s", self.func_name, self.queue_name)
        return job


class JsonCronScheduler(CronScheduler):
    def register(  # type: ignore[override]
        self,
        func: Callable[..., Any],
        queue_name: str,
        *,
        interval: int,
        job_timeout: int | None = None,
        kwargs: dict[str, Any] | None = None,
        name: str = "",
    ) -> CronJob:
        cron_job = JsonCronJob(
            queue_name=queue_name,
            func=func,
            interval=interval,
            job_timeout=job_timeout,
            kwargs=kwargs,
            result_ttl=60,
            failure_ttl=3600,
            # A periodic run that waited longer than its interval is stale: drop it.
            ttl=max(interval * 2, 5),
            name=name,
        )
        self._cron_jobs.append(cron_job)
        return cron_job


# Jobs on the notification queue, which workers take only when the signals' queue is empty:
# a slow or failing notifier can never make a signal wait in the queue behind it. Every
# other periodic job is the monitor's, on the monitor queue, taken before any signal.
NOTIFY_JOBS = frozenset({"worker.jobs.deliver_notifications", "worker.jobs.watch_components"})


def periodic_jobs(settings: Settings) -> list[tuple[str, float]]:
    """(job function path, interval in seconds) for every periodic job."""
    return [
        ("worker.jobs.monitor_algos", settings.monitor_interval),
        ("worker.jobs.sweep_intake", settings.sweep_interval),
        ("worker.jobs.reconcile", settings.reconcile_interval),
        ("worker.jobs.record_quality", settings.quality_interval),
        ("worker.jobs.check_keys", settings.key_check_interval),
        ("worker.jobs.deliver_notifications", settings.notify_interval),
        ("worker.jobs.watch_components", settings.component_check_interval),
    ]


def queue_of(path: str, settings: Settings) -> str:
    """The queue a periodic job is enqueued on."""
    return settings.notify_queue_name if path in NOTIFY_JOBS else settings.monitor_queue_name


def build_scheduler(settings: Settings, connection: Redis) -> JsonCronScheduler:
    import importlib

    scheduler = JsonCronScheduler(connection=connection, logging_level=settings.log_level)
    for path, interval in periodic_jobs(settings):
        module, _, attr = path.rpartition(".")
        func = getattr(importlib.import_module(module), attr, None)
        if func is None:
            log.warning("periodic job %s is not available in this build; skipped", path)
            continue
        seconds = max(1, round(interval))
        scheduler.register(
            func, queue_of(path, settings), interval=seconds, job_timeout=max(60, seconds * 4)
        )
    return scheduler


def run_cron(settings: Settings | None = None) -> int:
    """Enqueue the periodic jobs until SIGTERM/SIGINT, through Redis outages."""
    settings = settings or get_settings()
    from app.logging import configure_logging

    configure_logging(settings)
    if not settings.redis_url:
        log.error("PACEKEEPER_REDIS_URL is not set: the monitor needs Redis")
        return CONFIG_ERROR
    stop = StopFlag().install()
    redis_state = Component("redis", log, on_answered=outage_recorder(settings, "monitor"))
    probe = redis_probe(settings.redis_url)
    backoff = Backoff()
    try:
        while not stop:
            if not wait_for(redis_state, probe, stop=stop):
                break
            connection = Redis.from_url(
                settings.redis_url, socket_connect_timeout=2.0, socket_timeout=5.0
            )
            started = time.monotonic()
            try:
                # Its own handlers raise StopRequested; it returns when stopped so.
                build_scheduler(settings, connection).start()
                return 0
            except StopRequested:
                return 0
            except Exception as exc:
                if is_redis_outage(exc):
                    redis_state.failed(exc)
                else:
                    log.exception("cron scheduler stopped on an unexpected error; restarting")
            finally:
                stop.install()
                connection.close()
            if time.monotonic() - started > 60:
                backoff.reset()
            if stop.pause(backoff.next()):
                break
    except (StopRequested, KeyboardInterrupt):
        pass
    return 0
