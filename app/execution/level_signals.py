"""A stand-alone tp or sl that sets a level (``execution.price``): replace the bracket.

With an open position the new level is merged with the position's other one (a tp keeps the
stop, an sl keeps the take-profit) and the bracket is replaced (``protection.py``): on spot
the live OCO (or single order) is cancelled and a new one placed for what the position holds;
on USD-M the new reduce-only orders go out before the old ones are cancelled. The new levels
are checked against the market and the filters before anything is cancelled, so an impossible
level never leaves a position bare; one the exchange refuses anyway brings the old levels
back in the same job. A stop the market already crossed stops the position out (its
``if_crossed`` permitting).
Without a position, the signal's own side and quantity get one order.
"""

from __future__ import annotations

from decimal import Decimal

from app.db import session_scope
from app.exchange.filters import Market
from app.execution import queries
from app.execution.brackets import current_price
from app.execution.claims import Claim, heartbeat
from app.execution.context import ExecContext
from app.execution.journal import add_orders
from app.execution.placement import place
from app.execution.planning import (
    BRACKET,
    Crossed,
    Levels,
    NotProtected,
    OrderIntent,
    Refused,
    closing_side,
    crossing,
    plan_bracket,
    signal_levels,
)
from app.execution.protection import held, protect_position, stop_out
from app.execution.result import Result
from app.models import Position, SignalStatus
from app.signals.schemas import Signal


def run_levels(ctx: ExecContext, claim: Claim, signal: Signal) -> Result:
    assert signal.market is not None and signal.symbol is not None
    sid, market, symbol = claim.signal_id, signal.market.value, signal.symbol
    strategy = queries.strategy_of(signal.strategy)
    new = signal_levels(signal)
    with session_scope(ctx.sessions) as session:
        positions = queries.open_positions(session, strategy, market, symbol, account=ctx.account)
    if not positions:
        return _standalone(ctx, claim, signal, new)
    rules = ctx.client.symbol_rules(symbol, Market(market))
    price = current_price(ctx, market, symbol)
    replaced = []
    for position in positions:
        with session_scope(ctx.sessions) as session:
            row = session.get(Position, position.id)
            assert row is not None
            old = Levels.from_json(row.pending_bracket)
            merged = old.merged(new)
            holding = held(row)
            check: list[OrderIntent] | NotProtected | None = (
                plan_bracket(
                    signal_id=sid, leg=BRACKET, market=market, symbol=symbol, rules=rules,
                    price=price, position_side=row.side, quantity=holding, levels=merged,
                    slippage=ctx.settings.stop_limit_slippage, entry_quantity=row.quantity,
                )
                if holding > 0
                else crossing(merged.take_profit, merged.stop_price,
                              side=closing_side(row.side), price=price)
            )  # fmt: skip
            if isinstance(check, NotProtected) and not (
                isinstance(check, Crossed) and merged.exit_when_crossed
            ):
                raise Refused(check.note)  # nothing cancelled: the old bracket stays
            # The new levels first: whoever places the next generation (this worker or the
            # monitor) places these. The old bracket goes only once the new one can go out
            # (USD-M: after it is placed; spot, whose coins it locks: just before).
            row.pending_bracket = merged.to_json()
            heartbeat(session, claim, now=ctx.clock.now())
            session.commit()
            if holding <= 0 and check is None:
                replaced.append(f"levels set for position {row.id}: its entry has filled nothing")
                continue
            if isinstance(check, Crossed):
                stop_out(ctx, session, row, reason=f"{check.note} ({signal.action.value} {sid})",
                         claim=claim)  # fmt: skip
                replaced.append(f"position {row.id} stopped out: {check.note}")
                continue
            bracket = protect_position(
                ctx, session, row, reason=f"{signal.action.value} signal", signal_id=sid,
                claim=claim,
            )  # fmt: skip
            levels = (bracket.extra or {}).get("levels") if bracket is not None else None
            if bracket is None or Levels.from_json(levels) != merged:
                # Refused by the exchange: the old levels stand again (restored if the
                # replacement had already taken the old bracket away).
                why = row.bracket_note or "the bracket could not be placed"
                row.pending_bracket = old.to_json()
                session.commit()
                protect_position(ctx, session, row, reason="restored after a refused level",
                                 claim=claim)  # fmt: skip
                raise Refused(f"{why}; the previous levels stay")
            replaced.append(f"{bracket.kind} {bracket.status} for position {row.id}")
    return Result(SignalStatus.DONE, "; ".join(replaced))


def _standalone(ctx: ExecContext, claim: Claim, signal: Signal, levels: Levels) -> Result:
    assert signal.market is not None and signal.symbol is not None
    strategy = queries.strategy_of(signal.strategy)
    if signal.side is None or signal.quantity is None:
        raise Refused(
            f"no open position for strategy {strategy} on {signal.symbol} "
            f"({signal.market.value}), and the signal gives no side and quantity"
        )
    if levels.empty:
        raise Refused("a tp/sl without a position needs execution.price")
    sid, market, symbol = claim.signal_id, signal.market.value, signal.symbol
    with session_scope(ctx.sessions) as session:
        planned = [o for o in queries.signal_orders(session, sid) if o.leg.startswith(BRACKET)]
    if not planned:
        rules = ctx.client.symbol_rules(symbol, Market(market))
        side = signal.side.value.upper()
        intents = plan_bracket(
            signal_id=sid, leg=BRACKET, market=market, symbol=symbol, rules=rules,
            price=current_price(ctx, market, symbol), position_side=closing_side(side),
            quantity=signal.quantity, levels=levels, slippage=ctx.settings.stop_limit_slippage,
        )  # fmt: skip
        if isinstance(intents, NotProtected):
            raise Refused(intents.note)
        with session_scope(ctx.sessions) as session:
            now = ctx.clock.now()
            heartbeat(session, claim, now=now)
            planned = add_orders(session, intents, signal_id=sid, position_id=None, now=now)
    placed = [place(ctx, o.id, claim) for o in planned]
    qty = signal.quantity or Decimal(0)
    return Result(SignalStatus.DONE, f"{placed[0].kind} {placed[0].status} for {qty} {symbol}")
