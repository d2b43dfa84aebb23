"""Planning: a signal, the symbol's filters, a price and the open position -> order intents.

Pure code: no session, no client, no clock. Every intent carries a client id derived from the
signal id and its leg (``app.exchange.ids``), so planning the same signal twice gives the same
ids, and a retry finds the first order instead of placing another.

What each action becomes:

| action                 | spot                                  | usdm                         |
| ---------------------- | ------------------------------------- | ---------------------------- |
| entry, market          | MARKET (quantity or quoteOrderQty)    | MARKET                       |
| entry, limit           | LIMIT GTC                             | LIMIT GTC                    |
| entry, twap / vp       | TWAP, or VP with urgency (optional    | TWAP, or VP with urgency     |
|                        | limitPrice)                           |                              |
| tp / sl, limit at P    | the position's bracket with P as its  | TAKE_PROFIT_MARKET /         |
|                        | take-profit (tp) or stop (sl): an OCO | STOP_MARKET at P with        |
|                        | when both levels are known, else one  | closePosition, replacing the |
|                        | TAKE_PROFIT_LIMIT / STOP_LOSS_LIMIT   | same leg                     |
| tp / sl / exit, market | close now: MARKET                     | MARKET reduceOnly            |
| tp / sl / exit, twap   | close with a TWAP (or VP)             | TWAP (or VP) reduceOnly      |
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
    check_percent_price,
    check_twap,
    check_vp,
    round_price,
    round_quantity,
    to_wire,
)
from app.exchange.ids import client_algo_id, client_order_id
from app.execution.ladder import Slice, open_slices
from app.models import ALGO_KINDS, OrderKind
from app.signals.schemas import (
    Action,
    LimitExecution,
    MarketExecution,
    Signal,
    TwapExecution,
    VpExecution,
)

BRACKET = "bracket"


class Refused(Exception):
    """The signal cannot be planned as asked; nothing is sent. ``str()`` is the reason."""


@dataclass(frozen=True)
class Levels:
    """A bracket's levels: take-profit price, stop trigger, optional stop-limit price, the
    stop's type (``market``: spot STOP_LOSS; ``limit``: STOP_LOSS_LIMIT) and what a stop the
    market already crossed means (``exit``: close now; ``alert``: tell a human).

    A take-profit ladder is ``targets`` ((price, fraction), ...), and ``take_profit`` is then
    its first (nearest) price; ``breakeven_after`` is the target after which the stop moves
    to the entry's average price plus fees (``app.execution.breakeven``); ``trailing_rate``
    (percent) and ``trailing_activation`` make the stop trail."""

    take_profit: Decimal | None = None
    stop_price: Decimal | None = None
    stop_limit: Decimal | None = None
    stop_type: str | None = None  # None: "limit" with a stop_limit, else "market"
    if_crossed: str | None = None  # None: "exit"
    targets: tuple[tuple[Decimal, Decimal], ...] = ()
    breakeven_after: int | None = None
    trailing_rate: Decimal | None = None
    trailing_activation: Decimal | None = None

    @property
    def empty(self) -> bool:
        return self.take_profit is None and self.stop_price is None

    @property
    def stop_kind(self) -> str:
        if self.stop_type is not None:
            return self.stop_type
        return "limit" if self.stop_limit is not None else "market"

    @property
    def exit_when_crossed(self) -> bool:
        return (self.if_crossed or "exit") == "exit"

    def merged(self, newer: Levels) -> Levels:
        """These levels with every level ``newer`` sets replacing ours (a new stop keeps our
        stop's type and crossed rule unless it names its own; a new take-profit replaces a
        ladder, and with it the breakeven counted on its targets)."""
        stop_changed = newer.stop_price is not None
        tp_changed = newer.take_profit is not None
        return Levels(
            take_profit=newer.take_profit or self.take_profit,
            stop_price=newer.stop_price or self.stop_price,
            stop_limit=newer.stop_limit if stop_changed else self.stop_limit,
            stop_type=(newer.stop_type if stop_changed else None) or self.stop_type,
            if_crossed=newer.if_crossed or self.if_crossed,
            targets=newer.targets if tp_changed else self.targets,
            breakeven_after=newer.breakeven_after
            if tp_changed
            else newer.breakeven_after or self.breakeven_after,
            trailing_rate=newer.trailing_rate or self.trailing_rate,
            trailing_activation=newer.trailing_activation
            if newer.trailing_rate
            else self.trailing_activation,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.targets:
            out["take_profit"] = [
                {"price": to_wire(price), "fraction": to_wire(fraction)}
                for price, fraction in self.targets
            ]
        elif self.take_profit is not None:
            out["take_profit"] = {"price": to_wire(self.take_profit)}
        if self.stop_price is not None:
            stop: dict[str, Any] = {"stop_price": to_wire(self.stop_price)}
            if self.stop_limit is not None:
                stop["limit_price"] = to_wire(self.stop_limit)
            if self.stop_type is not None:
                stop["type"] = self.stop_type
            if self.if_crossed is not None:
                stop["if_crossed"] = self.if_crossed
            if self.breakeven_after is not None:
                stop["breakeven_after"] = self.breakeven_after
            if self.trailing_rate is not None:
                trailing = {"callback_rate": to_wire(self.trailing_rate)}
                if self.trailing_activation is not None:
                    trailing["activation_price"] = to_wire(self.trailing_activation)
                stop["trailing"] = trailing
            out["stop_loss"] = stop
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> Levels:
        raw = raw or {}
        tp, sl = raw.get("take_profit") or {}, raw.get("stop_loss") or {}

        def dec(value: Any) -> Decimal | None:
            return Decimal(str(value)) if value not in (None, "") else None

        targets: tuple[tuple[Decimal, Decimal], ...] = ()
        if isinstance(tp, list):
            targets = tuple((Decimal(str(t["price"])), Decimal(str(t["fraction"]))) for t in tp)
            tp = {"price": targets[0][0]} if targets else {}
        after = sl.get("breakeven_after")
        trailing = sl.get("trailing") or {}
        return cls(
            dec(tp.get("price")),
            dec(sl.get("stop_price")),
            dec(sl.get("limit_price")),
            sl.get("type"),
            sl.get("if_crossed"),
            targets,
            int(after) if after is not None else None,
            dec(trailing.get("callback_rate")),
            dec(trailing.get("activation_price")),
        )

    @classmethod
    def of_entry(cls, signal: Signal) -> Levels:
        tp, sl = signal.take_profit, signal.stop_loss
        targets = tuple((t.price, t.fraction) for t in (tp.targets or [])) if tp else ()
        return cls(
            tp.nearest if tp else None,
            sl.stop_price if sl else None,
            sl.limit_price if sl else None,
            sl.stop_type.value if sl else None,
            sl.if_crossed.value if sl else None,
            targets,
            sl.breakeven_after if sl else None,
            sl.trailing.callback_rate if sl and sl.trailing else None,
            sl.trailing.activation_price if sl and sl.trailing else None,
        )


@dataclass(frozen=True)
class OcoLegIntent:
    type: str  # LIMIT_MAKER, STOP_LOSS or STOP_LOSS_LIMIT
    client_id: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None
    trailing_delta: int | None = None  # BIPS: a trailing stop leg, with no stop price


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
                if leg.trailing_delta is not None:
                    out[name]["trailing_delta"] = leg.trailing_delta
        return out


@dataclass(frozen=True)
class Plan:
    intents: list[OrderIntent]
    levels: Levels = Levels()  # an entry's pending bracket


@dataclass(frozen=True)
class NotProtected:
    """Why a bracket was not placed (too small, a price outside the filters)."""

    note: str


@dataclass(frozen=True)
class Crossed(NotProtected):
    """The market is already past the stop (or the take-profit): a stop order would trigger,
    a take-profit LIMIT_MAKER would take, at once. The position is closed now (``exit``) or a
    human is told (``alert``), per the level's ``if_crossed``."""

    level: str = "stop"  # "stop" or "take_profit"


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
    quote_rate: Decimal = Decimal(1),
) -> Plan:
    """The entry order of ``signal`` (``price``: last spot price, or USD-M mark price;
    ``quote_rate``: USDT per unit of the quote asset, for the TWAP/VP bounds in USDT)."""
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
            check_percent_price(rules, limit, side, price)  # else the exchange refuses it
            intent = replace(base, kind="limit", quantity=quantity, price=limit)
        else:
            intent = _algo(
                signal, signal_id, base, execution, rules, price, limits, reduce_only=False,
                quote_rate=quote_rate,
            )  # fmt: skip
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
    quote_rate: Decimal = Decimal(1),
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
            reference_price=price, open_algos=0, quote_rate=quote_rate,
        )  # fmt: skip
        return replace(
            base, kind=OrderKind.TWAP, client_id=client_algo_id(signal_id, base.leg),
            quantity=quantity, duration=execution.duration, limit_price=limit,
            reduce_only=reduce_only and base.market == "usdm",
        )  # fmt: skip
    check_vp(
        rules, limits, quantity=quantity, reference_price=price, open_algos=0,
        quote_rate=quote_rate,
    )  # fmt: skip
    return replace(
        base, kind=OrderKind.VP, client_id=client_algo_id(signal_id, base.leg), quantity=quantity,
        urgency=execution.urgency.value, limit_price=limit,
        reduce_only=reduce_only and base.market == "usdm",
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
    quote_rate: Decimal = Decimal(1),
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
                reduce_only=True, quantity=quantity, quote_rate=quote_rate,
            )  # fmt: skip
        amount = round_quantity(rules, quantity, market_order=True)
        check_notional(rules, amount, price, market_order=True, reduce_only=usdm)
        return replace(base, quantity=amount)
    except FilterViolation as exc:
        raise _refuse(exc) from None


