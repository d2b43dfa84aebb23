"""Redis and RQ: the connection, and enqueue-after-commit.

A signal reaches the queue by one of two roads, and only ever once:

- right after its row is committed, the receiver's :class:`Enqueuer` puts it on the queue
  (in batches under load) and marks it ``queued``;
- whatever that missed (Redis down, the receiver stopped, a job lost with Redis's data or
  failed with its worker) the intake sweeper (``app.signals.sweeper``) finds in the
  database and enqueues with :func:`enqueue_signals`.

Both enqueue with RQ's ``unique=True`` (an atomic check-and-push) under a job id derived
from the signal id, so two roads taken at once still make one job. Jobs are JSON and
carry the signal id only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, Protocol

from redis import Redis, RedisError
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry
from rq import Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.utils import utcformat

from app.models import utcnow
from app.outages import Component

log = logging.getLogger(__name__)

PROCESS_SIGNAL = "worker.jobs.process_signal"
# A finished signal job is deleted at once (its hash and its result): the database holds the
# outcome, and a day of one key per signal piled up under bursts. Deleting it does not let a
# signal run twice: once the job has run, the signal is past `received`/`queued` (or is left
# to the sweeper's recovery), and the execution layer's claim makes one run of any two.
JOB_RESULT_TTL = 0
# A failed one is kept a week (RQ's default is a year), for an operator to read its traceback;
# the sweeper treats a failed job and a vanished one alike.
JOB_FAILURE_TTL = 7 * 86_400
# How often the receiver re-adds its queue to RQ's `rq:queues` listing.
REGISTER_EVERY = 60.0
# A signal's job may reconcile several orders in doubt, each waiting up to
# ExecContext.longest_reconcile() (about 170 s with the default settings: in-flight horizon
# plus the read-after-write window); RQ's default of 180 s would kill it mid-wait, and every
# re-run would start the wait again.
JOB_TIMEOUT = 1800
# RQ job states after which a job will never run again.
ENDED_JOB_STATES = frozenset({"finished", "failed", "stopped", "canceled"})


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


def connect_async(url: str) -> AsyncRedis:
    """The receiver's event-loop client, failing as fast as :func:`connect`."""
    return AsyncRedis.from_url(
        url,
        socket_connect_timeout=0.5,
        socket_timeout=2.0,
        retry=AsyncRetry(NoBackoff(), 0),
        health_check_interval=30,
    )


def make_queue(connection: Redis, name: str) -> Queue:
    return Queue(name, connection=connection, serializer=JSONSerializer)


def job_id(signal_id: str, attempt: int = 0) -> str:
    """The RQ job id of a signal's ``process_signal`` job; a re-run after its first job ended
    or died (see ``app.signals.sweeper``) gets a fresh id from the signal's attempt count."""
    return f"signal-{signal_id}" if not attempt else f"signal-{signal_id}-{attempt}"


def enqueue_signals(
    queue: Queue,
    signal_ids: Sequence[str],
    job_ids: dict[str, str] | None = None,
    *,
    register: bool = True,
) -> tuple[list[str], Exception | None]:
    """Enqueue ``process_signal(id)`` once per signal; returns the ids now on the queue.

    An id whose job already exists counts as on the queue (it was enqueued before) while
    that job can still run; a job that has ended (finished, failed, stopped, canceled: e.g.
    a recovery run that found the lease refreshed and skipped) is deleted and enqueued
    again, since RQ would otherwise keep refusing the id while the ended job's hash lasts
    (``JOB_FAILURE_TTL`` for a failed one; a finished one is deleted at once). A Redis
    error stops the batch: the ids before it are returned with the error.
    ``register=False`` skips adding the queue to ``rq:queues`` (a listing for monitoring
    that workers do not need), for callers that did so recently.
    """
    done: list[str] = []
    # Each job is checked and pushed atomically by RQ's unique-enqueue script (one round
    # trip); the queue's registration in `rq:queues` is batched into one more at the end.
    with queue.connection.pipeline() as registration:
        try:
            for signal_id in signal_ids:
                jid = (job_ids or {}).get(signal_id) or job_id(signal_id)
                for _ in range(2):
                    try:
                        queue.enqueue_call(
                            PROCESS_SIGNAL,
                            args=(signal_id,),
                            job_id=jid,
                            result_ttl=JOB_RESULT_TTL,
                            failure_ttl=JOB_FAILURE_TTL,
                            timeout=JOB_TIMEOUT,
                            unique=True,
                            pipeline=registration,
                        )
                        break
                    except DuplicateJobError:
                        if not _drop_ended_job(queue, jid):
                            break  # a job that will still run has it
                done.append(signal_id)
            if register:
                registration.execute()
            else:
                registration.reset()
        except RedisError as exc:
            return done, exc
    return done, None


