"""Planning: a signal, the symbol's filters, a price and the open position -> order intents.

Pure code: no session, no client, no clock. Every intent carries a client id derived from the
signal id and its leg (``app.exchange.ids``), so planning the same signal twice gives the same
ids, and a retry finds the first order instead of placing another.

What each action becomes:

| action                 | spot                                  | usdm                         |
| ---------------------- | ------------------------------------- | ---------------------------- |
| entry, market          | MARKET (quantity or quoteOrderQty)    | MARKET                       |
| entry, limit           | LIMIT GTC                             | LIMIT GTC                    |
| entry, twap / vp       | TWAP (optional limitPrice)            | TWAP, or VP with urgency     |
| tp / sl, limit at P    | the position's bracket with P as its  | TAKE_PROFIT_MARKET /         |
|                        | take-profit (tp) or stop (sl): an OCO | STOP_MARKET at P with        |
|                        | when both levels are known, else one  | closePosition, replacing the |
|                        | TAKE_PROFIT_LIMIT / STOP_LOSS_LIMIT   | same leg                     |
| tp / sl / exit, market | close now: MARKET                     | MARKET reduceOnly            |
| tp / sl / exit, twap   | close with a TWAP                     | TWAP reduceOnly              |
| exit, limit            | LIMIT GTC                             | LIMIT GTC reduceOnly         |

(The signal contract keeps take-profit and stop-loss levels on entries; a stand-alone tp or
sl names its level as ``execution.price``.) An entry's levels become the position's pending
bracket, placed for the quantity actually received once the entry has filled.

Brackets close the position: a long's bracket SELLs (take-profit LIMIT_MAKER above the last
price, stop below it), a short's BUYs (mirrored). A STOP_LOSS_LIMIT needs a limit price; when
the signal gave none it is the stop moved by ``stop_limit_slippage`` away from the market
(stop x (1 - slippage) for a SELL, x (1 + slippage) for a BUY), rounded to the tick, so a
gap through the stop still fills unless the price runs that far past it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from app.exchange.filters import (
    AlgoLimits,
    FilterViolation,
    SymbolRules,
    check_notional,
    check_twap,
    check_vp,
    round_price,
    round_quantity,
    to_wire,
)
from app.exchange.ids import client_algo_id, client_order_id
from app.signals.schemas import (
    Action,
    LimitExecution,
    MarketExecution,
    Signal,
    TwapExecution,
    VpExecution,
)

ALGO_KINDS = frozenset({"twap", "vp"})
BRACKET = "bracket"


class Refused(Exception):
    """The signal cannot be planned as asked; nothing is sent. ``str()`` is the reason."""


@dataclass(frozen=True)
class Levels:
    """A bracket's levels: take-profit price, stop trigger and optional stop-limit price."""

    take_profit: Decimal | None = None
    stop_price: Decimal | None = None
    stop_limit: Decimal | None = None

    @property
    def empty(self) -> bool:
        return self.take_profit is None and self.stop_price is None

    def merged(self, newer: Levels) -> Levels:
        """These levels with every level ``newer`` sets replacing ours."""
        stop_changed = newer.stop_price is not None
        return Levels(
            take_profit=newer.take_profit or self.take_profit,
            stop_price=newer.stop_price or self.stop_price,
            stop_limit=newer.stop_limit if stop_changed else self.stop_limit,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.take_profit is not None:
            out["take_profit"] = {"price": to_wire(self.take_profit)}
        if self.stop_price is not None:
            stop = {"stop_price": to_wire(self.stop_price)}
            if self.stop_limit is not None:
                stop["limit_price"] = to_wire(self.stop_limit)
            out["stop_loss"] = stop
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> Levels:
        raw = raw or {}
        tp, sl = raw.get("take_profit") or {}, raw.get("stop_loss") or {}

        def dec(value: Any) -> Decimal | None:
            return Decimal(str(value)) if value not in (None, "") else None

        return cls(dec(tp.get("price")), dec(sl.get("stop_price")), dec(sl.get("limit_price")))

    @classmethod
    def of_entry(cls, signal: Signal) -> Levels:
        tp, sl = signal.take_profit, signal.stop_loss
        return cls(
            tp.price if tp else None,
            sl.stop_price if sl else None,
            sl.limit_price if sl else None,
        )


@dataclass(frozen=True)
class OcoLegIntent:
    type: str  # LIMIT_MAKER or STOP_LOSS_LIMIT
    client_id: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None


@dataclass(frozen=True)
class OrderIntent:
    """One order to place, with everything needed to send and to record it."""

    leg: str
    # market, limit, twap, vp, oco, take_profit_limit, stop_loss_limit, conditional
    kind: str
    market: str
    symbol: str
    side: str  # BUY / SELL
    client_id: str
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    duration: int | None = None
    urgency: str | None = None
    reduce_only: bool = False
    close_position: bool = False
    order_type: str | None = None  # conditional: TAKE_PROFIT_MARKET / STOP_MARKET
    above: OcoLegIntent | None = None
    below: OcoLegIntent | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # stored in Order.extra

    @property
    def is_algo(self) -> bool:
        return self.kind in ALGO_KINDS

    def extra(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.facts)
        if self.reduce_only:
            out["reduce_only"] = True
        if self.close_position:
            out["close_position"] = True
        if self.order_type:
            out["order_type"] = self.order_type
        for name, leg in (("above", self.above), ("below", self.below)):
            if leg is not None:
                out[name] = {
                    "type": leg.type,
                    "client_id": leg.client_id,
                    "price": to_wire(leg.price) if leg.price is not None else None,
                    "stop_price": to_wire(leg.stop_price) if leg.stop_price is not None else None,
                    "time_in_force": leg.time_in_force,
                }
        return out


@dataclass(frozen=True)
class Plan:
    intents: list[OrderIntent]
    levels: Levels = Levels()  # an entry's pending bracket


@dataclass(frozen=True)
class NotProtected:
    """Why a bracket was not placed (too small, levels already crossed); not a failure."""

    note: str


def closing_side(position_side: str) -> str:
    return "SELL" if position_side.upper() == "BUY" else "BUY"


def _refuse(violation: FilterViolation) -> Refused:
    return Refused(str(violation))


def _sized(signal: Signal, rules: SymbolRules, price: Decimal, *, market_order: bool) -> Decimal:
    """Base quantity of an entry: its quantity, or its quote amount at ``price``, rounded down."""
    quantity = signal.quantity
    if quantity is None:
        assert signal.quote_quantity is not None
        quantity = signal.quote_quantity / price
    return round_quantity(rules, quantity, market_order=market_order)


def plan_entry(
    signal: Signal,
    signal_id: str,
    *,
    rules: SymbolRules,
    price: Decimal,
    limits: AlgoLimits,
) -> Plan:
    """The entry order of ``signal`` (``price``: last spot price, or USD-M mark price)."""
    assert signal.side is not None and signal.market is not None and signal.symbol is not None
    side = signal.side.value.upper()
    market, symbol = signal.market.value, signal.symbol
    facts = {"base_asset": rules.base_asset, "quote_asset": rules.quote_asset}
    base = OrderIntent(
        leg="entry", kind="market", market=market, symbol=symbol, side=side,
        client_id=client_order_id(signal_id, "entry"), facts=facts,
    )  # fmt: skip
    execution = signal.execution or MarketExecution()
    try:
        if isinstance(execution, MarketExecution):
            intent = _market(signal, base, rules, price)
        elif isinstance(execution, LimitExecution):
            limit = round_price(rules, execution.price, side)
            quantity = _sized(signal, rules, limit, market_order=False)
            check_notional(rules, quantity, limit)
            intent = replace(base, kind="limit", quantity=quantity, price=limit)
        else:
            intent = _algo(
                signal, signal_id, base, execution, rules, price, limits, reduce_only=False
            )
    except FilterViolation as exc:
        raise _refuse(exc) from None
    return Plan([intent], Levels.of_entry(signal))


def _market(signal: Signal, base: OrderIntent, rules: SymbolRules, price: Decimal) -> OrderIntent:
    if base.market == "spot" and signal.quantity is None:
        assert signal.quote_quantity is not None
        quote = signal.quote_quantity
        check_notional(rules, quote / price, price, market_order=True)
        return replace(base, quote_quantity=quote)
    quantity = _sized(signal, rules, price, market_order=True)
    check_notional(rules, quantity, price, market_order=True)
    return replace(base, quantity=quantity)


def _algo(
    signal: Signal,
    signal_id: str,
    base: OrderIntent,
    execution: TwapExecution | VpExecution,
    rules: SymbolRules,
    price: Decimal,
    limits: AlgoLimits,
    *,
    reduce_only: bool,
    quantity: Decimal | None = None,
) -> OrderIntent:
    limit = execution.limit_price
    if limit is not None:
        limit = round_price(rules, limit, base.side, field="limit_price")
    if quantity is None:
        quantity = _sized(signal, rules, limit or price, market_order=False)
    else:
        quantity = round_quantity(rules, quantity)
    # Open-algo capacity is a guard (app.execution.guards), checked with live counts.
    if isinstance(execution, TwapExecution):
        check_twap(
            rules, limits, quantity=quantity, duration=execution.duration,
            reference_price=price, open_algos=0,
        )  # fmt: skip
        return replace(
            base, kind="twap", client_id=client_algo_id(signal_id, base.leg),
            quantity=quantity, duration=execution.duration, limit_price=limit,
            reduce_only=reduce_only and base.market == "usdm",
        )  # fmt: skip
    check_vp(rules, limits, quantity=quantity, reference_price=price, open_algos=0)
    return replace(
        base, kind="vp", client_id=client_algo_id(signal_id, base.leg), quantity=quantity,
        urgency=execution.urgency.value, limit_price=limit, reduce_only=reduce_only,
    )  # fmt: skip


def plan_close(
    signal: Signal,
    signal_id: str,
    *,
    leg: str,
    rules: SymbolRules,
    price: Decimal,
    quantity: Decimal,
    side: str,
    limits: AlgoLimits,
) -> OrderIntent:
    """An order that closes ``quantity`` (exit, or a tp/sl executed now): ``side`` is the
    closing side. USD-M closes are reduce-only, so they can never open the other way."""
    assert signal.market is not None and signal.symbol is not None
    market = signal.market.value
    usdm = market == "usdm"
    base = OrderIntent(
        leg=leg, kind="market", market=market, symbol=signal.symbol, side=side,
        client_id=client_order_id(signal_id, leg), reduce_only=usdm,
        facts={"base_asset": rules.base_asset, "quote_asset": rules.quote_asset},
    )  # fmt: skip
    execution = signal.execution or MarketExecution()
    try:
        if isinstance(execution, LimitExecution):
            limit = round_price(rules, execution.price, side)
            amount = round_quantity(rules, quantity)
            check_notional(rules, amount, limit, reduce_only=usdm)
            return replace(base, kind="limit", quantity=amount, price=limit)
        if isinstance(execution, TwapExecution | VpExecution):
            return _algo(
                signal, signal_id, base, execution, rules, price, limits,
                reduce_only=True, quantity=quantity,
            )  # fmt: skip
        amount = round_quantity(rules, quantity, market_order=True)
        check_notional(rules, amount, price, market_order=True, reduce_only=usdm)
        return replace(base, quantity=amount)
    except FilterViolation as exc:
        raise _refuse(exc) from None


def signal_levels(signal: Signal) -> Levels:
    """The level a stand-alone tp or sl sets: ``execution.price`` (limit execution)."""
    execution = signal.execution
    if not isinstance(execution, LimitExecution):
        return Levels()
    if signal.action is Action.TP:
        return Levels(take_profit=execution.price)
    return Levels(stop_price=execution.price)


def stop_limit_price(
    rules: SymbolRules, stop: Decimal, side: str, slippage: Decimal, given: Decimal | None
) -> Decimal:
    """The limit of a STOP_LOSS_LIMIT: the one given, or the stop moved by ``slippage``
    against the closing side; never on the wrong side of the stop after rounding."""
    sell = side == "SELL"
    raw = given if given is not None else stop * (1 - slippage if sell else 1 + slippage)
    limit = round_price(rules, raw, side, field="stop_loss.limit_price", purpose="stop_limit")
    return min(limit, stop) if sell else max(limit, stop)


def plan_bracket(
    *,
    signal_id: str,
    leg: str,
    market: str,
    symbol: str,
    rules: SymbolRules,
    price: Decimal,
    position_side: str,
    quantity: Decimal,
    levels: Levels,
    slippage: Decimal,
) -> list[OrderIntent] | NotProtected:
    """Orders protecting ``quantity`` of a position at ``levels``, or why there are none.

    ``price`` is the last spot price (or USD-M mark price) the levels must straddle.
    Spot: an OCO for both levels, else one TAKE_PROFIT_LIMIT or STOP_LOSS_LIMIT, for the
    quantity rounded down to the step size. USD-M: TAKE_PROFIT_MARKET / STOP_MARKET with
    closePosition, which close whatever the position holds when they trigger.
    """
    if levels.empty:
        return NotProtected("no take-profit or stop-loss level")
    side = closing_side(position_side)
    sell = side == "SELL"
    try:
        tp = round_price(rules, levels.take_profit, side) if levels.take_profit else None
        stop = (
            round_price(rules, levels.stop_price, side, field="stop_price")
            if levels.stop_price
            else None
        )
    except FilterViolation as exc:
        return NotProtected(f"not protected: {exc}")
    # SELL: take-profit > last > stop; BUY: take-profit < last < stop.
    if tp is not None and (tp <= price if sell else tp >= price):
        where = "above" if sell else "below"
        return NotProtected(
            f"not protected: take-profit {to_wire(tp)} is not {where} the last price "
            f"{to_wire(price)}"
        )
    if stop is not None and (stop >= price if sell else stop <= price):
        where = "below" if sell else "above"
        return NotProtected(
            f"not protected: stop {to_wire(stop)} is not {where} the last price {to_wire(price)}"
        )
    base = OrderIntent(
        leg=leg, kind="oco", market=market, symbol=symbol, side=side,
        client_id=client_order_id(signal_id, leg),
    )  # fmt: skip
    if market == "usdm":
        return _conditional_bracket(base, signal_id, tp, stop, quantity)
    try:
        amount = round_quantity(rules, quantity)
        limit = (
            stop_limit_price(rules, stop, side, slippage, levels.stop_limit)
            if stop is not None
            else None
        )
        lowest = min(p for p in (tp, limit) if p is not None)
        check_notional(rules, amount, lowest)
    except FilterViolation as exc:
        return NotProtected(f"too small to protect: {exc}")
    tp_id, sl_id = client_order_id(signal_id, f"{leg}-tp"), client_order_id(signal_id, f"{leg}-sl")
    if tp is not None and stop is not None:
        profit = OcoLegIntent("LIMIT_MAKER", tp_id, price=tp)
        loss = OcoLegIntent("STOP_LOSS_LIMIT", sl_id, limit, stop, "GTC")
        above, below = (profit, loss) if sell else (loss, profit)
        return [
            replace(base, quantity=amount, above=above, below=below, facts={"bracket_leg": "both"})
        ]
    if tp is not None:
        return [
            replace(
                base, leg=f"{leg}-tp", kind="take_profit_limit", client_id=tp_id,
                quantity=amount, price=tp, stop_price=tp, facts={"bracket_leg": "tp"},
            )
        ]  # fmt: skip
    return [
        replace(
            base, leg=f"{leg}-sl", kind="stop_loss_limit", client_id=sl_id,
            quantity=amount, price=limit, stop_price=stop,
        )
    ]  # fmt: skip


def _conditional_bracket(
    base: OrderIntent,
    signal_id: str,
    tp: Decimal | None,
    stop: Decimal | None,
    quantity: Decimal,
) -> list[OrderIntent] | NotProtected:
    if quantity <= 0:
        return NotProtected("too small to protect: the position holds nothing")
    out = []
    for name, level, order_type in (
        ("tp", tp, "TAKE_PROFIT_MARKET"),
        ("sl", stop, "STOP_MARKET"),
    ):
        if level is None:
            continue
        leg = f"{base.leg}-{name}"
        out.append(
            replace(
                base, leg=leg, kind="conditional", client_id=client_order_id(signal_id, leg),
                stop_price=level, order_type=order_type, close_position=True,
                facts={"bracket_leg": name},
            )
        )  # fmt: skip
    return out
