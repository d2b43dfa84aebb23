"""Symbol filters from exchangeInfo, rounding toward the safe side, and Binance's algo limits.

Pure code: values in, values out, ``Decimal`` only. Every refusal is a ``FilterViolation``
that names the filter, the field, the value and the bound.

Rounding rules (``purpose`` is the argument of ``round_price`` / ``price_rounding``):

| value (purpose)                  | BUY          | SELL       | why                              |
| -------------------------------- | ------------ | ---------- | -------------------------------- |
| quantity                         | down to step | down       | never trade more than asked/held |
| limit / take-profit price        | down to tick | up to tick | never pay more, never sell for   |
| (``"limit"``, ``"take_profit"``) |              |            | less than asked                  |
| stop trigger (``"stop"``)        | down         | up         | triggers no later than asked, so |
|                                  |              |            | the loss never exceeds the one   |
|                                  |              |            | accepted                         |
| limit price of a protective      | up           | down       | the stop must get out: a limit   |
| stop-limit (``"stop_limit"``)    |              |            | rounded the other way could be   |
|                                  |              |            | skipped past and never fill      |

So a plain limit, take-profit or stop trigger of a BUY rounds down and of a SELL rounds up
(the default, ``purpose="limit"``); only a stop-limit's limit price rounds the other way,
toward filling. Values go on the wire through ``to_wire`` (plain notation, never an exponent).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext
from typing import Any, Literal


class Market(enum.StrEnum):
    """Where an order goes: Binance spot, or USD-M futures (the only two markets we trade)."""

    SPOT = "spot"
    USDM = "usdm"


# What a price is for; decides its rounding direction (see the module docstring).
PricePurpose = Literal["limit", "take_profit", "stop", "stop_limit"]
ZERO = Decimal(0)


class FilterViolation(ValueError):
    """An order breaks a symbol filter or an algo limit; nothing was sent."""

    def __init__(self, filter: str, field: str, value: Any, problem: str) -> None:
        self.filter = filter
        self.field = field
        self.value = value
        super().__init__(f"{field} ({_show(value)}) {problem} [{filter}]")


def _show(value: Any) -> str:
    return to_wire(value) if isinstance(value, Decimal) else str(value)


def to_wire(value: Decimal) -> str:
    """A Decimal as Binance wants it: plain digits, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _dec(raw: Mapping[str, Any], key: str) -> Decimal:
    value = raw.get(key)
    return Decimal(str(value)) if value not in (None, "") else ZERO


@dataclass(frozen=True)
class QuantityRule:
    min_qty: Decimal
    max_qty: Decimal
    step_size: Decimal  # 0 disables the step rule
    filter: str = "LOT_SIZE"


@dataclass(frozen=True)
class PriceRule:
    min_price: Decimal
    max_price: Decimal
    tick_size: Decimal  # any field 0 disables that rule


@dataclass(frozen=True)
class NotionalRule:
    min_notional: Decimal  # 0: no minimum
    max_notional: Decimal  # 0: no maximum
    apply_min_to_market: bool = True
    apply_max_to_market: bool = True
    filter: str = "NOTIONAL"


@dataclass(frozen=True)
class PercentPriceRule:
    bid_up: Decimal
    bid_down: Decimal
    ask_up: Decimal
    ask_down: Decimal
    filter: str = "PERCENT_PRICE_BY_SIDE"


@dataclass(frozen=True)
class SymbolRules:
    symbol: str
    market: Market
    status: str
    base_asset: str
    quote_asset: str
    price: PriceRule | None = None
    lot: QuantityRule | None = None
    market_lot: QuantityRule | None = None
    notional: NotionalRule | None = None
    percent_price: PercentPriceRule | None = None
    oco_allowed: bool = False
    order_types: tuple[str, ...] = ()


