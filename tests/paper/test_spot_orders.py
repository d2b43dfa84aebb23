"""Spot orders: types, response shapes, fills and fees, filters, ids, cancels and queries."""

from __future__ import annotations

from decimal import Decimal

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient

D = Decimal
ORDER = "/api/v3/order"
RESULT_FIELDS = {
    "symbol",
    "orderId",
    "orderListId",
    "clientOrderId",
    "transactTime",
    "price",
    "origQty",
    "executedQty",
    "origQuoteOrderQty",
    "cummulativeQuoteQty",
    "status",
    "timeInForce",
    "type",
    "side",
    "workingTime",
    "selfTradePreventionMode",
}
QUERY_FIELDS = {
    "symbol",
    "orderId",
    "orderListId",
    "clientOrderId",
    "price",
    "origQty",
    "executedQty",
    "cummulativeQuoteQty",
    "status",
    "timeInForce",
    "type",
    "side",
    "stopPrice",
    "icebergQty",
    "time",
    "updateTime",
    "isWorking",
    "workingTime",
    "origQuoteOrderQty",
    "selfTradePreventionMode",
}


def balances(bn: BinanceTestClient) -> dict[str, D]:
    account = bn.ok("GET", "/api/v3/account")
    return {b["asset"]: D(b["free"]) for b in account["balances"]}


def test_market_buy_fills_with_commission_in_the_received_asset(bn: BinanceTestClient) -> None:
    before = balances(bn)
    order = bn.ok(
        "POST",
        ORDER,
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
    )
    assert set(order) == RESULT_FIELDS | {"fills"}
    assert order["status"] == "FILLED" and order["orderListId"] == -1
    (fill,) = order["fills"]
    assert set(fill) == {"price", "qty", "commission", "commissionAsset", "tradeId"}
    assert fill["commissionAsset"] == "BTC" and D(fill["commission"]) == D("0.00001")
    assert order["cummulativeQuoteQty"] == "650.00000000"
    after = balances(bn)
    assert after["BTC"] - before["BTC"] == D("0.00999")
    assert before["USDT"] - after["USDT"] == D("650")


def test_market_sell_by_quote_amount(bn: BinanceTestClient) -> None:
    order = bn.ok(
        "POST",
        ORDER,
        {"symbol": "ETHUSDT", "side": "SELL", "type": "MARKET", "quoteOrderQty": "320"},
    )
    assert order["executedQty"] == "0.10000000" and order["origQuoteOrderQty"] == "320.00000000"
    assert order["fills"][0]["commissionAsset"] == "USDT"
    assert D(order["fills"][0]["commission"]) == D("0.32")


def test_response_types(bn: BinanceTestClient) -> None:
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    ack = bn.ok("POST", ORDER, {**base, "newOrderRespType": "ACK"})
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    result = bn.ok("POST", ORDER, {**base, "newOrderRespType": "RESULT"})
    assert set(result) == RESULT_FIELDS


def test_limit_order_rests_then_fills_when_the_price_reaches_it(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    placed = bn.ok(
        "POST",
        ORDER,
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.01",
            "price": "64000",
            "newClientOrderId": "pk-limit-1",
        },
    )
    assert placed["status"] == "NEW" and placed["fills"] == []
    assert balances(bn)["USDT"] == D("1000000") - D("640")  # the rest is locked
    (listed,) = bn.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert set(listed) == QUERY_FIELDS and listed["isWorking"] is True
    bn.set_price("BTCUSDT", "63990")
    clock.advance(1)
    done = bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "pk-limit-1"})
    assert done["status"] == "FILLED" and done["cummulativeQuoteQty"] == "640.00000000"
    assert bn.ok("GET", "/api/v3/openOrders") == []


def test_marketable_limit_takes_and_limit_maker_is_refused(bn: BinanceTestClient) -> None:
    limit = {"symbol": "BTCUSDT", "side": "BUY", "timeInForce": "GTC", "quantity": "0.01"}
    taken = bn.ok("POST", ORDER, {**limit, "type": "LIMIT", "price": "66000"})
    assert taken["status"] == "FILLED" and taken["fills"][0]["price"] == "65000.00000000"
    maker = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", "price": "66000"}
    assert bn.error("POST", ORDER, {**maker, "type": "LIMIT_MAKER"}) == (400, -2010)


