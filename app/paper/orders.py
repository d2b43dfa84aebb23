"""Spot orders as Binance shows them: the order record and its response shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from time import monotonic

from app.paper.numbers import ZERO, fmt8
from app.paper.wallet import Reservation

STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
LIMIT_PRICED = ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass
class SpotOrder:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal
    stop_price: Decimal
    time: int
    quote_order_qty: Decimal = ZERO
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    working_time: int = -1
    list_id: int = -1
    fills: list[dict[str, object]] = field(default_factory=list)
    # The same executions as GET /api/v3/myTrades shows them (with time, maker, quoteQty).
    trades: list[dict[str, object]] = field(default_factory=list)
    reservation: Reservation | None = None
    expiry_reason: str | None = None
    created_mono: float = field(default_factory=monotonic)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def working(self) -> bool:
        return self.working_time >= 0


def triggered(order_type: str, side: str, stop: Decimal, price: Decimal) -> bool:
    """Binance's trigger rule: a stop-loss fires against the position, a take-profit with it."""
    if order_type.startswith("STOP_LOSS"):
        return price <= stop if side == "SELL" else price >= stop
    return price >= stop if side == "SELL" else price <= stop


def marketable(side: str, limit: Decimal, price: Decimal) -> bool:
    return price <= limit if side == "BUY" else price >= limit


def render_new(order: SpotOrder, resp: str) -> dict[str, object]:
    out: dict[str, object] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": order.list_id,
        "clientOrderId": order.client_order_id,
        "transactTime": order.time,
    }
    if resp == "ACK":
        return out
    out.update(_body(order))
    out["workingTime"] = order.working_time
    out["selfTradePreventionMode"] = "NONE"
    if order.expiry_reason:
        out["expiryReason"] = order.expiry_reason
    if resp == "FULL":
        out["fills"] = list(order.fills)
    return out


def _body(order: SpotOrder) -> dict[str, object]:
    out: dict[str, object] = {
        "price": fmt8(order.price),
        "origQty": fmt8(order.qty),
        "executedQty": fmt8(order.executed),
        "origQuoteOrderQty": fmt8(order.quote_order_qty),
        "cummulativeQuoteQty": fmt8(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
    }
    if order.type in STOP_TYPES:
        out["stopPrice"] = fmt8(order.stop_price)
    return out


def render_query(order: SpotOrder) -> dict[str, object]:
    out: dict[str, object] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": order.list_id,
        "clientOrderId": order.client_order_id,
    }
    out.update(_body(order))
    out["stopPrice"] = fmt8(order.stop_price)
    out.update(
        {
            "icebergQty": fmt8(ZERO),
            "time": order.time,
            "updateTime": order.update_time,
            "isWorking": order.working,
            "workingTime": order.working_time,
            "origQuoteOrderQty": fmt8(order.quote_order_qty),
            "selfTradePreventionMode": "NONE",
        }
    )
    if order.expiry_reason:
        out["expiryReason"] = order.expiry_reason
    return out


def render_report(order: SpotOrder) -> dict[str, object]:
    out: dict[str, object] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": order.list_id,
        "clientOrderId": order.client_order_id,
        "transactTime": order.time,
    }
    out.update(_body(order))
    out["workingTime"] = order.working_time
    out["selfTradePreventionMode"] = "NONE"
    return out


def render_cancel(order: SpotOrder, cancel_id: str, now: int) -> dict[str, object]:
    out: dict[str, object] = {
        "symbol": order.symbol,
        "origClientOrderId": order.client_order_id,
        "orderId": order.order_id,
        "orderListId": order.list_id,
        "clientOrderId": cancel_id,
        "transactTime": now,
    }
    out.update(_body(order))
    out["selfTradePreventionMode"] = "NONE"
    return out
