"""Closing a position: an exit, or a tp/sl executed now (market, TWAP, or a limit order).

Never naked, never oversold:

1. a working entry is cancelled first and its *final* fills awaited (the job is retried
   until the algo's end is visible), so the close is sized from what the position really
   holds; an entry that filled nothing leaves "nothing to close";
2. the close is planned and validated (filters, the TWAP minimum, the open-algo guard)
   before the bracket is touched: a refused close leaves the protection as it was;
3. it closes at most what the position holds net of fees (spot: also at most the free
   balance plus what our own bracket locks; USD-M: also at most what ``positionRisk`` says
   the account holds on that side, read just before planning, shared out among our positions
   on the symbol in turn); with no position it is refused and touches nothing: Pacekeeper
   never sells coins no signal of its bought. A USD-M position reduced on the exchange behind
   our back closes what is left, and ends closed once that is sold (nothing left on the
   exchange: it ends closed without an order, its bracket cancelled);
4. spot cancels the bracket (whose coins the close sells) and then places the close; USD-M
   places the reduce-only close first and cancels the bracket after. A close the exchange
   rejects brings the bracket back in the same job.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from app.db import session_scope
from app.exchange.errors import Temporary
from app.exchange.filters import AlgoLimits, Market, to_wire
from app.execution import guards, queries
from app.execution.brackets import cancel_brackets, current_price, live_brackets
from app.execution.cancels import cancel_order
from app.execution.claims import Claim, heartbeat, transition
from app.execution.context import ExecContext
from app.execution.entries import open_algo_counts, usdt_rate
from app.execution.journal import add_orders, exit_filled
from app.execution.placement import OrderRejected, place
from app.execution.planning import OrderIntent, Refused, closing_side, plan_close
from app.execution.positions import apply_entry_fills, apply_exit_fills
from app.execution.protection import held, protect_position
from app.execution.result import Result
from app.models import (
    TERMINAL_ORDER_STATUSES,
    Order,
    OrderStatus,
    Position,
    SignalStatus,
)
from app.models import Signal as SignalRow
from app.signals.schemas import Action, Signal, TwapExecution, VpExecution

CLOSE_PREFIXES = ("exit", "close")
TERMINAL = frozenset(s.value for s in TERMINAL_ORDER_STATUSES)


def _closing(order: Order) -> bool:
    return order.leg.startswith(CLOSE_PREFIXES)


def run_close(ctx: ExecContext, claim: Claim, signal: Signal) -> Result:
    assert signal.market is not None and signal.symbol is not None
    sid = claim.signal_id
    market, symbol = signal.market.value, signal.symbol
    strategy = queries.strategy_of(signal.strategy)
    reason = f"{signal.action.value} signal {sid}"
    with session_scope(ctx.sessions) as session:
        planned = [o for o in queries.signal_orders(session, sid) if _closing(o)]
        positions = queries.open_positions(session, strategy, market, symbol, account=ctx.account)
    if not planned:
        if not positions:
            raise Refused(
                f"nothing to close: no open position for strategy {strategy} on {symbol} ({market})"
            )
        ids = [p.id for p in positions]
        _plan(ctx, claim, signal, ids, write=False)  # refused here: nothing was touched
        for position in positions:
            stop_entries(ctx, claim, position, reason=reason)
        gone = _plan(ctx, claim, signal, ids, write=True)
        if gone:
            _close_gone(ctx, claim, gone, reason=reason)
        with session_scope(ctx.sessions) as session:
            planned = [o for o in queries.signal_orders(session, sid) if _closing(o)]
        if not planned:
            if gone:
                return Result(SignalStatus.DONE, f"nothing to close: {GONE_NOTE}")
            return Result(
                SignalStatus.DONE, f"nothing to close: the entry on {symbol} filled nothing"
            )
    position_ids = sorted({o.position_id for o in planned if o.position_id is not None})
    if market == "spot":
        _cancel_brackets(ctx, claim, position_ids, reason=reason)
    try:
        placed = [place(ctx, o.id, claim) for o in planned]
    except OrderRejected:
        _restore(ctx, claim, position_ids)
        raise
    if market != "spot":
        _cancel_brackets(ctx, claim, position_ids, reason=reason)
    rules = ctx.client.symbol_rules(symbol, Market(market))
    dust = rules.lot.step_size if rules.lot is not None else Decimal(0)
    notes = []
    with session_scope(ctx.sessions) as session:
        now = ctx.clock.now()
        for order in placed:
            row = session.get(Position, order.position_id) if order.position_id else None
            if row is None:
                continue
            left = apply_exit_fills(session, row, now=now, dust=dust)
            if order.status != OrderStatus.WORKING.value:
                exit_filled(session, order, row)
            if row.status == "open" and _sold_what_was_left(order):
                note = f"{left} more in our books than on the exchange: {GONE_NOTE}"
                _mark_closed(row, note, now=now)
                notes.append(f"{left} was no longer on the exchange")
            if row.status == "open" and order.status != OrderStatus.WORKING.value:
                bracket = protect_position(
                    ctx, session, row, reason="rest of a partial close", claim=claim
                )
                notes.append(
                    f"{left} left" + (f", re-bracketed ({bracket.kind})" if bracket else "")
                )
    if any(o.status == OrderStatus.WORKING.value for o in placed):
        return Result(SignalStatus.WORKING, "closing order working on the exchange")
    closed = sum((o.executed_qty or Decimal(0) for o in placed), Decimal(0))
    return Result(SignalStatus.DONE, f"closed {closed} {symbol}" + "".join(f"; {n}" for n in notes))


def _cancel_brackets(
    ctx: ExecContext, claim: Claim, position_ids: list[int], *, reason: str
) -> None:
    with session_scope(ctx.sessions) as session:
        for position_id in position_ids:
            row = session.get(Position, position_id)
            if row is not None:
                cancel_brackets(ctx, session, row, reason=reason, claim=claim)


def _restore(ctx: ExecContext, claim: Claim, position_ids: list[int]) -> None:
    """The close was rejected: every position it was for gets its protection back now."""
    with session_scope(ctx.sessions) as session:
        for position_id in position_ids:
            row = session.get(Position, position_id)
            if row is not None and row.status == "open":
                protect_position(ctx, session, row, reason="the close was rejected", claim=claim)


def stop_entries(ctx: ExecContext, claim: Claim, position: Position, *, reason: str) -> None:
    """Cancel the position's working entry orders and record their final fills. A cancelled
    algo whose end is not visible yet (its last children may still fill) makes the job wait
    (``Temporary``): the close is sized only from final fills."""
    with session_scope(ctx.sessions) as session:
        entries = list(
            session.query(Order).filter(
                Order.position_id == position.id,
                Order.leg == "entry",
                Order.status.in_(queries.LIVE_ORDER),
            )
        )
        for order in entries:
            if order.signal_id is not None:
                owner = session.get(SignalRow, order.signal_id)
                if owner is not None and owner.status == SignalStatus.PROCESSING.value:
                    raise Temporary(f"signal {owner.id} is still being placed", retry_after=2)
    ended = [cancel_order(ctx, order.id, reason=reason, claim=claim) for order in entries]
    if any(o.status not in TERMINAL for o in ended):
        raise Temporary("waiting for the cancelled entry's final fills", retry_after=2)
    with session_scope(ctx.sessions) as session:
        for order in entries:
            if order.signal_id is not None:
                transition(session, order.signal_id, (SignalStatus.WORKING.value,),
                           SignalStatus.CANCELLED, reason, now=ctx.clock.now())  # fmt: skip
        row = session.get(Position, position.id)
        assert row is not None
        apply_entry_fills(session, row)
        if entries and not row.quantity and not row.exit_quantity:
            row.status = "closed"
            row.bracket_note = "entry cancelled before anything filled"


GONE_NOTE = "reduced on the exchange outside Pacekeeper, nothing of it is left there"
EXCHANGE_HELD = "exchange_held"  # a close's fact: it was cut to what positionRisk showed


def _exchange_holdings(ctx: ExecContext, symbol: str) -> dict[str, Decimal]:
    """What the USD-M account holds on ``symbol`` per closing side, from positionRisk: a
    SELL closes the long amounts, a BUY the short ones (one row in one-way mode)."""
    rows = ctx.client.position_risk(symbol)
    return {
        "SELL": sum((r.positionAmt for r in rows if r.positionAmt > 0), Decimal(0)),
        "BUY": sum((-r.positionAmt for r in rows if r.positionAmt < 0), Decimal(0)),
    }


def _sold_what_was_left(order: Order) -> bool:
    """A close cut to the exchange's position that executed all of it."""
    extra = order.extra or {}
    return (
        EXCHANGE_HELD in extra
        and order.status == OrderStatus.FILLED.value
        and order.quantity is not None
        and (order.executed_qty or Decimal(0)) >= order.quantity
    )


