"""Placing one order exactly once: write, mark ``sending``, send, record; reconcile the rest.

The order row exists (``planned``, with its client id) before anything is sent. Sending is a
compare-and-set ``planned -> sending`` committed before the request, fenced by the claim of
the signal when there is one, so only one worker ever sends a given row. Then:

| answer                   | row becomes                   | next                                 |
| ------------------------ | ----------------------------- | ------------------------------------ |
| accepted                 | working / filled / ...        | fills recorded; TWAP/VP: find algoId |
| Duplicate                | (as found)                    | look it up by client id and adopt it |
|   ... held by a stranger | rejected (-2010)              | ``OrderRejected``; theirs left alone |
| Rejected                 | rejected, with code and msg   | ``OrderRejected`` to the caller      |
| UnknownOutcome           | unknown                       | reconcile                            |
| Temporary                | planned again                 | ``Temporary`` to the caller (retry)  |

Reconcile (for ``unknown``, and for ``sending`` rows left by a dead worker): look the order
up by its client id, again and again; found -> adopt it (unless it differs from the row: then
it is a stranger's order holding our id, ``venue.not_ours``, never adopted). It is resent,
with the same client id, only when it is still absent after the in-flight horizon
(``ExecContext.in_flight_horizon``, or the request's timestamp + recvWindow: by then the
first request can no longer reach the matching engine), then for ``reconcile_lag_window``
seconds more (Binance's read-after-write lag, 20-60 s measured) and after at least
``MIN_LOOKUPS`` look-ups. A spot client id is unique only among *open* orders, so a filled
MARKET order could be placed twice by a blind resend: only that proof of absence makes the
resend safe.

A caller with ``ExecContext.doubt_patience`` (a signal's job) does not wait that proof out:
once the next look-up would come later than its patience allows, the row is parked
(``InDoubt``, a ``Temporary``: the signal is released and run again when the look-up is
due), with the proof so far kept in the row (``extra["proof"]``) so the next run goes on
from it. An order in doubt then holds no worker thread while it waits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.db import session_scope
from app.exchange.errors import (
    DUPLICATE_ORDER_MSG,
    NEW_ORDER_REJECTED,
    Duplicate,
    Rejected,
    Temporary,
    UnknownOutcome,
)
from app.execution import venue
from app.execution.claims import Claim, heartbeat
from app.execution.context import ExecContext
from app.execution.journal import event
from app.models import ALGO_KINDS, Order, OrderStatus

log = logging.getLogger(__name__)

MIN_LOOKUPS = 3
LOOKUP_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
# A TWAP/VP answer has no algoId: look for it in openOrders this many times.
ALGO_ID_LOOKUPS = (0.0, 0.1, 0.3, 0.6, 1.0, 2.0)
# USD-M answers a taken newClientOrderId / clientAlgoId with -4116 "ClientOrderId is duplicated."
FUTURES_DUPLICATE_ID = -4116
# Binance accepts a timestamp up to 1 s ahead of its clock: allow that much skew.
SKEW_MS = 1000
IN_DOUBT = (OrderStatus.SENDING.value, OrderStatus.UNKNOWN.value)


@dataclass(frozen=True)
class Absent:
    """Proof that the row's send number ``attempts`` never reached the venue. Only that send
    is proven absent: a resend (or a cancel) is a compare-and-set on ``attempts`` too, so of
    two callers holding the same proof only one acts on it."""

    attempts: int


class InDoubt(Temporary):
    """An order's outcome is still unknown and the caller may not wait for it any longer:
    run again ``retry_after`` seconds later, when its next look-up is due."""

    def __init__(self, order_id: int, retry_after: float) -> None:
        super().__init__(
            f"order {order_id} in doubt; looked up again later", retry_after=retry_after
        )
        self.order_id = order_id


class OrderRejected(Exception):
    """The exchange refused an order; ``code`` and ``msg`` are Binance's."""

    def __init__(self, order_id: int, code: int | None, msg: str) -> None:
        super().__init__(f"{msg} (code {code})" if code is not None else msg)
        self.order_id = order_id
        self.code = code
        self.msg = msg


