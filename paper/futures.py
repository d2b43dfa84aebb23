"""USD-M futures: one-way positions, ``/fapi/v1/order`` (MARKET, LIMIT, reduceOnly) and the
account views. Conditional TP/SL orders (``/fapi/v1/algoOrder``) live in ``conditional.py``.

Cross margin in USDT at ``paper_leverage``: an order that grows exposure needs
``sum(|positionAmt| * price) / leverage <= walletBalance + unrealized PnL``; commission is
``paper_futures_fee_rate`` of the notional, in USDT. Mark price = last price.

Orders that can never rest are refused as Binance refuses them: a LIMIT priced outside
PERCENT_PRICE (1.05 / 0.95 of the mark price: -4016 / -4024), a GTX that would take (-5022),
a reduce-only order with nothing to reduce (-2022), and any order beyond the 200 open per
symbol (MAX_NUM_ORDERS, -2025).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from time import monotonic
from typing import TYPE_CHECKING

from paper.conditional import ConditionalBook
from paper.errors import BinanceError, mandatory, no_such_order, unknown_order
from paper.ledger import FUTURES_ORDER
from paper.leverage import (
    MARGIN_TYPES,
    TOO_LARGE,
    check_leverage,
    leverage_answer,
    max_notional,
)
from paper.numbers import ZERO, fmt, is_multiple, plain, round_down, round_up
from paper.params import Params
from paper.symbols import FUTURES_PERCENT_DOWN, FUTURES_PERCENT_UP, MAX_NUM_ORDERS, Lot

if TYPE_CHECKING:
    from paper.accounts import Account

CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
CONDITIONAL_TYPES = (
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
)
SWITCH_TO_ALGO = BinanceError(
    -4120,
    "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
)
MARGIN_SHORT = BinanceError(-2019, "Margin is insufficient.")
SIDE_MISMATCH = BinanceError(-4061, "Order's position side does not match user's setting.")
HEDGE_REDUCE_ONLY = BinanceError(-1106, "Parameter 'reduceonly' sent when not required.")
HEDGE_SIDES = ("LONG", "SHORT")
REDUCE_ONLY_REJECTED = BinanceError(-2022, "ReduceOnly Order is rejected.")


@dataclass
class Position:
    symbol: str
    amt: Decimal = ZERO  # signed: a SHORT (hedge mode) is negative, as Binance shows it
    entry: Decimal = ZERO
    update_time: int = 0
    side: str = "BOTH"  # BOTH (one-way mode), LONG or SHORT (hedge mode)


@dataclass
class FuturesOrder:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    time: int
    orig_type: str = ""
    stop_price: Decimal = ZERO
    reduce_only: bool = False
    close_position: bool = False
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_time: int = 0
    algo_id: int | None = None  # set when a conditional order placed it
    position_side: str = "BOTH"
    created_mono: float = field(default_factory=monotonic)

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


class FuturesBook:
    def __init__(self, engine: Account) -> None:
        self.engine = engine
        self.positions = {s: Position(s) for s in engine.usdm_symbols}
        # Hedge mode (POST /fapi/v1/positionSide/dual): a LONG and a SHORT per symbol.
        self.dual = False
        self.hedged = {
            (s, ps): Position(s, side=ps) for s in engine.usdm_symbols for ps in HEDGE_SIDES
        }
        self.orders: dict[int, FuturesOrder] = {}
        self.open: dict[str, dict[int, FuturesOrder]] = {s: {} for s in engine.usdm_symbols}
        self.by_client: dict[tuple[str, str], int] = {}
        self.trades: list[dict[str, object]] = []  # GET /fapi/v1/userTrades, oldest first
        self.conditional = ConditionalBook(self)
        # POST /fapi/v1/leverage and /fapi/v1/marginType, per symbol (paper/leverage.py)
        self.leverage = {s: engine.settings.paper_leverage for s in engine.usdm_symbols}
        self.margin_type = {s: "cross" for s in engine.usdm_symbols}
        # Binance may answer a MARKET order NEW, executed 0, under load, and fill it a moment
        # later; with this on (``POST /paper/futures-busy``) every MARKET order does: it is
        # accepted NEW and fills at the next price move.
        self.market_rests = False

    # accounting ---------------------------------------------------------------------------

    def lot(self, symbol: str) -> Lot:
        return self.engine.usdm_spec(symbol).usdm

    def position(self, symbol: str, position_side: str = "BOTH") -> Position:
        if position_side == "BOTH":
            return self.positions[symbol]
        return self.hedged[(symbol, position_side)]

    def all_positions(self) -> list[Position]:
        return [*self.positions.values(), *self.hedged.values()]

    def position_side(self, p: Params) -> str:
        """The order's positionSide, which must match the account's mode (-4061); hedge mode
        takes no reduceOnly (-1106): its closes are the opposite side of the same position."""
        wanted = p.enum("positionSide", ("BOTH", *HEDGE_SIDES)) or "BOTH"
        if (wanted == "BOTH") == self.dual:
            raise SIDE_MISMATCH
        if self.dual and p.has("reduceOnly"):
            raise HEDGE_REDUCE_ONLY
        return wanted

    @staticmethod
    def closes(position_side: str, side: str) -> bool:
        """In hedge mode SELL on LONG and BUY on SHORT only reduce."""
        return (position_side, side) in (("LONG", "SELL"), ("SHORT", "BUY"))

    def flat(self) -> bool:
        return all(pos.amt == 0 for pos in self.all_positions())

    def reducible(self, symbol: str, side: str, position_side: str = "BOTH") -> Decimal:
        """How much a reduce-only order on ``side`` may trade now."""
        amt = self.position(symbol, position_side).amt
        if amt > 0 and side == "SELL":
            return amt
        if amt < 0 and side == "BUY":
            return -amt
        return ZERO

    def unrealized(self, position: Position) -> Decimal:
        return (self.engine.price(position.symbol) - position.entry) * position.amt

    def within_cap(
        self, symbol: str, side: str, qty: Decimal, price: Decimal, position_side: str = "BOTH"
    ) -> bool:
        """The position after the trade stays within its leverage bracket's notional cap."""
        signed = qty if side == "BUY" else -qty
        current = self.position(symbol, position_side).amt
        after = abs(current + signed)
        return after <= abs(current) or after * price <= max_notional(symbol, self.leverage[symbol])

    def margin_ok(
        self, symbol: str, side: str, qty: Decimal, price: Decimal, position_side: str = "BOTH"
    ) -> bool:
        signed = qty if side == "BUY" else -qty
        target = self.position(symbol, position_side)
        current = target.amt
        if abs(current + signed) <= abs(current):
            return True  # reducing exposure never needs margin
        if not self.within_cap(symbol, side, qty, price, position_side):
            return False
        required = ZERO
        pnl = ZERO
        for position in self.all_positions():
            amt = position.amt + signed if position is target else position.amt
            mark = price if position.symbol == symbol else self.engine.price(position.symbol)
            required += abs(amt) * mark / Decimal(self.leverage[position.symbol])
            pnl += self.unrealized(position)
        return required <= self.engine.futures_wallet.free("USDT") + pnl

    def execute(
        self,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        *,
        reduce_only: bool,
        order: FuturesOrder | None = None,
        position_side: str = "BOTH",
    ) -> Decimal:
        """Trade ``qty`` at ``price`` against the position; returns the commission (USDT).
        With ``order`` the trade is kept for ``GET /fapi/v1/userTrades``."""
        reduce_only = reduce_only or self.closes(position_side, side)
        if position_side != "BOTH" and not self.dual:
            raise SIDE_MISMATCH  # the mode changed since the order was accepted
        if reduce_only and qty > self.reducible(symbol, side, position_side):
            raise REDUCE_ONLY_REJECTED
        if not reduce_only and not self.margin_ok(symbol, side, qty, price, position_side):
            raise MARGIN_SHORT
        position = self.position(symbol, position_side)
        signed = qty if side == "BUY" else -qty
        realized = ZERO
        if position.amt and (position.amt > 0) != (signed > 0):
            closed = min(abs(signed), abs(position.amt))
            direction = 1 if position.amt > 0 else -1
            realized = closed * (price - position.entry) * direction
        new_amt = position.amt + signed
        if new_amt == 0:
            position.entry = ZERO
        elif position.amt == 0 or (position.amt > 0) != (new_amt > 0):
            position.entry = price
        elif abs(new_amt) > abs(position.amt):
            position.entry = (position.entry * position.amt + price * signed) / new_amt
        position.amt = new_amt
        position.update_time = self.engine.now
        fee = round_down(
            qty * price * self.engine.settings.paper_futures_fee_rate, Decimal("0.00000001")
        )
        self.engine.futures_wallet.credit("USDT", realized - fee)
        if order is not None:
            self.record_trade(order, qty, price, fee, realized)
        self.conditional.on_position(symbol)
        return fee

    def record_trade(
        self, order: FuturesOrder, qty: Decimal, price: Decimal, fee: Decimal, realized: Decimal
    ) -> None:
        lot = self.lot(order.symbol)
        self.trades.append(
            {
                "buyer": order.side == "BUY",
                "commission": fmt(fee, 8),
                "commissionAsset": "USDT",
                "id": self.engine.ids.next("futures_trade"),
                "maker": order.type == "LIMIT" and order.time != self.engine.now,
                "orderId": order.order_id,
                "price": fmt(price, lot.price_places),
                "qty": fmt(qty, lot.qty_places),
                "quoteQty": fmt(qty * price, lot.price_places + lot.qty_places),
                "realizedPnl": fmt(realized, 8),
                "side": order.side,
                "positionSide": order.position_side,
                "symbol": order.symbol,
                "time": self.engine.now,
            }
        )

    def user_trades(self, p: Params) -> list[dict[str, object]]:
        """GET /fapi/v1/userTrades: one symbol's trades, by order, time span or from an id."""
        symbol = self.engine.usdm_spec(p.text("symbol")).symbol
        order_id = p.integer("orderId")
        start, end = p.integer("startTime"), p.integer("endTime")
        from_id = p.integer("fromId")
        limit = p.integer("limit") or 500
        if not 1 <= limit <= 1000:
            raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
        if from_id is not None and (start is not None or end is not None):
            raise BinanceError(-4133, "fromId cannot be sent with startTime or endTime.")
        if start is not None and end is not None and end - start > 7 * 86_400_000:
            raise BinanceError(
                -4181, "The time between startTime and endTime can't be more than 7 days."
            )
        if start is None and end is None and from_id is None:
            start = self.engine.now - 7 * 86_400_000
        rows = []
        for trade in self.trades:
            ident, at = int(str(trade["id"])), int(str(trade["time"]))
            if trade["symbol"] != symbol:
                continue
            if order_id is not None and trade["orderId"] != order_id:
                continue
            order = self.orders.get(int(str(trade["orderId"])))
            if order is not None and not self.engine.visible(order.created_mono, p.lag_s):
                continue
            if from_id is not None and ident < from_id:
                continue
            if start is not None and at < start:
                continue
            if end is not None and at > end:
                continue
            rows.append(trade)
        if from_id is None and start is None and end is not None:
            return rows[-limit:]
        return rows[:limit]

    # /fapi/v1/leverage, /fapi/v1/marginType ---------------------------------------------

    def set_leverage(self, p: Params) -> dict[str, object]:
        symbol = self.engine.usdm_spec(p.text("symbol")).symbol
        wanted = p.req_integer("leverage")
        held = max(abs(self.position(symbol, ps).amt) for ps in ("BOTH", *HEDGE_SIDES))
        held *= self.engine.price(symbol)
        check_leverage(symbol, wanted, held)
        self.leverage[symbol] = wanted
        return leverage_answer(symbol, wanted)

    def set_margin_type(self, p: Params) -> dict[str, object]:
        symbol = self.engine.usdm_spec(p.text("symbol")).symbol
        wanted = MARGIN_TYPES[p.req_enum("marginType", tuple(MARGIN_TYPES))]
        if self.margin_type[symbol] == wanted:
            raise BinanceError(-4046, "No need to change margin type.")
        if any(self.position(symbol, ps).amt != 0 for ps in ("BOTH", *HEDGE_SIDES)):
            raise BinanceError(-4048, "Margin type cannot be changed if there exists position.")
        if self.open[symbol] or self.conditional.open[symbol]:
            raise BinanceError(-4047, "Margin type cannot be changed if there exists open orders.")
        self.margin_type[symbol] = wanted
        return {"code": 200, "msg": "success"}

    # /fapi/v1/positionSide/dual ------------------------------------------------------------

    def set_dual(self, p: Params) -> dict[str, object]:
        wanted = p.get("dualSidePosition")
        if wanted is None:
            raise mandatory("dualSidePosition")
        dual = p.boolean("dualSidePosition")
        if dual == self.dual:
            raise BinanceError(-4059, "No need to change position side.")
        if not self.flat():
            raise BinanceError(-4068, "Position side cannot be changed if there exists position.")
        algos = self.engine.algos.open["usdm"]
        if any(self.open.values()) or any(self.conditional.open.values()) or algos:
            raise BinanceError(
                -4067, "Position side cannot be changed if there exists open orders."
            )
        self.dual = dual
        return {"code": 200, "msg": "success"}

    # /fapi/v1/order -----------------------------------------------------------------------

    def place(self, p: Params) -> dict[str, object]:
        engine = self.engine
        spec = engine.usdm_spec(p.text("symbol"))
        side = p.side()
        order_type = p.req_enum(
            "type",
            ("LIMIT", "MARKET", *CONDITIONAL_TYPES),
            BinanceError(-1116, "Invalid orderType."),
        )
        if order_type in CONDITIONAL_TYPES:
            raise SWITCH_TO_ALGO
        position_side = self.position_side(p)
        qty = p.req_decimal("quantity")
        price = p.decimal("price")
        tif = p.enum(
            "timeInForce",
            ("GTC", "IOC", "FOK", "GTX"),
            error=BinanceError(-1115, "Invalid timeInForce."),
        )
        if order_type == "LIMIT":
            if price is None:
                raise mandatory("price")
            if tif is None:
                raise mandatory("timeInForce")
        reduce_only = p.boolean("reduceOnly") or self.closes(position_side, side)
        resp = p.enum("newOrderRespType", ("ACK", "RESULT")) or "ACK"
        client_id = self.client_id(spec.symbol, p.get("newClientOrderId"))
        last = engine.price(spec.symbol)
        self.check_filters(spec.usdm, qty, price, last, reduce_only)
        if order_type == "LIMIT":
            assert price is not None
            self.check_percent_price(spec.usdm, price, last)
        if len(self.open[spec.symbol]) >= MAX_NUM_ORDERS:
            raise BinanceError(-2025, "Reach max open order limit.")
        if reduce_only:
            available = self.reducible(spec.symbol, side, position_side)
            # hedge mode: a close for more than the position holds is refused outright
            if available <= 0 or (position_side != "BOTH" and qty > available):
                raise REDUCE_ONLY_REJECTED
        fill_now = (order_type == "MARKET" and not self.market_rests) or (
            price is not None and (last <= price if side == "BUY" else last >= price)
        )
        if order_type == "LIMIT" and tif == "GTX" and fill_now:
            raise BinanceError(
                -5022,
                "Due to the order could not be executed as maker, "
                "the Post Only order will be rejected.",
            )
        if not reduce_only and not self.within_cap(
            spec.symbol, side, qty, price or last, position_side
        ):
            raise TOO_LARGE
        if not reduce_only and not self.margin_ok(
            spec.symbol, side, qty, price or last, position_side
        ):
            raise MARGIN_SHORT
        order = FuturesOrder(
            order_id=engine.ids.next("futures_order"),
            symbol=spec.symbol,
            client_order_id=client_id,
            side=side,
            type=order_type,
            orig_type=order_type,
            time_in_force=tif or "GTC",
            qty=qty,
            price=price or ZERO,
            reduce_only=reduce_only and position_side == "BOTH",
            time=engine.now,
            update_time=engine.now,
            position_side=position_side,
        )
        if fill_now:
            self.fill(order, last)
        elif order.time_in_force in ("IOC", "FOK"):
            order.status = "EXPIRED"
        self.store(order)
        engine.ledger.record(
            key=engine.key,
            time=engine.now,
            kind=FUTURES_ORDER,
            symbol=spec.symbol,
            side=side,
            quantity=qty,
            ident=order.order_id,
            client_id=client_id,
            order_type=order_type,
        )
        return render_order(order, self.lot(order.symbol), resp=resp)

    def client_id(self, symbol: str, wanted: str | None) -> str:
        if wanted is None:
            return self.engine.random_id()
        if not CLIENT_ID_RE.match(wanted):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        existing = self.by_client.get((symbol, wanted))
        if existing is not None and self.orders[existing].is_open:
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        return wanted

    def check_filters(
        self, lot: Lot, qty: Decimal, price: Decimal | None, last: Decimal, reduce_only: bool
    ) -> None:
        if qty <= 0:
            raise BinanceError(-4003, "Quantity less than zero.")
        if not is_multiple(qty, lot.step):
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        if qty < lot.min_qty:
            raise BinanceError(-4004, "Quantity less than min quantity.")
        if qty > lot.max_qty:
            raise BinanceError(-4005, "Quantity greater than max quantity.")
        if price is not None:
            self.check_price(lot, price)
        if not reduce_only and qty * (price or last) < lot.min_notional:
            raise BinanceError(
                -4164,
                f"Order's notional must be no smaller than {plain(lot.min_notional)} "
                "(unless you choose reduce only).",
            )

    @staticmethod
    def check_percent_price(lot: Lot, price: Decimal, mark: Decimal) -> None:
        """PERCENT_PRICE: a LIMIT price far from the mark price can never rest."""
        cap = round_down(mark * FUTURES_PERCENT_UP, lot.tick)
        if price > cap:
            raise BinanceError(-4016, f"Limit price can't be higher than {plain(cap)}.")
        floor = round_up(mark * FUTURES_PERCENT_DOWN, lot.tick)
        if price < floor:
            raise BinanceError(-4024, f"Limit price can't be lower than {plain(floor)}.")

    @staticmethod
    def check_price(lot: Lot, price: Decimal) -> None:
        if price < lot.min_price:
            raise BinanceError(-4013, "Price less than min price.")
        if price > lot.max_price:
            raise BinanceError(-4002, "Price greater than max price.")
        if not is_multiple(price - lot.min_price, lot.tick):
            raise BinanceError(-4014, "Price not increased by tick size.")

    def store(self, order: FuturesOrder) -> None:
        self.orders[order.order_id] = order
        self.by_client[(order.symbol, order.client_order_id)] = order.order_id
        if order.is_open:
            self.open[order.symbol][order.order_id] = order

    def fill(self, order: FuturesOrder, price: Decimal) -> None:
        qty = order.qty - order.executed
        ps = order.position_side
        if order.reduce_only or order.close_position or self.closes(ps, order.side):
            qty = min(qty, self.reducible(order.symbol, order.side, ps))
            if qty <= 0:
                self.end(order, "EXPIRED")
                return
        try:
            self.execute(
                order.symbol,
                order.side,
                qty,
                price,
                reduce_only=order.reduce_only or order.close_position,
                order=order,
                position_side=ps,
            )
        except BinanceError:
            self.end(order, "EXPIRED")
            return
        order.executed += qty
        order.cum_quote += qty * price
        order.status = "FILLED"
        order.update_time = self.engine.now
        self.open[order.symbol].pop(order.order_id, None)
        if order.algo_id is not None:
            self.conditional.on_actual_filled(order)

    def end(self, order: FuturesOrder, status: str) -> None:
        order.status = status
        order.update_time = self.engine.now
        self.open[order.symbol].pop(order.order_id, None)
        if order.algo_id is not None:
            self.conditional.on_actual_filled(order)

    def on_price(self, symbol: str, price: Decimal) -> None:
        for order in list(self.open[symbol].values()):
            if order.is_open and order.type == "MARKET":
                self.fill(order, price)  # a MARKET order accepted while busy
            elif order.is_open and (
                price <= order.price if order.side == "BUY" else price >= order.price
            ):
                self.fill(order, order.price)
        self.conditional.on_price(symbol, price)

    def find(self, p: Params) -> FuturesOrder:
        symbol = self.engine.usdm_spec(p.text("symbol")).symbol
        order_id = p.integer("orderId")
        client_id = p.get("origClientOrderId")
        if order_id is None and client_id is None:
            raise BinanceError(-1102, "Either orderId or origClientOrderId must be sent.")
        if order_id is None:
            order_id = self.by_client.get((symbol, client_id or ""))
        order = self.orders.get(order_id) if order_id is not None else None
        if (
            order is None
            or order.symbol != symbol
            or not self.engine.visible(order.created_mono, p.lag_s)
        ):
            raise no_such_order()
        if client_id is not None and order.client_order_id != client_id:
            raise no_such_order()
        return order

    def query(self, p: Params) -> dict[str, object]:
        order = self.find(p)
        return render_order(order, self.lot(order.symbol), resp="QUERY")

    def cancel(self, p: Params) -> dict[str, object]:
        try:
            order = self.find(p)
        except BinanceError:
            raise unknown_order() from None
        if not order.is_open:
            raise unknown_order()
        self.end(order, "CANCELED")
        return render_order(order, self.lot(order.symbol), resp="RESULT")

    def open_orders(self, p: Params) -> list[dict[str, object]]:
        symbol = p.get("symbol")
        books = (
            [self.open[self.engine.usdm_spec(symbol).symbol]]
            if symbol
            else list(self.open.values())
        )
        return [
            render_order(o, self.lot(o.symbol), resp="QUERY")
            for book in books
            for o in book.values()
            if self.engine.visible(o.created_mono, p.lag_s)
        ]