def parse_symbol(raw: Mapping[str, Any], market: Market) -> SymbolRules:
    """One ``symbols[]`` entry of spot or USD-M exchangeInfo."""
    rules: dict[str, Any] = {}
    for f in raw.get("filters", []):
        kind = f.get("filterType")
        if kind == "PRICE_FILTER":
            rules["price"] = PriceRule(
                _dec(f, "minPrice"), _dec(f, "maxPrice"), _dec(f, "tickSize")
            )
        elif kind in ("LOT_SIZE", "MARKET_LOT_SIZE"):
            rule = QuantityRule(_dec(f, "minQty"), _dec(f, "maxQty"), _dec(f, "stepSize"), kind)
            rules["lot" if kind == "LOT_SIZE" else "market_lot"] = rule
        elif kind == "NOTIONAL":
            rules["notional"] = NotionalRule(
                _dec(f, "minNotional"),
                _dec(f, "maxNotional"),
                bool(f.get("applyMinToMarket", True)),
                bool(f.get("applyMaxToMarket", True)),
            )
        elif kind == "MIN_NOTIONAL" and "notional" in f:  # USD-M shape
            rules["notional"] = NotionalRule(_dec(f, "notional"), ZERO, filter="MIN_NOTIONAL")
        elif kind == "MIN_NOTIONAL" and "notional" not in rules:  # legacy spot shape
            apply = bool(f.get("applyToMarket", True))
            rules["notional"] = NotionalRule(
                _dec(f, "minNotional"), ZERO, apply, False, "MIN_NOTIONAL"
            )
        elif kind == "PERCENT_PRICE_BY_SIDE":
            rules["percent_price"] = PercentPriceRule(
                _dec(f, "bidMultiplierUp"),
                _dec(f, "bidMultiplierDown"),
                _dec(f, "askMultiplierUp"),
                _dec(f, "askMultiplierDown"),
            )
        elif kind == "PERCENT_PRICE" and "percent_price" not in rules:
            up, down = _dec(f, "multiplierUp"), _dec(f, "multiplierDown")
            rules["percent_price"] = PercentPriceRule(up, down, up, down, "PERCENT_PRICE")
    return SymbolRules(
        symbol=raw["symbol"],
        market=market,
        status=str(raw.get("status", "")),
        base_asset=str(raw.get("baseAsset", "")),
        quote_asset=str(raw.get("quoteAsset", "")),
        oco_allowed=bool(raw.get("ocoAllowed", False)),
        order_types=tuple(raw.get("orderTypes", ())),
        **rules,
    )


def parse_exchange_info(data: Mapping[str, Any], market: Market) -> dict[str, SymbolRules]:
    return {s["symbol"]: parse_symbol(s, market) for s in data.get("symbols", [])}


# ---- rounding --------------------------------------------------------------------------


