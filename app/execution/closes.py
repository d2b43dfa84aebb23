"""Closing a position: an exit, or a tp/sl executed now (market, TWAP, or a limit order).

First clear the way: cancel what the position still has working (an entry TWAP, a resting
entry limit, the bracket, whose locked coins a spot close needs), recording whatever those
had filled; then close what the position holds, or the signal's quantity.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from app.db import session_scope
from app.exchange.errors import Temporary
from app.exchange.filters import AlgoLimits
from app.execution import book, guards
from app.execution.brackets import cancel_brackets, current_price
from app.execution.cancels import cancel_order
from app.execution.claims import Claim, heartbeat, transition
from app.execution.context import ExecContext
from app.execution.entries import open_algos
from app.execution.journal import add_orders
from app.execution.placement import place
from app.execution.planning import OrderIntent, Refused, closing_side, plan_close
from app.execution.positions import apply_entry_fills, apply_exit_fills
from app.execution.protection import protect_position
from app.execution.result import Result
from app.models import Order, OrderStatus, Position, SignalStatus
from app.models import Signal as SignalRow
from app.signals.schemas import Action, Signal, TwapExecution, VpExecution

CLOSE_PREFIXES = ("exit", "close")


def _closing(order: Order) -> bool:
    return order.leg.startswith(CLOSE_PREFIXES)


def run_close(ctx: ExecContext, claim: Claim, signal: Signal) -> Result:
    assert signal.market is not None and signal.symbol is not None
    sid = claim.signal_id
    market, symbol = signal.market.value, signal.symbol
    strategy = book.strategy_of(signal.strategy)
    with session_scope(ctx.sessions) as session:
        planned = [o for o in book.signal_orders(session, sid) if _closing(o)]
        positions = book.open_positions(session, strategy, market, symbol)
    if not planned:
        if not positions and (signal.quantity is None or signal.side is None):
            raise Refused(
                f"no open position for strategy {strategy} on {symbol} ({market}), and the "
                "signal gives no side and quantity to close"
            )
        for position in positions:
            clear_the_way(ctx, claim, position, reason=f"{signal.action.value} signal {sid}")
        _plan(ctx, claim, signal, [p.id for p in positions])
        with session_scope(ctx.sessions) as session:
            planned = [o for o in book.signal_orders(session, sid) if _closing(o)]
    placed = [place(ctx, o.id, claim) for o in planned]
    rules = ctx.client.symbol_rules(symbol, market)  # type: ignore[arg-type]
    dust = rules.lot.step_size if rules.lot is not None else Decimal(0)
    notes = []
    with session_scope(ctx.sessions) as session:
        for order in placed:
            held = session.get(Position, order.position_id) if order.position_id else None
            if held is None:
                continue
            position = held
            left = apply_exit_fills(session, position, dust=dust)
            if position.status == "open" and order.status != OrderStatus.WORKING.value:
                bracket = protect_position(
                    ctx, session, position, reason="rest of a partial close", claim=claim
                )
                notes.append(
                    f"{left} left" + (f", re-bracketed ({bracket.kind})" if bracket else "")
                )
    if any(o.status == OrderStatus.WORKING.value for o in placed):
        return Result(SignalStatus.WORKING, "closing order working on the exchange")
    closed = sum((o.executed_qty or Decimal(0) for o in placed), Decimal(0))
    return Result(SignalStatus.DONE, f"closed {closed} {symbol}" + "".join(f"; {n}" for n in notes))


def clear_the_way(ctx: ExecContext, claim: Claim, position: Position, *, reason: str) -> None:
    """Cancel the position's working entry orders and its bracket; record what they filled."""
    with session_scope(ctx.sessions) as session:
        entries = [
            o
            for o in session.query(Order).filter(
                Order.position_id == position.id,
                Order.leg == "entry",
                Order.status.in_(book.LIVE_ORDER),
            )
        ]
        for order in entries:
            if order.signal_id is not None:
                owner = session.get(SignalRow, order.signal_id)
                if owner is not None and owner.status == SignalStatus.PROCESSING.value:
                    raise Temporary(f"signal {owner.id} is still being placed", retry_after=2)
    for order in entries:
        cancel_order(ctx, order.id, reason=reason, claim=claim)
    with session_scope(ctx.sessions) as session:
        for order in entries:
            if order.signal_id is not None:
                transition(session, order.signal_id, (SignalStatus.WORKING.value,),
                           SignalStatus.CANCELLED, reason)  # fmt: skip
        row = session.get(Position, position.id)
        assert row is not None
        cancel_brackets(ctx, session, row, reason=reason, claim=claim)
        apply_entry_fills(session, row)


def _quantity(signal: Signal, position: Position, free: Decimal | None) -> Decimal:
    """What to close: the signal's quantity or what the position holds; a spot long no more
    than the free balance of its base asset (``free``, read before the transaction)."""
    quantity = signal.quantity or position.quantity - (position.exit_quantity or 0)
    if position.market == "spot" and position.side == "BUY" and free is not None:
        quantity = min(quantity, free)
    return quantity


def _plan(ctx: ExecContext, claim: Claim, signal: Signal, position_ids: list[int]) -> None:
    assert signal.market is not None and signal.symbol is not None
    market, symbol = signal.market.value, signal.symbol
    rules = ctx.client.symbol_rules(symbol, market)  # type: ignore[arg-type]
    price = current_price(ctx, market, symbol)
    limits = AlgoLimits.from_settings(ctx.settings)
    base = "exit" if signal.action is Action.EXIT else "close"
    execution = signal.execution
    algo = execution.type if isinstance(execution, TwapExecution | VpExecution) else None
    if algo is not None:
        count = open_algos(ctx, market, algo)
        refusal = guards.evaluate(
            guards.Facts(entry=False, market=market, symbol=symbol,
                         strategy=book.strategy_of(signal.strategy), algo=algo, open_algos=count),
            ctx.settings,
        )  # fmt: skip
        if refusal is not None:
            raise Refused(refusal)
    # Read the balance before the transaction: an open session holds SQLite's write lock.
    free = ctx.client.account().free(rules.base_asset) if market == "spot" else None
    with session_scope(ctx.sessions) as session:
        positions = [p for p in (session.get(Position, i) for i in position_ids) if p is not None]
        intents: list[tuple[OrderIntent, int | None]] = []
        for n, position in enumerate(positions, start=1):
            side = closing_side(position.side)
            if signal.side is not None and signal.side.value.upper() != side:
                raise Refused(f"side {signal.side.value} does not close a {position.side} position")
            quantity = _quantity(signal, position, free)
            if quantity <= 0:
                continue
            leg = base if len(positions) == 1 else f"{base}-{n}"
            intent = plan_close(signal, claim.signal_id, leg=leg, rules=rules, price=price,
                                quantity=quantity, side=side, limits=limits)  # fmt: skip
            intents.append((intent, position.id))
        if not positions:
            assert signal.side is not None and signal.quantity is not None
            intent = plan_close(signal, claim.signal_id, leg=base, rules=rules, price=price,
                                quantity=signal.quantity, side=signal.side.value.upper(),
                                limits=limits)  # fmt: skip
            intents.append((intent, None))
        if not intents:
            raise Refused(f"nothing to close: the position on {symbol} holds nothing")
        _write(session, claim, intents)


def _write(session: Session, claim: Claim, intents: list[tuple[OrderIntent, int | None]]) -> None:
    heartbeat(session, claim)
    for intent, position_id in intents:
        add_orders(session, [intent], signal_id=claim.signal_id, position_id=position_id)
