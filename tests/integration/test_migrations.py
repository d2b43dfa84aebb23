from datetime import UTC, datetime

from sqlalchemy import inspect, text

from app import migrate
from app.db import Base, make_engine


def test_migrations_create_every_table_and_downgrade_cleanly(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        inspector = inspect(engine)
        for table in Base.metadata.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            assert set(table.columns.keys()) <= have, table.name
        columns = {c["name"]: c for c in inspector.get_columns("positions")}
        assert columns["leverage"]["nullable"] and columns["margin_type"]["nullable"]
    finally:
        engine.dispose()


def test_sqlite_upgrade_downgrade_roundtrip(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'rt.db'}"
    migrate.upgrade(url)
    migrate.downgrade(url)
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    migrate.upgrade(url)


def test_rows_from_before_accounts_belong_to_the_default_account(db_url: str) -> None:
    migrate.downgrade(db_url, "0005")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO signals (id, idempotency_key, body_digest, action, market, "
                    "symbol, payload, status, received_at, updated_at, attempts) VALUES "
                    "('s1', 'k1', 'd', 'entry', 'spot', 'BTCUSDT', '{}', 'done', :t, :t, 1)"
                ),
                {"t": datetime(2026, 12, 1, tzinfo=UTC)},
            )
            conn.execute(
                text(
                    "INSERT INTO positions (strategy, market, symbol, side, status, quantity, "
                    "entry_cost, exit_quantity, exit_proceeds, opened_at, updated_at, "
                    "bracket_gen) VALUES ('s', 'spot', 'BTCUSDT', 'BUY', 'open', 1, 1, 0, 0, "
                    ":t, :t, 0)"
                ),
                {"t": datetime(2026, 12, 1, tzinfo=UTC)},
            )
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            accounts = [
                conn.execute(text(f"SELECT account FROM {table}")).scalar_one()
                for table in ("signals", "positions")
            ]
        assert accounts == ["default", "default"]
    finally:
        migrate.upgrade(db_url)
        engine.dispose()
