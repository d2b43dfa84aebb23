"""A closed position says when it was closed, whichever path closed it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, session_scope
from app.models import Position, utcnow


def _open(sessions: sessionmaker[Session]) -> int:
    with session_scope(sessions) as session:
        row = Position(strategy="s", market="spot", symbol="BTCUSDT", side="BUY")
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_a_position_set_closed_gets_its_closed_at(sessions: sessionmaker[Session]) -> None:
    position_id = _open(sessions)
    before = utcnow()
    with session_scope(sessions) as session:
        row = session.get(Position, position_id)
        assert row is not None and row.closed_at is None
        row.status = "closed"  # as an entry that ended with nothing filled is closed
    with session_scope(sessions) as session:
        row = session.get(Position, position_id)
        assert row is not None and row.status == "closed" and row.closed_at is not None
        closed_at = row.closed_at if row.closed_at.tzinfo else row.closed_at.replace(tzinfo=UTC)
        assert closed_at >= before.replace(microsecond=0)
    # A caller with its own clock sets closed_at itself; that time stays.
    other_id = _open(sessions)
    chosen = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with session_scope(sessions) as session:
        row = session.get(Position, other_id)
        assert row is not None
        row.status = "closed"
        row.closed_at = chosen
    with session_scope(sessions) as session:
        row = session.get(Position, other_id)
        assert row is not None and row.closed_at is not None
        assert row.closed_at.replace(tzinfo=UTC) == chosen
