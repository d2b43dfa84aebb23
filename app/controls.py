"""Operator controls shared by every process through the database: the kill switch, for
every account at once or for one named account (``halt:<account>``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.models import Control, Event, utcnow

HALT_KEY = "halt"


@dataclass(frozen=True)
class Halt:
    reason: str
    since: datetime
    by: str


_CONTROLS = select(Control).where(Control.key.in_(bindparam("keys", expanding=True)))


def halt_key(account: str | None) -> str:
    return HALT_KEY if account is None else f"{HALT_KEY}:{account}"


def current_halt(session: Session, account: str | None = None) -> Halt | None:
    """The active halt (of every account, else of ``account``), or None when new entries
    are allowed."""
    keys = [HALT_KEY] if account is None else [HALT_KEY, halt_key(account)]
    rows = {c.key: c for c in session.scalars(_CONTROLS, {"keys": keys})}
    # Every account's halt first: it is the one that names the reason.
    row = next((rows[k] for k in keys if k in rows and rows[k].value.get("active")), None)
    if row is None:
        return None
    return Halt(
        reason=str(row.value.get("reason", "")),
        since=datetime.fromisoformat(row.value["since"]),
        by=str(row.value.get("by", "")),
    )


def halt(
    session: Session, *, reason: str, by: str = "operator", account: str | None = None
) -> Halt:
    """Stop new entries (exits, cancels and protection still run), of every account or of
    one. Idempotent."""
    existing = current_halt(session, account)
    if existing is not None:
        return existing
    now = utcnow()
    value = {"active": True, "reason": reason, "since": now.isoformat(), "by": by}
    key = halt_key(account)
    row = session.get(Control, key)
    if row is None:
        session.add(Control(key=key, value=value))
    else:
        row.value = value
    scope = "" if account is None else f" account {account}"
    data = {"reason": reason, **({"account": account} if account else {})}
    session.add(Event(kind="halt", message=f"halted{scope} by {by}: {reason}", data=data))
    return Halt(reason=reason, since=now, by=by)


def resume(session: Session, *, by: str = "operator", account: str | None = None) -> bool:
    """Allow new entries again (every account's, or one account's after its own halt);
    False when nothing was halted."""
    row = session.get(Control, halt_key(account))
    if row is None or not row.value.get("active"):
        return False
    row.value = {"active": False, "resumed_at": utcnow().isoformat(), "by": by}
    scope = "" if account is None else f" account {account}"
    data = {"account": account} if account else None
    session.add(Event(kind="resume", message=f"resumed{scope} by {by}", data=data))
    return True
