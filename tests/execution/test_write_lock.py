"""No exchange request is made while a transaction is open: on SQLite an open transaction
holds the database's write lock (BEGIN IMMEDIATE), and the receiver's INSERT of a new
signal would wait on it (for as long as a rate-limit wait, past the busy timeout)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app import keyguard
from app.db import WriteInReadScope, read_scope
from app.execution.context import ExecContext
from app.models import Control
from tests.execution.conftest import orders, run, set_price, signal_row, submit

pytestmark = pytest.mark.slow


@pytest.fixture
def db_url(sqlite_only_url: str) -> str:
    """The write lock is SQLite's: these tests run on SQLite only."""
    return sqlite_only_url


def _lock_is_free(ctx: ExecContext) -> bool:
    """Whether another connection can take the write lock at once."""
    path = make_url(ctx.settings.database_url).database
    assert path is not None
    conn = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def _probing(ctx: ExecContext, names: list[str]) -> list[str]:
    """Wrap these client methods: each call first checks that another connection can take
    the write lock at once; returns the list of calls that found it held."""
    url = make_url(ctx.settings.database_url)
    assert url.get_backend_name() == "sqlite"
    path = url.database
    assert path is not None
    held: list[str] = []

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def probe(*args: Any, **kwargs: Any) -> Any:
            conn = sqlite3.connect(path, timeout=0.05, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except sqlite3.OperationalError:
                held.append(name)
            finally:
                conn.close()
            return real(*args, **kwargs)

        return probe

    for name in names:
        setattr(ctx.client, name, wrap(name, getattr(ctx.client, name)))
    return held


def test_closing_a_spot_long_reads_the_balance_outside_a_transaction(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    assert run(ctx, submit(ctx, quantity="0.01")).status == "done"
    held = _probing(ctx, ["account"])

    exit_id = submit(ctx, action="exit", side=None)
    assert run(ctx, exit_id).status == "done"

    assert held == []
    (close,) = orders(ctx, exit_id)
    assert close.status == "filled"


def test_cancelling_a_twap_reads_its_end_outside_a_transaction(
    ctx: ExecContext, control: httpx.Client
) -> None:
    set_price(control, "BTCUSDT", "65000")
    entry_id = submit(ctx, quantity="0.06", execution={"type": "twap", "duration": 600})
    assert run(ctx, entry_id).status == "working"
    control.post("/clock", json={"advance": 100}).raise_for_status()
    held = _probing(ctx, ["find_algo", "algo_sub_orders", "account"])

    assert run(ctx, submit(ctx, action="exit", side=None)).status == "done"

    assert held == []
    (twap,) = orders(ctx, entry_id)
    assert twap.status == "cancelled" and twap.executed_qty
    assert signal_row(ctx, entry_id).status == "cancelled"


def test_a_read_scope_neither_takes_nor_waits_for_the_write_lock(ctx: ExecContext) -> None:
    path = make_url(ctx.settings.database_url).database
    assert path is not None
    with read_scope(ctx.sessions) as session:
        assert session.get(Control, "absent") is None
        # Its snapshot is open, and another connection can still write.
        assert _lock_is_free(ctx)

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a writer mid-transaction (the receiver, a claim)
    try:
        # Under BEGIN IMMEDIATE this read would wait for the holder (busy timeout: 30 s),
        # then fail with "database is locked".
        with read_scope(ctx.sessions) as session:
            assert session.get(Control, "absent") is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_read_scope_refuses_to_write(ctx: ExecContext) -> None:
    with pytest.raises(WriteInReadScope), read_scope(ctx.sessions) as session:
        session.add(Control(key="written-in-a-read", value={}))
        session.flush()
    with read_scope(ctx.sessions) as session:
        assert session.get(Control, "written-in-a-read") is None


def test_a_signal_job_reads_its_accounts_key_verdict_without_the_write_lock(
    ctx: ExecContext, control: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_price(control, "BTCUSDT", "65000")
    held: list[bool] = []
    real = keyguard.refusal

    def probed(session: Any, account: str) -> str | None:
        verdict = real(session, account)
        held.append(not _lock_is_free(ctx))  # its transaction is open at this point
        return verdict

    monkeypatch.setattr(keyguard, "refusal", probed)

    assert run(ctx, submit(ctx, quantity="0.01")).status == "done"
    assert held == [False]


def test_a_market_entry_takes_the_write_lock_four_times(
    ctx: ExecContext, control: httpx.Client
) -> None:
    """SQLite has one writer at a time, so a burst of entries queues on the write lock: a
    filled market entry takes it for its claim, its plan (position and order, as
    ``sending``), the exchange's answer, and then its fills, its position and the signal's
    own end state together (``claims.conclude``), not in a transaction more."""
    set_price(control, "BTCUSDT", "65000")
    signal_id = submit(ctx, quantity="0.01")
    engine = ctx.sessions.kw["bind"]
    begins: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        outcome = run(ctx, signal_id)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert outcome.status == "done"
    assert outcome.orders == [o.client_id for o in orders(ctx, signal_id)]
    assert signal_row(ctx, signal_id).status == "done"
    assert begins.count("BEGIN IMMEDIATE") == 4
