"""Redis down, then back: every accepted signal reaches the queue once, and only once."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import text

from app import queue as intake_queue
from app.config import Settings
from app.db import make_engine
from app.models import utcnow
from app.queue import PROCESS_SIGNAL, enqueue_signals, job_id, make_queue
from app.signals import service, sweeper
from app.signals.sweeper import sweep_intake
from tests.signals.conftest import Receiver, configured, entry
from tests.support import free_port, wait_until


def query(db_url: str, sql: str, **params: Any) -> list[Any]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def statuses(db_url: str) -> dict[str, str]:
    return {r.id: r.status for r in query(db_url, "SELECT id, status FROM signals")}


@pytest.fixture
def queue(redis_conn: redis.Redis, queue_name: str) -> Any:
    return make_queue(redis_conn, queue_name)


def test_redis_down_still_acks_and_the_sweeper_enqueues_each_signal_once(
    receiver: Receiver,
    http: httpx.Client,
    settings: Settings,
    db_url: str,
    queue: Any,
    job_keys: Any,
) -> None:
    dead_redis = configured(settings, redis_url=f"redis://127.0.0.1:{free_port()}/9")
    _, url = receiver(dead_redis)
    accepted = [http.post(f"{url}/webhook", json=entry(id=f"tv-{n}")) for n in range(5)]
    repeat = http.post(f"{url}/webhook", json=entry(id="tv-0"))
    assert [r.status_code for r in accepted] == [202] * 5 and repeat.status_code == 200
    ids = [r.json()["signal_id"] for r in accepted]
    assert set(statuses(db_url).values()) == {"received"}
    assert queue.count == 0

    # Redis is back: the sweeper (as the monitor process runs it) moves them, once each.
    engine = make_engine(db_url)
    try:
        report = sweep_intake(engine, queue, now=utcnow(), grace=timedelta(0))
        again = sweep_intake(engine, queue, now=utcnow(), grace=timedelta(0))
    finally:
        engine.dispose()
    assert (report.enqueued, report.left, again.enqueued, again.requeued) == (5, 0, 0, 0)
    assert sorted(queue.job_ids) == sorted(job_id(i) for i in ids)
    for job in queue.jobs:
        assert job.func_name == PROCESS_SIGNAL
        assert job.args == [job.id.removeprefix("signal-")] and job.kwargs == {}
    assert set(statuses(db_url).values()) == {"queued"}
    moves = query(db_url, "SELECT signal_id FROM events WHERE message = 'received -> queued'")
    assert sorted(m.signal_id for m in moves) == sorted(ids)


def test_enqueuing_the_same_signal_twice_makes_one_job(queue: Any, job_keys: Any) -> None:
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def race() -> None:
        barrier.wait()
        results.append(enqueue_signals(queue, ["0123456789abcdef0123456789abcdef"]))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert queue.count == 1 and len(job_keys()) == 1
    assert all(
        done == ["0123456789abcdef0123456789abcdef"] and err is None for done, err in results
    )


def test_the_sweeper_leaves_fresh_rows_to_the_receivers_enqueuer(
    db_url: str, queue: Any, job_keys: Any
) -> None:
    engine = make_engine(db_url)
    now = utcnow()
    try:
        prepared = service.prepare(
            entry(id="fresh"),
            now=now,
            dedupe_window=60,
            twap_min_duration=10,
            twap_max_duration=86_400,
        )
        service.record(engine, prepared, now=now)
        early = sweep_intake(engine, queue, now=now + timedelta(seconds=1))
        late = sweep_intake(engine, queue, now=now + timedelta(seconds=6))
    finally:
        engine.dispose()
    assert (early.enqueued, late.enqueued, queue.count) == (0, 1, 1)


def test_a_queued_signal_whose_job_vanished_is_enqueued_again_once(
    receiver: Receiver,
    http: httpx.Client,
    settings: Settings,
    db_url: str,
    queue: Any,
    redis_conn: redis.Redis,
    job_keys: Any,
) -> None:
    _, url = receiver(settings)
    signal_id = http.post(f"{url}/webhook", json=entry(id="lost")).json()["signal_id"]
    wait_until(lambda: statuses(db_url)[signal_id] == "queued")
    engine = make_engine(db_url)
    try:
        # The job is still there: nothing to do.
        assert sweep_intake(engine, queue, now=utcnow(), grace=timedelta(0)).requeued == 0
        # Redis lost it (restarted without persistence, flushed, ...).
        queue.remove(job_id(signal_id))
        redis_conn.delete(Job.key_for(job_id(signal_id)))
        first = sweep_intake(engine, queue, now=utcnow(), grace=timedelta(0))
        second = sweep_intake(engine, queue, now=utcnow(), grace=timedelta(0))
    finally:
        engine.dispose()
    assert (first.requeued, second.requeued) == (1, 0)
    assert queue.job_ids == [job_id(signal_id)]
    job = Job.fetch(job_id(signal_id), connection=redis_conn, serializer=JSONSerializer)
    assert job.args == [signal_id]
    assert statuses(db_url)[signal_id] == "queued"
    notes = query(db_url, "SELECT kind FROM events WHERE signal_id = :s", s=signal_id)
    assert [n.kind for n in notes].count("requeued") == 1


def test_sweeper_with_redis_down_leaves_rows_received(db_url: str, queue_name: str) -> None:
    engine = make_engine(db_url)
    now = utcnow() - timedelta(minutes=1)
    dead = make_queue(intake_queue.connect(f"redis://127.0.0.1:{free_port()}/9"), queue_name)
    try:
        prepared = service.prepare(
            entry(id="waiting"),
            now=now,
            dedupe_window=60,
            twap_min_duration=10,
            twap_max_duration=86_400,
        )
        service.record(engine, prepared, now=now)
        report = sweep_intake(engine, dead, now=utcnow())
    finally:
        engine.dispose()
    assert (report.enqueued, report.left) == (0, 1)
    assert set(statuses(db_url).values()) == {"received"}


def test_the_sweep_intake_job_runs_from_the_worker_settings(
    settings: Settings,
    db_url: str,
    queue: Any,
    job_keys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker import jobs

    now = utcnow() - timedelta(minutes=1)
    engine = make_engine(db_url)
    try:
        for n in range(3):
            prepared = service.prepare(
                entry(id=f"old-{n}"),
                now=now,
                dedupe_window=60,
                twap_min_duration=10,
                twap_max_duration=86_400,
            )
            service.record(engine, prepared, now=now)
    finally:
        engine.dispose()
    monkeypatch.setattr(jobs, "get_settings", lambda: settings)
    jobs._intake_resources.cache_clear()
    try:
        result = jobs.sweep_intake()
    finally:
        engine_, _ = jobs._intake_resources()
        engine_.dispose()
        jobs._intake_resources.cache_clear()
    assert result["enqueued"] == 3 and result["left"] == 0 and not result["skipped"]
    assert queue.count == 3


def test_overlapping_sweeps_skip_while_one_holds_the_lock(
    sqlite_only_url: str, queue: Any, redis_conn: redis.Redis
) -> None:
    engine = make_engine(sqlite_only_url)
    held = redis_conn.lock(f"{sweeper.SWEEP_LOCK}:{queue.name}", timeout=10)
    try:
        assert held.acquire(blocking=False)
        assert sweeper.run_sweep(engine, queue).skipped
        held.release()
        assert not sweeper.run_sweep(engine, queue).skipped
    finally:
        engine.dispose()


def test_the_sweep_lock_outlives_a_dead_sweeper_by_one_short_ttl_only(
    sqlite_only_url: str, queue: Any, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeper that cannot release its lock (SIGKILLed, or its Redis crashed and came back
    from the AOF with the lock in it) held off every sweep for two minutes: the lock now
    lives SWEEP_LOCK_TTL at most past its holder, kept alive only while the sweep runs."""
    key = f"{sweeper.SWEEP_LOCK}:{queue.name}"
    seen: list[int] = []

    def sweep(*args: Any, **kwargs: Any) -> sweeper.SweepReport:
        seen.append(redis_conn.pttl(key))
        return sweeper.SweepReport()

    monkeypatch.setattr(sweeper, "sweep_intake", sweep)
    engine = make_engine(sqlite_only_url)
    try:
        assert not sweeper.run_sweep(engine, queue).skipped
    finally:
        engine.dispose()
    assert len(seen) == 1 and 0 < seen[0] <= sweeper.SWEEP_LOCK_TTL * 1000
    assert redis_conn.exists(key) == 0  # released after the sweep