def _mark_closed(row: Position, note: str, *, now: datetime) -> None:
    row.status = "closed"
    row.closed_at = now
    row.bracket_note = note


def _close_gone(ctx: ExecContext, claim: Claim, position_ids: list[int], *, reason: str) -> None:
    """Positions of which the exchange holds nothing any more: their brackets are cancelled
    (a reduce-only stop left behind would close a later position) and they end closed."""
    _cancel_brackets(ctx, claim, position_ids, reason=reason)
    with session_scope(ctx.sessions) as session:
        for position_id in position_ids:
            row = session.get(Position, position_id)
            if row is not None and row.status == "open":
                _mark_closed(row, GONE_NOTE, now=ctx.clock.now())


def _quantity(signal: Signal, position: Position, free: Decimal | None) -> Decimal:
    """What to close: the signal's quantity, never more than the position holds; a spot long
    no more than ``free`` (its free balance plus what our own bracket locks)."""
    holding = held(position)
    quantity = min(signal.quantity, holding) if signal.quantity else holding
    if position.market == "spot" and position.side == "BUY" and free is not None:
        quantity = min(quantity, free)
    return quantity


def _plan(
    ctx: ExecContext, claim: Claim, signal: Signal, position_ids: list[int], *, write: bool
) -> list[int]:
    """Plan the close of each position (refused: ``Refused``); ``write``: store the rows.
    Returns the positions of which the exchange holds nothing (USD-M)."""
    assert signal.market is not None and signal.symbol is not None
    market, symbol = signal.market.value, signal.symbol
    rules = ctx.client.symbol_rules(symbol, Market(market))
    price = current_price(ctx, market, symbol)
    limits = AlgoLimits.from_settings(ctx.settings)
    base = "exit" if signal.action is Action.EXIT else "close"
    execution = signal.execution
    algo = execution.type if isinstance(execution, TwapExecution | VpExecution) else None
    quote_rate = Decimal(1)
    if algo is not None:
        quote_rate = usdt_rate(ctx, rules.quote_asset)
        count, every = open_algo_counts(ctx, market, algo)
        refusal = guards.evaluate(
            guards.Facts(entry=False, market=market, symbol=symbol,
                         strategy=queries.strategy_of(signal.strategy), algo=algo, open_algos=count,
                         open_spot_algos=every),
            ctx.settings,
        )  # fmt: skip
        if refusal is not None:
            raise Refused(refusal)
    # Read the balance before the transaction: an open session holds SQLite's write lock.
    free = ctx.client.account().free(rules.base_asset) if market == "spot" else None
    exchange = _exchange_holdings(ctx, symbol) if market == "usdm" and write else None
    gone: list[int] = []
    with session_scope(ctx.sessions) as session:
        positions = [p for p in (session.get(Position, i) for i in position_ids) if p is not None]
        intents: list[tuple[OrderIntent, int | None]] = []
        for n, position in enumerate(positions, start=1):
            side = closing_side(position.side)
            if signal.side is not None and signal.side.value.upper() != side:
                raise Refused(f"side {signal.side.value} does not close a {position.side} position")
            locked = sum((o.quantity or Decimal(0) for o in live_brackets(session, position)),
                         Decimal(0))  # fmt: skip
            quantity = _quantity(signal, position, None if free is None else free + locked)
            cut = exchange is not None and quantity > exchange[side]
            if exchange is not None:
                quantity = min(quantity, exchange[side])
                exchange[side] -= quantity
            if quantity <= 0:
                if cut and held(position) > 0:
                    gone.append(position.id)
                continue
            leg = base if len(positions) == 1 else f"{base}-{n}"
            intent = plan_close(signal, claim.signal_id, leg=leg, rules=rules, price=price,
                                quantity=quantity, side=side, limits=limits,
                                quote_rate=quote_rate)  # fmt: skip
            if cut:
                intent = replace(intent, facts={**intent.facts, EXCHANGE_HELD: to_wire(quantity)})
            intents.append((intent, position.id))
        if write:
            _write(session, claim, intents, now=ctx.clock.now())
    return gone


def _write(
    session: Session,
    claim: Claim,
    intents: list[tuple[OrderIntent, int | None]],
    *,
    now: datetime,
) -> None:
    heartbeat(session, claim, now=now)
    for intent, position_id in intents:
        add_orders(session, [intent], signal_id=claim.signal_id, position_id=position_id, now=now)
