""" "No pending bracket" is SQL NULL: rows written as JSON null before migration 0003 are
nulled by it, new rows are written so, and only positions with levels match the query the
monitor runs for brackets to place."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select, text

from app import migrate
from app.db import make_engine, make_sessionmaker
from app.models import Position
from tests.conftest import PG_ADMIN_URL, _pg_available


@pytest.fixture(params=["sqlite", "pg"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """An empty database of its own (migrations are run on it step by step)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/migrate.db"
        return
    if not _pg_available():
        pytest.skip("PostgreSQL is not reachable")
    name = f"pk_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _insert(conn: object, pending: str | None) -> None:
    conn.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO positions (strategy, market, symbol, side, status, quantity,"
            " entry_cost, exit_quantity, exit_proceeds, pending_bracket, opened_at, updated_at,"
            " bracket_gen) VALUES ('s', 'spot', 'BTCUSDT', 'BUY', 'open', 1, 0, 0, 0,"
            " :p, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
        ),
        {"p": pending},
    )


def test_migration_0003_turns_json_null_into_sql_null(fresh_url: str) -> None:
    migrate.upgrade(fresh_url, revision="0002")
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            _insert(conn, "null")  # what an entry without levels used to store
            _insert(conn, '{"take_profit": {"price": "70000"}}')
            _insert(conn, None)
        count = "SELECT count(*) FROM positions WHERE pending_bracket IS NOT NULL"
        with engine.connect() as conn:
            assert conn.execute(text(count)).scalar() == 2
        migrate.upgrade(fresh_url)
        with engine.connect() as conn:
            assert conn.execute(text(count)).scalar() == 1
    finally:
        engine.dispose()


def test_a_position_without_levels_is_stored_with_sql_null(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            session.add_all(
                [
                    Position(market="spot", symbol="BTCUSDT", side="BUY", pending_bracket=None),
                    Position(
                        market="spot", symbol="ETHUSDT", side="BUY",
                        pending_bracket={"take_profit": {"price": "4000"}},
                    ),
                ]
            )  # fmt: skip
            session.commit()
            waiting = session.scalars(
                select(Position.symbol).where(Position.pending_bracket.is_not(None))
            ).all()
        assert waiting == ["ETHUSDT"]
    finally:
        engine.dispose()
