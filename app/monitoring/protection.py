"""The monitor's protection pass: every open position, every cycle, against its bracket.

Runs after the cycle has recorded algo fills, settled brackets that left the exchange and
followed resting orders, so what it reads is this cycle's truth. For each open position:

* refresh what it holds from its fills (an entry TWAP's children recorded this cycle count);
  a position whose exits left less than one lot, with its entry ended, closes (dust no
  order can sell);
* a position being closed (an exit or a stop-out works) is left to its close;
* an entry that ended with nothing filled closes its position, so the next entry for the
  strategy and symbol is not refused by a stale one;
* a stop the market crossed while the entry still buys (the exchange's stop protects only
  what was filled when it triggered), or a spot stop-limit the price gapped past (it rests
  unfilled: its OCO list is done, the leg is not, and the bracket row stays working),
  applies the crossed-stop rule;
* otherwise ``protect_position`` places, grows, shrinks or restores its bracket (cancelled
  outside Pacekeeper, expired, rejected earlier with other inputs).

Costs: database reads per open position (closed ones are never read); the exchange only for a
position that needs an order, plus one price per symbol with a crossed-stop check to make.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from app.exchange.filters import Market
from app.execution.brackets import TERMINAL, bracket_orders, current_price
from app.execution.context import ExecContext
from app.execution.journal import event
from app.execution.planning import Crossed, Levels, closing_side
from app.execution.positions import apply_entry_fills, apply_exit_fills, entry_live
from app.execution.protection import (
    close_live,
    crossed,
    held,
    protect_position,
    stop_out,
)
from app.models import Order, Position
from app.monitoring import marks
from app.monitoring.lock import LockLost, SingleFlight

log = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass
class ProtectionResult:
    checked: int = 0
    placed: int = 0  # brackets placed, resized or restored
    closed_empty: int = 0
    stop_outs: int = 0
    errors: int = 0


def protect_positions(
    ctx: ExecContext, flight: SingleFlight, *, on_error: Callable[[str], None]
) -> ProtectionResult:
    """One pass over the open positions; an error is reported and the others go on."""
    result = ProtectionResult()
    with ctx.sessions() as session:
        rows = session.execute(
            select(Position.id, Position.market, Position.symbol)
            .where(Position.account == ctx.account, Position.status == "open")
            .order_by(Position.id)
        ).all()
    ids = [row.id for row in rows]
    prices: dict[tuple[str, str], Decimal] = {}

    def price(market: str, symbol: str) -> Decimal:
        key = (market, symbol)
        if key not in prices:
            prices[key] = current_price(ctx, market, symbol)
        return prices[key]

    for position_id in ids:
        result.checked += 1
        flight.ensure()
        try:
            _one(ctx, position_id, price, result)
        except LockLost:
            raise
        except Exception as exc:
            result.errors += 1
            on_error(f"protecting position {position_id}: {type(exc).__name__}: {exc}")
    if ctx.redis is not None:  # every open position's price, for its valuation (marks)
        for key in {(row.market, row.symbol) for row in rows} - prices.keys():
            try:
                price(*key)
            except Exception as exc:
                log.info("no price for %s %s this cycle: %s", *key, type(exc).__name__)
    marks.publish(ctx.redis, ctx.settings.queue_name, prices, now=ctx.clock.now().timestamp())
    return result


def _one(
    ctx: ExecContext,
    position_id: int,
    price: Callable[[str, str], Decimal],
    result: ProtectionResult,
) -> None:
    with ctx.sessions() as session:
        position = session.get(Position, position_id)
        if position is None or position.status != "open":
            return
        apply_entry_fills(session, position)
        closing = close_live(session, position_id)
        # What exits left below one lot cannot be sold by any order: once the entry has
        # ended, the position closes (no bracket could protect it, no close could end it).
        rules = ctx.client.symbol_rules(position.symbol, Market(position.market))
        dust = rules.lot.step_size if rules.lot is not None and not closing else ZERO
        apply_exit_fills(session, position, now=ctx.clock.now(), dust=dust)
        session.commit()
        if closing or position.status != "open":
            return  # being closed (the close owns it), or closed
        filling = entry_live(session, position_id)
        live = [o for o in bracket_orders(session, position) if o.status not in TERMINAL]
        if not filling and held(position) <= 0:
            if not position.exit_quantity and not live:
                position.status = "closed"
                position.closed_at = ctx.clock.now()
                position.bracket_note = "entry ended with nothing filled"
                event(session, "state", "position closed: its entry filled nothing",
                      signal_id=position.opened_by, position_id=position.id)  # fmt: skip
                session.commit()
                result.closed_empty += 1
            return
        levels = Levels.from_json(position.pending_bracket)
        if levels.empty:
            return
        if levels.stop_price is not None and (filling or _stop_limits(live)):
            last = price(position.market, position.symbol)
            why = _crossed_now(position, levels, live, last, filling=filling)
            if why is not None:
                if levels.exit_when_crossed:
                    result.stop_outs += 1
                    stop_out(ctx, session, position, reason=why)
                else:
                    crossed(ctx, session, position, Crossed(why), levels)
                return
        before = position.bracket_gen
        protect_position(ctx, session, position, reason="monitor")
        session.refresh(position)
        if position.bracket_gen != before:
            result.placed += 1


def _stop_limits(live: list[Order]) -> list[Decimal]:
    """The limit prices of the live spot stop-limit legs."""
    out = []
    for order in live:
        if order.kind == "stop_loss_limit" and order.price is not None:
            out.append(order.price)
        for name in ("above", "below"):
            leg = (order.extra or {}).get(name) or {}
            if leg.get("type") == "STOP_LOSS_LIMIT" and leg.get("price"):
                out.append(Decimal(str(leg["price"])))
    return out


def _crossed_now(
    position: Position, levels: Levels, live: list[Order], last: Decimal, *, filling: bool
) -> str | None:
    """Why the stop must act now, or None. While the entry fills, a crossed stop; with a
    spot stop-limit live, a price past its limit (the triggered leg cannot fill)."""
    assert levels.stop_price is not None
    sell = closing_side(position.side) == "SELL"
    beyond = (lambda level: last <= level) if sell else (lambda level: last >= level)
    if filling and beyond(levels.stop_price):
        return f"the price {last} crossed the stop {levels.stop_price} while the entry fills"
    for limit in _stop_limits(live):
        if (last < limit) if sell else (last > limit):
            return (
                f"the price {last} gapped past the stop-limit {limit} "
                f"(stop {levels.stop_price}): the stop rests unfilled"
            )
    return None
