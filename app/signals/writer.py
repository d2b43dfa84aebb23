"""The receiver's single database writer: many webhooks per durable commit.

Accepting a signal costs one durable commit (an fsync on SQLite with
``synchronous=FULL``), and SQLite takes one writer at a time. So requests do not each
open a transaction: they queue their signal here and wait; the writer then stores every
signal waiting in one transaction, commits once, and only then answers them. Alone, a
signal is written at once; under load, one fsync acknowledges a whole batch (group
commit). The ``received -> queued`` changes reported by the enqueuer are written together
a few times a second.

The statements run on the event loop, between requests; only the commit (the fsync) runs
in a thread, so the loop keeps reading requests, which gather into the next batch while it
lasts. A writer thread running the statements too looked natural but loses under load: the
sqlite3 and psycopg drivers release the GIL around every statement, and a thread taking it
back from a busy event loop waits up to the interpreter's switch interval (5 ms) each
time, so the writer crawled exactly when traffic peaked. This way the GIL changes hands
twice per batch, not twice per statement. SQLite's write lock, which another process may
hold for a while, is waited for with the loop free (_begin); what remains blocking is a
statement's own time (a round trip, with PostgreSQL).

A request never gets its answer before the commit that holds its row.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection, Engine, Transaction
from sqlalchemy.exc import DBAPIError, OperationalError

from app import writegate
from app.errors import ServiceUnavailable
from app.outages import Component, is_database_outage
from app.signals.service import Intake, Prepared, mark_queued_in, store_batch
from app.writegate import NO_WAIT

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 1.0
# How long a batch waits for SQLite's write lock before its signals get a 503 (as long as
# the busy timeout of every other connection, app.db).
BUSY_TIMEOUT = 30.0
# `received -> queued` marks are gathered this long, then written MARK_CHUNK at a time between
# batches of signals (a big transaction would hold up the signals behind it). Nothing
# depends on their promptness: the job is on the queue already, and a lost mark is redone by
# the sweeper.
MARK_DELAY = 0.25
MARK_CHUNK = 16


@dataclass
class _Store:
    prepared: Prepared
    now: datetime
    source_ip: str | None
    future: asyncio.Future[Intake]


@dataclass
class _MarkQueued:
    signal_id: str
    now: datetime
    job_id: str


class IntakeWriter:
    """Stores signals in batches from the event loop; ``await record(...)`` from a request."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_commit: Callable[[list[str]], None] | None = None,
        max_batch: int = 200,
    ) -> None:
        self.engine = engine
        # Called after each commit's answers, with the new signals' ids (the enqueuer).
        self.on_commit = on_commit
        self.max_batch = max_batch
        self._stores: list[_Store] = []
        self._marks: list[_MarkQueued] = []
        self._scheduled: asyncio.Handle | None = None
        self._marks_timer: asyncio.Handle | None = None
        self._marks_ready = False
        self._batch: asyncio.Task[None] | None = None  # the batch being written, if any
        self._conn: Connection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="pacekeeper-commit")
        self._open = False
        # An outage is logged when it starts and when it ends, not for every batch it fails.
        self.database = Component("database", log)

    def start(self) -> IntakeWriter:
        self._open = True
        if self.engine.dialect.name == "sqlite":
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoints())
        return self

    async def _checkpoints(self) -> None:
        """Checkpoint the WAL every CHECKPOINT_INTERVAL, in a thread of its own.

        A PASSIVE checkpoint never waits for nor blocks a writer. Left to SQLite, the commit
        that crosses the WAL's page threshold runs the checkpoint itself, and the signals
        waiting on that commit wait for it too.
        """
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1, thread_name_prefix="pacekeeper-checkpoint") as pool:
            while self._open:
                await asyncio.sleep(CHECKPOINT_INTERVAL)
                try:
                    await loop.run_in_executor(pool, self._checkpoint)
                except Exception as exc:
                    log.warning("WAL checkpoint failed: %s", exc)

    def _checkpoint(self) -> None:
        # The driver's connection: through SQLAlchemy the pragma would open a transaction.
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.close()
        finally:
            raw.close()

    async def stop(self) -> None:
        """Write what is waiting, then close the connection."""
        self._open = False
        if self._marks_timer is not None:
            self._marks_timer.cancel()
            self._marks_timer = None
        while True:
            if self._batch is not None:
                batch = self._batch
                await asyncio.wait([batch])
                self._batch = None
            elif self._stores or self._marks:
                self._marks_ready = True
                self._start_batch()
            else:
                break
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        self._disconnect()
        self._committer.shutdown(wait=True)
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with suppress(asyncio.CancelledError):
                await self._checkpointer

    async def record(self, prepared: Prepared, *, now: datetime, source_ip: str | None) -> Intake:
        """Store a signal; returns once its row (or the first copy's) is committed."""
        if not self._open:
            raise ServiceUnavailable("the receiver is shutting down; send again")
        future: asyncio.Future[Intake] = asyncio.get_running_loop().create_future()
        self._stores.append(_Store(prepared, now, source_ip, future))
        self._kick()
        return await future

    def mark_queued(
        self, signal_ids: Sequence[str], *, now: datetime, job_ids: dict[str, str]
    ) -> None:
        """received -> queued, written together every MARK_DELAY seconds."""
        if not signal_ids:
            return
        self._marks.extend(_MarkQueued(sid, now, job_ids[sid]) for sid in signal_ids)
        if self._marks_timer is None:
            self._marks_timer = asyncio.get_running_loop().call_later(MARK_DELAY, self._marks_due)

    def _marks_due(self) -> None:
        self._marks_timer = None
        self._marks_ready = True
        self._kick()

    def _kick(self) -> None:
        if self._batch is None and self._scheduled is None:
            # call_soon runs after the requests already runnable in this turn of the loop,
            # so they join the batch.
            self._scheduled = asyncio.get_running_loop().call_soon(self._start_batch)

    def _start_batch(self) -> None:
        self._scheduled = None
        if self._batch is not None:
            return
        stores: list[_Store] = []
        marks: list[_MarkQueued] = []
        if self._stores:
            stores, self._stores = self._stores[: self.max_batch], self._stores[self.max_batch :]
        elif self._marks_ready:
            # Marks get transactions of their own, in the gaps between signals: riding with
            # every batch of signals would add two statements to each.
            # In small transactions, so that signals arriving meanwhile wait for little.
            marks, self._marks = self._marks[:MARK_CHUNK], self._marks[MARK_CHUNK:]
            self._marks_ready = bool(self._marks)
        else:
            return
        self._batch = asyncio.get_running_loop().create_task(self._write(stores, marks))
        self._batch.add_done_callback(self._batch_done)

    def _batch_done(self, batch: asyncio.Task[None]) -> None:
        if self._batch is batch:
            self._batch = None
        if self._open and (self._stores or self._marks_ready):
            self._kick()

    def _connection(self) -> Connection:
        # One connection for the writer's life: no pool checkout and reset per batch.
        if self._conn is None:
            self._conn = self.engine.connect()
            if self._conn.dialect.name == "sqlite":
                # Nor at the write gate (app.writegate): "locked" at once instead.
                self._conn.execution_options(**{NO_WAIT: True})
                # Never sleep in SQLite's busy handler on the event loop: _begin waits instead.
                # (On the driver's connection: a statement here would begin a transaction.)
                # Checkpoints (copying the WAL into the database file, with an fsync of their
                # own) are left to _checkpoints, off the path of any commit.
                cursor = self._conn.connection.cursor()
                cursor.execute("PRAGMA busy_timeout=0")
                cursor.execute("PRAGMA wal_autocheckpoint=0")
                cursor.close()
        return self._conn

    async def _begin(self) -> tuple[Connection, Transaction]:
        """A transaction holding SQLite's write lock, waited for without blocking the loop.

        Another process (a worker, the monitor) may hold the lock for a while; the loop
        keeps serving meanwhile, and the signals wait in this batch.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT
        pause = 0.001
        while True:
            conn = self._connection()
            gate = writegate.gate_of(self.engine)
            if gate is not None:
                # In the queue of writers (app.writegate), on the committer's thread: the
                # workers hand the lock to one another within a millisecond, and a writer
                # that only looked now and then (below) would rarely find it free.
                holder = writegate.raw(conn.connection)
                # Free (the common case), it is taken here at once: a thread lock tried and
                # an flock without waiting, no round trip to the thread.
                if not gate.acquire(holder, wait=False):
                    try:
                        await loop.run_in_executor(
                            self._committer, functools.partial(gate.acquire, holder, wait=True)
                        )
                    except asyncio.CancelledError:
                        # The acquire goes on on its thread: give the gate back after it (the
                        # committer runs one call at a time, in order).
                        self._committer.submit(gate.release, holder)
                        raise
            try:
                return conn, conn.begin()
            except OperationalError as exc:
                busy = "locked" in str(exc.orig) or "busy" in str(exc.orig)
                if not busy or loop.time() > deadline:
                    raise
            self._disconnect()  # a clean connection for the next try
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _disconnect(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                # Not back to the pool: on SQLite it carries busy_timeout=0, which would
                # make the next reader of that pooled connection fail at once on a lock.
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    async def _write(self, stores: list[_Store], marks: list[_MarkQueued]) -> None:
        outcomes: list[Intake | BaseException] = []
        try:
            conn, transaction = await self._begin()
            try:
                if stores:
                    # A 409 for one of them is its answer; nothing of it was written.
                    outcomes.extend(
                        store_batch(conn, [(i.prepared, i.now, i.source_ip) for i in stores])
                    )
                if marks:
                    mark_queued_in(
                        conn,
                        [m.signal_id for m in marks],
                        now=marks[-1].now,
                        job_ids={m.signal_id: m.job_id for m in marks},
                    )
            except BaseException:
                transaction.rollback()
                raise
            # The commit (an fsync) runs off the loop: requests keep arriving and gather for
            # the next batch meanwhile. Only this batch uses the connection until it returns.
            await asyncio.get_running_loop().run_in_executor(self._committer, transaction.commit)
            self.database.answered()
        except Exception as exc:
            # Nothing of this batch was committed: every request in it gets a 503 and its
            # sender sends again; queued marks are redone by the sweeper.
            if isinstance(exc, DBAPIError) and is_database_outage(exc):
                self.database.failed(exc)
            else:
                log.exception("storing %d signal(s) failed", len(stores))
            outcomes = [ServiceUnavailable() for _ in stores]
            self._disconnect()
        for item, outcome in zip(stores, outcomes, strict=True):
            if item.future.done():  # the request went away (client disconnect)
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        fresh = [o.signal_id for o in outcomes if isinstance(o, Intake) and not o.duplicate]
        if fresh and self.on_commit is not None:
            try:
                self.on_commit(fresh)
            except Exception:
                log.exception("after-commit hook failed; the sweeper will enqueue")
