"""Carrying out a signal's remainder policy (``remainder_policy.py``) once the monitor has ended
its algo: the remainder order planned, placed, followed, replaced by a market order at the
signal's deadline, and the signal settled when all is done. The monitor calls ``carry_out``
right after ending an algo, and again each cycle for those not done (``pending_algos``).

The state lives on the algo's row, ``Order.extra["remainder"]``: ``{"policy", "state":
"pending" | "placed" | "done", "orders": [row ids], "what": how the algo ended, "cause"}``.
``algos.finish`` writes it ``pending`` in the transaction that ends the algo and leaves the
signal ``working``; this module settles it. Every step can be taken again (client ids derive
from the signal and the leg, ``placement.place`` reconciles an order in doubt), so what a
crash interrupts is taken up by the next cycle (``pending_algos``: ended algos of working
signals whose remainder is not ``done``).

A position stays protected throughout (issue "Never naked"):

* a close (exit, tp, sl): the position's bracket is cancelled first, since on spot it locks
  the coins the order sells; the position is being closed while the order works, then it
  is closed, or what is left is bracketed again;
* an entry: what filled is bracketed before a limit remainder starts resting; once the
  remainder has filled, a bracket smaller than the position is replaced by one for all of it
  (a market remainder fills first, so one bracket covers everything).

A limit remainder is followed here, not by ``app/execution/resting.py`` (which skips rows
with ``remainder_of``): at its deadline the rest goes out at market instead of expiring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.exchange.filters import AlgoLimits, Market
from app.exchange.ids import client_order_id
from app.execution import venue
from app.execution.brackets import cancel_brackets, current_price, live_brackets
from app.execution.cancels import cancel_order
from app.execution.claims import transition
from app.execution.context import ExecContext
from app.execution.journal import add_orders, event
from app.execution.placement import OrderRejected, place
from app.execution.planning import OrderIntent, Refused, plan_close, plan_entry
from app.execution.positions import apply_entry_fills, apply_exit_fills
from app.execution.protection import protect_position
from app.models import (
    ALGO_KINDS,
    TERMINAL_ORDER_STATUSES,
    Order,
    OrderStatus,
    Position,
    SignalStatus,
)
from app.models import Signal as SignalRow
from app.monitoring.algos import aware, closing, qty
from app.monitoring.remainder_policy import first_order, limit_price, slippage_bps
from app.signals.schemas import LimitExecution, MarketExecution, Remainder, Signal

log = logging.getLogger(__name__)

ZERO = Decimal(0)
TERMINAL = frozenset(s.value for s in TERMINAL_ORDER_STATUSES)
PENDING, PLACED, DONE = "pending", "placed", "done"


@dataclass(frozen=True)
class _Algo:
    """The ended algo whose remainder is being handled, with its signal."""

    id: int
    signal_id: str
    position_id: int | None
    leg: str
    market: str
    symbol: str
    side: str
    total: Decimal
    executed: Decimal
    state: dict[str, Any]
    payload: dict[str, Any]
    deadline: datetime | None

    @property
    def closes(self) -> bool:
        return closing(self.leg)


def pending_algos(ctx: ExecContext) -> list[int]:
    """Ended algos of working signals whose remainder is not done."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(Order.id, Order.extra)
            .join(SignalRow, Order.signal_id == SignalRow.id)
            .where(
                Order.account == ctx.account,
                SignalRow.status == SignalStatus.WORKING.value,
                Order.kind.in_(ALGO_KINDS),
                Order.status.in_(TERMINAL),
            )
            .order_by(Order.id)
        ).all()
    return [
        i for i, extra in rows if ((extra or {}).get("remainder") or {}).get("state", DONE) != DONE
    ]


def carry_out(ctx: ExecContext, algo_id: int, *, now: datetime) -> bool:
    """Take the algo's remainder as far as it goes now; True when anything moved."""
    algo = _load(ctx, algo_id)
    if algo is None or algo.state.get("state", DONE) == DONE:
        return False
    if algo.state["state"] == PENDING:
        if not _place_next(ctx, algo, first_order(Remainder(algo.state["policy"]),
                                                  deadline=algo.deadline, now=now)):  # fmt: skip
            return True
        algo = _load(ctx, algo_id)
        assert algo is not None
    while True:
        row = place(ctx, algo.state["orders"][-1])
        if row.status == OrderStatus.WORKING.value:
            row = _follow(ctx, algo, row, now)
            if row.status not in TERMINAL:
                return False  # still resting
        left = _left(ctx, algo)
        if row.kind == "limit" and left > 0:
            if not _place_next(ctx, algo, "market"):
                return True
            algo = _load(ctx, algo_id)
            assert algo is not None
            continue
        _done(ctx, algo, note=None)
        return True


