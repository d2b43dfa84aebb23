"""A cancel signal: stop what another signal (or a strategy on a symbol) still has working.

Targets are the signal named by ``target_id`` (our id or the sender's), or every unfinished
signal of ``strategy`` on ``symbol``. A target not yet placed is moved to ``cancelled`` and
its job will find it so; a working one has its entry/exit orders cancelled on the exchange
(whatever they filled is recorded, and protected by the position's bracket) and ends
``cancelled``. Brackets are left alone: they protect what is already held, and only an
exit or a tp/sl changes them.

A signal for several accounts that has not fanned out yet is reached too: the cancel writes
its account's child already cancelled (``fanout.stop_unwritten``), so that account never
trades it, whenever the parent's job runs.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select

from app.accounts import FANOUT
from app.db import session_scope
from app.exchange.errors import Temporary
from app.execution import fanout, queries
from app.execution.cancels import cancel_order
from app.execution.claims import Claim, transition
from app.execution.context import ExecContext
from app.execution.planning import BRACKET, Refused
from app.execution.positions import apply_entry_fills, apply_exit_fills
from app.execution.protection import protect_position
from app.execution.result import Result
from app.models import TERMINAL_ORDER_STATUSES, Order, Position, SignalStatus
from app.models import Signal as SignalRow
from app.signals.schemas import Signal

TERMINAL = frozenset(s.value for s in TERMINAL_ORDER_STATUSES)
NOT_STARTED = (SignalStatus.RECEIVED.value, SignalStatus.QUEUED.value)
UNFINISHED = (*NOT_STARTED, SignalStatus.PROCESSING.value, SignalStatus.WORKING.value)


def _targets(ctx: ExecContext, signal: Signal, own_id: str) -> list[tuple[str, str, str]]:
    """(id, status, account) of each target: by ``target_id`` (with the children of a
    signal that fanned out to several accounts), else the strategy's signals on the symbol
    in this cancel's account."""
    with session_scope(ctx.sessions) as session:
        query = select(SignalRow.id, SignalRow.status, SignalRow.account).where(
            SignalRow.id != own_id, SignalRow.action != "cancel"
        )
        if signal.target_id is not None:
            named = or_(SignalRow.id == signal.target_id, SignalRow.source_id == signal.target_id)
            parents = select(SignalRow.id).where(named).scalar_subquery()
            query = query.where(or_(named, SignalRow.parent_id.in_(parents)))
        else:
            query = query.where(SignalRow.account == ctx.account)
            strategy = queries.strategy_of(signal.strategy)
            query = query.where(
                func.coalesce(SignalRow.strategy, queries.DEFAULT_STRATEGY) == strategy,
                SignalRow.symbol == signal.symbol,
                SignalRow.status.in_(UNFINISHED),
            )
            if signal.market is not None:
                query = query.where(SignalRow.market == signal.market.value)
        rows = session.execute(query.order_by(SignalRow.received_at, SignalRow.id))
        return [(r.id, r.status, r.account) for r in rows]


def run_cancel(ctx: ExecContext, claim: Claim, signal: Signal) -> Result:
    sid = claim.signal_id
    reason = f"cancelled by signal {sid}"
    done = []
    if signal.target_id is None:
        # Signals for several accounts not fanned out yet: this account's part of them.
        with session_scope(ctx.sessions) as session:
            stopped = fanout.stop_unwritten(
                session, account=ctx.account, signal=signal, own_id=sid, reason=reason,
                now=ctx.clock.now(),
            )  # fmt: skip
        done += [f"{parent_id} on {ctx.account} (not fanned out)" for parent_id in stopped]
    targets = _targets(ctx, signal, sid)
    if not targets and signal.target_id is not None:
        raise Refused(f"no signal with id {signal.target_id}")
    if any(status == SignalStatus.PROCESSING.value for _, status, _ in targets):
        raise Temporary("a target signal is being placed right now", retry_after=2)
    for target_id, status, account in targets:
        if status in NOT_STARTED:
            with session_scope(ctx.sessions) as session:
                if transition(session, target_id, NOT_STARTED, SignalStatus.CANCELLED, reason,
                              now=ctx.clock.now()):  # fmt: skip
                    done.append(f"{target_id} (not started)")
                    continue
        # A fan-out parent has no orders of its own; each child's are its account's.
        cancelled = (
            0
            if account == FANOUT
            else _cancel_working(ctx.for_account(account), claim, target_id, reason)
        )
        with session_scope(ctx.sessions) as session:
            transition(session, target_id, (SignalStatus.WORKING.value,), SignalStatus.CANCELLED,
                       reason, now=ctx.clock.now())  # fmt: skip
        done.append(f"{target_id} ({cancelled} order(s))")
    if not done:
        return Result(SignalStatus.DONE, "nothing to cancel")
    return Result(SignalStatus.DONE, "cancelled " + ", ".join(done))


def _cancel_working(ctx: ExecContext, claim: Claim, target_id: str, reason: str) -> int:
    with session_scope(ctx.sessions) as session:
        orders = [
            o
            for o in session.scalars(
                select(Order).where(
                    Order.signal_id == target_id,
                    Order.status.in_(queries.LIVE_ORDER),
                    ~Order.leg.startswith(BRACKET),
                )
            )
        ]
    ended = [cancel_order(ctx, order.id, reason=reason, claim=claim) for order in orders]
    if any(o.status not in TERMINAL for o in ended):
        # The position is settled only from the algo's final fills: wait for its end.
        raise Temporary("waiting for the cancelled order's final fills", retry_after=2)
    position_ids = {o.position_id for o in orders if o.position_id is not None}
    with session_scope(ctx.sessions) as session:
        for position_id in position_ids:
            position = session.get(Position, position_id)
            if position is None or position.status != "open":
                continue
            apply_entry_fills(session, position)
            if apply_exit_fills(session, position, now=ctx.clock.now()) > 0:
                protect_position(ctx, session, position, reason=reason, claim=claim)
            elif not position.exit_quantity:
                position.status = "closed"
                position.bracket_note = "entry cancelled before anything filled"
    return len(orders)
