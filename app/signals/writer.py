"""The receiver's single database writer: many webhooks per durable commit.

Accepting a signal costs one durable commit (an fsync on SQLite with
``synchronous=FULL``), and SQLite takes one writer at a time. Rather than have every
request thread queue for the lock and fsync on its own, one thread writes: it takes every
request waiting, stores each in one transaction, commits once, and only then answers
them. Alone, a signal is written at once; under load, one fsync acknowledges a whole
batch (group commit). After each commit the answers and the new ids go back to the event loop
in one wake-up (the ids to the enqueuer), and the ``received -> queued`` changes that
follow ride in the next transaction, without a commit of their own while signals keep
coming.

A request never gets its answer before the commit that holds its row.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from app.errors import AppError, ServiceUnavailable
from app.signals.service import Intake, Prepared, mark_queued_in, store

log = logging.getLogger(__name__)


@dataclass
class _Store:
    prepared: Prepared
    now: datetime
    source_ip: str | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Intake]


@dataclass
class _MarkQueued:
    signal_ids: Sequence[str]
    now: datetime
    job_ids: dict[str, str]


_STOP = object()
# `received -> queued` marks wait this long for signals to share a commit with. They need no
# commit of their own to be safe: a lost mark is redone by the sweeper.
MARK_DELAY = 0.25


def _settle_all(
    settled: list[tuple[asyncio.Future[Intake], Intake | BaseException]],
    after: Callable[[list[str]], None] | None = None,
) -> None:
    """On the event loop: answer a batch, then hand its new signals to ``after``."""
    for future, outcome in settled:
        if future.done():  # the request went away (client disconnect, shutdown)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    if after is not None:
        fresh = [o.signal_id for _, o in settled if isinstance(o, Intake) and not o.duplicate]
        if fresh:
            try:
                after(fresh)
            except Exception:
                log.exception("after-commit hook failed; the sweeper will enqueue")


class IntakeWriter:
    """One thread that stores signals in batches; ``await record(...)`` from a request."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_commit: Callable[[list[str]], None] | None = None,
        max_batch: int = 200,
    ) -> None:
        self.engine = engine
        # Called on the event loop after each commit's answers, with the new signals' ids.
        self.on_commit = on_commit
        self.max_batch = max_batch
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self._outbox: list[_Store] = []  # touched by the event loop's thread only
        self._thread = threading.Thread(target=self._run, name="pacekeeper-writer", daemon=True)

    def start(self) -> IntakeWriter:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Write what was handed over, then stop."""
        if self._thread.is_alive():
            self._inbox.put(_STOP)
            self._thread.join(timeout)

    async def record(self, prepared: Prepared, *, now: datetime, source_ip: str | None) -> Intake:
        """Store a signal; returns once its row (or the first copy's) is committed."""
        if not self._thread.is_alive():
            raise ServiceUnavailable("the receiver is shutting down; send again")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Intake] = loop.create_future()
        # Requests handled in the same turn of the event loop reach the writer together:
        # one wake-up of its thread per turn, not one per request.
        if not self._outbox:
            loop.call_soon(self._hand_over)
        self._outbox.append(_Store(prepared, now, source_ip, loop, future))
        return await future

    def _hand_over(self) -> None:
        batch, self._outbox = self._outbox, []
        self._inbox.put(batch)

    def mark_queued(
        self, signal_ids: Sequence[str], *, now: datetime, job_ids: dict[str, str]
    ) -> None:
        """received -> queued, written with the next batch."""
        if signal_ids:
            self._inbox.put(_MarkQueued(list(signal_ids), now, job_ids))

    def _run(self) -> None:
        marks: list[_MarkQueued] = []  # waiting to ride along with the next signals
        marks_since = 0.0
        while True:
            wait = None if not marks else max(0.0, marks_since + MARK_DELAY - time.monotonic())
            try:
                item = self._inbox.get(timeout=wait)
            except queue.Empty:
                self._write([], marks)  # no signal came along: write them on their own
                marks = []
                continue
            batch: list[_Store] = []
            stop = False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _MarkQueued):
                    if not marks:
                        marks_since = time.monotonic()
                    marks.append(item)
                elif isinstance(item, list):
                    batch.extend(item)
                if stop or len(batch) >= self.max_batch:
                    break
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
            if batch or (stop and marks):
                self._write(batch, marks)
                marks = []
            if stop:
                self._disconnect()
                return

    def _connection(self) -> Connection:
        # One connection for the writer's life: no pool checkout and reset per batch.
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()
            self._conn = None

    def _write(self, stores: list[_Store], marks: list[_MarkQueued]) -> None:
        outcomes: list[Intake | BaseException] = []
        try:
            conn = self._connection()
            with conn.begin():
                for item in stores:
                    try:
                        outcomes.append(
                            store(conn, item.prepared, now=item.now, source_ip=item.source_ip)
                        )
                    except AppError as exc:  # a 409 for this one; nothing of it was written
                        outcomes.append(exc)
                for mark in marks:
                    mark_queued_in(conn, mark.signal_ids, now=mark.now, job_ids=mark.job_ids)
        except Exception as exc:
            # Nothing of this batch was committed: every request in it gets a 503 and its
            # sender sends again; queued marks are redone by the sweeper.
            if isinstance(exc, DBAPIError):
                log.error("database unavailable while storing signals: %s", type(exc.orig).__name__)
            else:
                log.exception("storing %d signal(s) failed", len(stores))
            outcomes = [ServiceUnavailable() for _ in stores]
            self._disconnect()
        # One wake-up per event loop for the whole batch.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Intake], Any]]] = {}
        for item, outcome in zip(stores, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item.future, outcome))
        for loop, settled in by_loop.items():
            with suppress(RuntimeError):  # that event loop is closed
                loop.call_soon_threadsafe(_settle_all, settled, self.on_commit)