def _load(ctx: ExecContext, algo_id: int) -> _Algo | None:
    with ctx.sessions() as session:
        order = session.get(Order, algo_id)
        if order is None or order.signal_id is None:
            return None
        signal = session.get(SignalRow, order.signal_id)
        payload = dict(signal.payload or {}) if signal is not None else {}
        deadline = aware(signal.expires_at) if signal is not None else None
        if deadline is None and payload.get("expires_at"):
            deadline = datetime.fromisoformat(str(payload["expires_at"]))
        return _Algo(
            id=order.id, signal_id=order.signal_id, position_id=order.position_id, leg=order.leg,
            market=order.market, symbol=order.symbol, side=order.side,
            total=order.quantity or ZERO, executed=order.executed_qty or ZERO,
            state=dict((order.extra or {}).get("remainder") or {}), payload=payload,
            deadline=deadline,
        )  # fmt: skip


def _rest_orders(session: Session, algo: _Algo) -> list[Order]:
    ids = algo.state.get("orders") or []
    if not ids:
        return []
    return list(session.scalars(select(Order).where(Order.id.in_(ids)).order_by(Order.id)))


def _left(ctx: ExecContext, algo: _Algo) -> Decimal:
    """What is still to execute: the algo's total less what it and its remainder orders
    executed; for a close, no more than the position still holds."""
    with ctx.sessions() as session:
        done = algo.executed + sum(
            (o.executed_qty or ZERO for o in _rest_orders(session, algo)), ZERO
        )
        left = max(ZERO, algo.total - done)
        if algo.closes and algo.position_id is not None:
            position = session.get(Position, algo.position_id)
            if position is not None:
                held = max(ZERO, position.quantity - (position.exit_quantity or ZERO))
                left = min(left, held if position.status == "open" else ZERO)
    return left


def _place_next(ctx: ExecContext, algo: _Algo, how: str) -> bool:
    """Plan, write and send the next remainder order (``limit`` or ``market``); False when
    there is nothing to send or it was refused (the remainder is then done, with a note)."""
    rules = ctx.client.symbol_rules(algo.symbol, Market(algo.market))
    step = rules.lot.step_size if rules.lot is not None else ZERO
    left = _left(ctx, algo)
    if algo.closes and algo.position_id is not None:
        with ctx.sessions() as session:
            position = session.get(Position, algo.position_id)
            if position is not None and live_brackets(session, position):
                # Spot: the bracket locks the coins the close sells. Cancelled first.
                cancel_brackets(ctx, session, position, reason=f"closing the rest ({how})")
        if algo.market == "spot" and algo.side == "SELL":
            left = min(left, ctx.client.account().free(rules.base_asset))
    if left <= 0 or (step and left < step):
        _done(ctx, algo, note=f"nothing left to send ({qty(left)})")
        return False
    price = current_price(ctx, algo.market, algo.symbol)
    try:
        intent = _intent(ctx, algo, how, left, price, rules)
    except Refused as exc:
        _done(ctx, algo, note=f"{how} remainder of {qty(left)} not sent: {exc}")
        return False
    with ctx.sessions() as session:
        (row,) = add_orders(session, [intent], signal_id=algo.signal_id,
                            position_id=algo.position_id, now=ctx.clock.now())  # fmt: skip
        order = session.get(Order, algo.id)
        assert order is not None
        orders = [*(algo.state.get("orders") or []), row.id]
        state = {**algo.state, "state": PLACED, "orders": list(dict.fromkeys(orders))}
        order.extra = {**(order.extra or {}), "remainder": state}
        event(session, "remainder", f"{qty(left)} left: {how} {intent.side} {intent.symbol}",
              signal_id=algo.signal_id, order_id=row.id, remainder_of=algo.id,
              policy=algo.state["policy"], quantity=qty(intent.quantity or left))  # fmt: skip
        session.commit()
        row_id = row.id
    try:
        placed = place(ctx, row_id)
    except OrderRejected as exc:
        _done(ctx, algo, note=f"{how} remainder rejected: {exc.msg} (code {exc.code})")
        return False
    if how == "limit" and placed.status == OrderStatus.WORKING.value and not algo.closes:
        _protect(ctx, algo, reason="entry filled in part; its remainder rests as a limit")
    return True


