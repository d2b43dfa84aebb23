"""Spot orders as Binance shows them: the order record and its response shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from time import monotonic

from paper.errors import filter_failure, not_required
from paper.numbers import ZERO, fmt8
from paper.params import Params
from paper.wallet import Reservation

STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
LIMIT_PRICED = ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
OPEN = ("NEW", "PARTIALLY_FILLED")
# The TRAILING_DELTA filter (BIPS), the same for the above and the below directions.
MIN_TRAILING_DELTA, MAX_TRAILING_DELTA = 10, 2000


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
    # A trailing stop (``trailingDelta``, BIPS): tracking since ``trailing_time`` (-1: not
    # yet, waiting for its stopPrice), the best price since (highest SELL, lowest BUY).
    trailing_delta: int = 0
    trailing_time: int = -1
    extreme: Decimal = ZERO

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


def trailing_delta(p: Params, name: str, order_type: str) -> int:
    """``trailingDelta`` (BIPS; 0 when not sent): only on a stop or take-profit type, within
    the symbol's TRAILING_DELTA filter."""
    delta = p.integer(name)
    if delta is None:
        return 0
    if order_type not in STOP_TYPES:
        raise not_required(name)
    if not MIN_TRAILING_DELTA <= delta <= MAX_TRAILING_DELTA:
        raise filter_failure("TRAILING_DELTA")
    return delta


def trails(order: SpotOrder, price: Decimal, now: int) -> bool:
    """Track ``price`` for a trailing stop; True when it triggers at it (Binance's trailing
    stop FAQ: tracking starts at the first price meeting the stopPrice condition, or at
    once without a stopPrice; a SELL triggers after a fall of the delta from the highest
    price since, a BUY after a rise from the lowest)."""
    if order.trailing_time < 0:
        if order.stop_price and not triggered(order.type, order.side, order.stop_price, price):
            return False
        order.trailing_time, order.extreme = now, price
        return False
    delta = Decimal(order.trailing_delta) / 10_000
    if order.side == "SELL":
        order.extreme = max(order.extreme, price)
        return price <= order.extreme * (1 - delta)
    order.extreme = min(order.extreme, price)
    return price >= order.extreme * (1 + delta)


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
    if order.trailing_delta:
        out["trailingDelta"] = order.trailing_delta
        out["trailingTime"] = order.trailing_time
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
