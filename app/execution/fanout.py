"""A signal for several accounts: one child signal per account, each executed on its own.

The parent's job writes one child row per account, in the transaction that moves the parent
to ``working``: each child has the parent's payload narrowed to its one account, the
parent's arrival time (so it takes its turn among its account's signals in the order the
alert arrived) and the idempotency key ``fanout:<parent id>:<account>``, so a second run of
the parent finds its children instead of writing others. The children are then enqueued as
separate jobs: each is claimed, planned, placed and followed alone, with client ids derived
from its own id, so an account whose exchange is slow or failing holds up only its own
child. A child that never reached the queue is re-enqueued by the sweeper like any signal.

The parent's status sums its children's up (``app.execution.parents``) each time one of
them changes.

A cancel of a strategy on a symbol in one account (``app.execution.cancel_signals``) also reaches
parents that have not fanned out yet: it writes that account's child itself, already
``cancelled``, under the same idempotency key (:func:`stop_unwritten`). Whichever of the
cancel and the parent's job writes the child first, there is one child, and the parent's
job never queues one that has ended; a parent every account of which is cancelled so ends
``cancelled`` without running.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.accounts import FANOUT
from app.db import session_scope
from app.execution import queries
from app.execution.claims import Claim, finish, heartbeat, transition
from app.execution.context import ExecContext
from app.execution.parents import children_of, summary
from app.models import Event, SignalStatus, new_id
from app.models import Signal as SignalRow
from app.queue import enqueue_signals, job_id, make_queue
from app.signals.schemas import Signal
from app.signals.service import mark_queued, state_event

log = logging.getLogger(__name__)


def is_fanout(signal: Signal) -> bool:
    return signal.accounts is not None and len(signal.accounts) > 1


def child_key(parent_id: str, account: str) -> str:
    return f"fanout:{parent_id}:{account}"


def run_fanout(ctx: ExecContext, claim: Claim, signal: Signal) -> list[str]:
    """Write the children (once), move the parent to ``working``, enqueue the children;
    returns their ids."""
    assert signal.accounts is not None
    with session_scope(ctx.sessions) as session:
        now = ctx.clock.now()
        heartbeat(session, claim, now=now)
        parent = session.get(SignalRow, claim.signal_id)
        assert parent is not None
        _write_children(session, parent, signal, signal.accounts, now=now)
        children = children_of(session, claim.signal_id)
        status, reason = summary(children)
        if status is SignalStatus.WORKING:
            names = ", ".join(c.account for c in children)
            reason = f"executing on {len(children)} accounts: {names}"
        finish(session, claim, status, reason, now=now)  # terminal: every child was cancelled
        ids = [c.id for c in children]
        waiting = [c.id for c in children if c.status == SignalStatus.RECEIVED.value]
    _enqueue(ctx, waiting)
    return ids


def stop_unwritten(
    session: Session, *, account: str, signal: Signal, own_id: str, reason: str, now: datetime
) -> list[str]:
    """Parents of the cancel ``signal``'s strategy on its symbol that have not fanned out
    yet and would trade on ``account``: that account's child written now, ``cancelled``.
    A parent not started whose every account is so stopped ends ``cancelled`` here. Returns
    the ids of the parents reached."""
    query = select(SignalRow).where(
        SignalRow.id != own_id,
        SignalRow.account == FANOUT,
        SignalRow.status.in_(UNWRITTEN),
        func.coalesce(SignalRow.strategy, queries.DEFAULT_STRATEGY)
        == queries.strategy_of(signal.strategy),
        SignalRow.symbol == signal.symbol,
    )
    if signal.market is not None:
        query = query.where(SignalRow.market == signal.market.value)
    reached = []
    for parent in session.scalars(query.order_by(SignalRow.received_at, SignalRow.id)):
        planned = Signal.from_payload(parent.payload)
        if planned.accounts is None or account not in planned.accounts:
            continue
        written = _write_children(session, parent, planned, [account], now=now,
                                  status=SignalStatus.CANCELLED, reason=reason)  # fmt: skip
        if not written:
            continue  # its job wrote it first: the cancel finds it among its targets
        session.execute(
            insert(Event),
            [state_event(written[0], None, SignalStatus.CANCELLED.value, now, reason=reason)],
        )
        reached.append(parent.id)
        children = children_of(session, parent.id)
        if parent.status in NOT_STARTED and len(children) == len(planned.accounts):
            status, summed = summary(children)
            if status.terminal:
                transition(session, parent.id, NOT_STARTED, status, summed, now=now)
    return reached


# A parent whose children may not all be written: not started, or its job past its claim.
NOT_STARTED = (SignalStatus.RECEIVED.value, SignalStatus.QUEUED.value)
UNWRITTEN = (*NOT_STARTED, SignalStatus.PROCESSING.value)


def _write_children(
    session: Session,
    parent: SignalRow,
    signal: Signal,
    accounts: Sequence[str],
    *,
    now: datetime,
    status: SignalStatus = SignalStatus.RECEIVED,
    reason: str | None = None,
) -> list[str]:
    """One child row per account, unless it exists (by its idempotency key); returns the ids
    of the rows written."""
    rows = [_child_row(parent, signal, a, now, status, reason) for a in accounts]
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    table = SignalRow.__table__
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return list(session.scalars(statement.returning(table.c.id), rows))


def _child_row(
    parent: SignalRow,
    signal: Signal,
    account: str,
    now: datetime,
    status: SignalStatus,
    reason: str | None,
) -> dict[str, Any]:
    payload = signal.model_copy(update={"accounts": [account]}).payload()
    return {
        "id": new_id(),
        "idempotency_key": child_key(parent.id, account),
        "body_digest": parent.body_digest,
        "source_id": None,
        "action": parent.action,
        "market": parent.market,
        "symbol": parent.symbol,
        "side": parent.side,
        "strategy": parent.strategy,
        "payload": payload,
        "status": status.value,
        "status_reason": reason,
        "source_ip": parent.source_ip,
        "received_at": parent.received_at,
        "updated_at": now,
        "expires_at": parent.expires_at,
        "attempts": 0,
        "account": account,
        "parent_id": parent.id,
    }


def _enqueue(ctx: ExecContext, ids: Sequence[str]) -> None:
    if ctx.redis is None:
        return  # the sweeper enqueues them
    try:
        done, error = enqueue_signals(make_queue(ctx.redis, ctx.settings.queue_name), ids)
        engine = ctx.sessions.kw["bind"]
        mark_queued(engine, done, now=ctx.clock.now(), job_ids={i: job_id(i) for i in done})
    except Exception as exc:
        done, error = [], exc
    if error is not None:
        log.warning("fan-out: %d of %d children left to the sweeper: %s",
                    len(ids) - len(done), len(ids), error)  # fmt: skip