def _drop_ended_job(queue: Queue, jid: str) -> bool:
    """Delete the job ``jid`` if it has ended (it will never run again); True if deleted."""
    key = queue.job_class.key_for(jid)
    raw = queue.connection.hget(key, "status")
    status = raw.decode() if isinstance(raw, bytes) else raw
    if status is None or status not in ENDED_JOB_STATES:
        return False
    log.warning("job %s had ended (%s); enqueued again under the same id", jid, status)
    queue.connection.delete(key, f"{key}:dependents")
    return True


class Enqueuer:
    """Puts freshly committed signals on the queue from the event loop, and marks them.

    The receiver's writer hands over the ids each commit made (one when idle, many under
    load); they go to Redis with the asyncio client, so the event loop never waits on
    Redis and no thread is woken for it. Each job is written by a copy of RQ's unique-enqueue
    script (check, save, push: atomic; :class:`SignalJobHash`), all of a batch in one round
    trip, as the same hash that ``Queue.enqueue_call(..., unique=True)`` writes, so the
    sweeper's enqueue of the same id finds it and does not make a second job. After a Redis
    failure it stops trying for ``pause`` seconds; the ids it skips stay ``received`` and
    the sweeper takes them.
    """

    def __init__(
        self,
        queue: Queue,
        redis: AsyncRedis,
        mark_queued: MarkQueued,
        *,
        clock: Callable[[], datetime] = utcnow,
        pause: float = 5.0,
    ) -> None:
        self.queue = queue
        self.redis = redis
        self.mark_queued = mark_queued
        self.clock = clock
        self.pause = pause
        self._pending: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._paused_until = 0.0
        self._registered_at = -REGISTER_EVERY
        self._script_sha: str | None = None
        self.job_hash = SignalJobHash(queue)
        self.redis_state = Component("redis", log)

    def submit(self, signal_ids: Sequence[str]) -> None:
        """Called on the event loop: enqueue these soon (batched while a round trip runs)."""
        if time.monotonic() < self._paused_until:
            return
        self._pending.extend(signal_ids)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def close(self, timeout: float = 5.0) -> None:
        """Let the batch under way finish (bounded), then close the client."""
        if self._task is not None and not self._task.done():
            with suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
        await self.redis.aclose()

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._enqueue(batch)
            except (RedisError, OSError) as exc:
                self._paused_until = time.monotonic() + self.pause
                self._pending = []
                self.redis_state.failed(exc)
                log.info("%d signal(s) left for the sweeper while redis is down", len(batch))
                # Its pooled connections died with the server: the next try opens new ones.
                with suppress(Exception):
                    await self.redis.connection_pool.disconnect()
                return
            except Exception:
                log.exception("enqueue failed: %d signal(s) left for the sweeper", len(batch))
                return
            self.redis_state.answered()
            now = self.clock()
            self.mark_queued(batch, now=now, job_ids={sid: job_id(sid) for sid in batch})

    async def _enqueue(self, signal_ids: list[str]) -> None:
        if self._script_sha is None:
            self._script_sha = await self.redis.script_load(self.job_hash.script)
        register = time.monotonic() - self._registered_at >= REGISTER_EVERY
        key_for, chunk = self.queue.job_class.key_for, SignalJobHash.CHUNK
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(signal_ids), chunk):
                ids = signal_ids[start : start + chunk]
                keys = [key_for(job_id(signal_id)) for signal_id in ids]
                values = [value for sid in ids for value in self.job_hash.args(sid)]
                pipe.evalsha(self._script_sha, 1 + len(keys), self.queue.key, *keys, *values)
            if register:
                pipe.sadd(self.queue.redis_queues_keys, self.queue.key)
            try:
                await pipe.execute()
            except NoScriptError:  # Redis restarted and forgot the script: load it again
                self._script_sha = None
                raise
        if register:
            self._registered_at = time.monotonic()


