"""An entry signal: guard, plan, write, place; then bracket what a market entry received."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.controls import current_halt
from app.db import session_scope
from app.exchange.filters import AlgoLimits, Market, SymbolRules, to_wire
from app.execution import guards, leverage, queries, venue
from app.execution.claims import Claim, conclude, heartbeat
from app.execution.context import ExecContext
from app.execution.funds import account_size
from app.execution.journal import add_orders, entry_filled
from app.execution.placement import place
from app.execution.planning import Plan, Refused, plan_entry
from app.execution.positions import apply_entry_fills
from app.execution.protection import protect_position
from app.execution.quality import record_arrival
from app.execution.result import Result
from app.models import Order, OrderKind, OrderStatus, Position, SignalStatus
from app.signals.schemas import Signal, TwapExecution, VpExecution


def open_algo_counts(ctx: ExecContext, market: str, algo: str) -> tuple[int, int]:
    """(open orders counting against this algo's own limit, every open algo of the market):
    a spot VP is held to the VP cap and to the spot account's cap on TWAP and VP together."""
    orders = ctx.client.algo_open_orders(Market(market))
    if algo == OrderKind.VP:
        return sum(1 for o in orders if (o.algoType or "").upper() == "VP"), len(orders)
    return len(orders), len(orders)


def usdt_rate(ctx: ExecContext, asset: str) -> Decimal:
    """USDT per unit of ``asset`` (the last ``<asset>USDT`` spot price): TWAP/VP notional
    limits are in USDT, so a symbol quoted in BTC converts at BTCUSDT."""
    if asset == "USDT":
        return Decimal(1)
    return ctx.client.ticker_price(f"{asset}USDT")


def _notional(signal: Signal, plan: Plan, price: Decimal) -> Decimal:
    intent = plan.intents[0]
    if intent.quote_quantity is not None:
        return intent.quote_quantity
    assert intent.quantity is not None
    return intent.quantity * (intent.price or intent.limit_price or price)


def run_entry(
    ctx: ExecContext, claim: Claim, signal: Signal, orders: list[Order], *, last: bool = True
) -> Result:
    """``orders``: the signal's order rows, as a previous run left them (none the first time).
    ``last``: the entry is all the signal does, so its state is written with the fills (a
    reverse says more about the signal afterwards, and finishes it itself)."""
    sid = claim.signal_id
    entry = next((o for o in orders if o.leg == "entry"), None)
    if entry is None:
        written = _plan_and_write(ctx, claim, signal)
        order = place(ctx, written.id, claim, marked=written)
    else:
        order = place(ctx, entry.id, claim)
    # The fills, the position and the signal's own state: one transaction.
    with session_scope(ctx.sessions) as session:
        position = queries.position_of(session, sid)
        assert position is not None
        received = apply_entry_fills(session, position)
        if order.status == OrderStatus.WORKING.value:
            result = Result(SignalStatus.WORKING, f"{order.kind} working on the exchange")
        elif not received:
            position.status = "closed"
            result = Result(SignalStatus.DONE, f"entry ended {order.status} with nothing filled")
        else:
            entry_filled(session, order, position)
            note = _protect(ctx, session, position, claim)
            result = Result(SignalStatus.DONE, f"entered {received} {position.symbol}{note}")
        return conclude(session, claim, result, now=ctx.clock.now()) if last else result


def _protect(ctx: ExecContext, session: Session, position: Position, claim: Claim) -> str:
    if not position.pending_bracket:
        return ""
    bracket = protect_position(ctx, session, position, reason="entry filled", claim=claim)
    if bracket is None:
        return f"; {position.bracket_note}"
    return f"; bracket {bracket.kind} {bracket.status}"


def _account_cap(ctx: ExecContext, notional: Decimal | None) -> str | None:
    """The account's own cap on one signal's notional (PACEKEEPER_ACCOUNT_<NAME>_MAX_NOTIONAL)."""
    account = ctx.account_config
    if account is None or account.max_notional is None or notional is None:
        return None
    if notional <= account.max_notional:
        return None
    return (
        f"notional ({to_wire(notional)}) exceeds account {account.name}'s max notional "
        f"{to_wire(account.max_notional)}"
    )


def _opposite(session: Session, symbol: str, side: str, account: str) -> str | None:
    """USD-M in one-way mode nets every share of a symbol into one position: a long of one
    strategy and a short of another would cancel out on the exchange, and neither could be
    protected or closed as ours. So an entry against an open position is refused."""
    other = session.scalars(
        select(Position).where(
            Position.account == account,
            Position.market == "usdm",
            Position.symbol == symbol,
            Position.status == "open",
            Position.side != side,
        )
    ).first()
    if other is None:
        return None
    return (
        f"strategy {other.strategy} holds a {other.side} position on {symbol} (usdm): one-way "
        f"mode nets an opposite {side} entry into it, so it is refused"
    )


def _plan_and_write(ctx: ExecContext, claim: Claim, signal: Signal) -> Order:
    """Check the guards and write the position and the entry row, committed as ``sending``
    in the same transaction (one commit before the request)."""
    assert signal.market is not None and signal.symbol is not None and signal.side is not None
    market, symbol = signal.market.value, signal.symbol
    rules: SymbolRules = ctx.client.symbol_rules(symbol, Market(market))
    # A price another job of this process read under a second ago will do (a burst on one
    # symbol makes one request, not one each): PACEKEEPER_PRICE_MAX_AGE.
    price = ctx.client.recent_price(symbol, Market(market))
    execution = signal.execution
    algo = execution.type if isinstance(execution, TwapExecution | VpExecution) else None
    sized = account_size(ctx, claim, signal, rules, price)
    if sized is not None:
        signal = signal.model_copy(
            update={"quantity": sized.quantity, "balance_percent": None, "risk_percent": None}
        )
    try:
        plan = plan_entry(
            signal, claim.signal_id, rules=rules, price=price,
            limits=AlgoLimits.from_settings(ctx.settings),
            quote_rate=usdt_rate(ctx, rules.quote_asset) if algo else Decimal(1),
        )  # fmt: skip
    except Refused as exc:
        if sized is None:
            raise
        raise Refused(f"{sized.describe()}: {exc}") from None
    if sized is not None:
        first = plan.intents[0]
        noted = replace(first, facts={**first.facts, "sizing": sized.as_json()})
        plan = replace(plan, intents=[noted, *plan.intents[1:]])
    open_count, open_spot = open_algo_counts(ctx, market, algo) if algo else (0, 0)
    strategy = queries.strategy_of(signal.strategy)
    hedge = market == "usdm" and venue.position_mode(ctx.client)
    with session_scope(ctx.sessions) as session:
        queries.lock_key(session, ctx.account, strategy, market, symbol)
        heartbeat(session, claim, now=ctx.clock.now())
        halt = current_halt(session, ctx.account)
        facts = guards.Facts(
            entry=True, market=market, symbol=symbol, strategy=strategy, algo=algo,
            notional=_notional(signal, plan, price),
            halted=halt.reason if halt is not None else None, open_algos=open_count,
            open_spot_algos=open_spot,
            exposure=(
                queries.exposure(
                    session, market, symbol, price, exclude=claim.signal_id, account=ctx.account
                )
                if ctx.settings.max_notional_per_symbol is not None
                else Decimal(0)
            ),
            live_entry=queries.live_entry(
                session, strategy, market, symbol, exclude=claim.signal_id, account=ctx.account
            ),
        )  # fmt: skip
        reason = guards.evaluate(facts, ctx.settings) or _account_cap(ctx, facts.notional)
        if reason is None and market == "usdm" and not hedge:
            # In hedge mode a long and a short of one symbol are separate positions.
            reason = _opposite(session, symbol, plan.intents[0].side, ctx.account)
        if reason is not None:
            raise Refused(reason)
        # Leverage and margin type are set before the entry exists (refused: nothing sent).
        settled = leverage.settle(ctx, signal, _notional(signal, plan, price))
        # No entry row yet, so no position either: both are written in this transaction.
        position = Position(
            strategy=strategy, account=ctx.account, market=market, symbol=symbol,
            side=plan.intents[0].side,
            quantity=Decimal(0), opened_by=claim.signal_id,
            pending_bracket=plan.levels.to_json() or None,
            leverage=settled.leverage, margin_type=settled.margin_type,
        )  # fmt: skip
        session.add(position)
        session.flush()
        record_arrival(session, claim.signal_id, price, "mark" if market == "usdm" else "last")
        (entry,) = add_orders(
            session, plan.intents, signal_id=claim.signal_id, position_id=position.id,
            sending=True, now=ctx.clock.now(), account=ctx.account,
        )  # fmt: skip
        return entry
