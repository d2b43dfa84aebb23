"""A reverse: close the strategy's position on the symbol, then enter the other side.

The signal's ``side`` is the side of the new position. Its orders are the rows of an exit and
of an entry, with client ids derived from the signal like every other order, so a retry or a
run after a crash finds what was sent instead of sending it again. Each run goes on from what
the signal's rows say:

1. it has an ``entry`` row: the close is behind it; the entry is carried on (``run_entry``);
2. it has ``close`` rows: they are carried on (placed if still planned, looked up while they
   work) and the run is retried until they have ended, so the entry never goes out beside a
   close still working;
3. neither: the strategy's open positions on the symbol decide. One already on ``side`` is
   refused (nothing to reverse, nothing sent); one on the other side is closed at market as
   an exit closes it (``closes.run_close``: cancel a working entry and wait for its final
   fills, never more than the position holds, spot bracket cancelled first, USD-M reduce-only
   close first); none: the reverse simply enters.

The entry is an ordinary entry, sized (``quantity``, ``quote_quantity``, ``balance_percent``
after the close has freed the balance, ``risk_percent``), guarded and protected by its
``take_profit`` / ``stop_loss`` bracket; a close that left more than dust open refuses it,
and so does the kill switch (exits still run while trading is halted, entries do not).
Spot cannot hold a short, so a spot reverse into a sell is refused at intake (422); on spot a
reverse turns a sell position (coins sold) back into a buy.
"""

from __future__ import annotations

from decimal import Decimal

from app.db import session_scope
from app.exchange.errors import Temporary
from app.exchange.filters import Market, to_wire
from app.execution import queries
from app.execution.claims import Claim
from app.execution.closes import run_close
from app.execution.context import ExecContext
from app.execution.entries import run_entry
from app.execution.planning import Refused
from app.execution.positions import ENTRY_LEG, apply_exit_fills
from app.execution.protection import held
from app.execution.resting import follow_order
from app.execution.result import Result
from app.models import Order, OrderStatus, Position
from app.signals.schemas import MarketExecution, Signal

CLOSE_LEG = "close"  # run_close's legs for a close that is not an exit: close, close-1, ...
RETRY_S = 2.0


def run_reverse(ctx: ExecContext, claim: Claim, signal: Signal, orders: list[Order]) -> Result:
    """``orders``: the signal's rows as a previous run left them (none the first time)."""
    if not any(o.leg == ENTRY_LEG for o in orders):
        _close(ctx, claim, signal, orders)
    closed = _closed_note(ctx, claim.signal_id)
    try:
        result = run_entry(ctx, claim, signal, orders, last=False)
    except Refused as exc:
        if closed is None:
            raise
        raise Refused(f"{closed}; the entry was refused: {exc}") from None
    if closed is None:
        return result
    return Result(result.status, f"{closed}; {result.reason}")


def _closing(signal: Signal) -> Signal:
    """The close half of the reverse: all the position holds, at market, either side."""
    return signal.model_copy(
        update={
            "side": None, "quantity": None, "quote_quantity": None, "balance_percent": None,
            "risk_percent": None, "execution": MarketExecution(),
        }
    )  # fmt: skip


def _close(ctx: ExecContext, claim: Claim, signal: Signal, orders: list[Order]) -> None:
    """Close what the reverse turns round; return once it is closed, or raise (``Refused``:
    nothing to reverse or the close was refused; ``Temporary``: the close still works)."""
    assert signal.market is not None and signal.symbol is not None and signal.side is not None
    market, symbol, side = signal.market.value, signal.symbol, signal.side.value.upper()
    closes = [o for o in orders if o.leg.startswith(CLOSE_LEG)]
    if not closes:
        strategy = queries.strategy_of(signal.strategy)
        with session_scope(ctx.sessions) as session:
            holding = queries.open_positions(session, strategy, market, symbol, account=ctx.account)
        if any(p.side == side for p in holding):
            raise Refused(
                f"strategy {strategy} already holds a {side} position on {symbol} ({market}): "
                "nothing to reverse"
            )
        if not holding:
            return
        _run_close(ctx, claim, signal)
    elif any(o.status == OrderStatus.PLANNED.value for o in closes):
        _run_close(ctx, claim, signal)  # a run that wrote the closes stopped before sending
    else:
        for order in closes:
            if order.status == OrderStatus.WORKING.value:
                follow_order(ctx, order.id)
    _check_closed(ctx, claim.signal_id, market, symbol)


def _run_close(ctx: ExecContext, claim: Claim, signal: Signal) -> None:
    try:
        run_close(ctx, claim, _closing(signal))
    except Refused as exc:
        raise Refused(f"the close was refused: {exc}") from None


def _check_closed(ctx: ExecContext, signal_id: str, market: str, symbol: str) -> None:
    """The entry may go out: every close has ended and left at most dust open."""
    rules = ctx.client.symbol_rules(symbol, Market(market))
    dust = rules.lot.step_size if rules.lot is not None else Decimal(0)
    with session_scope(ctx.sessions) as session:
        closes = [
            o for o in queries.signal_orders(session, signal_id) if o.leg.startswith(CLOSE_LEG)
        ]
        if any(o.status in queries.LIVE_ORDER for o in closes):
            raise Temporary(
                "the close is still working: the entry follows once it has ended",
                retry_after=RETRY_S,
            )
        for position_id in sorted({o.position_id for o in closes if o.position_id is not None}):
            position = session.get(Position, position_id)
            if position is None:
                continue
            left = apply_exit_fills(session, position, now=ctx.clock.now(), dust=dust)
            if position.status == "open" and held(position) > 0:
                raise Refused(
                    f"the close left {left} {symbol} of position {position_id} open: "
                    "the entry on the other side is not placed"
                )


def _closed_note(ctx: ExecContext, signal_id: str) -> str | None:
    with session_scope(ctx.sessions) as session:
        closes = [
            o for o in queries.signal_orders(session, signal_id) if o.leg.startswith(CLOSE_LEG)
        ]
    executed = sum((o.executed_qty or Decimal(0) for o in closes), Decimal(0))
    if not executed:
        return None
    sides = "/".join(sorted({"BUY" if o.side == "SELL" else "SELL" for o in closes}))
    return f"closed {to_wire(executed)} {closes[0].symbol} of the {sides} position"
