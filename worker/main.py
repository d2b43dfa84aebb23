"""``pacekeeper worker``: an RQ worker that runs signal and monitor jobs, then notifications.

The worker class is :class:`rq.SimpleWorker`: jobs run in the worker process itself, with
no ``fork()`` per job. A fork costs milliseconds on every signal and throws away the
per-process resources (database pool, Redis connection, the exchange client's kept-alive
HTTPS connections and cached exchangeInfo) that make a job fast. The price is that a job
which kills the process kills the worker; the job is then recovered like any abandoned job
(RQ's StartedJobRegistry cleanup, and the intake sweeper for its signal), and its orders
are protected by client-id reconciliation, so nothing is placed twice.

:class:`PacekeeperWorker` also stops its pub/sub listener (``rq`` commands such as
``send_shutdown_command``) at once: see :meth:`PacekeeperWorker.unsubscribe`.
"""

from __future__ import annotations

import logging

from redis import Redis, RedisError
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from app.config import Settings, get_settings

log = logging.getLogger(__name__)

# How long a stopping worker waits for its pub/sub thread when Redis does not answer (the
# thread then sleeps out its 2 s reconnect pause); with Redis up it ends in milliseconds.
LISTENER_STOP_WAIT = 5.0


class PacekeeperWorker(SimpleWorker):
    """RQ's SimpleWorker, whose pub/sub listener ends as soon as the worker stops."""

    def unsubscribe(self) -> None:
        """Stop the pub/sub thread, then unsubscribe: the reply that wakes it also ends it.

        RQ's own order is the reverse: UNSUBSCRIBE, then ``PubSubWorkerThread.stop()``. The
        thread blocks reading the subscription for up to 60 s (RQ's ``sleep_time``) and
        checks its stop flag only between reads. When it reads the UNSUBSCRIBE reply before
        ``stop()`` has cleared the flag (under load, about one stop in three) it goes back to
        waiting, now for a subscription that will not come, for the full 60 s; and since
        redis-py 8.2 ``stop()`` joins the thread, so the worker's teardown waits that long
        too: an idle ``pacekeeper worker`` took a minute to stop. Clearing the flag before
        the reply is sent leaves the thread no read to go back to.
        """
        thread, pubsub = self.pubsub_thread, self.pubsub
        if thread is None or pubsub is None:
            return
        self.log.info(
            "Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name
        )
        thread.stop(timeout=0)  # clear the flag only; the join comes below
        try:
            pubsub.unsubscribe()
        except RedisError as exc:  # Redis is gone: the thread ends on its own connection error
            self.log.warning("Worker %s: could not unsubscribe: %s", self.name, exc)
        thread.join(timeout=LISTENER_STOP_WAIT)
        pubsub.close()


def build_worker(
    settings: Settings, connection: Redis, *, name: str | None = None
) -> PacekeeperWorker:
    # In priority order: signals and the monitor first, notifications when they are idle.
    queues = [
        Queue(name, connection=connection, serializer=JSONSerializer)
        for name in (settings.queue_name, settings.notify_queue_name)
    ]
    return PacekeeperWorker(
        queues,
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