def test_stop_loss_limit_triggers_on_the_price_path(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    stop = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "STOP_LOSS_LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01",
        "price": "59000",
        "stopPrice": "60000",
    }
    assert bn.error("POST", ORDER, {**stop, "stopPrice": "66000"}) == (400, -2010)  # would trigger
    placed = bn.ok("POST", ORDER, stop)
    assert set(placed) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    bn.set_price("BTCUSDT", "59950")
    clock.advance(1)
    done = bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "orderId": placed["orderId"]})
    assert done["status"] == "FILLED" and done["stopPrice"] == "60000.00000000"


def test_filters_and_balance_checks(bn: BinanceTestClient) -> None:
    limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    cases = [
        ({**limit, "quantity": "0.000015", "price": "60000"}, "LOT_SIZE"),
        ({**limit, "quantity": "0.01", "price": "60000.001"}, None),  # too much precision
        ({**limit, "quantity": "0.01", "price": "60000.005"}, "PRICE_FILTER"),
        ({**limit, "quantity": "0.00005", "price": "60000"}, "NOTIONAL"),
        ({**limit, "quantity": "0.01", "price": "1000"}, "PERCENT_PRICE_BY_SIDE"),
    ]
    for params, name in cases:
        response = bn.call("POST", ORDER, params)
        body = response.json()
        assert response.status_code == 400, params
        if name:
            assert body == {"code": -1013, "msg": f"Filter failure: {name}"}
        else:
            assert body["code"] in (-1111, -1013)
    huge = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "100"}
    assert bn.call("POST", ORDER, huge).json() == {
        "code": -2010,
        "msg": "Account has insufficient balance for requested action.",
    }


def test_client_order_id_is_unique_among_open_orders_only(bn: BinanceTestClient) -> None:
    resting = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01",
        "price": "60000",
        "newClientOrderId": "pk-dup",
    }
    bn.ok("POST", ORDER, resting)
    assert bn.call("POST", ORDER, resting).json() == {"code": -2010, "msg": "Duplicate order sent."}
    bn.ok("DELETE", ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "pk-dup"})
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    bn.ok("POST", ORDER, {**market, "newClientOrderId": "pk-dup"})
    # Filled, so Binance accepts the same id again: a client must never rely on it.
    bn.ok("POST", ORDER, {**market, "newClientOrderId": "pk-dup"})
    assert len(bn.ledger(client_id="pk-dup")) == 3


def test_cancel_and_query_errors(bn: BinanceTestClient) -> None:
    placed = bn.ok(
        "POST",
        ORDER,
        {
            "symbol": "ETHUSDT",
            "side": "SELL",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "1",
            "price": "4000",
            "newClientOrderId": "pk-cancel-me",
        },
    )
    cancelled = bn.ok(
        "DELETE",
        ORDER,
        {"symbol": "ETHUSDT", "orderId": placed["orderId"], "newClientOrderId": "c1"},
    )
    assert cancelled["status"] == "CANCELED" and cancelled["origClientOrderId"] == "pk-cancel-me"
    assert cancelled["clientOrderId"] == "c1"
    assert bn.call("DELETE", ORDER, {"symbol": "ETHUSDT", "orderId": placed["orderId"]}).json() == {
        "code": -2011,
        "msg": "Unknown order sent.",
    }
    assert bn.call("GET", ORDER, {"symbol": "ETHUSDT", "origClientOrderId": "nope"}).json() == {
        "code": -2013,
        "msg": "Order does not exist.",
    }
    assert bn.error("GET", ORDER, {"symbol": "ETHUSDT"}) == (400, -1102)
    assert balances(bn)["ETH"] == D("200")  # the lock was released


def test_large_ids_are_exact_integers_on_the_wire(bn: BinanceTestClient) -> None:
    order = bn.call(
        "POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    )
    assert '"orderId":' in order.text and isinstance(order.json()["orderId"], int)