class SignalJobHash:
    """The RQ hash of a signal's job, and a unique-enqueue script that writes it.

    ``Job.create(...).to_dict()`` and RQ's unique-enqueue script with some forty encoded
    arguments per signal cost a quarter of the receiver's CPU under load, yet all but four
    of the hash's values are the same for every signal job. So the hash is built once by RQ
    itself; its constant fields are written into a copy of RQ's script (check, save, push:
    atomic, as ``rq.scripts.UNIQUE_ENQUEUE_SCRIPT``) that takes many jobs per call, and per
    signal only the job's data (its arguments), description and timestamps are made again,
    the way RQ makes them (tests/signals/test_outbox.py compares the hash with RQ's own).
    """

    VARYING = ("created_at", "data", "description", "enqueued_at")
    STRIDE = 1 + 2 * len(VARYING)  # script arguments per job: its id, then field/value pairs
    CHUNK = 100  # jobs per script call: each call holds Redis for its length

    def __init__(self, queue: Queue) -> None:
        self.serializer = queue.serializer
        probe = self.job(queue, "probe")
        fixed = {k: v for k, v in _job_fields(probe).items() if k not in self.VARYING}
        literals = ", ".join(
            f"{_lua_string(key.encode())}, {_lua_string(_encoded(value))}"
            for key, value in fixed.items()
        )
        varying = ", ".join(f"ARGV[a + {n}]" for n in range(2, 2 + 2 * len(self.VARYING)))
        # Many jobs per call: one command and one reply per batch, not per signal.
        self.script = f"""
            -- KEYS[1] = queue key, KEYS[2..] = job keys; for the job of KEYS[i], with
            -- a = (i - 2) * {self.STRIDE}: ARGV[a + 1] = its id, then its varying fields
            -- and values. A job whose key exists already is left alone (unique enqueue).
            local pushed = 0
            for i = 2, #KEYS do
                local a = (i - 2) * {self.STRIDE}
                if redis.call("EXISTS", KEYS[i]) == 0 then
                    redis.call("HSET", KEYS[i], {literals}, {varying})
                    redis.call("RPUSH", KEYS[1], ARGV[a + 1])
                    pushed = pushed + 1
                end
            end
            return pushed
        """

    @staticmethod
    def job(queue: Queue, signal_id: str) -> Job:
        """The job as RQ itself builds it (the slow way, and the reference)."""
        job = Job.create(
            PROCESS_SIGNAL,
            args=(signal_id,),
            id=job_id(signal_id),
            connection=queue.connection,
            serializer=queue.serializer,
            result_ttl=JOB_RESULT_TTL,
            failure_ttl=JOB_FAILURE_TTL,
            status=JobStatus.QUEUED,
            origin=queue.name,
            timeout=JOB_TIMEOUT,
        )
        job.enqueued_at = rq_now()
        return job

    def args(self, signal_id: str) -> list[bytes | str]:
        """The script's ARGV for ``signal_id``'s job (STRIDE values), enqueued now."""
        stamp = utcformat(rq_now()).encode()
        # As Job.data and Job.to_dict make it: (func, instance, args, kwargs), compressed.
        data = zlib.compress(self.serializer.dumps((PROCESS_SIGNAL, None, (signal_id,), {})))
        description = f"{PROCESS_SIGNAL}({signal_id!r})".encode()
        return [
            job_id(signal_id),
            "created_at",
            stamp,
            "data",
            data,
            "description",
            description,
            "enqueued_at",
            stamp,
        ]


def _lua_string(value: bytes) -> str:
    """A Lua string literal of any bytes (each one as a decimal escape)."""
    return '"' + "".join(f"\\{byte:03d}" for byte in value) + '"'


def _job_fields(job: Job) -> dict[str, Any]:
    """The job hash as RQ's unique-enqueue script writes it (fields with a value)."""
    return {key: value for key, value in job.to_dict().items() if value is not None}


def _encoded(value: Any) -> bytes:
    # Bytes, not str: redis-py then sends them as they are instead of encoding each time.
    if isinstance(value, bytes):
        return value
    # A str subclass (JobStatus) as its value, the way redis-py would encode it.
    return str.encode(value) if isinstance(value, str) else str(value).encode()
