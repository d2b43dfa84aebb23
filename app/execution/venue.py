"""An order row <-> the exchange client: which endpoint sends it, how to look it up by client
id, and how an answer updates the row (venue id, status, executed quantity, price, fills).

The row holds what was planned (``app.execution.planning.OrderIntent``): the request is
rebuilt from it, so a resend after a crash sends the same parameters with the same client id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from app.exchange import models as m
from app.exchange.client import BinanceClient
from app.exchange.errors import ExchangeError, Rejected, Temporary, UnknownOutcome
from app.exchange.filters import Market
from app.exchange.futures import POSITION_SIDE_MISMATCH
from app.exchange.orders import OcoLeg
from app.execution.positions import (
    FillData,
    ms_time,
    record_fills,
    spot_fills,
    stored_fill_ids,
    top_up_fill,
)
from app.models import ALGO_KINDS, Order, OrderKind, OrderStatus

log = logging.getLogger(__name__)

Answer = m.Order | m.OrderList | m.AlgoAccepted | m.AlgoOrder | m.FuturesOrder | m.ConditionalOrder
SPOT_TYPES = {
    "market": "MARKET",
    "limit": "LIMIT",
    "take_profit_limit": "TAKE_PROFIT_LIMIT",
    "stop_loss_limit": "STOP_LOSS_LIMIT",
    "stop_loss": "STOP_LOSS",
}
# Venue status -> our order status.
STATUS = {
    "NEW": OrderStatus.WORKING,
    "PENDING_NEW": OrderStatus.WORKING,
    "PARTIALLY_FILLED": OrderStatus.WORKING,
    "PENDING_CANCEL": OrderStatus.WORKING,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    "REJECTED": OrderStatus.REJECTED,
    # OCO lists
    "EXECUTING": OrderStatus.WORKING,
    "ALL_DONE": OrderStatus.FILLED,  # refined from the legs by whoever watches the list
    # USD-M conditional orders
    "TRIGGERING": OrderStatus.WORKING,
    "TRIGGERED": OrderStatus.WORKING,
    "FINISHED": OrderStatus.FILLED,
    # sapi algos: the monitor decides how a TWAP/VP ended (FINISHED, CANCELLED, expired)
    "WORKING": OrderStatus.WORKING,
}


TRAILING_STOP = "TRAILING_STOP_MARKET"


def _extra(order: Order) -> dict[str, Any]:
    return dict(order.extra or {})


def _leg(raw: dict[str, Any]) -> OcoLeg:
    def dec(value: Any) -> Decimal | None:
        return Decimal(value) if value not in (None, "") else None

    return OcoLeg(
        type=raw["type"],
        price=dec(raw.get("price")),
        stop_price=dec(raw.get("stop_price")),
        time_in_force=raw.get("time_in_force"),
        client_order_id=raw.get("client_id"),
        trailing_delta=raw.get("trailing_delta"),
    )


def position_side(client: BinanceClient, order: Order) -> str | None:
    """The ``positionSide`` a USD-M order names: None (BOTH) in one-way mode; in hedge mode
    LONG or SHORT, the position the order opens or, for what reduces, closes (a SELL that
    reduces closes the LONG)."""
    if order.market != "usdm" or not client.dual_side():
        return None
    extra = _extra(order)
    reducing = bool(extra.get("reduce_only") or extra.get("close_position"))
    return "LONG" if (order.side == "BUY") != reducing else "SHORT"


def submit(client: BinanceClient, order: Order) -> Answer:
    """Send the row's request once (no retry: the caller reconciles failures).

    USD-M orders follow the account's position mode (cached by the client). A -4061 ("position
    side does not match") means the mode changed under us and nothing was placed: the mode is
    read again and, if it did change, the request is sent once more in the new mode."""
    if order.market != "usdm":
        return _submit(client, order)
    mode = position_mode(client)
    try:
        return _submit(client, order)
    except Rejected as exc:
        if exc.code != POSITION_SIDE_MISMATCH:
            raise
        client.forget_position_mode()
        if position_mode(client) == mode:
            raise
        log.warning("position mode changed to %s: resending", "hedge" if not mode else "one-way")
        return _submit(client, order)


def position_mode(client: BinanceClient) -> bool:
    """The position mode, read before anything is sent: a read that failed is temporary."""
    try:
        return client.dual_side()
    except UnknownOutcome as exc:
        raise Temporary(f"the position mode could not be read: {exc.msg}") from None


def _submit(client: BinanceClient, order: Order) -> Answer:
    extra = _extra(order)
    side = position_side(client, order)
    # Hedge mode takes no reduceOnly: the positionSide says which position a close reduces.
    reduce_only = True if extra.get("reduce_only") and side is None else None
    if order.kind in ALGO_KINDS:
        return _submit_algo(client, order, reduce_only, side)
    if order.market == "spot":
        if order.kind == "oco":
            assert order.quantity is not None
            return client.new_oco(
                symbol=order.symbol, side=order.side, quantity=order.quantity,
                above=_leg(extra["above"]), below=_leg(extra["below"]),
                list_client_order_id=order.client_id,
            )  # fmt: skip
        # GTC for what rests at a price; STOP_LOSS (market once triggered) takes none.
        resting = order.kind not in ("market", "stop_loss")
        return client.new_order(
            symbol=order.symbol, side=order.side, type=SPOT_TYPES[order.kind],
            new_client_order_id=order.client_id, quantity=order.quantity,
            quote_order_qty=order.quote_quantity, price=order.price,
            stop_price=order.stop_price, time_in_force="GTC" if resting else None,
            new_order_resp_type="FULL" if order.kind in ("market", "limit") else "RESULT",
            trailing_delta=extra.get("trailing_delta"),
        )  # fmt: skip
    if order.kind == "conditional" and extra.get("order_type") == TRAILING_STOP:
        activation = extra.get("activation_price")
        return client.new_conditional_order(
            symbol=order.symbol, side=order.side, type=TRAILING_STOP, trigger_price=None,
            client_algo_id=order.client_id, quantity=order.quantity,
            reduce_only=reduce_only, working_type="MARK_PRICE", position_side=side,
            callback_rate=Decimal(str(extra["callback_rate"])),
            activate_price=Decimal(str(activation)) if activation else None,
        )  # fmt: skip
    if order.kind == "conditional":
        assert order.stop_price is not None
        return client.new_conditional_order(
            symbol=order.symbol, side=order.side, type=extra["order_type"],
            trigger_price=order.stop_price, client_algo_id=order.client_id,
            close_position=True if extra.get("close_position") else None,
            quantity=None if extra.get("close_position") else order.quantity,
            reduce_only=True if reduce_only and not extra.get("close_position") else None,
            working_type="MARK_PRICE", price_protect=True, position_side=side,
        )  # fmt: skip
    assert order.quantity is not None
    return client.new_futures_order(
        symbol=order.symbol, side=order.side, type=order.kind.upper(),
        quantity=order.quantity, new_client_order_id=order.client_id, price=order.price,
        time_in_force="GTC" if order.kind == "limit" else None, reduce_only=reduce_only,
        position_side=side,
    )  # fmt: skip


def _submit_algo(
    client: BinanceClient, order: Order, reduce_only: bool | None, side: str | None
) -> Answer:
    assert order.quantity is not None
    if order.market == "spot" and order.kind == OrderKind.VP:
        assert order.urgency is not None
        return client.new_spot_vp(
            symbol=order.symbol, side=order.side, quantity=order.quantity,
            urgency=order.urgency, client_algo_id=order.client_id,
            limit_price=order.limit_price,
        )  # fmt: skip
    if order.market == "spot":
        assert order.duration is not None
        return client.new_spot_twap(
            symbol=order.symbol, side=order.side, quantity=order.quantity,
            duration=order.duration, client_algo_id=order.client_id,
            limit_price=order.limit_price,
        )  # fmt: skip
    if order.kind == OrderKind.TWAP:
        assert order.duration is not None
        return client.new_futures_twap(
            symbol=order.symbol, side=order.side, quantity=order.quantity,
            duration=order.duration, client_algo_id=order.client_id,
            limit_price=order.limit_price, reduce_only=reduce_only, position_side=side,
        )  # fmt: skip
    assert order.urgency is not None
    return client.new_futures_vp(
        symbol=order.symbol, side=order.side, quantity=order.quantity, urgency=order.urgency,
        client_algo_id=order.client_id, limit_price=order.limit_price, reduce_only=reduce_only,
        position_side=side,
    )  # fmt: skip


def lookup(client: BinanceClient, order: Order) -> Answer | None:
    """The venue's view of the row, found by its exchange id once the row has one, else by
    its client id; None = not found (yet).

    A spot client id is unique among open orders only: once our order has filled, a
    stranger may place another under the same id, and a look-up by client id may answer
    theirs. So a row the exchange already answered for (``venue_id``) is always read by that
    id (a MARKET order answered NEW and followed until filled, a cancel's confirmation)."""
    if order.kind in ALGO_KINDS:
        since = int(order.created_at.timestamp() * 1000) - 60_000 if order.created_at else None
        return client.find_algo(
            Market(order.market),
            order.client_id,
            symbol=order.symbol,
            since_ms=since,
        )
    if order.market == "spot":
        if order.kind == "oco":
            return client.find_order_list(order.client_id)
        if order.venue_id is not None:
            by_id = _not_found_is_none(
                lambda: client.get_order(order.symbol, order_id=order.venue_id)
            )
            return with_trades(client, by_id)
        return with_trades(client, client.find_order(order.symbol, order.client_id))
    if order.kind == "conditional":
        return client.find_conditional_order(order.client_id)
    if order.venue_id is not None:
        return _not_found_is_none(
            lambda: client.get_futures_order(order.symbol, order_id=order.venue_id)
        )
    return client.find_futures_order(order.symbol, order.client_id)


T = TypeVar("T")


def _not_found_is_none(read: Callable[[], T]) -> T | None:
    """Binance answers "does not exist" for a while after an order is placed (its
    read-after-write lag): not found yet."""
    try:
        return read()
    except Rejected as exc:
        if exc.is_not_found:
            return None
        raise


def not_ours(order: Order, answer: Answer) -> str | None:
    """Why an order found under the row's client id is not the row's order (its symbol,
    side, type, quantity or price differ), or None when it may be. A spot client id is
    unique among open orders only, so an order placed by someone else (another bot, a
    person, a previous deployment) can hold the id this row was about to use; adopting it
    would take a stranger's order for ours. Checked for spot and USD-M orders."""
    if not isinstance(answer, m.Order | m.FuturesOrder):
        return None
    wanted = SPOT_TYPES.get(order.kind) if order.market == "spot" else order.kind.upper()
    differences = []
    if answer.symbol != order.symbol:
        differences.append(f"symbol {answer.symbol}")
    if answer.side and answer.side.upper() != order.side.upper():
        differences.append(f"side {answer.side}")
    if answer.type and wanted and answer.type != wanted:
        differences.append(f"type {answer.type}")
    if order.quantity is not None and answer.origQty and answer.origQty != order.quantity:
        differences.append(f"quantity {answer.origQty}")
    if order.price is not None and answer.price and answer.price != order.price:
        differences.append(f"price {answer.price}")
    if not differences:
        return None
    return f"order {answer.orderId}: {', '.join(differences)}"


def with_trades(client: BinanceClient, answer: Any) -> Any:
    """A spot order answer that lists no trades (a query, a cancel answer) but executed
    something, with its trades from ``GET /api/v3/myTrades?orderId=``: fills with their real
    commissions, keyed by trade id like the fills of a FULL answer. Unchanged when the
    trades cannot be read (the fills are then recorded without commission, ``fees_unknown``)."""
    if not isinstance(answer, m.Order) or answer.fills or not answer.executedQty:
        return answer
    try:
        trades = client.my_trades(answer.symbol, answer.orderId)
    except ExchangeError as exc:
        log.warning("myTrades of order %s: %s", answer.orderId, exc)
        return answer
    fills = [
        m.Fill(price=t.price, qty=t.qty, commission=t.commission,
               commissionAsset=t.commissionAsset, tradeId=t.id)
        for t in trades
        if t.orderId == answer.orderId
    ]  # fmt: skip
    return answer.model_copy(update={"fills": fills}) if fills else answer


def _set_status(order: Order, venue_status: str | None) -> None:
    if venue_status is None:
        return
    order.venue_status = venue_status
    mapped = STATUS.get(venue_status)
    if order.kind in ALGO_KINDS and mapped is not OrderStatus.CANCELLED:
        # How an algo ended (and its fills) is the monitor's to read from subOrders.
        mapped = OrderStatus.WORKING
    order.status = (mapped or OrderStatus.UNKNOWN).value


def _amounts(order: Order, executed: Decimal | None, quote: Decimal | None) -> None:
    if executed is not None:
        order.executed_qty = executed
    if quote is not None:
        order.executed_amt = quote
    if executed and quote:
        order.avg_price = quote / executed


def _topped_up(known: set[str]) -> bool:
    """Whether the row has fills recorded as increments (``top_up_fill``), not per trade."""
    return any(i.startswith("order-") for i in known)


def apply(session: Session, order: Order, answer: Answer, *, now: datetime) -> None:
    """Update the row from an answer or a look-up, and record any fills it carries (at
    ``now``)."""
    fills: list[FillData] = []
    known: set[str] | None = None
    if isinstance(answer, m.Order):
        order.venue_id = answer.orderId
        _set_status(order, answer.status or "NEW")
        _amounts(order, answer.executedQty, answer.cummulativeQuoteQty)
        order.book_time = order.book_time or ms_time(answer.transactTime or answer.time)
        fills = spot_fills(answer)
        if fills:
            known = stored_fill_ids(session, order)
        if fills and _topped_up(known or set()):
            fills = []  # recorded as increments before: go on that way (no double count)
        if not fills and answer.executedQty:
            # A look-up (GET) lists no trades: what executed since the last read, as one
            # fill whose commission is unknown.
            fills = top_up_fill(
                session, order, ref=f"order-{answer.orderId}", executed=answer.executedQty,
                quote=answer.cummulativeQuoteQty, when=answer.updateTime or answer.transactTime,
            )  # fmt: skip
            extra = _extra(order)
            extra["fees_unknown"] = True
            order.extra = extra
    elif isinstance(answer, m.OrderList):
        order.venue_id = answer.orderListId
        _set_status(order, answer.listOrderStatus)
        extra = _extra(order)
        extra["legs"] = {ref.clientOrderId: ref.orderId for ref in answer.orders}
        order.extra = extra
        order.book_time = order.book_time or ms_time(answer.transactionTime)
    elif isinstance(answer, m.AlgoOrder):
        order.venue_id = answer.algoId
        _set_status(order, str(answer.algoStatus))
        _amounts(order, answer.executedQty, answer.executedAmt)
        order.book_time = ms_time(answer.bookTime)
    elif isinstance(answer, m.AlgoAccepted):
        order.status = OrderStatus.WORKING.value  # algoId comes from openOrders
        order.venue_status = "ACCEPTED"
    elif isinstance(answer, m.FuturesOrder):
        order.venue_id = answer.orderId
        _set_status(order, str(answer.status))
        _amounts(order, answer.executedQty, answer.cumQuote)
        fills = top_up_fill(
            session, order, ref=f"order-{answer.orderId}", executed=answer.executedQty,
            quote=answer.cumQuote, avg=answer.avgPrice, when=answer.updateTime,
        )  # fmt: skip
    else:
        order.venue_id = answer.algoId
        _set_status(order, str(answer.algoStatus))
        order.book_time = order.book_time or ms_time(answer.createTime)
    session.flush()
    if fills:
        record_fills(session, order, fills, now=now, known=known, load=False)
