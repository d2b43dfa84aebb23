"""Spot orders: MARKET, LIMIT, LIMIT_MAKER and the stop / take-profit types, matched against
the price path (there is no order book: a resting order fills at its limit price once the
price reaches it; a market order or a marketable limit fills at the current price).

OCO lists live in ``oco.py`` and reuse the order machinery here. Commission is
``paper_fee_rate`` of what the order receives, in the received asset.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING

from paper.errors import (
    DUPLICATE_ORDER,
    BinanceError,
    filter_failure,
    mandatory,
    no_such_order,
    not_required,
    rejected,
    unknown_order,
)
from paper.ledger import SPOT_ORDER
from paper.numbers import ZERO, fmt8, is_multiple, round_down
from paper.oco import OcoBook
from paper.orders import (
    LIMIT_PRICED,
    STOP_TYPES,
    SpotOrder,
    marketable,
    render_cancel,
    render_new,
    render_query,
    trailing_delta,
    trails,
    triggered,
)
from paper.params import Params
from paper.symbols import (
    MAX_NUM_ORDERS,
    PERCENT_ASK_DOWN,
    PERCENT_ASK_UP,
    PERCENT_BID_DOWN,
    PERCENT_BID_UP,
    SPOT_ORDER_TYPES,
    SymbolSpec,
)
from paper.wallet import Reservation

if TYPE_CHECKING:
    from paper.accounts import Account

CLIENT_ID_RE = re.compile(r"^[a-zA-Z0-9\-_.:/]{1,36}$")


class SpotBook:
    def __init__(self, engine: Account) -> None:
        self.engine = engine
        self.orders: dict[int, SpotOrder] = {}
        self.open: dict[str, dict[int, SpotOrder]] = {s: {} for s in engine.specs}
        self.by_client: dict[tuple[str, str], int] = {}
        self.oco = OcoBook(self)

    # placing ------------------------------------------------------------------------------

    def place(self, p: Params) -> dict[str, object]:
        engine = self.engine
        spec = engine.spec(p.text("symbol"))
        side = p.side()
        order_type = p.req_enum("type", SPOT_ORDER_TYPES, BinanceError(-1116, "Invalid orderType."))
        tif = p.enum(
            "timeInForce", ("GTC", "IOC", "FOK"), error=BinanceError(-1115, "Invalid timeInForce.")
        )
        qty = p.decimal("quantity")
        quote_qty = p.decimal("quoteOrderQty")
        limit = p.decimal("price")
        stop = p.decimal("stopPrice")
        delta = trailing_delta(p, "trailingDelta", order_type)
        self._check_type_params(order_type, tif, qty, quote_qty, limit, stop, trailing=delta > 0)
        default_resp = "FULL" if order_type in ("MARKET", "LIMIT") else "ACK"
        resp = p.enum("newOrderRespType", ("ACK", "RESULT", "FULL")) or default_resp
        client_id = self.client_id(spec.symbol, p.get("newClientOrderId"))
        now, last = engine.now, engine.price(spec.symbol)
        if order_type == "MARKET" and qty is None:
            assert quote_qty is not None
            qty = round_down(quote_qty / last, spec.spot.step)
        assert qty is not None
        self.check_filters(spec, order_type, side, qty, limit, stop)
        self.check_counts(spec.symbol, 1 if order_type in STOP_TYPES else 0)
        if order_type in STOP_TYPES and not delta:
            assert stop is not None
            if triggered(order_type, side, stop, last):
                raise rejected("Order would trigger immediately.")
        if order_type == "LIMIT_MAKER":
            assert limit is not None
            if marketable(side, limit, last):
                raise rejected("Order would immediately match and take.")
        order = SpotOrder(
            order_id=engine.ids.next("order"),
            symbol=spec.symbol,
            client_order_id=client_id,
            side=side,
            type=order_type,
            time_in_force=tif or "GTC",
            qty=qty,
            price=limit or ZERO,
            stop_price=stop or ZERO,
            quote_order_qty=quote_qty or ZERO,
            time=now,
            update_time=now,
            trailing_delta=delta,
        )
        if delta and stop is None:
            order.trailing_time, order.extreme = now, last  # tracks from the latest price
        if order_type == "MARKET":
            self.trade(order, qty, last)
        elif order_type in ("LIMIT", "LIMIT_MAKER"):
            order.working_time = now
            if marketable(side, order.price, last):
                self.trade(order, qty, last)
            elif order.time_in_force in ("IOC", "FOK"):
                order.status, order.expiry_reason = "EXPIRED", "UNFILLED_IOC_QUANTITY_EXPIRED"
            else:
                order.reservation = self.reserve(spec, side, qty, order.price)
        else:
            order.reservation = self.reserve(
                spec, side, qty, order.price or order.stop_price or last
            )
        self.store(order)
        engine.ledger.record(
            key=engine.key,
            time=now,
            kind=SPOT_ORDER,
            symbol=spec.symbol,
            side=side,
            quantity=qty,
            ident=order.order_id,
            client_id=client_id,
            order_type=order_type,
        )
        return render_new(order, resp)

    @staticmethod
    def _check_type_params(
        order_type: str,
        tif: str | None,
        qty: Decimal | None,
        quote_qty: Decimal | None,
        limit: Decimal | None,
        stop: Decimal | None,
        *,
        trailing: bool = False,
    ) -> None:
        if order_type == "MARKET":
            if qty is None and quote_qty is None:
                raise BinanceError(
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            if qty is not None and quote_qty is not None:
                raise not_required("quoteOrderQty")
            for name, value in (("price", limit), ("stopPrice", stop), ("timeInForce", tif)):
                if value is not None:
                    raise not_required(name)
            return
        if quote_qty is not None:
            raise not_required("quoteOrderQty")
        needs: list[tuple[str, object]] = [("quantity", qty)]
        if order_type in LIMIT_PRICED:
            needs.append(("price", limit))
        if order_type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            needs.append(("timeInForce", tif))
        if order_type in STOP_TYPES and not trailing:
            needs.append(("stopPrice", stop))
        for name, needed in needs:
            if needed is None:
                raise mandatory(name)
        if order_type not in LIMIT_PRICED and limit is not None:
            raise not_required("price")
        if order_type not in STOP_TYPES and stop is not None:
            raise not_required("stopPrice")

    def client_id(self, symbol: str, wanted: str | None) -> str:
        """The caller's id (unique among this symbol's open orders) or a generated one."""
        if wanted is None:
            return self.engine.random_id()
        if not CLIENT_ID_RE.match(wanted):
            raise BinanceError(
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[a-zA-Z0-9-_.:/]{1,36}$'.",
            )
        existing = self.by_client.get((symbol, wanted))
        if existing is not None and self.orders[existing].is_open:
            raise rejected(DUPLICATE_ORDER)
        return wanted

    def check_filters(
        self,
        spec: SymbolSpec,
        order_type: str,
        side: str,
        qty: Decimal,
        limit: Decimal | None,
        stop: Decimal | None,
    ) -> None:
        lot = spec.spot
        for name, value in (("quantity", qty), ("price", limit), ("stopPrice", stop)):
            if value is not None and value.as_tuple().exponent < -8:  # type: ignore[operator]
                raise BinanceError(-1111, f"Parameter '{name}' has too much precision.")
        if (
            qty <= 0
            or qty < lot.min_qty
            or qty > lot.max_qty
            or not is_multiple(qty - lot.min_qty, lot.step)
        ):
            raise filter_failure("LOT_SIZE")
        if order_type == "MARKET" and qty > lot.market_max_qty:
            raise filter_failure("MARKET_LOT_SIZE")
        for value in (limit, stop):
            if value is None:
                continue
            if (
                value < lot.min_price
                or value > lot.max_price
                or not is_multiple(value - lot.min_price, lot.tick)
            ):
                raise filter_failure("PRICE_FILTER")
        average = self.engine.avg_price(spec.symbol)
        if limit is not None:
            # Against the 5-minute average, not the last price: after a gap the two differ.
            up, down = (
                (PERCENT_BID_UP, PERCENT_BID_DOWN)
                if side == "BUY"
                else (PERCENT_ASK_UP, PERCENT_ASK_DOWN)
            )
            if not average * down <= limit <= average * up:
                raise filter_failure("PERCENT_PRICE_BY_SIDE")
        reference = limit or stop or average
        if qty * reference < lot.min_notional:
            raise filter_failure("NOTIONAL")

    def check_counts(self, symbol: str, new_algo_orders: int, new_orders: int = 1) -> None:
        open_orders = self.open[symbol]
        if len(open_orders) + new_orders > MAX_NUM_ORDERS:
            raise filter_failure("MAX_NUM_ORDERS")
        if new_algo_orders:
            stops = sum(1 for o in open_orders.values() if o.type in STOP_TYPES)
            if stops + new_algo_orders > self.engine.settings.paper_max_num_algo_orders:
                raise filter_failure("MAX_NUM_ALGO_ORDERS")

    def reserve(self, spec: SymbolSpec, side: str, qty: Decimal, price: Decimal) -> Reservation:
        wallet = self.engine.spot_wallet
        if side == "SELL":
            return wallet.reserve(spec.base, qty)
        return wallet.reserve(spec.quote, qty * price)

    def store(self, order: SpotOrder) -> None:
        self.orders[order.order_id] = order
        self.by_client[(order.symbol, order.client_order_id)] = order.order_id
        if order.is_open:
            self.open[order.symbol][order.order_id] = order

    # matching -----------------------------------------------------------------------------

    def trade(self, order: SpotOrder, qty: Decimal, price: Decimal) -> None:
        """Fill ``qty`` at ``price``: move balances, charge commission, record the fill."""
        engine = self.engine
        spec = engine.specs[order.symbol]
        wallet = engine.spot_wallet
        wallet.release(order.reservation)
        order.reservation = None
        amount = qty * price
        rate = engine.settings.paper_fee_rate
        if order.side == "BUY":
            wallet.debit(spec.quote, amount)
            fee, fee_asset = round_down(qty * rate, Decimal("0.00000001")), spec.base
            wallet.credit(spec.base, qty - fee)
        else:
            wallet.debit(spec.base, qty)
            fee, fee_asset = round_down(amount * rate, Decimal("0.00000001")), spec.quote
            wallet.credit(spec.quote, amount - fee)
        order.executed += qty
        order.cum_quote += amount
        trade_id = engine.ids.next("trade")
        order.fills.append(
            {
                "price": fmt8(price),
                "qty": fmt8(qty),
                "commission": fmt8(fee),
                "commissionAsset": fee_asset,
                "tradeId": trade_id,
            }
        )
        order.trades.append(
            {
                "symbol": order.symbol,
                "id": trade_id,
                "orderId": order.order_id,
                "orderListId": order.list_id,
                "price": fmt8(price),
                "qty": fmt8(qty),
                "quoteQty": fmt8(amount),
                "commission": fmt8(fee),
                "commissionAsset": fee_asset,
                "time": engine.now,
                "isBuyer": order.side == "BUY",
                "isMaker": order.type != "MARKET",
                "isBestMatch": True,
            }
        )
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        order.update_time = engine.now
        if order.working_time < 0:
            order.working_time = engine.now
        if not order.is_open:
            self.open[order.symbol].pop(order.order_id, None)
            self.oco.on_leg_done(order)

    def on_price(self, symbol: str, price: Decimal) -> None:
        for order in list(self.open[symbol].values()):
            if not order.is_open:
                continue
            just_triggered = False
            if not order.working:
                if order.trailing_delta:
                    if not trails(order, price, self.engine.now):
                        continue
                elif not triggered(order.type, order.side, order.stop_price, price):
                    continue
                self.oco.on_leg_event(order)
                order.working_time = self.engine.now
                order.update_time = self.engine.now
                if order.type in ("STOP_LOSS", "TAKE_PROFIT"):
                    self.fill_or_expire(order, price)
                    continue
                just_triggered = True
            if marketable(order.side, order.price, price):
                self.oco.on_leg_event(order)
                # A limit that was already resting fills at its price (maker); one that has
                # just been triggered into a crossed market takes the current price.
                self.fill_or_expire(order, price if just_triggered else order.price)
            elif just_triggered and order.time_in_force in ("IOC", "FOK"):
                # The market gapped past the limit: an IOC/FOK stop-limit cannot rest.
                reason = (
                    "UNFILLED_IOC_QUANTITY_EXPIRED"
                    if order.time_in_force == "IOC"
                    else "UNFILLED_FOK_ORDER_EXPIRED"
                )
                self.end(order, "EXPIRED", reason)
            # Otherwise a stop-limit triggered past its limit rests as a limit order: NEW,
            # isWorking, and no longer a stop; the position is unprotected.

    def fill_or_expire(self, order: SpotOrder, price: Decimal) -> None:
        try:
            self.trade(order, order.qty - order.executed, price)
        except BinanceError:  # funds moved away since the order was placed
            self.end(order, "EXPIRED", "INSUFFICIENT_BALANCE")

    def end(self, order: SpotOrder, status: str, reason: str | None = None) -> None:
        self.engine.spot_wallet.release(order.reservation)
        order.reservation = None
        order.status = status
        order.expiry_reason = reason
        order.update_time = self.engine.now
        self.open[order.symbol].pop(order.order_id, None)
        self.oco.on_leg_done(order)

    # queries and cancels ------------------------------------------------------------------

    def find(self, p: Params) -> SpotOrder:
        symbol = self.engine.spec(p.text("symbol")).symbol
        order_id = p.integer("orderId")
        client_id = p.get("origClientOrderId")
        if order_id is None and client_id is None:
            raise BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        if order_id is None:
            order_id = self.by_client.get((symbol, client_id or ""))
        order = self.orders.get(order_id) if order_id is not None else None
        if order is None or order.symbol != symbol:
            raise no_such_order()
        if client_id is not None and order.client_order_id != client_id:
            raise no_such_order()
        if not self.engine.visible(order.created_mono, p.lag_s):
            raise no_such_order()
        return order

    def query(self, p: Params) -> dict[str, object]:
        return render_query(self.find(p))

    def my_trades(self, p: Params) -> list[dict[str, object]]:
        """GET /api/v3/myTrades: the account's trades on a symbol, or one order's (orderId);
        hidden like the order itself while a read-after-write lag fault is on."""
        symbol = self.engine.spec(p.text("symbol")).symbol
        order_id = p.integer("orderId")
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is None or order.symbol != symbol:
                return []
            chosen = [order]
        else:
            chosen = [o for o in self.orders.values() if o.symbol == symbol]
        rows = [t for o in chosen if self.engine.visible(o.created_mono, p.lag_s) for t in o.trades]
        rows.sort(key=lambda t: int(str(t["id"])))
        limit = p.integer("limit") or 500
        return rows[:limit]

    def cancel(self, p: Params) -> dict[str, object]:
        try:
            order = self.find(p)
        except BinanceError:
            raise unknown_order() from None
        if not order.is_open:
            raise unknown_order()
        cancel_id = p.get("newClientOrderId") or self.engine.random_id()
        if order.list_id >= 0:
            self.oco.cancel_list_orders(self.oco.lists[order.list_id])
        else:
            self.end(order, "CANCELED")
        return render_cancel(order, cancel_id, self.engine.now)

    def open_orders(self, p: Params) -> list[dict[str, object]]:
        symbol = p.get("symbol")
        books = [self.open[self.engine.spec(symbol).symbol]] if symbol else list(self.open.values())
        rows = [
            o
            for book in books
            for o in book.values()
            if self.engine.visible(o.created_mono, p.lag_s)
        ]
        rows.sort(key=lambda o: o.order_id)
        return [render_query(o) for o in rows]
