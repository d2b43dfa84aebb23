"""A stand-alone tp or sl that sets a level (``execution.price``): replace the bracket.

With an open position the new level is merged with the position's other one (a tp keeps the
stop, an sl keeps the take-profit) and the bracket is replaced: on spot the live OCO (or
single order) is cancelled and a new one placed for what the position holds; on USD-M only
the conditional order of the same leg is replaced. The new levels are checked against the
market before anything is cancelled, so an impossible level never leaves a position bare.
Without a position, the signal's own side and quantity get one order.
"""

from __future__ import annotations

from decimal import Decimal

from app.db import session_scope
from app.execution import book
from app.execution.brackets import BRACKET, cancel_brackets, current_price, protect_position
from app.execution.claims import Claim, heartbeat
from app.execution.context import ExecContext
from app.execution.journal import add_orders
from app.execution.placement import place
from app.execution.planning import (
    Levels,
    NotProtected,
    Refused,
    closing_side,
    plan_bracket,
    signal_levels,
)
from app.execution.result import Result
from app.models import Position, SignalStatus
from app.signals.schemas import Action, Signal


def run_levels(ctx: ExecContext, claim: Claim, signal: Signal) -> Result:
    assert signal.market is not None and signal.symbol is not None
    sid, market, symbol = claim.signal_id, signal.market.value, signal.symbol
    strategy = book.strategy_of(signal.strategy)
    new = signal_levels(signal)
    with session_scope(ctx.sessions) as session:
        positions = book.open_positions(session, strategy, market, symbol)
    if not positions:
        return _standalone(ctx, claim, signal, new)
    rules = ctx.client.symbol_rules(symbol, market)  # type: ignore[arg-type]
    price = current_price(ctx, market, symbol)
    replaced = []
    for position in positions:
        with session_scope(ctx.sessions) as session:
            row = session.get(Position, position.id)
            assert row is not None
            mine = [
                o
                for o in book.signal_orders(session, sid)
                if o.position_id == row.id and o.leg.startswith(BRACKET)
            ]
            if not mine:
                merged = Levels.from_json(row.pending_bracket).merged(new)
                check = plan_bracket(
                    signal_id=sid, leg=BRACKET, market=market, symbol=symbol, rules=rules,
                    price=price, position_side=row.side, quantity=row.quantity, levels=merged,
                    slippage=ctx.settings.stop_limit_slippage,
                )  # fmt: skip
                if isinstance(check, NotProtected):
                    raise Refused(check.note)
                legs: tuple[str, ...] = ("tp", "sl", "both")
                if market == "usdm":
                    legs = ("tp",) if signal.action is Action.TP else ("sl",)
                reason = f"replaced by {signal.action.value} signal {sid}"
                # The new levels first: whoever places the next generation (this worker or
                # the monitor, once the old bracket is gone) places these.
                row.pending_bracket = merged.to_json()
                row.bracket_note = None
                heartbeat(session, claim)
                session.commit()
                cancel_brackets(ctx, session, row, reason=reason, legs=legs, claim=claim)
            bracket = protect_position(
                ctx,
                session,
                row,
                reason=f"{signal.action.value} signal",
                signal_id=sid,
                claim=claim,
            )
            if bracket is None:
                raise Refused(row.bracket_note or "the bracket could not be placed")
            replaced.append(f"{bracket.kind} {bracket.status} for position {row.id}")
    return Result(SignalStatus.DONE, "; ".join(replaced))


def _standalone(ctx: ExecContext, claim: Claim, signal: Signal, levels: Levels) -> Result:
    assert signal.market is not None and signal.symbol is not None
    strategy = book.strategy_of(signal.strategy)
    if signal.side is None or signal.quantity is None:
        raise Refused(
            f"no open position for strategy {strategy} on {signal.symbol} "
            f"({signal.market.value}), and the signal gives no side and quantity"
        )
    if levels.empty:
        raise Refused("a tp/sl without a position needs execution.price")
    sid, market, symbol = claim.signal_id, signal.market.value, signal.symbol
    with session_scope(ctx.sessions) as session:
        planned = [o for o in book.signal_orders(session, sid) if o.leg.startswith(BRACKET)]
    if not planned:
        rules = ctx.client.symbol_rules(symbol, market)  # type: ignore[arg-type]
        side = signal.side.value.upper()
        intents = plan_bracket(
            signal_id=sid, leg=BRACKET, market=market, symbol=symbol, rules=rules,
            price=current_price(ctx, market, symbol), position_side=closing_side(side),
            quantity=signal.quantity, levels=levels, slippage=ctx.settings.stop_limit_slippage,
        )  # fmt: skip
        if isinstance(intents, NotProtected):
            raise Refused(intents.note)
        with session_scope(ctx.sessions) as session:
            heartbeat(session, claim)
            planned = add_orders(session, intents, signal_id=sid, position_id=None)
    placed = [place(ctx, o.id, claim) for o in planned]
    qty = signal.quantity or Decimal(0)
    return Result(SignalStatus.DONE, f"{placed[0].kind} {placed[0].status} for {qty} {symbol}")
