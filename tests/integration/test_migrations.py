from sqlalchemy import inspect

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
