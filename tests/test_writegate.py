"""The SQLite write gate (app.writegate): writers of one database file queue at the gate,
in a process and across processes, so none of them waits in SQLite's busy handler.

Each test sets SQLite's busy timeout to 0 on every connection: a writer that reached
SQLite while another held the lock would fail at once with "database is locked". So a
write that succeeds after waiting was queued by the gate, not by SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from app.db import make_engine
from app.writegate import NO_WAIT, WriteGate, gate_of


def _no_busy_wait(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=0")
    cur.close()


def _engine(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    # After app.db's own pragmas (which set a 30 s busy timeout).
    event.listen(engine, "connect", _no_busy_wait)
    return engine


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    path = tmp_path / "gate.db"
    engine = _engine(path)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (who TEXT, n INTEGER)"))
    yield path, engine
    engine.dispose()


def _gate(engine: Engine) -> WriteGate:
    gate = gate_of(engine)
    assert gate is not None
    return gate


def test_a_writer_on_another_thread_waits_for_the_holder_not_for_sqlite(
    db: tuple[Path, Engine],
) -> None:
    _, engine = db
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    order: list[str] = []

    def holder() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES ('first', 1)"))
            holding.set()
            release.wait(10)
            order.append("first commits")

    def second() -> None:
        try:
            with engine.begin() as conn:
                order.append("second begins")
                conn.execute(text("INSERT INTO t VALUES ('second', 2)"))
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    a = threading.Thread(target=holder)
    a.start()
    assert holding.wait(10)
    b = threading.Thread(target=second)
    b.start()
    b.join(0.3)
    assert b.is_alive(), "the second writer went ahead while the first held the lock"
    release.set()
    a.join(10)
    b.join(10)
    assert errors == []
    assert order == ["first commits", "second begins"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY n")).scalars().all() == [
            "first",
            "second",
        ]


HOLDER = """
import sys, time
from sqlalchemy import text
from app.db import make_engine
engine = make_engine(f"sqlite:///{sys.argv[1]}")
with engine.begin() as conn:
    conn.execute(text("INSERT INTO t VALUES ('other process', 1)"))
    print("holding", flush=True)
    sys.stdin.readline()
print("committed", flush=True)
"""


def test_a_writer_in_another_process_is_waited_for_at_the_gate(
    db: tuple[Path, Engine],
) -> None:
    path, engine = db
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    try:
        assert child.stdout.readline().strip() == "holding"
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES ('this process', 2)"))
            except BaseException as exc:  # pragma: no cover - the failure being tested
                errors.append(exc)
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.3), "wrote while another process held the lock"
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "committed"
        writer.join(10)
        assert errors == []
    finally:
        child.stdin.close()
        child.stdout.close()
        child.wait(10)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY n")).scalars().all() == [
            "other process",
            "this process",
        ]


def test_a_rolled_back_or_failed_transaction_gives_the_gate_back(
    db: tuple[Path, Engine],
) -> None:
    _, engine = db
    gate = _gate(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('rolled back', 1)"))
        raise RuntimeError("the caller fails mid-transaction")
    assert gate.acquire("probe", wait=False)
    gate.release("probe")
    # A statement that fails inside the transaction: rolled back, gate free.
    with pytest.raises(OperationalError), engine.begin() as conn:
        conn.execute(text("INSERT INTO nowhere VALUES (1)"))
    assert gate.acquire("probe", wait=False)
    gate.release("probe")
    # A connection invalidated in the middle of its transaction.
    conn = engine.connect()
    conn.begin()
    conn.execute(text("INSERT INTO t VALUES ('lost', 2)"))
    assert not gate.acquire("probe", wait=False)
    conn.invalidate()
    conn.close()
    assert gate.acquire("probe", wait=False)
    gate.release("probe")
    with engine.connect() as check:
        assert check.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_a_no_wait_connection_is_told_locked_at_once(db: tuple[Path, Engine]) -> None:
    _, engine = db
    holder = engine.connect()
    holder.begin()
    holder.execute(text("INSERT INTO t VALUES ('holder', 1)"))
    eager = engine.connect().execution_options(**{NO_WAIT: True})
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            eager.begin()
        holder.commit()
        with eager.begin():
            eager.execute(text("INSERT INTO t VALUES ('eager', 2)"))
    finally:
        eager.close()
        holder.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_a_forked_child_has_a_gate_of_its_own(db: tuple[Path, Engine]) -> None:
    """After a fork the child shares its parent's open lock file, and an flock held
    through one open file is held by both: the child must open its own."""
    _, engine = db
    gate = _gate(engine)
    assert gate.acquire("parent", wait=True)
    try:
        pid = os.fork()
        if pid == 0:  # the child: the parent holds the gate, so it must not get it
            os._exit(0 if not gate.acquire("child", wait=False) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        gate.release("parent")
    assert gate.acquire("after", wait=False)
    gate.release("after")
