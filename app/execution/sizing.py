"""Sizing an entry from the account: ``balance_percent`` and ``risk_percent``.

Pure code. The worker reads the account just before it plans the entry (``Funds``: spot
``GET /api/v3/account``; USD-M ``GET /fapi/v3/account`` and ``/fapi/v1/commissionRate``)
and this turns the signal's percent into a base quantity (p = percent / 100, f = the taker
fee rate, L = the leverage, P = the entry's price, S = the stop):

| method          | spot BUY              | spot SELL        | usdm                           |
| --------------- | --------------------- | ---------------- | ------------------------------ |
| balance_percent | free quote x p / P    | free base x p    | available x p x L / (1 + L f) / P |
| risk_percent    | equity x p / (abs(P - S) + f (P + S)), on every market               |

``P`` is the limit price of a limit (or limited TWAP/VP) entry, else the last spot / mark
price. USD-M reserves the entry's fee out of the margin (margin + fee = available x p). Spot
equity is what the account holds in the symbol's two assets (free and locked), valued in the
quote asset; USD-M equity is ``totalMarginBalance`` (wallet plus unrealized PnL).

Then the caps, each one that bites recorded: what the account can pay for (spot BUY: the free
quote; spot SELL: the free base; usdm: all available margin, fee reserved), the max-notional
guards (per signal; per symbol less what is already exposed) and the symbol's maxQty. Last,
the quantity is rounded down to the step size; below minQty or the minimum notional the
signal is refused with the reason: a size is never rounded up to a minimum.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.exchange.filters import FilterViolation, SymbolRules, check_notional, round_quantity
from app.exchange.filters import to_wire as w
from app.execution.planning import Refused

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class Method(enum.StrEnum):
    BALANCE = "balance_percent"
    RISK = "risk_percent"


@dataclass(frozen=True)
class Funds:
    """The account as read just before sizing."""

    free: Decimal  # what the entry spends: spot BUY quote, spot SELL base, usdm available margin
    asset: str  # the asset ``free`` is counted in
    equity: Decimal  # account equity, in the quote asset
    fee_rate: Decimal  # taker commission, a fraction (0.001 = 0.1 %)
    leverage: int = 1  # usdm


@dataclass(frozen=True)
class Sized:
    """A sized quantity and how it was derived (stored on the entry order, shown by the API)."""

    method: Method
    percent: Decimal
    market: str
    side: str
    price: Decimal
    funds: Funds
    wanted: Decimal  # base quantity before caps and rounding
    quantity: Decimal  # what is sent: capped, rounded down to the step size
    stop_price: Decimal | None = None
    capped_by: list[str] = field(default_factory=list)

    def basis(self) -> str:
        f = self.funds
        if self.method is Method.RISK:
            stop = w(self.stop_price or ZERO)
            return f"{w(self.percent)}% of equity {w(f.equity)} risked to the stop {stop}"
        if self.market == "usdm":
            return f"{w(self.percent)}% of available margin {w(f.free)} {f.asset} at {f.leverage}x"
        return f"{w(self.percent)}% of free {w(f.free)} {f.asset}"

    def describe(self) -> str:
        out = f"{self.method.value} {self.basis()} at {w(self.price)}: {w(self.quantity)}"
        if self.capped_by:
            out += f" (capped by {', '.join(self.capped_by)})"
        return out

    def as_json(self) -> dict[str, Any]:
        f = self.funds
        out: dict[str, Any] = {
            "method": self.method.value,
            "percent": w(self.percent),
            "price": w(self.price),
            "free": w(f.free),
            "free_asset": f.asset,
            "equity": w(f.equity),
            "fee_rate": w(f.fee_rate),
            "wanted": w(self.wanted),
            "quantity": w(self.quantity),
            "capped_by": list(self.capped_by),
        }
        if self.market == "usdm":
            out["leverage"] = f.leverage
        if self.stop_price is not None:
            out["stop_price"] = w(self.stop_price)
        return out


def affordable(market: str, side: str, price: Decimal, funds: Funds) -> Decimal:
    """The most base quantity the account can pay for at ``price``."""
    if market == "usdm":
        lev = Decimal(funds.leverage)
        return max(funds.free, ZERO) * lev / (1 + lev * funds.fee_rate) / price
    if side == "SELL":
        return max(funds.free, ZERO)
    return max(funds.free, ZERO) / price


def size(
    method: Method,
    percent: Decimal,
    *,
    market: str,
    side: str,
    price: Decimal,
    funds: Funds,
    rules: SymbolRules,
    market_order: bool,
    stop_price: Decimal | None = None,
    max_notional: Decimal | None = None,
) -> Sized:
    """The quantity ``percent`` asks for (see the module docstring); ``Refused`` when it is
    below the symbol's minimum or cannot be measured. ``max_notional``: the tightest
    max-notional guard left for this entry, in the quote asset."""
    share = percent / HUNDRED
    can_pay = affordable(market, side, price, funds)
    if method is Method.RISK:
        if stop_price is None:
            raise Refused("risk_percent needs stop_loss")
        below = side == "BUY"
        if (stop_price >= price) if below else (stop_price <= price):
            where = "below" if below else "above"
            raise Refused(
                f"risk_percent: stop_loss.stop_price ({w(stop_price)}) is not {where} the entry "
                f"price ({w(price)}), so there is no risk to size from"
            )
        per_unit = abs(price - stop_price) + funds.fee_rate * (price + stop_price)
        wanted = max(funds.equity, ZERO) * share / per_unit
    elif market == "usdm" or side == "BUY":
        wanted = can_pay * share
    else:
        wanted = max(funds.free, ZERO) * share
    quantity, capped = wanted, []
    caps = [("the free balance" if market == "spot" else "the available margin", can_pay)]
    if max_notional is not None:
        caps.append(("max notional", max(max_notional, ZERO) / price))
    lots = [r for r in (rules.lot, rules.market_lot if market_order else None) if r]
    for lot in lots:
        if lot.max_qty > 0:
            caps.append((f"maxQty {w(lot.max_qty)}", lot.max_qty))
    for name, cap in caps:
        if quantity > cap:
            quantity = cap
            capped.append(name)
    if method is not Method.RISK:
        stop_price = None  # the stop plays no part in the size
    sized = Sized(method, percent, market, side, price, funds, wanted, quantity, stop_price, capped)
    try:
        rounded = round_quantity(rules, quantity, market_order=market_order)
        check_notional(rules, rounded, price, market_order=market_order)
    except FilterViolation as exc:
        raise Refused(
            f"{method.value} {sized.basis()} at {w(price)} gives {w(quantity)}: {exc}; "
            "refused (a size is never rounded up to the minimum)"
        ) from None
    return Sized(method, percent, market, side, price, funds, wanted, rounded, stop_price, capped)
