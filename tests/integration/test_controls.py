from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.controls import current_halt, halt, resume
from app.db import session_scope
from app.models import Event


def test_halt_is_seen_by_other_sessions_until_resumed(
    session_factory: sessionmaker[Session],
) -> None:
    with session_scope(session_factory) as s:
        assert current_halt(s) is None
        halt(s, reason="exchange incident", by="alice")
    with session_scope(session_factory) as s:
        active = current_halt(s)
        assert active is not None and active.reason == "exchange incident" and active.by == "alice"
        # A second halt keeps the first reason rather than overwriting it.
        assert halt(s, reason="other").reason == "exchange incident"
    with session_scope(session_factory) as s:
        assert resume(s) is True
        assert resume(s) is False
    with session_scope(session_factory) as s:
        assert current_halt(s) is None
        kinds = s.scalars(select(Event.kind).order_by(Event.id)).all()
        assert kinds == ["halt", "resume"]
