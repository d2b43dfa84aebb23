"""Breakeven: once take-profit target ``stop_loss.breakeven_after`` has filled, the stop for
the rest moves to where closing it loses nothing. Pure.

What one held unit cost is the entry's quote amount plus its commissions, over what the
position received (a spot BUY receives the coins bought less the commission taken in them).
Closing it costs a commission too, not known before it happens: it is taken at the entry's
own rate; a commission paid in a third asset (BNB), whose price is not known here, or not
known at all (USD-M order answers carry none), counts at ``MIN_FEE_RATE``. So a long's stop
goes to ``cost per unit / (1 - rate)``, a short's to ``proceeds per unit / (1 + rate)``,
rounded to the tick on the safe side (up for a long, down for a short). A stop already
beyond that stays where it is (breakeven never loosens a stop).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from app.execution.ladder import targets_done
from app.execution.planning import Levels

ZERO = Decimal(0)
# Binance's standard spot commission, above every USD-M taker rate: the safe guess.
MIN_FEE_RATE = Decimal("0.001")


@dataclass(frozen=True)
class EntryFill:
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    fee: Decimal
    fee_asset: str | None


@dataclass(frozen=True)
class EntryFees:
    rate: Decimal  # commissions as a share of the notional: the close is taken to pay it too
    cost: Decimal  # commissions not already taken from the coins received, in quote


def entry_fees(fills: Iterable[EntryFill], *, base_asset: str, quote_asset: str) -> EntryFees:
    """What the entry paid in commissions (in a third asset, BNB, or unknown: at
    MIN_FEE_RATE)."""
    notional = in_base = in_quote = third = ZERO
    for fill in fills:
        notional += fill.quote_qty
        if fill.fee_asset == base_asset:
            in_base += fill.fee * fill.price
        elif fill.fee_asset == quote_asset:
            in_quote += fill.fee
        elif fill.fee or fill.fee_asset is None:
            # BNB, or not known: a USD-M order's answer and a TWAP's summary carry none.
            third += fill.quote_qty * MIN_FEE_RATE
    if not notional:
        return EntryFees(ZERO, ZERO)
    rate = (in_base + in_quote + third) / notional
    return EntryFees(max(rate, MIN_FEE_RATE) if third else rate, in_quote + third)


def breakeven_price(
    *, long: bool, received: Decimal, entry_cost: Decimal, fees: EntryFees, tick: Decimal
) -> Decimal:
    """The stop at which closing a held unit returns what it cost, commissions included
    (a spot BUY's commission taken in the coins is in ``received`` already)."""
    if long:
        per_unit = (entry_cost + fees.cost) / received
        return _to_tick(per_unit / (1 - fees.rate), tick, ROUND_CEILING)
    per_unit = (entry_cost - fees.cost) / received
    return _to_tick(per_unit / (1 + fees.rate), tick, ROUND_FLOOR)


def _to_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    if tick <= 0:
        return price
    return (price / tick).to_integral_value(rounding=rounding) * tick


def with_breakeven(
    levels: Levels,
    *,
    long: bool,
    total: Decimal,
    holding: Decimal,
    step: Decimal,
    breakeven: Decimal | None,
) -> Levels:
    """``levels`` with the stop at ``breakeven`` once the breakeven target has filled (and
    the stop is not already beyond it); otherwise ``levels`` unchanged."""
    after = levels.breakeven_after
    if after is None or breakeven is None or not levels.targets:
        return levels
    if targets_done(total, holding, levels.targets, step) < after:
        return levels
    stop = levels.stop_price
    if stop is not None and (stop >= breakeven if long else stop <= breakeven):
        return levels
    return replace(levels, stop_price=breakeven, stop_limit=None)
