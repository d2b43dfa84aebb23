"""Spot orders (``/api/v3/order``) and OCO order lists (``/api/v3/orderList*``).

``newClientOrderId`` and ``listClientOrderId`` are unique among *open* orders only: a filled
MARKET order's id can be used again. So never resend after an unknown outcome until
``find_order`` / ``find_order_list`` has proved the first attempt absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.exchange.errors import Rejected
from app.exchange.models import Order, OrderList, Trade
from app.exchange.session import BinanceSession, parse, parse_list


@dataclass(frozen=True)
class OcoLeg:
    """One side of an OCO: ``type`` LIMIT_MAKER, STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT(_LIMIT)."""

    type: str
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None  # required for STOP_LOSS_LIMIT / TAKE_PROFIT_LIMIT
    client_order_id: str | None = None
    trailing_delta: int | None = None  # BIPS: a trailing stop (then stop_price is optional)

    def params(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}Type": self.type,
            f"{prefix}ClientOrderId": self.client_order_id,
            f"{prefix}Price": self.price,
            f"{prefix}StopPrice": self.stop_price,
            f"{prefix}TimeInForce": self.time_in_force,
            f"{prefix}TrailingDelta": self.trailing_delta,
        }


def _one_id(name: str, order_id: int | None, client_id: str | None) -> None:
    if (order_id is None) == (client_id is None):
        raise ValueError(f"give exactly one of {name}Id or its client id")


class SpotOrders(BinanceSession):
    def new_order(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        new_client_order_id: str,
        quantity: Decimal | None = None,
        quote_order_qty: Decimal | None = None,
        price: Decimal | None = None,
        time_in_force: str | None = None,
        stop_price: Decimal | None = None,
        new_order_resp_type: str = "FULL",
        trailing_delta: int | None = None,
    ) -> Order:
        """POST /api/v3/order. FULL answers carry ``fills`` (with commissions)."""
        path = "/api/v3/order"
        params = {
            "symbol": symbol,
            "side": side,
            "type": type,
            "timeInForce": time_in_force,
            "quantity": quantity,
            "quoteOrderQty": quote_order_qty,
            "price": price,
            "stopPrice": stop_price,
            "trailingDelta": trailing_delta,
            "newClientOrderId": new_client_order_id,
            "newOrderRespType": new_order_resp_type,
        }
        return parse(Order, self.call("POST", path, params, signed=True), method="POST", path=path)

    def get_order(
        self, symbol: str, *, order_id: int | None = None, orig_client_order_id: str | None = None
    ) -> Order:
        """GET /api/v3/order by orderId or origClientOrderId; -2013 raises ``Rejected``."""
        _one_id("order", order_id, orig_client_order_id)
        path = "/api/v3/order"
        params = {"symbol": symbol, "orderId": order_id, "origClientOrderId": orig_client_order_id}
        return parse(Order, self.call("GET", path, params, signed=True), method="GET", path=path)

    def cancel_order(
        self, symbol: str, *, order_id: int | None = None, orig_client_order_id: str | None = None
    ) -> Order:
        """DELETE /api/v3/order; ``AlreadyDone`` when Binance knows no open order by that id."""
        _one_id("order", order_id, orig_client_order_id)
        path = "/api/v3/order"
        params = {"symbol": symbol, "orderId": order_id, "origClientOrderId": orig_client_order_id}
        body = self.call("DELETE", path, params, signed=True)
        return parse(Order, body, method="DELETE", path=path)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """GET /api/v3/openOrders: open orders of one symbol (weight 6) or all (weight 80)."""
        path = "/api/v3/openOrders"
        body = self.call("GET", path, {"symbol": symbol}, signed=True)
        return parse_list(Order, body, method="GET", path=path)

    def my_trades(self, symbol: str, order_id: int) -> list[Trade]:
        """GET /api/v3/myTrades?orderId= (weight 20): the trades of one order, each with its
        price, quantity, quote quantity and the commission charged (asset included)."""
        path = "/api/v3/myTrades"
        body = self.call("GET", path, {"symbol": symbol, "orderId": order_id}, signed=True)
        return parse_list(Trade, body, method="GET", path=path)

    def find_order(self, symbol: str, client_order_id: str) -> Order | None:
        """The order placed with ``client_order_id``, or None when Binance does not know it."""
        try:
            return self.get_order(symbol, orig_client_order_id=client_order_id)
        except Rejected as exc:
            if exc.is_not_found:
                return None
            raise

    def new_oco(
        self,
        *,
        symbol: str,
        side: str,
        quantity: Decimal,
        above: OcoLeg,
        below: OcoLeg,
        list_client_order_id: str,
        new_order_resp_type: str = "RESULT",
    ) -> OrderList:
        """POST /api/v3/orderList/oco. A SELL bracket: above = take-profit, below = stop."""
        path = "/api/v3/orderList/oco"
        params = {
            "symbol": symbol,
            "listClientOrderId": list_client_order_id,
            "side": side,
            "quantity": quantity,
            **above.params("above"),
            **below.params("below"),
            "newOrderRespType": new_order_resp_type,
        }
        body = self.call("POST", path, params, signed=True)
        return parse(OrderList, body, method="POST", path=path)

    def get_order_list(
        self, *, order_list_id: int | None = None, list_client_order_id: str | None = None
    ) -> OrderList:
        """GET /api/v3/orderList (header and leg ids; query the legs for their fills)."""
        _one_id("orderList", order_list_id, list_client_order_id)
        path = "/api/v3/orderList"
        # Binance names the list's client id origClientOrderId on this endpoint.
        params = {"orderListId": order_list_id, "origClientOrderId": list_client_order_id}
        body = self.call("GET", path, params, signed=True)
        return parse(OrderList, body, method="GET", path=path)

    def open_order_lists(self) -> list[OrderList]:
        path = "/api/v3/openOrderList"
        return parse_list(OrderList, self.call("GET", path, signed=True), method="GET", path=path)

    def cancel_order_list(
        self,
        symbol: str,
        *,
        order_list_id: int | None = None,
        list_client_order_id: str | None = None,
    ) -> OrderList:
        """DELETE /api/v3/orderList; ``AlreadyDone`` when no open list has that id."""
        _one_id("orderList", order_list_id, list_client_order_id)
        path = "/api/v3/orderList"
        params = {
            "symbol": symbol,
            "orderListId": order_list_id,
            "listClientOrderId": list_client_order_id,
        }
        body = self.call("DELETE", path, params, signed=True)
        return parse(OrderList, body, method="DELETE", path=path)

    def find_order_list(self, list_client_order_id: str) -> OrderList | None:
        """The OCO placed with ``list_client_order_id``, or None when Binance does not know it."""
        try:
            return self.get_order_list(list_client_order_id=list_client_order_id)
        except Rejected as exc:
            if exc.is_not_found:
                return None
            raise