def plan_market_close(
    *,
    key: str,
    leg: str,
    market: str,
    symbol: str,
    side: str,
    quantity: Decimal,
    rules: SymbolRules,
    price: Decimal,
) -> OrderIntent | NotProtected:
    """A MARKET order closing ``quantity`` of a position now (reduce-only on USD-M), with a
    client id from ``key`` and ``leg``; or why it cannot be sent."""
    usdm = market == "usdm"
    try:
        amount = round_quantity(rules, quantity, market_order=True)
        check_notional(rules, amount, price, market_order=True, reduce_only=usdm)
    except FilterViolation as exc:
        return NotProtected(str(exc))
    return OrderIntent(
        leg=leg, kind="market", market=market, symbol=symbol, side=side,
        client_id=client_order_id(key, leg), quantity=amount, reduce_only=usdm,
        facts={"base_asset": rules.base_asset, "quote_asset": rules.quote_asset},
    )  # fmt: skip


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


def crossing(
    tp: Decimal | None, stop: Decimal | None, *, side: str, price: Decimal
) -> Crossed | None:
    """The level ``price`` already passed for a bracket closing on ``side``, if any.
    SELL (a long): take-profit > last > stop; BUY (a short): take-profit < last < stop."""
    sell = side == "SELL"
    if stop is not None and (stop >= price if sell else stop <= price):
        where = "below" if sell else "above"
        return Crossed(
            f"stop {to_wire(stop)} is not {where} the last price {to_wire(price)}", "stop"
        )
    if tp is not None and (tp <= price if sell else tp >= price):
        where = "above" if sell else "below"
        return Crossed(
            f"take-profit {to_wire(tp)} is not {where} the last price {to_wire(price)}",
            "take_profit",
        )
    return None


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
    entry_quantity: Decimal | None = None,
) -> list[OrderIntent] | NotProtected:
    """Orders protecting ``quantity`` of a position at ``levels``, or why there are none.

    ``price`` is the last spot price (or USD-M mark price) the levels must straddle; a level
    the market already passed is :class:`Crossed` (its order could never rest). Spot: an OCO
    for both levels (take-profit LIMIT_MAKER, stop STOP_LOSS or STOP_LOSS_LIMIT), else one
    TAKE_PROFIT_LIMIT / STOP_LOSS / STOP_LOSS_LIMIT, for the quantity rounded down to the
    step size. A take-profit or stop-limit price outside PERCENT_PRICE_BY_SIDE would be
    refused: the bracket then goes out without the take-profit, or with a market stop, and
    says so. USD-M: TAKE_PROFIT_MARKET / STOP_MARKET with ``quantity`` and ``reduceOnly``
    (never ``closePosition``, which closes every share of the symbol and allows one order
    per direction), so each position keeps its own protection.

    A ladder (``levels.targets``) is sized from ``entry_quantity`` (what the entry received;
    ``quantity`` when not given) by ``app.execution.ladder``, for the targets still open:
    spot, one OCO per target with the stop for its slice; USD-M, one reduce-only
    TAKE_PROFIT_MARKET per target and one reduce-only STOP_MARKET for all of ``quantity``.
    """
    if levels.empty:
        return NotProtected("no take-profit or stop-loss level")
    if levels.targets:
        return _ladder(
            signal_id=signal_id, leg=leg, market=market, symbol=symbol, rules=rules,
            price=price, position_side=position_side, quantity=quantity, levels=levels,
            slippage=slippage, entry_quantity=entry_quantity or quantity,
        )  # fmt: skip
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
    passed = crossing(tp, stop, side=side, price=price)
    if passed is not None:
        return passed
    base = OrderIntent(
        leg=leg, kind="oco", market=market, symbol=symbol, side=side,
        client_id=client_order_id(signal_id, leg), facts={"levels": levels.to_json()},
    )  # fmt: skip
    if market == "usdm":
        return _conditional_bracket(base, signal_id, rules, tp, stop, quantity, levels, price)
    notes: list[str] = []
    stop_kind = levels.stop_kind
    limit = None
    if stop is not None and stop_kind == "limit":
        try:
            limit = stop_limit_price(rules, stop, side, slippage, levels.stop_limit)
            check_percent_price(rules, limit, side, price)
        except FilterViolation as exc:
            notes.append(f"stop-limit price refused ({exc}): a market stop instead")
            stop_kind, limit = "market", None
    if tp is not None:
        try:
            check_percent_price(rules, tp, side, price)
        except FilterViolation as exc:
            if stop is None:
                return NotProtected(f"not protected: take-profit {exc}")
            notes.append(f"take-profit left out ({exc})")
            tp = None
    try:
        amount = round_quantity(rules, quantity)
        lowest = min(p for p in (tp, limit if limit is not None else stop) if p is not None)
        check_notional(rules, amount, lowest)
    except FilterViolation as exc:
        return NotProtected(f"too small to protect: {exc}")
    delta = _trailing_delta(levels, stop, side, price, notes) if stop_kind == "market" else None
    facts = {**base.facts, "notes": notes} if notes else base.facts
    tp_id, sl_id = client_order_id(signal_id, f"{leg}-tp"), client_order_id(signal_id, f"{leg}-sl")
    if tp is not None and stop is not None:
        profit = OcoLegIntent("LIMIT_MAKER", tp_id, price=tp)
        loss = (
            OcoLegIntent("STOP_LOSS_LIMIT", sl_id, limit, stop, "GTC")
            if stop_kind == "limit"
            else OcoLegIntent("STOP_LOSS", sl_id, stop_price=stop)
            if delta is None
            else OcoLegIntent("STOP_LOSS", sl_id, trailing_delta=delta)
        )
        above, below = (profit, loss) if sell else (loss, profit)
        return [
            replace(
                base, quantity=amount, above=above, below=below,
                facts={**facts, "bracket_leg": "both"},
            )
        ]  # fmt: skip
    if tp is not None:
        return [
            replace(
                base, leg=f"{leg}-tp", kind="take_profit_limit", client_id=tp_id,
                quantity=amount, price=tp, stop_price=tp, facts={**facts, "bracket_leg": "tp"},
            )
        ]  # fmt: skip
    assert stop is not None
    kind = "stop_loss_limit" if stop_kind == "limit" else "stop_loss"
    if delta is not None:
        facts = {**facts, "trailing_delta": delta}
    return [
        replace(
            base, leg=f"{leg}-sl", kind=kind, client_id=sl_id, quantity=amount, price=limit,
            stop_price=stop if delta is None else None, facts={**facts, "bracket_leg": "sl"},
        )
    ]  # fmt: skip


