"""Operator controls shared by every process through the database: the kill switch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.models import Control, Event, utcnow

HALT_KEY = "halt"


@dataclass(frozen=True)
class Halt:
    reason: str
    since: datetime
    by: str


def current_halt(session: Session) -> Halt | None:
    """The active halt, or None when new entries are allowed."""
    row = session.get(Control, HALT_KEY)
    if row is None or not row.value.get("active"):
        return None
    return Halt(
        reason=str(row.value.get("reason", "")),
        since=datetime.fromisoformat(row.value["since"]),
        by=str(row.value.get("by", "")),
    )


def halt(session: Session, *, reason: str, by: str = "operator") -> Halt:
    """Stop new entries (exits, cancels and protection still run). Idempotent."""
    existing = current_halt(session)
    if existing is not None:
        return existing
    now = utcnow()
    value = {"active": True, "reason": reason, "since": now.isoformat(), "by": by}
    row = session.get(Control, HALT_KEY)
    if row is None:
        session.add(Control(key=HALT_KEY, value=value))
    else:
        row.value = value
    session.add(Event(kind="halt", message=f"halted by {by}: {reason}", data={"reason": reason}))
    return Halt(reason=reason, since=now, by=by)


def resume(session: Session, *, by: str = "operator") -> bool:
    """Allow new entries again; False when nothing was halted."""
    row = session.get(Control, HALT_KEY)
    if row is None or not row.value.get("active"):
        return False
    row.value = {"active": False, "resumed_at": utcnow().isoformat(), "by": by}
    session.add(Event(kind="resume", message=f"resumed by {by}"))
    return True