def _to_multiple(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return (value / step).to_integral_value(rounding=rounding) * step


def price_rounding(side: str, purpose: PricePurpose = "limit") -> str:
    """BUY prices round down, SELL prices round up, except the limit price of a stop-limit,
    which rounds toward filling: BUY up, SELL down (see the module docstring)."""
    buy = side.upper() == "BUY"
    if purpose == "stop_limit":
        return ROUND_UP if buy else ROUND_DOWN
    return ROUND_DOWN if buy else ROUND_UP


def round_quantity(rules: SymbolRules, quantity: Decimal, *, market_order: bool = False) -> Decimal:
    """Round down to LOT_SIZE (and MARKET_LOT_SIZE for market orders), then check the bounds."""
    if quantity <= 0:
        raise FilterViolation("LOT_SIZE", "quantity", quantity, "must be positive")
    quantity_rules = [r for r in (rules.lot, rules.market_lot if market_order else None) if r]
    steps = sorted((r.step_size for r in quantity_rules if r.step_size > 0), reverse=True)
    rounded = _to_multiple(quantity, steps[0], ROUND_DOWN) if steps else quantity
    for rule in quantity_rules:
        if rule.step_size > 0 and rounded % rule.step_size != 0:
            raise FilterViolation(
                rule.filter, "stepSize", rule.step_size, f"does not divide {to_wire(rounded)}"
            )
        if rounded < rule.min_qty or rounded <= 0:
            raise FilterViolation(
                rule.filter,
                "quantity",
                quantity,
                f"rounds to {to_wire(rounded)}, below minQty {to_wire(rule.min_qty)}",
            )
        if rule.max_qty > 0 and rounded > rule.max_qty:
            raise FilterViolation(
                rule.filter, "quantity", quantity, f"must not exceed maxQty {to_wire(rule.max_qty)}"
            )
    return rounded


def round_price(
    rules: SymbolRules,
    price: Decimal,
    side: str,
    *,
    field: str = "price",
    purpose: PricePurpose = "limit",
) -> Decimal:
    """Round to tickSize toward the safe side for ``side`` and ``purpose``, then check
    minPrice/maxPrice. ``side`` is the side of the order the price belongs to (the closing
    side for a stop or take-profit)."""
    if price <= 0:
        raise FilterViolation("PRICE_FILTER", field, price, "must be positive")
    rule = rules.price
    if rule is None:
        return price
    rounded = price
    if rule.tick_size > 0:
        rounded = _to_multiple(price, rule.tick_size, price_rounding(side, purpose))
    if rule.min_price > 0 and rounded < rule.min_price:
        raise FilterViolation(
            "PRICE_FILTER", field, price, f"must be at least minPrice {to_wire(rule.min_price)}"
        )
    if rule.max_price > 0 and rounded > rule.max_price:
        raise FilterViolation(
            "PRICE_FILTER", field, price, f"must not exceed maxPrice {to_wire(rule.max_price)}"
        )
    return rounded


def check_notional(
    rules: SymbolRules,
    quantity: Decimal,
    price: Decimal,
    *,
    market_order: bool = False,
    reduce_only: bool = False,
) -> None:
    """NOTIONAL / MIN_NOTIONAL on the final values (``price`` = reference price for market)."""
    rule = rules.notional
    if rule is None:
        return
    notional = quantity * price
    check_min = (not market_order or rule.apply_min_to_market) and not reduce_only
    if check_min and rule.min_notional > 0 and notional < rule.min_notional:
        raise FilterViolation(
            rule.filter,
            "notional",
            notional,
            f"must be at least {to_wire(rule.min_notional)} {rules.quote_asset}",
        )
    check_max = not market_order or rule.apply_max_to_market
    if check_max and rule.max_notional > 0 and notional > rule.max_notional:
        raise FilterViolation(
            rule.filter,
            "notional",
            notional,
            f"must not exceed {to_wire(rule.max_notional)} {rules.quote_asset}",
        )


def check_percent_price(
    rules: SymbolRules, price: Decimal, side: str, reference_price: Decimal
) -> None:
    """PERCENT_PRICE_BY_SIDE (or PERCENT_PRICE): the price must stay near the reference."""
    rule = rules.percent_price
    if rule is None:
        return
    buy = side.upper() == "BUY"
    up, down = (rule.bid_up, rule.bid_down) if buy else (rule.ask_up, rule.ask_down)
    low, high = reference_price * down, reference_price * up
    if down > 0 and price < low:
        raise FilterViolation(rule.filter, "price", price, f"must be at least {to_wire(low)}")
    if up > 0 and price > high:
        raise FilterViolation(rule.filter, "price", price, f"must not exceed {to_wire(high)}")


@dataclass(frozen=True)
class OrderAmounts:
    quantity: Decimal
    price: Decimal | None = None


def prepare_order(
    rules: SymbolRules,
    *,
    side: str,
    quantity: Decimal,
    price: Decimal | None = None,
    reference_price: Decimal | None = None,
    market_order: bool = False,
    reduce_only: bool = False,
    purpose: PricePurpose = "limit",
) -> OrderAmounts:
    """Round quantity and price, then check notional and percent-price with the final values."""
    qty = round_quantity(rules, quantity, market_order=market_order)
    rounded = round_price(rules, price, side, purpose=purpose) if price is not None else None
    basis = rounded if rounded is not None else reference_price
    if basis is not None:
        check_notional(rules, qty, basis, market_order=market_order, reduce_only=reduce_only)
    if rounded is not None and reference_price is not None:
        check_percent_price(rules, rounded, side, reference_price)
    return OrderAmounts(qty, rounded)


# ---- algo limits (sapi TWAP / VP) ------------------------------------------------------


@dataclass(frozen=True)
class AlgoLimits:
    """Duration, notional (USDT-equivalent) and open-order bounds for TWAP and VP."""

    min_duration: int = 300
    max_duration: int = 86_400
    twap_min_notional: Decimal = Decimal(1000)
    twap_max_notional_spot: Decimal = Decimal(100_000)
    twap_max_notional_usdm: Decimal = Decimal(1_000_000)
    vp_min_notional: Decimal = Decimal(10_000)
    vp_max_notional: Decimal = Decimal(1_000_000)
    max_open_twap_spot: int = 20
    max_open_twap_usdm: int = 30
    max_open_vp: int = 10

    @classmethod
    def from_settings(cls, settings: Any) -> AlgoLimits:
        return cls(
            min_duration=settings.twap_min_duration,
            max_duration=settings.twap_max_duration,
            twap_min_notional=settings.twap_min_notional,
            twap_max_notional_spot=settings.twap_max_notional_spot,
            twap_max_notional_usdm=settings.twap_max_notional_usdm,
            vp_min_notional=settings.vp_min_notional,
            vp_max_notional=settings.vp_max_notional,
            max_open_twap_spot=settings.max_open_twap_spot,
            max_open_twap_usdm=settings.max_open_twap_usdm,
            max_open_vp=settings.max_open_vp,
        )


def _check_notional_bounds(
    algo: str,
    rules: SymbolRules,
    quote_notional: Decimal,
    quote_rate: Decimal,
    low: Decimal,
    high: Decimal,
) -> None:
    """The bounds are in USDT: ``quote_notional`` (in the symbol's quote asset) times
    ``quote_rate`` (USDT per unit of the quote asset); a converted figure names both."""
    notional = quote_notional * quote_rate
    shown = f"{to_wire(notional)} USDT"
    if quote_rate != 1:
        shown += (
            f" = {to_wire(quote_notional)} {rules.quote_asset}"
            f" at {to_wire(quote_rate)} USDT per {rules.quote_asset}"
        )
    if notional < low:
        raise FilterViolation(algo, "notional", shown, f"must be at least {to_wire(low)} USDT")
    if notional > high:
        raise FilterViolation(algo, "notional", shown, f"must not exceed {to_wire(high)} USDT")


def check_twap(
    rules: SymbolRules,
    limits: AlgoLimits,
    *,
    quantity: Decimal,
    duration: int,
    reference_price: Decimal,
    open_algos: int,
    quote_rate: Decimal = Decimal(1),
) -> None:
    """Refuse a TWAP Binance would refuse; ``quote_rate`` converts the quote asset to USDT."""
    if not limits.min_duration <= duration <= limits.max_duration:
        raise FilterViolation(
            "TWAP",
            "duration",
            duration,
            f"must be between {limits.min_duration} and {limits.max_duration} seconds",
        )
    usdm = rules.market == "usdm"
    high = limits.twap_max_notional_usdm if usdm else limits.twap_max_notional_spot
    _check_notional_bounds(
        "TWAP", rules, quantity * reference_price, quote_rate, limits.twap_min_notional, high
    )
    if usdm and rules.lot is not None:
        per_minute = quantity * 60 / duration
        if per_minute <= rules.lot.min_qty:
            raise FilterViolation(
                "TWAP",
                "quantity*60/duration",
                per_minute,
                f"must be greater than minQty {to_wire(rules.lot.min_qty)}",
            )
    max_open = limits.max_open_twap_usdm if usdm else limits.max_open_twap_spot
    _check_open("TWAP", open_algos, max_open)


def check_vp(
    rules: SymbolRules,
    limits: AlgoLimits,
    *,
    quantity: Decimal,
    reference_price: Decimal,
    open_algos: int,
    quote_rate: Decimal = Decimal(1),
) -> None:
    """Refuse a VP Binance would refuse: USD-M, or spot (since 2026-10-09), whose VP keeps
    within the spot maximum as well as the VP bounds."""
    high = limits.vp_max_notional
    if rules.market == "spot":
        high = min(high, limits.twap_max_notional_spot)
    _check_notional_bounds(
        "VP", rules, quantity * reference_price, quote_rate, limits.vp_min_notional, high
    )
    _check_open("VP", open_algos, limits.max_open_vp)


def _check_open(algo: str, open_algos: int, max_open: int) -> None:
    if open_algos >= max_open:
        raise FilterViolation(
            algo, "open algo orders", open_algos, f"must be below the maximum {max_open}"
        )
