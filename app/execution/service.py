"""Execute one signal: claim it, reconcile what a previous run left in doubt, act, record.

``process_signal`` is what the RQ job calls. A signal's states as this module moves them:

```
received/queued --claim--> processing --> done       everything asked for happened
                     ^          |     --> working    a TWAP/VP or resting order is live:
                     |          |                    the monitor owns it from here
                     |          |     --> refused    a guard or a filter said no; nothing sent
                     |          |     --> failed     the exchange rejected it (code, msg)
                     |          |     --> expired    past expires_at before anything was sent
                     +- release-+                    a temporary error: queued again, retried
processing (lease gone stale: its worker died) --claim--> processing (take-over)
```

Every run starts by reconciling the signal's orders that are ``sending`` or ``unknown`` (a
previous run died or got no answer), before anything new is sent. The claim, the fence and
the lease are in ``claims``; sending one order exactly once is ``placement``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from app import accounts, keyguard
from app.accounts import DEFAULT_ACCOUNT
from app.controls import current_halt
from app.db import read_scope, session_scope
from app.exchange.errors import Temporary
from app.execution import fanout, parents, queries
from app.execution.cancel_signals import run_cancel
from app.execution.claims import Claim, LeaseLost, claim_signal, finish
from app.execution.closes import run_close
from app.execution.context import ExecContext, UnknownAccount
from app.execution.entries import run_entry
from app.execution.journal import event
from app.execution.level_signals import run_levels
from app.execution.placement import IN_DOUBT, InDoubt, OrderRejected, place
from app.execution.planning import BRACKET, Refused
from app.execution.result import Result
from app.execution.reverse import run_reverse
from app.execution.turns import read_turn, waiting_for
from app.models import Order, OrderStatus, Position, SignalStatus
from app.models import Signal as SignalRow
from app.signals.schemas import Action, LimitExecution, Signal

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
# While an earlier signal of the same strategy and symbol runs: look again this often, and
# once out of patience, run again this many seconds later.
TURN_POLL = 0.05
TURN_RETRY = 1.0
# RQ schedules a retry in whole seconds, at least one.
MIN_RETRY = 1.0


@dataclass
class Outcome:
    """What a job run came to; ``retry_in`` asks for another run that many seconds later."""

    signal_id: str
    status: str
    reason: str | None = None
    retry_in: float | None = None
    orders: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def process_signal(ctx: ExecContext, signal_id: str, *, now: datetime | None = None) -> Outcome:
    """Run one signal to a terminal state, to ``working``, or back to ``queued`` for a retry.

    It waits its turn first: an earlier signal of its strategy and symbol still unsettled
    (``turns``) is waited for up to ``turn_patience`` seconds, then the run is put back."""
    patience = ctx.clock.monotonic() + ctx.settings.turn_patience
    while True:
        with session_scope(ctx.sessions) as session:
            # One read for both: whose turn it is, then the claim.
            me = read_turn(session, signal_id)
            ahead = waiting_for(session, signal_id, me)
            if ahead is None:
                got = claim_signal(
                    session,
                    signal_id,
                    now=now or ctx.clock.now(),
                    lease=ctx.settings.execution_lease,
                    read=me,
                )
        if ahead is None:
            break
        if ctx.clock.monotonic() >= patience:
            reason = f"waits for signal {ahead} (same strategy and symbol) to settle"
            return Outcome(signal_id, "waiting", reason, retry_in=TURN_RETRY)
        ctx.clock.sleep(TURN_POLL)
    if isinstance(got, str):
        return Outcome(signal_id, "skipped", f"signal is {got}")
    claim = got
    try:
        result = _run(ctx, claim, now or ctx.clock.now())
    except LeaseLost:
        log.warning("signal %s was taken over by another worker", signal_id)
        return Outcome(signal_id, "skipped", "taken over by another worker")
    except Temporary as exc:
        return _defer(ctx, claim, exc)
    except Refused as exc:
        result = Result(SignalStatus.REFUSED, str(exc))
    except OrderRejected as exc:
        result = Result(
            SignalStatus.FAILED, f"rejected by the exchange: {exc.msg} (code {exc.code})"
        )
    except BaseException:
        _release_after_crash(ctx, claim)
        raise
    if result.children:
        return Outcome(signal_id, result.status.value, result.reason)
    if result.concluded:
        return Outcome(signal_id, result.status.value, result.reason, orders=list(result.orders))
    with session_scope(ctx.sessions) as session:
        ended = ctx.clock.now()
        if result.status in (SignalStatus.REFUSED, SignalStatus.FAILED, SignalStatus.EXPIRED):
            _close_empty_position(
                session, signal_id, result.reason or result.status.value, now=ended
            )
            event(session, result.status.value, result.reason or "", signal_id=signal_id)
        parent_id = finish(session, claim, result.status, result.reason, now=ended)
        parents.sum_up(session, signal_id, now=ended, parent_id=parent_id)
        orders = list(queries.signal_client_ids(session, signal_id))
    return Outcome(signal_id, result.status.value, result.reason, orders=orders)


def _run(ctx: ExecContext, claim: Claim, now: datetime) -> Result:
    orders: list[Order] = []
    if claim.payload is not None and claim.fence == 1:
        # The first claim ever: no run before this one can have written an order.
        signal = Signal.from_payload(claim.payload)
    else:
        with read_scope(ctx.sessions) as session:
            row = session.get(SignalRow, claim.signal_id)
            assert row is not None
            signal = Signal.from_payload(row.payload)
            orders = queries.signal_orders(session, claim.signal_id)
    if fanout.is_fanout(signal):
        children = fanout.run_fanout(ctx, claim, signal)
        return Result(SignalStatus.WORKING, "fanned out", children=tuple(children))
    # Each signal runs on one account: its client, its positions, its limits.
    try:
        ctx = ctx.for_account(signal.accounts[0] if signal.accounts else DEFAULT_ACCOUNT)
    except UnknownAccount as exc:
        return Result(SignalStatus.REFUSED, f"account {exc} is not configured")
    # Pure reads: no write lock (SQLite) for a flag a burst of jobs all read.
    with read_scope(ctx.sessions) as session:
        refused = keyguard.refusal(session, ctx.account)
    if refused is not None and not orders:
        return Result(SignalStatus.REFUSED, f"account {ctx.account} may not trade: {refused}")
    signal = accounts.scaled(signal, ctx.account_config)
    # Before anything else: what a previous run left in doubt is looked up by client id.
    for order in orders:
        if order.status in IN_DOUBT:
            place(ctx, order.id, claim)
    # Nothing sent yet (first run, or a retry after a temporary error): a signal that expired
    # meanwhile, or an entry the kill switch now stops, ends without sending.
    unsent = [o for o in orders if o.status == OrderStatus.PLANNED.value]
    if len(unsent) == len(orders):
        if _expired(signal, now):
            _drop_unsent(ctx, unsent, "expired")
            return Result(
                SignalStatus.EXPIRED, f"expired at {signal.expires_at} before it was sent"
            )
        if unsent and signal.action is Action.ENTRY:
            with read_scope(ctx.sessions) as session:
                halted = current_halt(session, ctx.account)
            if halted is not None:
                _drop_unsent(ctx, unsent, "halted")
                return Result(SignalStatus.REFUSED, f"trading is halted: {halted.reason}")
    if signal.action is Action.ENTRY:
        return run_entry(ctx, claim, signal, orders)
    if signal.action is Action.CANCEL:
        return run_cancel(ctx, claim, signal)
    if signal.action is Action.REVERSE:
        return run_reverse(ctx, claim, signal, orders)
    if signal.action is not Action.EXIT and isinstance(signal.execution, LimitExecution):
        return run_levels(ctx, claim, signal)
    return run_close(ctx, claim, signal)


def _drop_unsent(ctx: ExecContext, orders: list[Order], reason: str) -> None:
    with session_scope(ctx.sessions) as session:
        for order in orders:
            done = session.execute(
                update(Order)
                .where(Order.id == order.id, Order.status == OrderStatus.PLANNED.value)
                .values(status=OrderStatus.CANCELLED.value, updated_at=ctx.clock.now())
            )
            if done.rowcount:  # type: ignore[attr-defined]
                event(session, "cancelled", f"never sent ({reason})", signal_id=order.signal_id,
                      order_id=order.id)  # fmt: skip


def _expired(signal: Signal, now: datetime) -> bool:
    if signal.expires_at is None:
        return False
    expires = signal.expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires <= now


def _defer(ctx: ExecContext, claim: Claim, exc: Temporary) -> Outcome:
    """Release the claim so a later run can take it, or give up after too many attempts."""
    if isinstance(exc, InDoubt):  # not a failure: its next look-up is due then
        retry_in = max(exc.retry_after or 0.0, MIN_RETRY)
    else:
        backoff = min(MAX_BACKOFF, 2.0 ** min(claim.fence, 8))
        retry_in = max(exc.retry_after or 0.0, backoff)
    with session_scope(ctx.sessions) as session:
        in_doubt = session.scalars(
            select(Order.id).where(Order.signal_id == claim.signal_id, Order.status.in_(IN_DOUBT))
        ).first()
        if claim.fence >= ctx.settings.execution_max_attempts and in_doubt is None:
            return _give_up(session, claim, exc, now=ctx.clock.now())
        reason = f"temporary: {exc.msg}; retry in {retry_in:.0f} s"
        finish(session, claim, SignalStatus.QUEUED, reason, now=ctx.clock.now(), retry_in=retry_in)
    log.info("signal %s deferred: %s", claim.signal_id, reason)
    return Outcome(claim.signal_id, SignalStatus.QUEUED.value, reason, retry_in=retry_in)


def _give_up(session: Any, claim: Claim, exc: Temporary, *, now: datetime) -> Outcome:
    """Too many temporary failures. Rows never sent are dropped (a ``planned`` entry counts
    as exposure, and as a live entry, for ever otherwise). What already executed stands: an
    entry that filled ends ``done``, its unsent bracket left ``planned`` for the monitor
    (which places the bracket of an open position still in doubt); an order still working
    ends the signal ``working``; nothing executed: ``failed``."""
    sid = claim.signal_id
    orders = queries.signal_orders(session, sid)
    mine = [o for o in orders if not o.leg.startswith(BRACKET)]
    executed = any(o.executed_qty for o in mine)
    dropped = []
    for order in orders:
        if order.status != OrderStatus.PLANNED.value:
            continue
        if executed and order.leg.startswith(BRACKET):
            continue  # the monitor places it
        done = session.execute(
            update(Order)
            .where(Order.id == order.id, Order.status == OrderStatus.PLANNED.value)
            .values(status=OrderStatus.CANCELLED.value, updated_at=now)
        )
        if done.rowcount:
            dropped.append(order.leg)
            event(session, "cancelled", f"never sent (gave up: {exc.msg})", signal_id=sid,
                  order_id=order.id)  # fmt: skip
    reason = f"gave up after {claim.fence} attempts: {exc.msg}"
    if dropped:
        reason += f" (not sent: {', '.join(dropped)})"
    if any(o.status == OrderStatus.WORKING.value for o in mine):
        status = SignalStatus.WORKING
        reason += "; its working order is followed by the monitor"
    elif executed:
        status = SignalStatus.DONE
        reason += "; what executed stands, the monitor places the bracket"
    else:
        status = SignalStatus.FAILED
        _close_empty_position(session, sid, reason, now=now)
        event(session, "failed", reason, signal_id=sid)
    event(session, "gave_up", reason, signal_id=sid)
    parent_id = finish(session, claim, status, reason, now=now)
    parents.sum_up(session, sid, now=now, parent_id=parent_id)
    return Outcome(sid, status.value, reason)


def _release_after_crash(ctx: ExecContext, claim: Claim) -> None:
    """An unexpected error: hand the signal back (``queued``) for the sweeper to retry."""
    try:
        with session_scope(ctx.sessions) as session:
            reason = "worker error; will be retried"
            finish(session, claim, SignalStatus.QUEUED, reason, now=ctx.clock.now())
    except Exception:  # the lease will go stale and the sweeper takes it anyway
        log.exception("could not release signal %s", claim.signal_id)


def _close_empty_position(session: Any, signal_id: str, reason: str, *, now: datetime) -> None:
    """A signal that placed nothing leaves no open position behind."""
    position = queries.position_of(session, signal_id)
    if position is not None and position.status == "open" and not position.quantity:
        session.execute(
            update(Position)
            .where(Position.id == position.id)
            .values(status="closed", closed_at=now, bracket_note=reason)
        )