def render_order(order: FuturesOrder, lot: Lot, *, resp: str) -> dict[str, object]:
    """``ACK`` answers as the order was accepted (``NEW``, nothing executed), as Binance does;
    ``RESULT`` and queries show its current state."""
    ack = resp == "ACK"
    executed = ZERO if ack else order.executed
    cum_quote = ZERO if ack else order.cum_quote
    avg = cum_quote / executed if executed else ZERO
    out: dict[str, object] = {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "status": "NEW" if ack else order.status,
        "clientOrderId": order.client_order_id,
        "price": fmt(order.price, lot.price_places),
        "avgPrice": fmt(avg, lot.price_places + 1),
        "origQty": fmt(order.qty, lot.qty_places),
        "executedQty": fmt(executed, lot.qty_places),
        "cumQty": fmt(executed, lot.qty_places),
        "cumQuote": fmt(cum_quote, lot.price_places + lot.qty_places),
        "timeInForce": order.time_in_force,
        "type": order.type,
        "reduceOnly": order.reduce_only,
        "closePosition": order.close_position,
        "side": order.side,
        "positionSide": order.position_side,
        "stopPrice": fmt(order.stop_price, lot.price_places),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.orig_type or order.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": order.update_time,
    }
    if resp == "QUERY":
        out["time"] = order.time
    return out
