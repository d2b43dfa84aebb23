"""The intake sweeper: every acknowledged signal reaches a job that will run it.

The receiver enqueues each signal right after its commit (``app.queue.Enqueuer``), but a
job can be missed or lost on many roads: Redis down at intake, Redis restarted without its
data, a worker killed between taking a job and claiming the signal, a job failed by RQ
because its worker died (RQ keeps it ``failed`` for a year, so "the job exists" proves
nothing). The database, not Redis, says what still has to run, so every few seconds
:func:`sweep_intake` compares the two:

- ``received`` (never reached the queue): enqueued;
- ``queued`` whose jobs will none of them run (every job id the signal has had is gone,
  ``finished``/``failed``/``stopped``/``canceled``, or abandoned by a worker that died),
  whatever its attempt count: enqueued again under ``job_id(id, attempts)``. A job claims
  its signal first thing, so one ``started`` longer than the execution lease while its
  signal is still ``queued`` lost its worker (RQ would say so only after the job's timeout:
  half an hour for a signal job, see app/queue.py); so did one ``queued`` that has been on
  no queue for as long (taken off it by a worker that died before starting it; RQ fails
  those a minute or more later);
- ``processing`` whose lease went stale (its worker died mid-job): enqueued again; the
  next run reconciles its orders by client id before sending anything.

A signal that keeps coming back (a job that crashes its worker each time) is recovered
with a growing pause (:func:`recovery_delay`), so it is never lost and never a hot loop.
Every enqueue is RQ's atomic unique enqueue under a derived job id, so two sweeps at once,
or a sweep racing the receiver, still make one job; the claim in the execution layer makes
one run of any two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from redis import RedisError
from rq import Queue
from rq.utils import utcparse
from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Engine

from app.models import Event, SignalStatus, utcnow
from app.models import Signal as SignalRow
from app.monitoring.lock import SingleFlight
from app.queue import ENDED_JOB_STATES, enqueue_signals, job_id
from app.signals.service import mark_queued, record_requeued

log = logging.getLogger(__name__)

# The sweeper leaves younger rows to the receiver's own enqueuer.
SWEEP_GRACE = timedelta(seconds=5)
SWEEP_BATCH = 500
SWEEP_LOCK = "pacekeeper:lock:sweep_intake"
# Kept alive while its sweep runs: a sweeper that died (or lost Redis) holds off the next
# sweeps this long at most.
SWEEP_LOCK_TTL = 15.0
# A `processing` signal whose worker made no progress for this long is given to another
# worker (PACEKEEPER_EXECUTION_LEASE; see app/execution/claims.py).
EXECUTION_LEASE = timedelta(seconds=60)
# A queue longer than this is not read to find jobs a dead worker took off it.
MAX_QUEUE_SCAN = 50_000
# The longest pause before a signal whose jobs keep ending without settling it runs again.
MAX_RECOVERY_DELAY = timedelta(minutes=5)

signals = cast(Table, SignalRow.__table__)
events = cast(Table, Event.__table__)


@dataclass
class SweepReport:
    enqueued: int = 0  # `received` signals put on the queue
    requeued: int = 0  # `queued` signals whose job had vanished, put on the queue again
    recovered: int = 0  # `queued`/`processing` signals whose job died or ended, run again
    left: int = 0  # signals it could not move (Redis down): the next sweep tries again
    skipped: bool = False  # another sweep held the lock, or Redis did not answer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def recovery_delay(attempts: int, grace: timedelta = SWEEP_GRACE) -> timedelta:
    """How long a ``queued`` signal with no live job waits before it is enqueued again:
    the grace after a first loss, doubling with each attempt, at most five minutes."""
    return min(MAX_RECOVERY_DELAY, grace * (2 ** min(attempts, 16)))


def sweep_intake(
    engine: Engine,
    queue: Queue,
    *,
    now: datetime,
    grace: timedelta = SWEEP_GRACE,
    limit: int = SWEEP_BATCH,
    lease: timedelta = EXECUTION_LEASE,
) -> SweepReport:
    """Enqueue every signal that never reached the queue, then :func:`recover_stalled`."""
    report = SweepReport()
    with engine.connect() as conn:
        received = list(
            conn.execute(
                select(signals.c.id)
                .where(
                    signals.c.status == SignalStatus.RECEIVED.value,
                    signals.c.received_at <= now - grace,
                )
                .order_by(signals.c.received_at)
                .limit(limit)
            ).scalars()
        )
    if received:
        done, error = enqueue_signals(queue, received)
        mark_queued(engine, done, now=now, job_ids={s: job_id(s) for s in done})
        report.enqueued = len(done)
        report.left += len(received) - len(done)
        if done:
            log.info("sweeper: enqueued %d signal(s) that never reached the queue", len(done))
        if error is not None:
            log.warning("sweeper: redis unavailable (%s)", type(error).__name__)
            return report
    requeued, recovered, left = recover_stalled(
        engine, queue, now=now, grace=grace, lease=lease, limit=limit
    )
    report.requeued, report.recovered = requeued, recovered
    report.left += left
    return report


def recover_stalled(
    engine: Engine,
    queue: Queue,
    *,
    now: datetime,
    grace: timedelta = SWEEP_GRACE,
    lease: timedelta = EXECUTION_LEASE,
    limit: int = SWEEP_BATCH,
) -> tuple[int, int, int]:
    """Run again every signal no job will finish; returns (requeued: its jobs had vanished,
    recovered: its jobs ended or died, left: Redis failed before they were enqueued)."""
    with engine.connect() as conn:
        stale = conn.execute(
            select(signals.c.id, signals.c.attempts)
            .where(
                signals.c.status == SignalStatus.PROCESSING.value,
                signals.c.updated_at <= now - lease,
            )
            .limit(limit)
        ).all()
        waiting = [
            row
            for row in conn.execute(
                select(signals.c.id, signals.c.attempts, signals.c.enqueued_at)
                .where(
                    signals.c.status == SignalStatus.QUEUED.value,
                    signals.c.enqueued_at <= now - grace,
                )
                .order_by(signals.c.enqueued_at)
                .limit(limit)
            )
            if _aware(row.enqueued_at) <= now - recovery_delay(row.attempts, grace)
        ]
    # A stale signal's jobs are judged too: the job an earlier sweep enqueued to take it over
    # may itself have been started by a worker that died, and RQ keeps such a job `started`
    # for the job timeout (half an hour), refusing its id to a new run all that while.
    fates = job_fates(queue, [(r.id, r.attempts) for r in [*waiting, *stale]], now=now, lease=lease)
    lost = {r.id: r.attempts for r in waiting if fates[r.id] is not None}
    fresh = {sid: job_id(sid, attempts) for sid, attempts in lost.items()}
    fresh.update({r.id: job_id(r.id, r.attempts) for r in stale})
    if not fresh:
        return 0, 0, 0
    done, error = enqueue_signals(queue, list(fresh), fresh)
    if error is not None:
        log.warning("sweeper: redis unavailable (%s)", type(error).__name__)
    stale_ids = {r.id for r in stale}
    vanished = [s for s in done if s not in stale_ids and fates[s] == "gone"]
    ended = [s for s in done if s not in stale_ids and fates[s] != "gone"]
    # A stale lease must stay stale for the next run to take the signal over: only an event.
    record_requeued(engine, vanished, now=now, job_ids=fresh)
    _note(engine, ended, now=now, job_ids=fresh, why={s: f"its job {fates[s]}" for s in ended})
    taken = [s for s in done if s in stale_ids]
    _note(engine, taken, now=now, job_ids=fresh, why=dict.fromkeys(taken, "lease expired"))
    for sid in done:
        cause = "lease expired" if sid in stale_ids else f"job {fates[sid]}"
        log.warning("sweeper: signal %s stalled (%s); enqueued as %s", sid, cause, fresh[sid])
    return len(vanished), len(ended) + len(taken), len(fresh) - len(done)


def job_fates(
    queue: Queue,
    wanted: Sequence[tuple[str, int]],
    *,
    now: datetime,
    lease: timedelta = EXECUTION_LEASE,
) -> dict[str, str | None]:
    """For each ``queued`` signal (id, attempts): None while one of its job ids may still
    run, else why none will: ``gone`` (no job hash left), ``failed``/``stopped``/... (the
    last ended state seen) or ``abandoned``: ``started`` by a worker that stopped
    heartbeating or longer ago than ``lease`` without claiming the signal, or ``queued`` but
    on no queue for longer than ``lease`` (taken off it by a worker that died before
    starting it: RQ fails such a job only a minute or more later). An abandoned job is
    marked failed here, as RQ's own clean-up would, so it can be enqueued again."""
    if not wanted:
        return {}
    conn = queue.connection
    registry = queue.started_job_registry.key
    with conn.pipeline(transaction=False) as pipe:
        pipe.zrange(registry, 0, -1, withscores=True)
        for sid, attempts in wanted:
            for attempt in range(attempts + 1):
                pipe.hmget(queue.job_class.key_for(job_id(sid, attempt)), "status", "started_at")
        answers = iter(pipe.execute())
    # Entries are "<job id>:<execution id>", scored with the time their heartbeat expires.
    running: dict[str, list[tuple[bytes, float]]] = {}
    for member, score in next(answers):
        jid = member.decode().rpartition(":")[0]
        running.setdefault(jid, []).append((member, float(score)))
    clock = _aware(now).timestamp()
    claim_by = _aware(now) - lease
    statuses: dict[str, list[tuple[str, str]]] = {}  # signal -> [(job id, status)]
    for sid, attempts in wanted:
        mine = statuses[sid] = []
        for attempt in range(attempts + 1):
            raw, started_at = next(answers)
            if raw is None:
                continue
            jid, status = job_id(sid, attempt), raw.decode()
            if status == "started" and (
                all(score < clock for _, score in running.get(jid, []))
                or (started_at is not None and utcparse(started_at.decode()) < claim_by)
            ):
                status = "abandoned"
            mine.append((jid, status))
    off_queue = _off_queue(
        queue, [j for jobs in statuses.values() for j, s in jobs if s == "queued"], clock, lease
    )
    fates: dict[str, str | None] = {}
    abandoned: list[str] = []
    for sid, jobs in statuses.items():
        fate: str | None = "gone"
        for jid, status in jobs:
            if jid in off_queue:
                status = "abandoned"
            if status == "abandoned":
                abandoned.append(jid)
            elif status not in ENDED_JOB_STATES:
                fate = None  # this one will still run
                break
            if fate == "gone" or status != "finished":
                fate = status
        fates[sid] = fate
    if abandoned:
        intermediate = queue.intermediate_queue_key
        with conn.pipeline(transaction=False) as pipe:
            for jid in abandoned:
                for member, _ in running.get(jid, []):
                    pipe.zrem(registry, member)  # RQ's clean-up must not fail the new job
                pipe.lrem(intermediate, 0, jid)
                pipe.delete(_first_seen_key(queue, jid))
                pipe.hset(queue.job_class.key_for(jid), "status", "failed")
            pipe.execute()
    return fates


