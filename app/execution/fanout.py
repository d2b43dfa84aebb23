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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from app.db import session_scope
from app.execution.claims import Claim, finish, heartbeat
from app.execution.context import ExecContext
from app.execution.parents import children_of
from app.models import Signal as SignalRow
from app.models import SignalStatus, new_id, utcnow
from app.queue import enqueue_signals, job_id, make_queue
from app.signals.schemas import Signal
from app.signals.service import mark_queued

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
        heartbeat(session, claim)
        parent = session.get(SignalRow, claim.signal_id)
        assert parent is not None
        now = utcnow()
        rows = [_child_row(parent, signal, account, now) for account in signal.accounts]
        dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
        table = SignalRow.__table__
        session.execute(
            dialect.insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"]),
            rows,
        )
        children = children_of(session, claim.signal_id)
        names = ", ".join(c.account for c in children)
        finish(
            session, claim, SignalStatus.WORKING, f"executing on {len(children)} accounts: {names}"
        )
        ids = [c.id for c in children]
    _enqueue(ctx, ids)
    return ids


def _child_row(parent: SignalRow, signal: Signal, account: str, now: Any) -> dict[str, Any]:
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
        "status": SignalStatus.RECEIVED.value,
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
        mark_queued(engine, done, now=utcnow(), job_ids={i: job_id(i) for i in done})
    except Exception as exc:
        done, error = [], exc
    if error is not None:
        log.warning("fan-out: %d of %d children left to the sweeper: %s",
                    len(ids) - len(done), len(ids), error)  # fmt: skip
