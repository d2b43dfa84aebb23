"""USD-M: orders, reduceOnly, the -4120 switch, conditional TP/SL triggers, positions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient

D = Decimal
ORDER = "/fapi/v1/order"
ALGO = "/fapi/v1/algoOrder"
ORDER_FIELDS = {
    "orderId",
    "symbol",
    "status",
    "clientOrderId",
    "price",
    "avgPrice",
    "origQty",
    "executedQty",
    "cumQty",
    "cumQuote",
    "timeInForce",
    "type",
    "reduceOnly",
    "closePosition",
    "side",
    "positionSide",
    "stopPrice",
    "workingType",
    "priceProtect",
    "origType",
    "priceMatch",
    "selfTradePreventionMode",
    "goodTillDate",
    "updateTime",
}
CONDITIONAL_FIELDS = {
    "algoId",
    "clientAlgoId",
    "algoType",
    "orderType",
    "symbol",
    "side",
    "positionSide",
    "timeInForce",
    "quantity",
    "algoStatus",
    "triggerPrice",
    "price",
    "icebergQuantity",
    "selfTradePreventionMode",
    "workingType",
    "priceMatch",
    "closePosition",
    "priceProtect",
    "reduceOnly",
    "createTime",
    "updateTime",
    "triggerTime",
    "goodTillDate",
}


def position(bn: BinanceTestClient, symbol: str = "BTCUSDT") -> dict[str, Any]:
    (row,) = bn.ok("GET", "/fapi/v2/positionRisk", {"symbol": symbol})
    result: dict[str, Any] = row
    return result


def buy(bn: BinanceTestClient, qty: str = "0.1") -> dict[str, Any]:
    result: dict[str, Any] = bn.ok(
        "POST",
        ORDER,
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": qty,
            "newOrderRespType": "RESULT",
        },
    )
    return result


def test_market_order_opens_a_one_way_position(bn: BinanceTestClient) -> None:
    ack = bn.ok(
        "POST", ORDER, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.05"}
    )
    assert set(ack) == ORDER_FIELDS and ack["status"] == "NEW"  # ACK shows the order as accepted
    result = buy(bn)
    assert result["status"] == "FILLED" and result["avgPrice"] == "65000.00"
    queried = bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "orderId": ack["orderId"]})
    assert queried["status"] == "FILLED" and "time" in queried
    row = position(bn)
    assert row["positionAmt"] == "0.150" and row["positionSide"] == "BOTH"
    assert {"entryPrice", "markPrice", "unRealizedProfit", "leverage", "notional"} <= set(row)
    bn.set_price("BTCUSDT", "66000")
    assert D(position(bn)["unRealizedProfit"]) == D("150")
    (v3,) = bn.ok("GET", "/fapi/v3/positionRisk")
    assert v3["symbol"] == "BTCUSDT" and {"initialMargin", "maintMargin", "adl"} <= set(v3)
    balance = {b["asset"]: b for b in bn.ok("GET", "/fapi/v2/balance")}
    assert D(balance["USDT"]["balance"]) < D("1000000")  # commission paid
    assert "totalWalletBalance" in bn.ok("GET", "/fapi/v2/account")


def test_reduce_only_and_limits(bn: BinanceTestClient, clock: ManualClock) -> None:
    sell = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.1", "reduceOnly": "true"}
    assert bn.call("POST", ORDER, {**sell, "type": "MARKET"}).json() == {
        "code": -2022,
        "msg": "ReduceOnly Order is rejected.",
    }
    buy(bn)
    resting = bn.ok(
        "POST",
        ORDER,
        {
            **sell,
            "type": "LIMIT",
            "price": "66000",
            "timeInForce": "GTC",
            "newClientOrderId": "pk-tp",
        },
    )
    assert resting["status"] == "NEW" and resting["reduceOnly"] is True
    assert [o["clientOrderId"] for o in bn.ok("GET", "/fapi/v1/openOrders")] == ["pk-tp"]
    bn.set_price("BTCUSDT", "66000")
    clock.advance(1)
    assert (
        bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "pk-tp"})["status"]
        == "FILLED"
    )
    assert position(bn)["positionAmt"] == "0.000"
    assert bn.error("DELETE", ORDER, {"symbol": "BTCUSDT", "origClientOrderId": "pk-tp"}) == (
        400,
        -2011,
    )
    assert bn.error("GET", ORDER, {"symbol": "BTCUSDT", "orderId": 1}) == (400, -2013)


def test_conditional_types_on_the_order_endpoint_answer_4120(bn: BinanceTestClient) -> None:
    stop = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "stopPrice": "60000"}
    assert bn.call("POST", ORDER, {**stop, "closePosition": "true"}).json()["code"] == -4120


def test_order_filters(bn: BinanceTestClient) -> None:
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    assert bn.error("POST", ORDER, {**base, "quantity": "0.0015", "price": "60000"}) == (400, -1111)
    assert bn.error("POST", ORDER, {**base, "quantity": "0.001", "price": "60000.05"}) == (
        400,
        -4014,
    )
    assert bn.error("POST", ORDER, {**base, "quantity": "0.001", "price": "60000"}) == (400, -4164)
    placed = bn.ok(
        "POST", ORDER, {**base, "quantity": "0.01", "price": "62000", "newClientOrderId": "same"}
    )
    again = bn.call(
        "POST", ORDER, {**base, "quantity": "0.01", "price": "62000", "newClientOrderId": "same"}
    )
    assert again.json()["code"] == -4116
    cancelled = bn.ok("DELETE", ORDER, {"symbol": "BTCUSDT", "orderId": placed["orderId"]})
    assert cancelled["status"] == "CANCELED"


def test_stop_market_close_position_triggers_and_closes(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    buy(bn)
    stop = bn.ok(
        "POST",
        ALGO,
        {
            "algoType": "CONDITIONAL",
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "STOP_MARKET",
            "triggerPrice": "60000",
            "closePosition": "true",
            "clientAlgoId": "pk-sl",
        },
    )
    assert set(stop) >= CONDITIONAL_FIELDS and stop["algoStatus"] == "NEW"
    assert stop["orderType"] == "STOP_MARKET" and stop["closePosition"] is True
    (listed,) = bn.ok("GET", "/fapi/v1/openAlgoOrders", {"symbol": "BTCUSDT"})
    assert listed["actualOrderId"] == ""
    bn.set_price("BTCUSDT", "61000")
    clock.advance(1)
    assert bn.ok("GET", ALGO, {"clientAlgoId": "pk-sl"})["algoStatus"] == "NEW"
    bn.set_price("BTCUSDT", "59990")
    clock.advance(1)
    done = bn.ok("GET", ALGO, {"algoId": stop["algoId"]})
    assert done["algoStatus"] == "FINISHED" and done["triggerTime"] > 0
    actual = bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "orderId": int(done["actualOrderId"])})
    assert actual["status"] == "FILLED" and actual["origType"] == "STOP_MARKET"
    assert position(bn)["positionAmt"] == "0.000"
    assert bn.ok("GET", "/fapi/v1/openAlgoOrders") == []


def test_take_profit_reduce_only_and_a_sibling_with_nothing_left(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    buy(bn)
    common = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL"}
    take_profit = {"type": "TAKE_PROFIT_MARKET", "triggerPrice": "70000", "quantity": "0.1"}
    bn.ok("POST", ALGO, {**common, **take_profit, "reduceOnly": "true", "clientAlgoId": "pk-tp"})
    stop = {"type": "STOP_MARKET", "triggerPrice": "60000", "closePosition": "true"}
    bn.ok("POST", ALGO, {**common, **stop, "clientAlgoId": "pk-sl"})
    bn.set_price("BTCUSDT", "70500")
    clock.advance(1)
    assert bn.ok("GET", ALGO, {"clientAlgoId": "pk-tp"})["algoStatus"] == "FINISHED"
    assert position(bn)["positionAmt"] == "0.000"
    bn.set_price("BTCUSDT", "59000")
    clock.advance(1)
    assert bn.ok("GET", ALGO, {"clientAlgoId": "pk-sl"})["algoStatus"] == "EXPIRED"


def test_buy_stop_on_a_short_and_cancel(bn: BinanceTestClient, clock: ManualClock) -> None:
    bn.control(
        "POST", "/positions", {"symbol": "ETHUSDT", "positionAmt": "-2", "entryPrice": "3200"}
    )
    common = {"algoType": "CONDITIONAL", "symbol": "ETHUSDT", "side": "BUY", "type": "STOP_MARKET"}
    assert bn.error("POST", ALGO, {**common, "triggerPrice": "3100", "closePosition": "true"}) == (
        400,
        -2021,
    )  # a BUY stop below the price would fire at once
    keep = bn.ok(
        "POST",
        ALGO,
        {**common, "triggerPrice": "3300", "closePosition": "true", "clientAlgoId": "keep"},
    )
    drop = bn.ok(
        "POST",
        ALGO,
        {
            **common,
            "triggerPrice": "3400",
            "quantity": "1",
            "reduceOnly": "true",
            "clientAlgoId": "drop",
        },
    )
    assert bn.ok("DELETE", ALGO, {"clientAlgoId": "drop"}) == {
        "algoId": drop["algoId"],
        "clientAlgoId": "drop",
        "code": "200",
        "msg": "success",
    }
    assert bn.error("DELETE", ALGO, {"clientAlgoId": "drop"}) == (400, -2011)
    assert bn.ok("GET", ALGO, {"clientAlgoId": "drop"})["algoStatus"] == "CANCELED"
    bn.set_price("ETHUSDT", "3301")
    clock.advance(1)
    assert bn.ok("GET", ALGO, {"algoId": keep["algoId"]})["algoStatus"] == "FINISHED"
    assert position(bn, "ETHUSDT")["positionAmt"] == "0.000"
    assert bn.error("GET", ALGO, {"clientAlgoId": "never"}) == (400, -2013)


def test_conditional_parameter_rules(bn: BinanceTestClient) -> None:
    common = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET"}
    both = {**common, "triggerPrice": "60000", "closePosition": "true", "quantity": "0.1"}
    assert bn.error("POST", ALGO, both) == (400, -1106)
    assert bn.error("POST", ALGO, {**common, "quantity": "0.1"}) == (400, -1102)
    assert bn.error(
        "POST", ALGO, {**common, "triggerPrice": "60000", "quantity": "0.1", "algoType": "X"}
    ) == (400, -1100)
    assert bn.ledger(kind="futures_conditional") == []


def test_a_busy_exchange_answers_market_orders_new_and_fills_them_at_the_next_move(
    bn: BinanceTestClient,
) -> None:
    bn.control("POST", "/futures-busy", {"on": True})
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.05",
              "newOrderRespType": "RESULT"}  # fmt: skip
    answer = bn.ok("POST", ORDER, params)
    assert (answer["status"], answer["executedQty"]) == ("NEW", "0.000")
    bn.set_price("BTCUSDT", "65100")
    queried = bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "orderId": answer["orderId"]})
    assert (queried["status"], queried["executedQty"], queried["avgPrice"]) == (
        "FILLED", "0.050", "65100.00",
    )  # fmt: skip
    bn.control("POST", "/futures-busy", {"on": False})
    assert bn.ok("POST", ORDER, params)["status"] == "FILLED"
