"""The status of a signal that fanned out to several accounts, summed up from its children.

Called wherever a signal's status changes (``claims.finish`` callers, ``claims.transition``,
the monitor's settling of an algo's signal): a child's change is its parent's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Signal as SignalRow
from app.models import SignalStatus


class Unread(Enum):
    """A value the caller has not read (None is a value: no parent)."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD

# When children end differently, the parent shows the worst of them (its reason lists all).
WORST_FIRST = (
    SignalStatus.FAILED,
    SignalStatus.REFUSED,
    SignalStatus.EXPIRED,
    SignalStatus.CANCELLED,
    SignalStatus.DONE,
)


def children_of(session: Session, parent_id: str) -> list[SignalRow]:
    return list(
        session.scalars(
            select(SignalRow)
            .where(SignalRow.parent_id == parent_id)
            .order_by(SignalRow.id)
            .execution_options(populate_existing=True)
        )
    )


def summary(children: Sequence[SignalRow]) -> tuple[SignalStatus, str]:
    """The parent's status and reason from its children's: ``working`` while any is not
    over, then the one status they share, or the worst of them."""
    states = {c.account: SignalStatus(c.status) for c in children}
    reason = "; ".join(
        f"{c.account}: {c.status}" + (f" ({c.status_reason})" if c.status_reason else "")
        for c in children
    )
    if not all(s.terminal for s in states.values()):
        return SignalStatus.WORKING, reason
    worst = next(s for s in WORST_FIRST if s in states.values())
    return worst, reason


def sum_up(
    session: Session, signal_id: str, *, now: datetime, parent_id: str | Unread | None = UNREAD
) -> None:
    """After a child's status changed: its parent's status from all its children's
    (``parent_id``: the child's, when the caller already read it)."""
    if isinstance(parent_id, Unread):
        parent_id = session.scalar(select(SignalRow.parent_id).where(SignalRow.id == signal_id))
    if parent_id is None:
        return
    # Children ending at once each sum up: the parent's row lock orders them, so the last
    # one reads every other's committed status (PostgreSQL; SQLite has one writer anyway).
    session.execute(select(SignalRow.id).where(SignalRow.id == parent_id).with_for_update())
    status, reason = summary(children_of(session, parent_id))
    session.execute(
        update(SignalRow)
        .where(SignalRow.id == parent_id)
        .values(status=status.value, status_reason=reason, updated_at=now)
    )
