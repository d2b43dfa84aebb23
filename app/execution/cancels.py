"""Cancelling what we placed, and reading how it ended.

A cancel of something already finished answers "already done" (-20124, -2011 Unknown order):
then the order is looked up and its final state recorded (an OCO list's from its legs, and a
leg the ended list left working, a gapped stop-limit, is cancelled). Whatever a cancelled order had
executed is recorded as fills, so the position it fed stays exact. A TWAP/VP is ended only
from its final state (not working, every child ended and adding up to it); until that is
visible the row stays ``working`` and the caller waits for it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.db import session_scope
from app.exchange import models as m
from app.exchange.errors import AlreadyDone, Temporary, UnknownOutcome
from app.exchange.filters import Market
from app.execution import venue
from app.execution.claims import Claim
from app.execution.context import ExecContext
from app.execution.journal import event
from app.execution.placement import IN_DOUBT, Absent, reconcile
from app.execution.positions import record_fills, sub_order_fills, top_up_fill
from app.models import ALGO_KINDS, TERMINAL_ORDER_STATUSES, Order, OrderStatus

log = logging.getLogger(__name__)

TERMINAL = frozenset(s.value for s in TERMINAL_ORDER_STATUSES)


def cancel_order(
    ctx: ExecContext, order_id: int, *, reason: str, claim: Claim | None = None
) -> Order:
    """Cancel one of our orders on the venue (if it is there) and record how it ended."""
    while True:
        with session_scope(ctx.sessions) as session:
            order = session.get(Order, order_id, populate_existing=True)
            assert order is not None
            if order.status in TERMINAL:
                return order
            if order.status == OrderStatus.PLANNED.value:
                if _never_sent(session, order, reason, now=ctx.clock.now()):
                    return order
                continue  # marked `sending` meanwhile: look at the row afresh
        if order.status not in IN_DOUBT:
            break
        found = reconcile(ctx, order_id, claim)
        if isinstance(found, Absent):
            cancelled = _never_placed(ctx, order_id, found, reason)
            if cancelled is not None:
                return cancelled
            continue  # sent again meanwhile (or settled): look at the row afresh
        order = found
        if order.status in TERMINAL:
            return order
        break
    try:
        answer = _cancel(ctx, order)
        how = "cancelled"
    except AlreadyDone:
        answer = venue.lookup(ctx.client, order)
        how = "already done"
    except UnknownOutcome as exc:
        # Sending a cancel again is always safe (a second one answers "already done"), so an
        # unknown outcome is only a reason to try later, never a crash.
        raise Temporary(
            f"cancel of {order.client_id}: {exc.msg}", retry_after=2, code=exc.code,
            status=exc.status, method=exc.method, path=exc.path,
        ) from exc  # fmt: skip
    if isinstance(answer, m.OrderList) and not answer.orderReports:
        answer = _ended_legs(ctx, order, answer)
    # Every read from the exchange before the transaction: an open session holds SQLite's
    # write lock (BEGIN IMMEDIATE), and the receiver's inserts wait on it.
    answer = venue.with_trades(ctx.client, answer)  # a spot order's fills, with commissions
    final, subs = _read_end(ctx, order, answer)
    with session_scope(ctx.sessions) as session:
        row = session.get(Order, order_id, populate_existing=True)
        assert row is not None
        _record_end(session, row, answer, final, subs, now=ctx.clock.now(),
                    cancelled=how == "cancelled")  # fmt: skip
        event(session, "cancelled", f"{how}: {reason}", signal_id=row.signal_id,
              order_id=row.id, status=row.status, executed_qty=str(row.executed_qty))  # fmt: skip
    return row


def _ended_legs(ctx: ExecContext, order: Order, answer: m.OrderList) -> m.OrderList:
    """An OCO list that ended before our cancel (a look-up carries no leg reports): its legs
    as they ended, so what a leg executed is recorded. A leg the list left working (a
    stop-limit triggered by a gap, resting past its limit: the list is ALL_DONE, the leg is
    not) is cancelled here, or it would still sell what the position no longer holds."""
    legs = []
    for ref in answer.orders:
        leg = ctx.client.get_order(order.symbol, order_id=ref.orderId)
        if leg.is_open:
            try:
                leg = ctx.client.cancel_order(order.symbol, order_id=ref.orderId)
            except AlreadyDone:
                leg = ctx.client.get_order(order.symbol, order_id=ref.orderId)
        legs.append(leg)
    return answer.model_copy(update={"orderReports": legs})


def _never_placed(ctx: ExecContext, order_id: int, proof: Absent, reason: str) -> Order | None:
    """Proven absent: the row ends ``cancelled``, by a compare-and-set on its status and on
    the send the proof is about, so a concurrent resend (which bumps ``attempts``) wins."""
    with session_scope(ctx.sessions) as session:
        result = session.execute(
            update(Order)
            .where(
                Order.id == order_id,
                Order.status.in_(IN_DOUBT),
                Order.attempts == proof.attempts,
            )
            .values(status=OrderStatus.CANCELLED.value, updated_at=ctx.clock.now())
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return None
        row = session.get(Order, order_id, populate_existing=True)
        assert row is not None
        event(session, "cancelled", f"never placed ({reason})", signal_id=row.signal_id,
              order_id=row.id)  # fmt: skip
        return row


def _never_sent(session: Session, order: Order, reason: str, *, now: datetime) -> bool:
    result = session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.PLANNED.value)
        .values(status=OrderStatus.CANCELLED.value, updated_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    event(session, "cancelled", f"never sent ({reason})", signal_id=order.signal_id,
          order_id=order.id)  # fmt: skip
    session.refresh(order)
    return True


def _cancel(ctx: ExecContext, order: Order) -> object:
    client = ctx.client
    if order.kind in ALGO_KINDS:
        if order.venue_id is None:
            found = venue.lookup(client, order)
            if found is None:
                raise AlreadyDone("algo not found by clientAlgoId")
            order.venue_id = getattr(found, "algoId", None)
        assert order.venue_id is not None
        return client.cancel_algo(Market(order.market), order.venue_id)
    if order.market == "spot":
        if order.kind == "oco":
            return client.cancel_order_list(order.symbol, list_client_order_id=order.client_id)
        return client.cancel_order(order.symbol, orig_client_order_id=order.client_id)
    if order.kind == "conditional":
        return client.cancel_conditional_order(client_algo_id=order.client_id)
    return client.cancel_futures_order(order.symbol, orig_client_order_id=order.client_id)


def _read_end(
    ctx: ExecContext, order: Order, answer: object
) -> tuple[object | None, list[m.SubOrder]]:
    """What ``_record_end`` needs from the exchange besides the answer: a TWAP/VP's final
    state and its sub-orders (their fills)."""
    if not (isinstance(answer, m.AlgoCancelled) or order.kind in ALGO_KINDS):
        return None, []
    final = venue.lookup(ctx.client, order)
    if not isinstance(final, m.AlgoOrder):
        return final, []
    subs = ctx.client.iter_algo_sub_orders(Market(order.market), final.algoId)
    return final, list(subs)


def _record_end(
    session: Session,
    order: Order,
    answer: object,
    final: object | None,
    subs: list[m.SubOrder],
    *,
    now: datetime,
    cancelled: bool,
) -> None:
    """Set the row's final state from a cancel answer (or a look-up after "already done"),
    and for a TWAP/VP its final state and sub-orders read before (``_read_end``)."""
    if isinstance(answer, m.AlgoCancelled) or order.kind in ALGO_KINDS:
        if isinstance(final, m.AlgoOrder):
            record_fills(session, order, sub_order_fills(subs), now=now)
        if not isinstance(final, m.AlgoOrder) or not m.algo_settled(final, subs):
            # Cancelled, but its end is not visible yet (not found, still reads working, a
            # child still open, or children that do not add up to it): its last fills may
            # still come. The row stays working; the monitor ends it from its final state,
            # as it ends every algo, and a caller that needs the fills waits.
            order.extra = {**(order.extra or {}), "cancel_requested": True}
            return
        venue.apply(session, order, final, now=now)
        done = order.executed_qty and order.quantity and order.executed_qty >= order.quantity
        order.status = (OrderStatus.FILLED if done else OrderStatus.CANCELLED).value
        return
    if isinstance(answer, m.OrderList):
        order.venue_id = answer.orderListId
        order.venue_status = answer.listOrderStatus
        # One leg of an OCO executes, the other expires: their sums are the list's.
        executed = sum((r.executedQty or Decimal(0) for r in answer.orderReports), Decimal(0))
        quote = sum((r.cummulativeQuoteQty or Decimal(0) for r in answer.orderReports), Decimal(0))
        record_fills(session, order, top_up_fill(
            session, order, ref=f"list-{answer.orderListId}", executed=executed, quote=quote,
            when=answer.transactionTime,
        ), now=now)  # fmt: skip
        order.executed_qty = executed
        if cancelled:
            order.status = OrderStatus.CANCELLED.value
        elif answer.is_done:
            order.status = (OrderStatus.FILLED if executed else OrderStatus.CANCELLED).value
        return
    if isinstance(answer, m.ConditionalCancelled):
        order.status = OrderStatus.CANCELLED.value
        order.venue_status = "CANCELED"
        return
    if isinstance(answer, m.Order | m.FuturesOrder | m.ConditionalOrder):
        venue.apply(session, order, answer, now=now)  # records what it executed as a fill
        return
    # Nothing found after "already done": it never reached the book.
    order.status = OrderStatus.CANCELLED.value
