"""Engine, sessions and the declarative base.

SQLite is the default store: WAL for concurrent readers, ``synchronous=FULL`` so that a
committed signal survives a crash before the webhook answers, and a busy timeout so that
concurrent writers wait instead of failing. PostgreSQL is chosen by the URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import MetaData, Numeric, String, create_engine, event
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from app import writegate

# How long a SQLite writer waits for the write lock before "database is locked".
BUSY_TIMEOUT = 30.0

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Money(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC on PostgreSQL, text on SQLite (which has no exact decimal)."""

    impl = Numeric(38, 18)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            value = Decimal(str(value))
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).normalize() if dialect.name != "sqlite" else Decimal(value)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


# The execution option that marks a connection of a :func:`read_scope`.
READS_ONLY = "pacekeeper_reads_only"


def _sqlite_begin_immediate(gate: writegate.WriteGate | None) -> Any:
    def begin(conn: Any) -> None:
        # Take the write lock at BEGIN: a read-then-write transaction can otherwise fail with
        # "database is locked" when it upgrades its lock, instead of waiting for busy_timeout.
        # A read scope has no lock to upgrade: DEFERRED, a WAL snapshot beside any writer.
        if conn.get_execution_options().get(READS_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        if gate is None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        writegate.before_begin(gate, conn)  # writers queue here, not in SQLite's busy sleep
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writegate.begin_failed(gate, conn)
            raise

    return begin


def _sqlite_query_only(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.close()


def missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database file that does not exist (None for any other URL): a
    reader such as ``pacekeeper status`` says so instead of creating an empty one."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if os.path.exists(database) else database


def make_engine(url: str, *, read_only: bool = False, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas and pool settings this project relies on.

    ``read_only`` (SQLite): an engine for reads that must never wait for the write lock
    (health checks, metrics): its statements run without ``BEGIN IMMEDIATE``, each its own
    snapshot, and it cannot write (``query_only``). WAL readers never wait for a writer.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not read_only:
            os.makedirs(os.path.dirname(os.path.abspath(database)) or ".", exist_ok=True)
        connect_args = {
            "check_same_thread": False,
            "timeout": BUSY_TIMEOUT,
            "isolation_level": None,
        }
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        if read_only:
            event.listen(engine, "connect", _sqlite_query_only)
        else:
            gate = None
            if database and database != ":memory:" and not database.startswith("file:"):
                gate = writegate.install(engine, os.path.abspath(database), BUSY_TIMEOUT)
            event.listen(engine, "begin", _sqlite_begin_immediate(gate))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # A server that does not answer (a network outage) fails a connect after 5 s instead of
    # the kernel's minutes, so the caller's outage handling (app.outages) can take over.
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class WriteInReadScope(RuntimeError):
    """A session of :func:`read_scope` was asked to write."""


def _refuse_flush(session: Session, *_args: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise WriteInReadScope("a read scope may not write; use session_scope")


@contextmanager
def read_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only: a job's check of a flag, a re-read of its rows.

    On SQLite its transaction begins DEFERRED instead of IMMEDIATE: a WAL snapshot that
    neither takes the write lock nor waits for it, so a read never queues behind the
    receiver's inserts or other jobs' claims, and holds up none of them. It must not write
    (a flush is refused): a DEFERRED transaction that writes upgrades its lock mid-way,
    which SQLite may refuse at once ("database is locked") instead of waiting, the reason
    :func:`session_scope` begins IMMEDIATE. Objects read stay loaded after it ends.
    """
    session = factory()
    event.listen(session, "before_flush", _refuse_flush)
    try:
        session.connection(execution_options={READS_ONLY: True})
        yield session
        session.commit()  # ends the snapshot; there is nothing to write
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