def _trailing_delta(
    levels: Levels, stop: Decimal | None, side: str, price: Decimal, notes: list[str]
) -> int | None:
    """A spot stop leg's ``trailingDelta`` (BIPS), or None for a fixed stop. Binance's spot
    trailing stop, sent without a stopPrice, tracks from the last price: it starts at
    ``price`` less the delta (a SELL). Starting below the signal's stop it would protect less
    than asked, so the fixed stop goes out instead, and a note says so."""
    if levels.trailing_rate is None or stop is None:
        return None
    delta = int(levels.trailing_rate * 100)
    sell = side == "SELL"
    start = price * (1 - Decimal(delta) / 10_000 if sell else 1 + Decimal(delta) / 10_000)
    if (start < stop) if sell else (start > stop):
        notes.append(
            f"trailing stop left out: from {to_wire(price)} it would start at "
            f"{to_wire(start)}, beyond the stop {to_wire(stop)}"
        )
        return None
    return delta


def _conditional_bracket(
    base: OrderIntent,
    signal_id: str,
    rules: SymbolRules,
    tp: Decimal | None,
    stop: Decimal | None,
    quantity: Decimal,
    levels: Levels,
    price: Decimal,
) -> list[OrderIntent] | NotProtected:
    try:
        amount = round_quantity(rules, quantity)
    except FilterViolation as exc:
        return NotProtected(f"too small to protect: {exc}")
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
                quantity=amount, stop_price=level, order_type=order_type, reduce_only=True,
                facts={**base.facts, "bracket_leg": name},
            )
        )  # fmt: skip
    if levels.trailing_rate is not None and stop is not None:
        out.append(_trailing_stop(base, signal_id, rules, amount, levels, price))
    return out


