"""Redis and RQ: the connection, enqueue-after-commit, and the intake sweeper.

A signal reaches the queue by one of two roads, and only ever once:

- right after its row is committed, the receiver's :class:`Enqueuer` puts it on the queue
  (in batches under load) and marks it ``queued``;
- whatever that missed (Redis down, the receiver stopped, a job lost with Redis's data)
  the periodic :func:`sweep_intake` job finds in the database and enqueues.

Both enqueue with RQ's ``unique=True`` (an atomic check-and-push) under a job id derived
from the signal id, so two roads taken at once still make one job. Jobs are JSON and
carry the signal id only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from redis import Redis, RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer
from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

from app.models import Signal as SignalRow
from app.models import SignalStatus, utcnow
from app.signals.service import mark_queued, record_requeued

log = logging.getLogger(__name__)

PROCESS_SIGNAL = "worker.jobs.process_signal"
# Finished jobs are kept a day: while a job id exists, the same signal cannot be queued again.
JOB_RESULT_TTL = 86_400
# The sweeper leaves younger rows to the receiver's own enqueuer.
SWEEP_GRACE = timedelta(seconds=5)
SWEEP_BATCH = 500
SWEEP_LOCK = "pacekeeper:lock:sweep_intake"

signals = cast(Table, SignalRow.__table__)


class MarkQueued(Protocol):
    def __call__(
        self, signal_ids: Sequence[str], *, now: datetime, job_ids: dict[str, str]
    ) -> Any: ...


def connect(url: str) -> Redis:
    """A Redis client that fails fast: the webhook must answer even when Redis is down."""
    return Redis.from_url(
        url,
        socket_connect_timeout=0.5,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def make_queue(connection: Redis, name: str) -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)


def job_id(signal_id: str) -> str:
    """The RQ job id of a signal's ``process_signal`` job."""
    return f"signal-{signal_id}"


def enqueue_signals(queue: Queue, signal_ids: Sequence[str]) -> tuple[list[str], Exception | None]:
    """Enqueue ``process_signal(id)`` once per signal; returns the ids now on the queue.

    An id whose job already exists counts as on the queue (it was enqueued before). A
    Redis error stops the batch: the ids before it are returned with the error.
    """
    done: list[str] = []
    # Each job is checked and pushed atomically by RQ's unique-enqueue script (one round
    # trip); the queue's registration in `rq:queues` is batched into one more at the end.
    with queue.connection.pipeline() as registration:
        try:
            for signal_id in signal_ids:
                with suppress(DuplicateJobError):
                    queue.enqueue_call(
                        PROCESS_SIGNAL,
                        args=(signal_id,),
                        job_id=job_id(signal_id),
                        result_ttl=JOB_RESULT_TTL,
                        unique=True,
                        pipeline=registration,
                    )
                done.append(signal_id)
            registration.execute()
        except RedisError as exc:
            return done, exc
    return done, None


class Enqueuer:
    """Puts freshly committed signals on the queue, and reports which made it.

    Called by the receiver's writer thread right after each commit, with the ids that
    commit made (one when idle, many under load). After a Redis failure it stops trying
    for ``pause`` seconds, so a Redis outage costs the webhook at most one connect
    timeout now and then; the ids it skips stay ``received`` and the sweeper takes them.
    """

    def __init__(
        self,
        queue: Queue,
        mark_queued: MarkQueued,
        *,
        clock: Callable[[], datetime] = utcnow,
        pause: float = 5.0,
    ) -> None:
        self.queue = queue
        self.mark_queued = mark_queued
        self.clock = clock
        self.pause = pause
        self._paused_until = 0.0

    def __call__(self, signal_ids: Sequence[str]) -> None:
        if not signal_ids:
            return
        if time.monotonic() < self._paused_until:
            return
        try:
            done, error = enqueue_signals(self.queue, signal_ids)
            if error is not None:
                self._paused_until = time.monotonic() + self.pause
                log.warning(
                    "redis unavailable: %d signal(s) left for the sweeper (%s)",
                    len(signal_ids) - len(done),
                    type(error).__name__,
                )
            self.mark_queued(done, now=self.clock(), job_ids={sid: job_id(sid) for sid in done})
        except Exception:
            # Anything not marked is still `received` in the database, and the sweeper's
            # unique enqueue makes a second attempt harmless.
            log.exception("enqueue failed: %d signal(s) left for the sweeper", len(signal_ids))


@dataclass
class SweepReport:
    enqueued: int = 0  # `received` signals put on the queue
    requeued: int = 0  # `queued` signals whose job had vanished, put on the queue again
    left: int = 0  # signals it could not move (Redis down): the next sweep tries again
    skipped: bool = False  # another sweep held the lock

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep_intake(
    engine: Engine,
    queue: Queue,
    *,
    now: datetime,
    grace: timedelta = SWEEP_GRACE,
    limit: int = SWEEP_BATCH,
) -> SweepReport:
    """Enqueue every signal that never reached the queue, and any queued one whose job is gone."""
    report = SweepReport()
    cutoff = now - grace
    with engine.connect() as conn:
        received = list(
            conn.execute(
                select(signals.c.id)
                .where(
                    signals.c.status == SignalStatus.RECEIVED.value,
                    signals.c.received_at <= cutoff,
                )
                .order_by(signals.c.received_at)
                .limit(limit)
            ).scalars()
        )
        queued = list(
            conn.execute(
                select(signals.c.id)
                .where(
                    signals.c.status == SignalStatus.QUEUED.value,
                    signals.c.enqueued_at <= cutoff,
                )
                .order_by(signals.c.enqueued_at)
                .limit(limit)
            ).scalars()
        )

    if received:
        done, error = enqueue_signals(queue, received)
        mark_queued(engine, done, now=now, job_ids={s: job_id(s) for s in done})
        report.enqueued = len(done)
        report.left += len(received) - len(done)
        if error is not None:
            log.warning("sweeper: redis unavailable (%s)", type(error).__name__)
            return report

    if queued:
        with queue.connection.pipeline(transaction=False) as pipe:
            for sid in queued:
                pipe.exists(queue.job_class.key_for(job_id(sid)))
            present = pipe.execute()
        missing = [sid for sid, exists in zip(queued, present, strict=True) if not exists]
        if missing:
            done, error = enqueue_signals(queue, missing)
            record_requeued(engine, done, now=now, job_ids={s: job_id(s) for s in done})
            report.requeued = len(done)
            report.left += len(missing) - len(done)
            for sid in done:
                log.warning(
                    "sweeper: signal %s was queued but its job was gone; enqueued again", sid
                )
    if report.enqueued:
        log.info("sweeper: enqueued %d signal(s) that never reached the queue", report.enqueued)
    return report


def run_sweep(engine: Engine, queue: Queue, *, now: datetime | None = None) -> SweepReport:
    """One sweep under a Redis lock, so overlapping cron runs do not sweep twice at once."""
    lock = queue.connection.lock(f"{SWEEP_LOCK}:{queue.name}", timeout=120, blocking=False)
    try:
        if not lock.acquire(blocking=False):
            return SweepReport(skipped=True)
    except RedisError as exc:
        log.warning("sweeper: redis unavailable (%s)", type(exc).__name__)
        return SweepReport(skipped=True)
    try:
        return sweep_intake(engine, queue, now=now or utcnow())
    finally:
        with suppress(RedisError):  # it expires by itself
            lock.release()