def place(
    ctx: ExecContext,
    order_id: int,
    claim: Claim | None = None,
    *,
    marked: Order | None = None,
) -> Order:
    """Drive one order row until the venue's answer about it is known; return the row.

    Idempotent: a row already placed is returned as it is; a row in doubt is reconciled
    before anything is sent. ``marked`` is the row when the caller has already committed it
    as ``sending`` (``journal.add_orders(sending=True)`` under the claim): it is sent at once.
    Raises OrderRejected, Temporary, or LeaseLost.
    """
    proven: Absent | None = None
    how = "reconciled"
    if marked is not None:
        placed, how = _send(ctx, marked)
        if placed is not None:
            return placed
    while True:
        with session_scope(ctx.sessions) as session:
            order = _load(session, order_id)
            if order.status == OrderStatus.PLANNED.value:
                expected: tuple[str, ...] | None = (OrderStatus.PLANNED.value,)
            elif order.status in IN_DOUBT:
                expected = IN_DOUBT if proven is not None else None
            else:
                return order
            sending = expected is not None and _mark_sending(
                session, order, claim, expected, proven=proven, now=ctx.clock.now()
            )
        if sending:
            placed, how = _send(ctx, order)
            if placed is not None:
                return placed
        found = reconcile(ctx, order_id, claim, how=how)
        if isinstance(found, Order):
            return found
        proven = found


def _load(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id, populate_existing=True)
    if order is None:
        raise LookupError(f"order {order_id} does not exist")
    return order


