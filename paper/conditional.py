"""USD-M conditional orders (``/fapi/v1/algoOrder``, algoType ``CONDITIONAL``).

STOP / STOP_MARKET fire when the price reaches the trigger against the position (SELL: price
<= triggerPrice, BUY: >=), TAKE_PROFIT / TAKE_PROFIT_MARKET with it (SELL: >=, BUY: <=).
On trigger a real ``/fapi/v1/order`` is placed (``actualOrderId``): MARKET for the ``*_MARKET``
types, LIMIT at ``price`` otherwise. Statuses: ``NEW`` -> ``TRIGGERED`` (the actual order is
resting) -> ``FINISHED`` (it filled, or ended in the engine); ``CANCELED`` after ``DELETE``;
``EXPIRED`` when a ``closePosition`` / ``reduceOnly`` order triggers with no position left to
reduce; ``REJECTED`` when margin is short at trigger time. A triggered STOP / TAKE_PROFIT
whose limit order cannot rest (IOC/FOK the market gapped past, GTX that would take) places
its actual order ``EXPIRED`` with nothing filled.

``closePosition`` orders are Binance's "GTE" orders (timeInForce ``GTE_GTC``, reduce-only):
they need a position to close (-4509 without one), there is at most one open per symbol and
direction (-4130, whatever its type: reference §9 and a production report say a TAKE_PROFIT
collides with a STOP), they close every share when they fire, and they expire as soon as
the position they close is gone. Several ``quantity`` + ``reduceOnly`` orders may share a
position; each closes at most its quantity and never more than is left. At most
``MAX_CONDITIONAL`` (200) conditional orders are open per account (-4045).

``TRAILING_STOP_MARKET`` takes ``callbackRate`` (percent, 0.1 to 10) and an optional
``activatePrice`` (by default the latest price when placed; a SELL's must be above it, a
BUY's below, else -2021), no ``triggerPrice``. Once the price reaches the activation price it
tracks the highest price since (SELL; the lowest for a BUY) and fires a MARKET order when the
price falls back by ``callbackRate`` percent from it (rises, for a BUY).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from time import monotonic
from typing import TYPE_CHECKING

from paper.errors import BinanceError, mandatory, no_such_order, not_required, unknown_order
from paper.ledger import FUTURES_CONDITIONAL
from paper.numbers import ZERO, fmt
from paper.params import Params

if TYPE_CHECKING:
    from paper.futures import FuturesBook, FuturesOrder

TRAILING = "TRAILING_STOP_MARKET"
TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", TRAILING)
MIN_CALLBACK, MAX_CALLBACK = Decimal("0.1"), Decimal(10)
MAX_CONDITIONAL = 200  # change log 2025-12-29: "The conditional order limits is 200"
GTE_NEEDS_POSITION = BinanceError(
    -4509,
    "Time in Force (TIF) GTE can only be used with open positions. "
    "Please ensure that positions are available.",
)
CLOSE_POSITION_EXISTS = BinanceError(
    -4130,
    "An open stop or take profit order with GTE and closePosition in the direction is existing.",
)
MAX_STOP_ORDERS = BinanceError(-4045, "Reach max stop order limit.")


@dataclass
class Conditional:
    algo_id: int
    client_algo_id: str
    order_type: str
    symbol: str
    side: str
    time_in_force: str
    qty: Decimal
    trigger_price: Decimal
    price: Decimal
    working_type: str
    close_position: bool
    reduce_only: bool
    price_protect: bool
    create_time: int
    update_time: int
    status: str = "NEW"
    trigger_time: int = 0
    actual_order_id: int | None = None
    actual_price: Decimal = ZERO
    created_mono: float = field(default_factory=monotonic)
    position_side: str = "BOTH"
    # TRAILING_STOP_MARKET: the callback in percent, the activation price, and once it is
    # reached, the best price since (highest for a SELL, lowest for a BUY).
    callback_rate: Decimal = ZERO
    activate_price: Decimal = ZERO
    extreme: Decimal | None = None

    def trails(self, price: Decimal) -> bool:
        """Track ``price``; True when the trailing stop fires at it."""
        sell = self.side == "SELL"
        if self.extreme is None:
            if (price >= self.activate_price) if sell else (price <= self.activate_price):
                self.extreme = price
            return False
        self.extreme = max(self.extreme, price) if sell else min(self.extreme, price)
        back = self.extreme * self.callback_rate / 100
        return price <= self.extreme - back if sell else price >= self.extreme + back


def fires(order_type: str, side: str, trigger: Decimal, price: Decimal) -> bool:
    if order_type.startswith("STOP"):
        return price >= trigger if side == "BUY" else price <= trigger
    return price <= trigger if side == "BUY" else price >= trigger


class ConditionalBook:
    def __init__(self, futures: FuturesBook) -> None:
        self.futures = futures
        self.engine = futures.engine
        self.conditionals: dict[int, Conditional] = {}
        self.open: dict[str, dict[int, Conditional]] = {s: {} for s in self.engine.usdm_symbols}
        self.by_client: dict[str, int] = {}

    def place(self, p: Params) -> dict[str, object]:
        from paper.futures import CLIENT_ID_RE

        engine, futures = self.engine, self.futures
        p.req_enum("algoType", ("CONDITIONAL",))
        spec = engine.usdm_spec(p.text("symbol"))
        side = p.side()
        position_side = futures.position_side(p)
        order_type = p.req_enum("type", TYPES, BinanceError(-1116, "Invalid orderType."))
        trailing = order_type == TRAILING
        callback = ZERO
        if trailing:
            # priceProtect: "only with STOP_MARKET/TAKE_PROFIT_MARKET" (reference §5.1)
            for name in ("triggerPrice", "priceProtect"):
                if p.has(name):
                    raise not_required(name)
            callback = p.req_decimal("callbackRate")
            if not MIN_CALLBACK <= callback <= MAX_CALLBACK:
                raise mandatory("callbackRate")
            trigger = ZERO
        else:
            for name in ("callbackRate", "activatePrice"):
                if p.has(name):
                    raise not_required(name)
            trigger = p.req_decimal("triggerPrice")
        close_position = p.boolean("closePosition")
        reduce_only = p.boolean("reduceOnly")
        hedge_close = futures.closes(position_side, side)
        qty = p.decimal("quantity")
        price = p.decimal("price")
        if close_position:
            if order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                raise not_required("closePosition")
            if qty is not None:
                raise not_required("quantity")
            if reduce_only:
                raise not_required("reduceOnly")
        elif qty is None:
            raise mandatory("quantity")
        if order_type in ("STOP", "TAKE_PROFIT") and price is None:
            raise mandatory("price")
        tif = p.enum("timeInForce", ("GTC", "IOC", "FOK", "GTX", "GTD")) or "GTC"
        working_type = p.enum("workingType", ("MARK_PRICE", "CONTRACT_PRICE")) or "CONTRACT_PRICE"
        client_id = p.get("clientAlgoId")
        if client_id is None:
            client_id = engine.random_id()
        elif not CLIENT_ID_RE.match(client_id):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'clientAlgoId'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        existing = self.by_client.get(client_id)
        if existing is not None and self.conditionals[existing].status == "NEW":
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        lot = spec.usdm
        last = engine.price(spec.symbol)
        activate = p.decimal("activatePrice") if trailing else None
        if not trailing:
            futures.check_price(lot, trigger)
        elif activate is not None:
            futures.check_price(lot, activate)
            if (activate <= last) if side == "SELL" else (activate >= last):
                raise BinanceError(-2021, "Order would immediately trigger.")
        if qty is not None:
            futures.check_filters(lot, qty, price, trigger, reduce_only or hedge_close)
        if (reduce_only or hedge_close) and futures.reducible(
            spec.symbol, side, position_side
        ) <= 0:
            raise BinanceError(-2022, "ReduceOnly Order is rejected.")
        if close_position:
            if futures.reducible(spec.symbol, side, position_side) <= 0:
                raise GTE_NEEDS_POSITION
            if any(
                c.close_position and c.side == side and c.position_side == position_side
                for c in self.open[spec.symbol].values()
            ):
                raise CLOSE_POSITION_EXISTS
        if sum(len(book) for book in self.open.values()) >= MAX_CONDITIONAL:
            raise MAX_STOP_ORDERS
        if not trailing and fires(order_type, side, trigger, last):
            raise BinanceError(-2021, "Order would immediately trigger.")
        cond = Conditional(
            algo_id=engine.ids.next("conditional"),
            client_algo_id=client_id,
            order_type=order_type,
            symbol=spec.symbol,
            side=side,
            time_in_force="GTE_GTC" if close_position else tif,
            qty=qty or ZERO,
            trigger_price=trigger,
            price=price or ZERO,
            working_type=working_type,
            close_position=close_position,
            reduce_only=reduce_only or hedge_close,
            price_protect=p.boolean("priceProtect"),
            create_time=engine.now,
            update_time=engine.now,
            position_side=position_side,
        )
        if trailing:
            cond.callback_rate = callback
            cond.activate_price = activate if activate is not None else last
            if activate is None:
                cond.extreme = last  # activated at once, from the latest price
        self.conditionals[cond.algo_id] = cond
        self.open[spec.symbol][cond.algo_id] = cond
        self.by_client[client_id] = cond.algo_id
        engine.ledger.record(
            key=engine.key,
            time=engine.now,
            kind=FUTURES_CONDITIONAL,
            symbol=spec.symbol,
            side=side,
            quantity=qty,
            ident=cond.algo_id,
            client_id=client_id,
            order_type=order_type,
            prices={"activate": cond.activate_price, "callback_rate": cond.callback_rate}
            if trailing
            else {"trigger": trigger},
        )
        return self.render(cond, query=False)

    # triggering ---------------------------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal) -> None:
        for cond in list(self.open[symbol].values()):
            # An earlier trigger may have closed the position and expired this one.
            if cond.status != "NEW":
                continue
            if cond.order_type == TRAILING:
                fired = cond.trails(price)
            else:
                fired = fires(cond.order_type, cond.side, cond.trigger_price, price)
            if fired:
                self.trigger(cond, price)

    def trigger(self, cond: Conditional, price: Decimal) -> None:
        from paper.futures import FuturesOrder

        futures, engine = self.futures, self.engine
        self.open[cond.symbol].pop(cond.algo_id, None)
        cond.trigger_time = cond.update_time = engine.now
        reducing = cond.close_position or cond.reduce_only
        qty = cond.qty
        ps = cond.position_side
        if (ps != "BOTH") != futures.dual:
            cond.status = "EXPIRED"  # the position mode changed since it was placed
            return
        if reducing:
            available = futures.reducible(cond.symbol, cond.side, ps)
            qty = available if cond.close_position else min(qty, available)
            if qty <= 0:
                cond.status = "EXPIRED"
                return
        elif not futures.margin_ok(cond.symbol, cond.side, qty, price, ps):
            cond.status = "REJECTED"
            return
        market = cond.order_type.endswith("_MARKET")
        order = FuturesOrder(
            order_id=engine.ids.next("futures_order"),
            symbol=cond.symbol,
            client_order_id=engine.random_id(),
            side=cond.side,
            type="MARKET" if market else "LIMIT",
            orig_type=cond.order_type,
            time_in_force=cond.time_in_force,
            qty=qty,
            price=ZERO if market else cond.price,
            stop_price=cond.trigger_price,
            reduce_only=cond.reduce_only and ps == "BOTH",
            close_position=cond.close_position,
            time=engine.now,
            update_time=engine.now,
            algo_id=cond.algo_id,
            position_side=ps,
        )
        cond.status = "TRIGGERED"
        cond.actual_order_id = order.order_id
        futures.store(order)
        crossed = price <= order.price if cond.side == "BUY" else price >= order.price
        if market or (crossed and cond.time_in_force != "GTX"):
            futures.fill(order, price)
        elif crossed or cond.time_in_force in ("IOC", "FOK"):
            # Neither can rest: a post-only (GTX) limit that would take, an IOC/FOK limit
            # the market has gapped past.
            futures.end(order, "EXPIRED")

    def on_position(self, symbol: str) -> None:
        """The position changed: closePosition orders with nothing left to close expire."""
        for cond in list(self.open[symbol].values()):
            if (
                cond.close_position
                and self.futures.reducible(symbol, cond.side, cond.position_side) <= 0
            ):
                self.open[symbol].pop(cond.algo_id)
                cond.status = "EXPIRED"
                cond.update_time = self.engine.now

    def on_actual_filled(self, order: FuturesOrder) -> None:
        cond = self.conditionals[order.algo_id or 0]
        cond.status = "FINISHED"
        cond.update_time = self.engine.now
        if order.executed:
            cond.actual_price = order.cum_quote / order.executed

    # queries and cancels ------------------------------------------------------------------

    def find(self, p: Params) -> Conditional:
        algo_id = p.integer("algoId")
        client_id = p.get("clientAlgoId")
        if algo_id is None and client_id is None:
            raise BinanceError(-1102, "Either algoId or clientAlgoId must be sent.")
        if algo_id is None:
            algo_id = self.by_client.get(client_id or "")
        cond = self.conditionals.get(algo_id) if algo_id is not None else None
        if cond is None or (client_id is not None and cond.client_algo_id != client_id):
            raise no_such_order()
        if not self.engine.visible(cond.created_mono, p.lag_s):
            raise no_such_order()
        return cond

    def query(self, p: Params) -> dict[str, object]:
        return self.render(self.find(p), query=True)

    def cancel(self, p: Params) -> dict[str, object]:
        try:
            cond = self.find(p)
        except BinanceError as exc:
            if exc.code == -2013:
                raise unknown_order() from None
            raise
        if cond.status != "NEW":
            raise unknown_order()
        self._cancel(cond)
        return {
            "algoId": cond.algo_id,
            "clientAlgoId": cond.client_algo_id,
            "code": "200",
            "msg": "success",
        }

    def _cancel(self, cond: Conditional) -> None:
        cond.status = "CANCELED"
        cond.update_time = self.engine.now
        self.open[cond.symbol].pop(cond.algo_id, None)

    def cancel_all(self, p: Params) -> dict[str, object]:
        symbol = self.engine.usdm_spec(p.text("symbol")).symbol
        for cond in list(self.open[symbol].values()):
            self._cancel(cond)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_orders(self, p: Params) -> list[dict[str, object]]:
        symbol = p.get("symbol")
        algo_id = p.integer("algoId")
        p.enum("algoType", ("CONDITIONAL",))
        books = (
            [self.open[self.engine.usdm_spec(symbol).symbol]]
            if symbol
            else list(self.open.values())
        )
        rows = sorted(
            (
                c
                for book in books
                for c in book.values()
                if (algo_id is None or c.algo_id == algo_id)
                and self.engine.visible(c.created_mono, p.lag_s)
            ),
            key=lambda c: c.algo_id,
        )
        return [self.render(c, query=True) for c in rows]

    def render(self, cond: Conditional, *, query: bool) -> dict[str, object]:
        lot = self.engine.specs[cond.symbol].usdm
        qp, pp = lot.qty_places, lot.price_places
        out: dict[str, object] = {
            "algoId": cond.algo_id,
            "clientAlgoId": cond.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": cond.order_type,
            "symbol": cond.symbol,
            "side": cond.side,
            "positionSide": cond.position_side,
            "timeInForce": cond.time_in_force,
            "quantity": fmt(cond.qty, qp),
            "algoStatus": cond.status,
        }
        if query:
            out["actualOrderId"] = str(cond.actual_order_id) if cond.actual_order_id else ""
            out["actualPrice"] = fmt(cond.actual_price, pp + 1)
        out.update(
            {
                "triggerPrice": fmt(cond.trigger_price, pp),
                "price": fmt(cond.price, pp),
                "icebergQuantity": None,
            }
        )
        if query:
            zero = fmt(ZERO, pp)
            out.update(
                {
                    "tpTriggerPrice": zero,
                    "tpPrice": zero,
                    "slTriggerPrice": zero,
                    "slPrice": zero,
                    "tpOrderType": "",
                }
            )
        out.update(
            {
                "selfTradePreventionMode": "EXPIRE_MAKER",
                "workingType": cond.working_type,
                "priceMatch": "NONE",
                "closePosition": cond.close_position,
                "priceProtect": cond.price_protect,
                "reduceOnly": cond.reduce_only or cond.close_position,
            }
        )
        if cond.order_type == TRAILING:
            out.update(
                {
                    "activatePrice": fmt(cond.activate_price, pp),
                    "callbackRate": f"{cond.callback_rate.normalize():f}",
                }
            )
        elif not query:
            out.update({"activatePrice": "", "callbackRate": ""})
        out.update(
            {
                "createTime": cond.create_time,
                "updateTime": cond.update_time,
                "triggerTime": cond.trigger_time,
                "goodTillDate": 0,
            }
        )
        return out
