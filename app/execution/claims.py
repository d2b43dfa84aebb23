"""Who may work on a signal: a compare-and-set claim with a lease and a fence.

A worker claims a signal by moving it to ``processing`` in one UPDATE whose WHERE clause is
the expected state (``received``/``queued``, or ``processing`` whose lease has gone stale),
and bumps ``signals.attempts``. The new ``attempts`` value is the claim's fence: every later
change the worker makes to the signal, and every order it marks ``sending``, repeats the
check ``attempts = <fence>``. So of two workers running the same job one gets the signal; a
worker that was presumed dead and whose signal another worker took over can finish the
request it had in flight but can send nothing new.

The lease is ``signals.updated_at``: refreshed by every fenced write (a heartbeat). The
sweeper re-enqueues ``processing`` signals whose lease is older than
``PACEKEEPER_EXECUTION_LEASE`` (a worker killed mid-job).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from app.execution import queries
from app.execution.parents import sum_up
from app.execution.result import Result
from app.models import Event, SignalStatus
from app.models import Signal as SignalRow
from app.signals.service import state_event

CLAIMABLE = (SignalStatus.RECEIVED.value, SignalStatus.QUEUED.value)
PROCESSING = SignalStatus.PROCESSING.value


class LeaseLost(Exception):
    """Another worker took the signal over; stop without changing anything else."""


@dataclass(frozen=True)
class Claim:
    signal_id: str
    fence: int  # signals.attempts right after the claim
    previous: str  # the status it was claimed from
    payload: dict[str, Any] | None = None  # the stored signal, read in the claim's transaction


CLAIM_COLUMNS = (SignalRow.status, SignalRow.attempts, SignalRow.payload)

# Every job runs these: built once, as Core statements on the table. The ORM's UPDATE
# (its synchronisation of the session's objects) and bulk INSERT cost a job about as much
# CPU as everything else it does in the database. _forget keeps the session's object
# current. (The session still flushes what it holds before each one, as it does for every
# statement it runs: history added before a state change is written before it.)
SIGNALS = cast(Table, SignalRow.__table__)
EVENTS = cast(Table, Event.__table__)
_INSERT_EVENT = insert(EVENTS)
_CLAIM = (
    update(SIGNALS)
    .where(
        SIGNALS.c.id == bindparam("signal_id"),
        or_(
            SIGNALS.c.status.in_(CLAIMABLE),
            and_(SIGNALS.c.status == PROCESSING, SIGNALS.c.updated_at < bindparam("stale")),
        ),
    )
    .values(status=PROCESSING, attempts=SIGNALS.c.attempts + 1, updated_at=bindparam("now"))
    .returning(SIGNALS.c.attempts)
)
_FENCED = and_(
    SIGNALS.c.id == bindparam("signal_id"),
    SIGNALS.c.attempts == bindparam("fence"),
    SIGNALS.c.status == PROCESSING,
)
_HEARTBEAT = update(SIGNALS).where(_FENCED).values(updated_at=bindparam("now"))
_FINISH = (
    update(SIGNALS)
    .where(_FENCED)
    .values(
        status=bindparam("to_status"),
        status_reason=bindparam("to_reason"),
        updated_at=bindparam("now"),
    )
    .returning(SIGNALS.c.parent_id)
)
_REQUEUE = _FINISH.values(enqueued_at=bindparam("now"))


def _forget(session: Session, signal_id: str) -> None:
    """Expire the session's object of the signal, if it holds one: a Core UPDATE leaves it
    as it was read."""
    held = session.identity_map.get(identity_key(SignalRow, signal_id))
    if held is not None:
        session.expire(held)


def claim_signal(
    session: Session,
    signal_id: str,
    *,
    now: datetime,
    lease: float,
    read: Row[Any] | None,
) -> Claim | str:
    """Take the signal, or say why not (its status). Commits nothing: the caller does.
    ``read``: the signal's :data:`CLAIM_COLUMNS`, read in this transaction
    (``turns.read_turn``); None: it does not exist."""
    row = read
    if row is None:
        return "missing"
    stale = now - timedelta(seconds=lease)
    fence = session.execute(_CLAIM, {"signal_id": signal_id, "stale": stale, "now": now}).scalar()
    _forget(session, signal_id)
    if fence is None:
        return str(row.status)
    data: dict[str, Any] = {"attempt": fence}
    if row.status == PROCESSING:
        data["taken_over"] = True
    session.execute(_INSERT_EVENT, state_event(signal_id, row.status, PROCESSING, now, **data))
    return Claim(signal_id, fence, str(row.status), row.payload)


def heartbeat(session: Session, claim: Claim, *, now: datetime) -> None:
    """Refresh the lease; raise LeaseLost when the signal is no longer ours."""
    result = session.execute(
        _HEARTBEAT, {"signal_id": claim.signal_id, "fence": claim.fence, "now": now}
    )
    _forget(session, claim.signal_id)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(claim.signal_id)


def finish(
    session: Session,
    claim: Claim,
    status: SignalStatus,
    reason: str | None = None,
    *,
    now: datetime,
    **data: Any,
) -> str | None:
    """Move our claimed signal to ``status`` (terminal, ``working`` or back to ``queued``);
    returns its parent's id (a fan-out child's), read in the same statement."""
    moved = session.execute(
        _REQUEUE if status is SignalStatus.QUEUED else _FINISH,
        {
            "signal_id": claim.signal_id,
            "fence": claim.fence,
            "to_status": status.value,
            "to_reason": reason,
            "now": now,
        },
    ).first()
    _forget(session, claim.signal_id)
    if moved is None:
        raise LeaseLost(claim.signal_id)
    if reason:
        data["reason"] = reason
    session.execute(_INSERT_EVENT, state_event(claim.signal_id, PROCESSING, status, now, **data))
    return moved.parent_id


def transition(
    session: Session,
    signal_id: str,
    expected: tuple[str, ...],
    status: SignalStatus,
    reason: str | None = None,
    *,
    now: datetime,
    **data: Any,
) -> bool:
    """Compare-and-set a signal we have not claimed (a cancel moving its target)."""
    old = session.execute(select(SignalRow.status).where(SignalRow.id == signal_id)).scalar()
    result = session.execute(
        update(SignalRow)
        .where(SignalRow.id == signal_id, SignalRow.status.in_(expected))
        .values(status=status.value, status_reason=reason, updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if reason:
        data["reason"] = reason
    session.execute(insert(Event), [state_event(signal_id, old, status, now, **data)])
    sum_up(session, signal_id, now=now)
    return True


def conclude(session: Session, claim: Claim, result: Result, *, now: datetime) -> Result:
    """Leave our claimed signal in ``result``'s state within the caller's transaction (the
    one that wrote what the run came to), instead of one transaction more after it."""
    parent_id = finish(session, claim, result.status, result.reason, now=now)
    sum_up(session, claim.signal_id, now=now, parent_id=parent_id)
    return replace(
        result, concluded=True, orders=queries.signal_client_ids(session, claim.signal_id)
    )
