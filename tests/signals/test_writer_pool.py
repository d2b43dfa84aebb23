"""The intake writer's connection, tuned never to sleep on SQLite's lock (busy_timeout 0),
goes back to no one: a reader that got it from the pool would fail at once on a lock."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from app import writegate
from app.db import make_engine
from app.signals.writer import IntakeWriter


def test_the_writers_tuned_connection_is_not_handed_to_other_users(sqlite_only_url: str) -> None:
    engine = make_engine(sqlite_only_url, pool_size=1, max_overflow=0)

    async def scenario() -> None:
        writer = IntakeWriter(engine).start()
        conn = writer._connection()
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0
        writer._disconnect()  # what a batch that met a locked database does
        await writer.stop()

    try:
        asyncio.run(scenario())
        with engine.connect() as conn:  # the only pooled connection there is
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    finally:
        engine.dispose()


def test_a_batch_takes_a_free_gate_on_the_loop_and_waits_for_a_held_one_off_it(
    sqlite_only_url: str,
) -> None:
    """The write gate (app.writegate): free, a batch takes it at once, without a hop to the
    committer's thread (one thread round trip less per batch); held by another writer of
    the process, the batch waits for it on that thread while the loop goes on serving."""
    engine = make_engine(sqlite_only_url)
    gate = writegate.gate_of(engine)
    assert gate is not None

    async def scenario() -> None:
        writer = IntakeWriter(engine).start()
        conn, transaction = await writer._begin()
        assert gate.holds(writegate.raw(conn.connection))
        assert writer._committer._threads == set()  # taken on the loop
        transaction.rollback()  # gives the gate back
        assert not gate.holds(writegate.raw(conn.connection))

        other = object()  # another writer of this process (a sweep, say)
        assert gate.acquire(other, wait=False)
        begin = asyncio.ensure_future(writer._begin())
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        assert not begin.done()  # waiting at the gate
        assert ticks == 20  # and the loop was free meanwhile
        gate.release(other)
        conn, transaction = await asyncio.wait_for(begin, 10)
        assert gate.holds(writegate.raw(conn.connection))
        transaction.rollback()
        await writer.stop()

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()