def _mark_sending(
    session: Session,
    order: Order,
    claim: Claim | None,
    expected: tuple[str, ...],
    *,
    proven: Absent | None = None,
    now: datetime,
) -> bool:
    """CAS the row to ``sending`` (fenced by the claim); False when it was not in ``expected``
    or, for a resend, when its ``attempts`` moved on since the proof of absence (another
    caller resent it, or cancelled it, meanwhile)."""
    if claim is not None:
        heartbeat(session, claim, now=now)
    extra = dict(order.extra or {})
    extra["sent_at"] = now.timestamp()
    extra.pop("deadline_ms", None)
    extra.pop("proof", None)
    where = [Order.id == order.id, Order.status.in_(expected)]
    if proven is not None:
        where.append(Order.attempts == proven.attempts)
    result = session.execute(
        update(Order)
        .where(*where)
        .values(
            status=OrderStatus.SENDING.value,
            attempts=Order.attempts + 1,
            extra=extra,
            updated_at=now,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    resend = proven is not None
    kind = "resent" if resend else "sent"
    message = (
        "proven absent after the in-flight horizon; sent again with the same client id"
        if resend
        else f"sending {order.kind} {order.side} {order.symbol}"
    )
    event(session, kind, message, signal_id=order.signal_id, order_id=order.id,
          client_id=order.client_id)  # fmt: skip
    session.flush()
    session.refresh(order)
    return True


def _send(ctx: ExecContext, order: Order) -> tuple[Order | None, str]:
    """Send a row we marked ``sending``: (the updated row, "") when the venue answered, or
    (None, how) when the row is in doubt and must be reconciled."""
    try:
        answer = venue.submit(ctx.client, order)
    except Duplicate as exc:
        _note(ctx, order, "duplicate", f"client id already in use ({exc.msg}); adopting it")
        return None, "adopted"
    except Rejected as exc:
        if exc.code == FUTURES_DUPLICATE_ID:
            _note(ctx, order, "duplicate", f"client id already in use ({exc.msg}); adopting it")
            return None, "adopted"
        with session_scope(ctx.sessions) as session:
            row = _load(session, order.id)
            row.status = OrderStatus.REJECTED.value
            row.error_code, row.error_msg = exc.code, exc.msg
            event(session, "rejected", f"{exc.msg} (code {exc.code})", signal_id=row.signal_id,
                  order_id=row.id, code=exc.code, msg=exc.msg)  # fmt: skip
        raise OrderRejected(order.id, exc.code, exc.msg) from exc
    except Temporary as exc:
        with session_scope(ctx.sessions) as session:
            session.execute(
                update(Order)
                .where(Order.id == order.id, Order.status == OrderStatus.SENDING.value)
                .values(status=OrderStatus.PLANNED.value, updated_at=ctx.clock.now())
            )
            event(session, "deferred", f"not sent: {exc.msg}", signal_id=order.signal_id,
                  order_id=order.id, retry_after=exc.retry_after)  # fmt: skip
        raise
    except UnknownOutcome as exc:
        extra = dict(order.extra or {})
        # timestamp + recvWindow of the request, when the client knows it: after that (by
        # the exchange's clock) the request can no longer take effect.
        deadline_ms = getattr(exc, "deadline_ms", None)
        if deadline_ms is not None:
            extra["deadline_ms"] = deadline_ms
        with session_scope(ctx.sessions) as session:
            session.execute(
                update(Order)
                .where(Order.id == order.id, Order.status == OrderStatus.SENDING.value)
                .values(
                    status=OrderStatus.UNKNOWN.value,
                    error_msg=exc.msg,
                    extra=extra,
                    updated_at=ctx.clock.now(),
                )
            )
            event(session, "unknown", f"outcome unknown: {exc}", signal_id=order.signal_id,
                  order_id=order.id)  # fmt: skip
        return None, "reconciled"
    with session_scope(ctx.sessions) as session:
        row = _load(session, order.id)
        venue.apply(session, row, answer, now=ctx.clock.now())
        event(session, "accepted", f"{row.kind} {row.venue_status or row.status}",
              signal_id=row.signal_id, order_id=row.id, venue_id=row.venue_id)  # fmt: skip
    if row.kind in ALGO_KINDS and row.venue_id is None:
        return _find_algo_id(ctx, row), ""
    return row, ""


def _note(ctx: ExecContext, order: Order, kind: str, message: str, **data: Any) -> None:
    with session_scope(ctx.sessions) as session:
        event(session, kind, message, signal_id=order.signal_id, order_id=order.id, **data)


def _find_algo_id(ctx: ExecContext, order: Order) -> Order:
    """Placing a TWAP/VP answers no algoId: find the algo by clientAlgoId and store its id."""
    for delay in ALGO_ID_LOOKUPS:
        ctx.clock.sleep(delay)
        found = venue.lookup(ctx.client, order)
        if found is not None:
            with session_scope(ctx.sessions) as session:
                row = _load(session, order.id)
                venue.apply(session, row, found, now=ctx.clock.now())
                return row
    _note(ctx, order, "algo_id_pending",
          "accepted but not listed yet; the monitor will find it by clientAlgoId")  # fmt: skip
    return order


def reconcile(
    ctx: ExecContext, order_id: int, claim: Claim | None = None, *, how: str = "reconciled"
) -> Order | Absent:
    """Resolve a row in doubt: the row as the venue knows it, or ``Absent`` once proven absent.
    ``how`` names the event: ``adopted`` after a Duplicate answer, else ``reconciled``.

    Absent means: not found by at least ``MIN_LOOKUPS`` look-ups, the last of them
    ``reconcile_lag_window`` seconds after both the moment the request could no longer take
    effect (its timestamp + recvWindow + skew when known, else the in-flight horizon) and
    the first look-up, so Binance's read-after-write lag cannot hide an executed order.
    While it waits, the claim's lease is kept alive (a heartbeat per look-up). If another
    caller sends the row again meanwhile (``attempts`` moves on), the proof starts over."""
    horizon = ctx.in_flight_horizon()
    window = ctx.settings.reconcile_lag_window
    patience = ctx.doubt_patience
    called = ctx.clock.monotonic()
    seen: int | None = None
    while True:
        with session_scope(ctx.sessions) as session:
            order = _load(session, order_id)
            if claim is not None:
                heartbeat(session, claim, now=ctx.clock.now())
        if order.status not in IN_DOUBT:
            return order  # another worker settled it meanwhile
        if order.attempts != seen:  # a (new) send to prove absent, or a parked proof
            seen = order.attempts
            kept = (order.extra or {}).get("proof") or {}
            if kept.get("attempts") == seen:
                first_lookup, passed_at, lookups = kept["first"], kept["passed_at"], kept["n"]
            else:
                first_lookup = ctx.clock.now().timestamp()
                passed_at = None  # local time after which it could not execute
                lookups = 0
        found = venue.lookup(ctx.client, order)
        lookups += 1
        stranger = venue.not_ours(order, found) if found is not None else None
        if stranger is not None:
            if how == "adopted":  # the exchange refused ours because a stranger holds its id
                _refuse_taken_id(ctx, order, stranger)
            if lookups == 1:
                _note(ctx, order, "not_ours", f"found under our client id, not ours: {stranger}")
            found = None  # ours is still to be found, or proven absent
        if found is not None:
            with session_scope(ctx.sessions) as session:
                row = _load(session, order_id)
                venue.apply(session, row, found, now=ctx.clock.now())
                event(session, how, f"found by client id: {row.venue_status}",
                      signal_id=row.signal_id, order_id=row.id, venue_id=row.venue_id,
                      lookups=lookups)  # fmt: skip
            return row
        extra = order.extra or {}
        now = ctx.clock.now().timestamp()
        age = now - float(extra.get("sent_at") or 0)
        remaining = horizon - age
        if extra.get("deadline_ms") is not None:
            server_now = ctx.client.clocks[_venue(order)].now_ms()
            remaining = min(remaining, (extra["deadline_ms"] + SKEW_MS - server_now) / 1000)
        if remaining <= 0 and passed_at is None:
            passed_at = now + remaining
        delay = LOOKUP_DELAYS[min(lookups - 1, len(LOOKUP_DELAYS) - 1)]
        if passed_at is None:
            delay = min(delay, max(remaining, 0.05))
        else:
            left = max(passed_at, first_lookup) + window - now
            if lookups >= MIN_LOOKUPS and left <= 0:
                message = (
                    f"not found after {lookups} look-ups and {age:.1f} s "
                    f"(read-after-write window {window:g} s)"
                )
                _note(ctx, order, "absent", message, lookups=lookups)
                return Absent(seen)
            delay = min(delay, max(left, 0.05))
        if claim is not None:  # look (and heartbeat) often enough to keep the lease alive
            delay = min(delay, ctx.settings.execution_lease / 3)
        if patience is not None and ctx.clock.monotonic() - called + delay > patience:
            proof = {"attempts": seen, "first": first_lookup, "passed_at": passed_at, "n": lookups}
            _park(ctx, order_id, seen, proof)
            raise InDoubt(order_id, retry_after=delay)
        ctx.clock.sleep(delay)


def _refuse_taken_id(ctx: ExecContext, order: Order, stranger: str) -> NoReturn:
    """Our client id is held by an open order that is not ours: never adopt it (it is
    somebody else's), never cancel it; this row is rejected as the exchange answered it."""
    msg = f"{DUPLICATE_ORDER_MSG} The client id is held by an order that is not ours ({stranger})"
    with session_scope(ctx.sessions) as session:
        row = _load(session, order.id)
        row.status = OrderStatus.REJECTED.value
        row.error_code, row.error_msg = NEW_ORDER_REJECTED, msg
        event(session, "rejected", msg, signal_id=row.signal_id, order_id=row.id,
              code=NEW_ORDER_REJECTED, msg=msg)  # fmt: skip
    raise OrderRejected(order.id, NEW_ORDER_REJECTED, msg)


def _park(ctx: ExecContext, order_id: int, attempts: int, proof: dict[str, Any]) -> None:
    """Keep a proof of absence in progress in the row, for the run that goes on with it."""
    with session_scope(ctx.sessions) as session:
        order = _load(session, order_id)
        if order.attempts != attempts or order.status not in IN_DOUBT:
            return  # sent again or settled meanwhile: this proof is void anyway
        order.extra = {**(order.extra or {}), "proof": proof}
        event(session, "parked", f"in doubt after {proof['n']} look-ups; looked up again later",
              signal_id=order.signal_id, order_id=order.id)  # fmt: skip


def _venue(order: Order) -> str:
    """Which exchange clock judges the row's requests: USD-M orders are on /fapi."""
    return "fapi" if order.market == "usdm" and order.kind not in ALGO_KINDS else "api"