def _first_seen_key(queue: Queue, jid: str) -> str:
    """When the sweeper first saw this ``queued`` job on no queue."""
    return f"pacekeeper:sweep:{queue.name}:off_queue:{jid}"


def _off_queue(queue: Queue, job_ids: list[str], clock: float, lease: timedelta) -> set[str]:
    """The ``queued`` jobs that have been on no queue for longer than ``lease``: a worker
    moved them to its intermediate list and died, or their push was lost."""
    if not job_ids:
        return set()
    conn = queue.connection
    if conn.llen(queue.key) > MAX_QUEUE_SCAN:
        return set()  # too long to read every sweep: RQ's own clean-up fails such jobs
    listed = set(conn.lrange(queue.key, 0, -1))
    missing = [jid for jid in job_ids if jid.encode() not in listed]
    if not missing:
        return set()
    with conn.pipeline(transaction=False) as pipe:
        for jid in missing:
            # It expires: a mark left by a job that did start is not held against a later
            # job of the same id (a stuck job is seen every sweep, well within this).
            pipe.set(
                _first_seen_key(queue, jid), clock, nx=True, ex=int(lease.total_seconds() * 4) + 60
            )
            pipe.get(_first_seen_key(queue, jid))
        answers = pipe.execute()
    seen = [float(raw) for raw in answers[1::2]]
    return {jid for jid, t in zip(missing, seen, strict=True) if clock - t > lease.total_seconds()}


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _note(
    engine: Engine,
    signal_ids: Sequence[str],
    *,
    now: datetime,
    job_ids: dict[str, str],
    why: dict[str, str],
) -> None:
    if not signal_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            insert(events),
            [
                {
                    "signal_id": sid,
                    "order_id": None,
                    "kind": "requeued",
                    "message": f"{why[sid]} without settling the signal; enqueued again",
                    "data": {"job_id": job_ids[sid]},
                    "created_at": now,
                }
                for sid in signal_ids
            ],
        )


def run_sweep(
    engine: Engine,
    queue: Queue,
    *,
    now: datetime | None = None,
    lease: timedelta = EXECUTION_LEASE,
) -> SweepReport:
    """One sweep under a Redis lock, so overlapping cron runs do not sweep twice at once."""
    lock = SingleFlight(queue.connection, f"{SWEEP_LOCK}:{queue.name}", SWEEP_LOCK_TTL)
    try:
        if not lock.acquire():
            return SweepReport(skipped=True)
    except RedisError as exc:
        log.warning("sweeper: redis unavailable (%s)", type(exc).__name__)
        return SweepReport(skipped=True)
    try:
        return sweep_intake(engine, queue, now=now or utcnow(), lease=lease)
    except RedisError as exc:
        log.warning("sweeper: redis unavailable mid-sweep (%s)", type(exc).__name__)
        return SweepReport(skipped=True)
    finally:
        lock.release()