def test_after_a_redis_failure_the_enqueuer_pauses_and_leaves_ids_to_the_sweeper(
    queue_name: str,
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/9"
    attempts: list[list[str]] = []
    marked: list[list[str]] = []

    async def scenario() -> None:
        enqueuer = intake_queue.Enqueuer(
            make_queue(intake_queue.connect(dead), queue_name),
            intake_queue.connect_async(dead),
            lambda signal_ids, **kw: marked.append(list(signal_ids)),
            pause=60,
        )
        attempt = enqueuer._enqueue

        async def counting(signal_ids: list[str]) -> None:
            attempts.append(list(signal_ids))
            await attempt(signal_ids)

        enqueuer._enqueue = counting  # type: ignore[method-assign]
        enqueuer.submit(["a"])
        assert enqueuer._task is not None
        await enqueuer._task
        enqueuer.submit(["b"])  # within the pause: left to the sweeper, Redis not touched
        await asyncio.sleep(0)
        await enqueuer.close()

    asyncio.run(scenario())
    assert attempts == [["a"]] and marked == []


def test_the_receivers_job_and_the_sweepers_enqueue_of_it_are_one_rq_job(
    queue: Any, redis_url: str, redis_conn: redis.Redis, job_keys: Any
) -> None:
    signal_id = "0123456789abcdef0123456789abcdef"
    marked: list[list[str]] = []

    async def receiver_side() -> None:
        enqueuer = intake_queue.Enqueuer(
            queue,
            intake_queue.connect_async(redis_url),
            lambda signal_ids, **kw: marked.append(list(signal_ids)),
        )
        for _ in range(2):
            enqueuer.submit([signal_id])
            assert enqueuer._task is not None
            await enqueuer._task
        await enqueuer.close()

    asyncio.run(receiver_side())
    done, error = enqueue_signals(queue, [signal_id])  # the sweeper, racing it
    assert (done, error) == ([signal_id], None)
    assert queue.job_ids == [job_id(signal_id)] and len(job_keys()) == 1
    job = Job.fetch(job_id(signal_id), connection=redis_conn, serializer=JSONSerializer)
    assert (job.func_name, job.args, job.kwargs) == (PROCESS_SIGNAL, [signal_id], {})
    assert job.get_status() == "queued" and job.origin == queue.name
    assert marked == [[signal_id], [signal_id]]
    assert queue.name.encode() in {
        name.rpartition(b":")[2]
        for name in redis_conn.smembers("rq:queues")
        if isinstance(name, bytes)
    }


def test_the_receivers_job_hash_is_the_one_rq_writes(
    queue: Any, redis_url: str, redis_conn: redis.Redis, job_keys: Any
) -> None:
    signal_id, before, after = ("0123456789abcdef0123456789abcdef", "b" * 32, "c" * 32)
    key = Job.key_for(job_id(signal_id))
    assert enqueue_signals(queue, [before]) == ([before], None)  # already there, by RQ
    first = redis_conn.hgetall(Job.key_for(job_id(before)))

    async def receiver_side() -> None:
        enqueuer = intake_queue.Enqueuer(
            queue, intake_queue.connect_async(redis_url), lambda signal_ids, **kw: None
        )
        enqueuer.submit([signal_id, before, after])  # one batch, one script call
        await enqueuer.close()

    asyncio.run(receiver_side())
    # The existing job is left as it was and queued once; the two new ones follow.
    assert queue.job_ids == [job_id(before), job_id(signal_id), job_id(after)]
    assert redis_conn.hgetall(Job.key_for(job_id(before))) == first
    ours = redis_conn.hgetall(key)
    queue.remove(job_id(signal_id))
    redis_conn.delete(key)
    assert enqueue_signals(queue, [signal_id]) == ([signal_id], None)  # RQ's own enqueue
    theirs = redis_conn.hgetall(key)

    for stamp in (b"created_at", b"enqueued_at"):  # made a moment apart
        assert ours.pop(stamp)[:16] == theirs.pop(stamp)[:16]
    assert ours == theirs
    assert ours[b"status"] == b"queued" and ours[b"origin"] == queue.name.encode()
    job = Job.fetch(job_id(signal_id), connection=redis_conn, serializer=JSONSerializer)
    assert (job.func_name, job.args, job.result_ttl) == (PROCESS_SIGNAL, [signal_id], 0)
