"""SQLite's write lock, handed from one writer to the next at once.

SQLite takes one writer at a time, and a writer that finds the lock taken sleeps in the
library's busy handler: 1, 2, 5, 10 ... up to 100 ms between looks. Under a burst (fifty
signal jobs on a worker's threads, two worker processes and the receiver) the waiters sleep
through most of the time the lock is free: a transaction of a millisecond or two is
followed by tens of milliseconds of nobody writing.

The gate queues the writers of one database file before they ask SQLite:

- inside a process, on a lock: a thread waiting there wakes as soon as the holder commits;
- across processes, on an ``flock`` of a file beside the database (``<file>-writer``), tried
  every fraction of a millisecond by the one thread of each process that holds the first.

So the ``BEGIN IMMEDIATE`` that follows finds the lock free. The gate is only an
optimisation: SQLite's own lock stays the truth (a writer that bypasses the gate, such as
the ``sqlite3`` shell, is still waited for with the busy timeout), and a gate not obtained
within the busy timeout lets the transaction go on to SQLite's lock anyway.

The gate is released once the transaction's ``COMMIT`` or ``ROLLBACK`` has run (the
dialect's own ``do_commit``/``do_rollback``, also called when the pool resets a connection
returned in a transaction), or when its connection is invalidated or closed. A process holds
it for one connection at a time. A process that ends (or is killed) holding it frees it:
the kernel drops an ``flock`` with its file. After a fork the child opens its own.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

# A connection with this execution option never waits at the gate when it begins: it gets
# "database is locked" at once. The receiver's writer, on its event loop, takes the gate
# first on a thread of its own (:meth:`WriteGate.acquire` for the connection), then begins.
NO_WAIT = "pacekeeper_gate_no_wait"

_GATES: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()

_FIRST_PAUSE = 0.0001
_MAX_PAUSE = 0.001


class WriteGate:
    def __init__(self, database: str, timeout: float) -> None:
        self.path = f"{database}-writer"
        self.timeout = timeout
        self._guard = threading.Lock()  # the state below
        self._pid = -1
        self._fd = -1
        self._threads = threading.Lock()
        self._holder: object | None = None

    # ---- the lock file, per process --------------------------------------------------

    def _open(self) -> tuple[int, threading.Lock]:
        with self._guard:
            if self._pid != os.getpid():
                # A forked child shares its parent's open file, and with it the parent's
                # flock: it needs its own, and a fresh thread lock (the parent's may have
                # been held by another thread at the fork).
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._threads = threading.Lock()
                self._holder = None
                self._pid = os.getpid()
            return self._fd, self._threads

    # ---- taking and giving back ---------------------------------------------------------

    def acquire(self, holder: object, *, wait: bool) -> bool:
        """Take the gate for ``holder`` (a DBAPI connection). With ``wait``, up to the
        timeout (False when it ran out); without, at once or never."""
        fd, threads = self._open()
        deadline = time.monotonic() + self.timeout
        if not threads.acquire(blocking=wait, timeout=self.timeout if wait else -1):
            return False
        pause = _FIRST_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or time.monotonic() >= deadline:
                    threads.release()
                    return False
            time.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)
        self._holder = holder
        return True

    def holds(self, holder: object) -> bool:
        return self._holder is holder and self._pid == os.getpid()

    def release(self, holder: object) -> None:
        """Give the gate back if ``holder`` has it (any other call is a no-op)."""
        if self._holder is None or self._holder is not holder or self._pid != os.getpid():
            return
        self._holder = None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


def gate_of(engine: Engine) -> WriteGate | None:
    """The gate in front of ``engine``'s writes (None: not a SQLite file)."""
    return _GATES.get(engine)


def raw(connection: Any) -> object:
    """The DBAPI connection under a pool's proxy (the key the gate is held under)."""
    return getattr(connection, "dbapi_connection", None) or connection


def install(engine: Engine, database: str, timeout: float) -> WriteGate:
    """Put a gate in front of every write transaction of ``engine`` (SQLite, a file).

    The caller's ``begin`` listener calls :func:`before_begin` before its ``BEGIN
    IMMEDIATE`` and :func:`begin_failed` if that fails."""
    gate = WriteGate(database, timeout)
    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def commit(dbapi_connection: Any) -> None:
        try:
            do_commit(dbapi_connection)
        finally:
            gate.release(raw(dbapi_connection))

    def rollback(dbapi_connection: Any) -> None:
        try:
            do_rollback(dbapi_connection)
        finally:
            gate.release(raw(dbapi_connection))

    # The engine's own dialect instance (create_engine makes one per engine).
    dialect.do_commit = commit  # type: ignore[method-assign]
    dialect.do_rollback = rollback  # type: ignore[method-assign]

    def dropped(dbapi_connection: Any, *_args: Any) -> None:
        gate.release(raw(dbapi_connection))

    for name in ("checkin", "invalidate", "soft_invalidate", "close", "close_detached"):
        event.listen(engine.pool, name, dropped)
    _GATES[engine] = gate
    return gate


def before_begin(gate: WriteGate, conn: Any) -> None:
    """Take the gate for a connection about to ``BEGIN IMMEDIATE`` (unless it has it)."""
    if gate.holds(raw(conn.connection)):
        return
    if conn.get_execution_options().get(NO_WAIT):
        if not gate.acquire(raw(conn.connection), wait=False):
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            )
        return
    gate.acquire(raw(conn.connection), wait=True)


def begin_failed(gate: WriteGate, conn: Any) -> None:
    gate.release(raw(conn.connection))