def _intent(ctx: ExecContext, algo: _Algo, how: str, left: Decimal, price: Decimal,
            rules: Any) -> OrderIntent:  # fmt: skip
    signal = Signal.from_payload(algo.payload)
    execution: MarketExecution | LimitExecution = MarketExecution()
    if how == "limit":
        bps = slippage_bps(algo.payload)
        execution = LimitExecution(type="limit", price=limit_price(price, algo.side, bps))
    sized = signal.model_copy(update={"execution": execution, "quantity": left,
                                      "quote_quantity": None})  # fmt: skip
    # The first remainder order, then the market order for what a limit left.
    leg = f"{algo.leg}-rest" if not algo.state.get("orders") else f"{algo.leg}-rest-market"
    facts = {"remainder_of": algo.id}
    limits = AlgoLimits.from_settings(ctx.settings)
    if algo.closes:
        intent = plan_close(sized, algo.signal_id, leg=leg, rules=rules, price=price,
                            quantity=left, side=algo.side, limits=limits)  # fmt: skip
    else:
        # An entry's remainder is an entry leg, so the position counts its fills.
        (intent,) = plan_entry(
            sized, algo.signal_id, rules=rules, price=price, limits=limits
        ).intents
        intent = replace(intent, client_id=client_order_id(algo.signal_id, leg))
    return replace(intent, facts={**intent.facts, **facts})


def _follow(ctx: ExecContext, algo: _Algo, row: Order, now: datetime) -> Order:
    """A resting limit remainder: cancelled at the deadline (its rest then goes to market),
    else looked up and brought up to date."""
    if algo.deadline is not None and now >= algo.deadline:
        return cancel_order(ctx, row.id, reason="remainder limit not filled by the signal's expiry")
    found = venue.lookup(ctx.client, row)
    if found is None:
        return row
    with ctx.sessions() as session:
        fresh = session.get(Order, row.id, populate_existing=True)
        assert fresh is not None
        venue.apply(session, fresh, found, now=ctx.clock.now())
        session.commit()
        return fresh


def _done(ctx: ExecContext, algo: _Algo, *, note: str | None) -> None:
    """The remainder is over: the position updated and protected, the signal settled."""
    with ctx.sessions() as session:
        order = session.get(Order, algo.id)
        assert order is not None
        rest = _rest_orders(session, algo)
        executed = sum((o.executed_qty or ZERO for o in rest), ZERO)
        how = ", ".join(f"{o.kind} {o.status} {qty(o.executed_qty or ZERO)}" for o in rest)
        what = f"remainder ({algo.state['policy']}): " + (how or "none")
        if note:
            what += f"; {note}"
        position = session.get(Position, algo.position_id) if algo.position_id else None
        if position is not None and algo.closes:
            rules = ctx.client.symbol_rules(algo.symbol, Market(algo.market))
            dust = rules.lot.step_size if rules.lot is not None else ZERO
            left = apply_exit_fills(session, position, now=ctx.clock.now(), dust=dust)
            what += (
                "; position closed" if position.status == "closed" else f"; {qty(left)} left open"
            )
        elif position is not None:
            apply_entry_fills(session, position)
        order.extra = {
            **(order.extra or {}),
            "remainder": {**algo.state, "state": DONE, "note": what},
        }
        reason = f"{algo.state.get('what') or 'algo ended'}; {what}"
        if algo.executed + executed > 0:
            status = SignalStatus.DONE
        elif algo.state.get("cause") == "expiry":
            status = SignalStatus.EXPIRED
        else:
            status = SignalStatus.CANCELLED
        transition(session, algo.signal_id, (SignalStatus.WORKING.value,), status, reason,
                   now=ctx.clock.now())  # fmt: skip
        event(session, "remainder", what, signal_id=algo.signal_id, order_id=algo.id)
        session.commit()
    if position is not None:
        _protect(ctx, algo, reason=f"after the remainder of {algo.leg}")


def _protect(ctx: ExecContext, algo: _Algo, *, reason: str) -> None:
    """Bracket what the position holds now (``protect_position`` places, grows or shrinks
    it; the monitor's protection pass does the same every cycle)."""
    with ctx.sessions() as session:
        position = session.get(Position, algo.position_id)
        if position is None or position.status != "open" or not position.pending_bracket:
            return
        protect_position(ctx, session, position, reason=reason)
