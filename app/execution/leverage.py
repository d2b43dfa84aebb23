"""A usdm entry's ``leverage`` and ``margin_type``, set on the symbol before the entry is sent.

The symbol's current settings come from positionRisk; only what differs is changed (margin
type first: Binance refuses that change while the symbol holds a position or open orders, and
a refusal then leaves the leverage as it was). The leverage brackets are checked first: a
leverage above the symbol's maximum, or a position (what is held plus this entry) above the
notional cap of the bracket that leverage falls in, refuses the signal with the reason and
nothing is sent. Any other refusal by the exchange refuses the signal too; an answer that never
came is temporary (both changes are idempotent, so the retry simply reads again).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.exchange import Rejected, Temporary, UnknownOutcome
from app.execution.context import ExecContext
from app.execution.planning import Refused
from app.signals.schemas import Signal


@dataclass(frozen=True)
class Settled:
    leverage: int | None
    margin_type: str | None


def settle(ctx: ExecContext, signal: Signal, notional: Decimal) -> Settled:
    """Make the symbol's leverage and margin type what ``signal`` asks; return what is set."""
    leverage = signal.leverage
    margin = signal.margin_type.value if signal.margin_type is not None else None
    if leverage is None and margin is None:
        return Settled(None, None)
    assert signal.symbol is not None
    symbol = signal.symbol
    try:
        rows = ctx.client.position_risk(symbol)
        held = sum((abs(row.notional or Decimal(0)) for row in rows), Decimal(0))
        current = rows[0] if rows else None
        if leverage is not None:
            _check_brackets(ctx, symbol, leverage, held + notional)
        if margin is not None and (current is None or current.marginType != margin):
            ctx.client.change_margin_type(symbol, margin)
        if leverage is not None and (current is None or current.leverage != leverage):
            ctx.client.change_leverage(symbol, leverage)
    except Rejected as exc:
        raise Refused(
            f"the exchange refused leverage/margin type on {symbol}: {exc.msg} (code {exc.code})"
        ) from None
    except UnknownOutcome as exc:
        raise Temporary(f"leverage/margin type on {symbol}: {exc}") from None
    if current is not None and current.leverage is not None and leverage is None:
        leverage = int(current.leverage)
    if current is not None and margin is None:
        margin = current.marginType
    return Settled(leverage, margin)


def _check_brackets(ctx: ExecContext, symbol: str, leverage: int, notional: Decimal) -> None:
    brackets = ctx.client.leverage_brackets(symbol)
    top = brackets.max_leverage()
    if leverage > top:
        raise Refused(f"leverage {leverage} is above {symbol}'s maximum of {top}x")
    cap = brackets.max_notional(leverage)
    if notional > cap:
        raise Refused(
            f"a {notional.normalize():f} USDT position on {symbol} is above the "
            f"{cap.normalize():f} USDT its leverage brackets allow at {leverage}x"
        )
