"""The intake writer's connection, tuned never to sleep on SQLite's lock (busy_timeout 0),
goes back to no one: a reader that got it from the pool would fail at once on a lock."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

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