def _ladder(
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
    entry_quantity: Decimal,
) -> list[OrderIntent] | NotProtected:
    slices = ladder_slices(levels, rules, market, total=entry_quantity, holding=quantity)
    single = replace(levels, targets=(), take_profit=None)
    if not slices:
        return plan_bracket(
            signal_id=signal_id, leg=leg, market=market, symbol=symbol, rules=rules,
            price=price, position_side=position_side, quantity=quantity, levels=single,
            slippage=slippage,
        )  # fmt: skip
    count = len(levels.targets)
    facts = {"levels": levels.to_json(), "targets": count}
    out: list[OrderIntent] = []
    for part in slices:
        # USD-M: a take-profit per target here, the stop for everything below; spot: an OCO
        # per target, each with the stop for its own slice.
        own = replace(single if market == "spot" else Levels(), take_profit=part.price)
        planned = plan_bracket(
            signal_id=signal_id, leg=f"{leg}-t{part.target}", market=market, symbol=symbol,
            rules=rules, price=price, position_side=position_side, quantity=part.quantity,
            levels=own, slippage=slippage,
        )  # fmt: skip
        if isinstance(planned, NotProtected):
            return planned
        out += [replace(i, facts={**i.facts, **facts, "target": part.target}) for i in planned]
    if market == "usdm" and levels.stop_price is not None:
        stop = plan_bracket(
            signal_id=signal_id, leg=leg, market=market, symbol=symbol, rules=rules,
            price=price, position_side=position_side, quantity=quantity, levels=single,
            slippage=slippage,
        )  # fmt: skip
        if isinstance(stop, NotProtected):
            return stop
        out += [replace(i, facts={**i.facts, **facts}) for i in stop]
    return out


