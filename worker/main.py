"""``pacekeeper worker``: an RQ worker that runs signal and monitor jobs.

The worker class is :class:`rq.SimpleWorker`: jobs run in the worker process itself, with
no ``fork()`` per job. A fork costs milliseconds on every signal and throws away the
per-process resources (database pool, Redis connection, the exchange client's kept-alive
HTTPS connections and cached exchangeInfo) that make a job fast. The price is that a job
which kills the process kills the worker; the job is then recovered like any abandoned job
(RQ's StartedJobRegistry cleanup, and the intake sweeper for its signal), and its orders
are protected by client-id reconciliation, so nothing is placed twice.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from app.config import Settings, get_settings

log = logging.getLogger(__name__)


def build_worker(settings: Settings, connection: Redis, *, name: str | None = None) -> SimpleWorker:
    queue = Queue(settings.queue_name, connection=connection, serializer=JSONSerializer)
    return SimpleWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=settings.worker_maintenance_interval,
        worker_ttl=settings.worker_ttl,
    )


def run_worker(*, burst: bool = False, settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    from app.logging import configure_logging

    configure_logging(settings)
    if not settings.redis_url:
        log.error("PACEKEEPER_REDIS_URL is not set: a worker needs Redis")
        return 2
    connection = Redis.from_url(settings.redis_url)
    worker = build_worker(settings, connection)
    # The scheduler enqueues retries a job asked for with RQ's Retry(interval=...) (an
    # exchange rate limit or outage); only one worker per queue runs it at a time.
    worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
    return 0