def ladder_slices(
    levels: Levels, rules: SymbolRules, market: str, *, total: Decimal, holding: Decimal
) -> list[Slice]:
    """The ladder's open targets as orders cover them: each target's share of what is left
    (``app.execution.ladder``), a slice too small for an order joined to its neighbour."""
    step = rules.lot.step_size if rules.lot is not None else Decimal(0)
    floor = levels.stop_limit or levels.stop_price if market == "spot" else None
    return _mergeable(open_slices(total, holding, levels.targets, step), rules, floor)


def _mergeable(slices: list[Slice], rules: SymbolRules, floor: Decimal | None) -> list[Slice]:
    """Slices too small for an order of their own (a target partly filled, a tiny fraction)
    join the next target, the last one the target before it: every unit stays covered."""
    out: list[Slice] = []
    carry = Decimal(0)
    for part in slices:
        part = replace(part, quantity=part.quantity + carry)
        carry = Decimal(0)
        try:
            lowest = min(part.price, floor) if floor is not None else part.price
            check_notional(
                rules, round_quantity(rules, part.quantity), lowest, reduce_only=floor is None
            )
        except FilterViolation:
            carry = part.quantity
            continue
        out.append(part)
    if carry and out:
        out[-1] = replace(out[-1], quantity=out[-1].quantity + carry)
    return out


def _trailing_stop(
    base: OrderIntent,
    signal_id: str,
    rules: SymbolRules,
    amount: Decimal,
    levels: Levels,
    price: Decimal,
) -> OrderIntent:
    """A reduce-only TRAILING_STOP_MARKET beside the fixed stop (which keeps its level until
    the trail is past it). An activation price the market already reached is left out:
    Binance refuses it (-2021), and without one the trail starts from the current price."""
    assert levels.trailing_rate is not None
    sell = base.side == "SELL"
    activation = levels.trailing_activation
    if activation is not None:
        activation = round_price(rules, activation, base.side)
        if (activation <= price) if sell else (activation >= price):
            activation = None
    leg = f"{base.leg}-trail"
    facts = {
        **base.facts,
        "bracket_leg": "trail",
        "callback_rate": to_wire(levels.trailing_rate),
        "activation_price": to_wire(activation) if activation is not None else None,
    }
    return replace(
        base, leg=leg, kind="conditional", client_id=client_order_id(signal_id, leg),
        quantity=amount, order_type="TRAILING_STOP_MARKET", reduce_only=True, facts=facts,
    )  # fmt: skip
