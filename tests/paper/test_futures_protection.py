"""USD-M protective orders as harsh as Binance: one closePosition order per direction
(-4130), none without a position (-4509), reduce-only orders that never close more than the
position, stops already crossed (-2021), the conditional and open-order caps, PERCENT_PRICE."""

from __future__ import annotations

from typing import Any

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient
from tests.paper.test_futures import ALGO, ORDER, buy, position

CLOSE_POSITION_EXISTS = {
    "code": -4130,
    "msg": "An open stop or take profit order with GTE and closePosition in the direction is "
    "existing.",
}
NO_POSITION = {
    "code": -4509,
    "msg": "Time in Force (TIF) GTE can only be used with open positions. "
    "Please ensure that positions are available.",
}
WOULD_TRIGGER = {"code": -2021, "msg": "Order would immediately trigger."}


def conditional(order_type: str, trigger: str, side: str = "SELL", **extra: str) -> dict[str, Any]:
    return {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": side,
        "type": order_type,
        "triggerPrice": trigger,
        **extra,
    }


def close_all(order_type: str, trigger: str, side: str = "SELL", **extra: str) -> dict[str, Any]:
    return conditional(order_type, trigger, side, closePosition="true", **extra)


def refusal(bn: BinanceTestClient, path: str, params: dict[str, Any]) -> Any:
    response = bn.call("POST", path, params)
    assert response.status_code == 400, response.text
    return response.json()


def algo(bn: BinanceTestClient, client_algo_id: str) -> dict[str, Any]:
    result: dict[str, Any] = bn.ok("GET", ALGO, {"clientAlgoId": client_algo_id})
    return result


def test_one_close_position_order_per_direction(bn: BinanceTestClient) -> None:
    buy(bn)
    stop = bn.ok("POST", ALGO, close_all("STOP_MARKET", "60000", clientAlgoId="pk-sl"))
    assert stop["timeInForce"] == "GTE_GTC" and stop["reduceOnly"] is True
    again = close_all("STOP_MARKET", "61000", clientAlgoId="pk-sl-2")
    assert refusal(bn, ALGO, again) == CLOSE_POSITION_EXISTS
    take_profit = close_all("TAKE_PROFIT_MARKET", "70000", clientAlgoId="pk-tp")
    assert refusal(bn, ALGO, take_profit) == CLOSE_POSITION_EXISTS
    # The classic endpoint refuses every conditional type before looking any further.
    classic = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "TAKE_PROFIT_MARKET",
        "stopPrice": "70000",
        "closePosition": "true",
    }
    assert refusal(bn, ORDER, classic)["code"] == -4120
    # A quantity + reduceOnly order is what may share the position with the closePosition one.
    partial = conditional(
        "TAKE_PROFIT_MARKET", "70000", quantity="0.1", reduceOnly="true", clientAlgoId="pk-tp-q"
    )
    assert bn.ok("POST", ALGO, partial)["reduceOnly"] is True
    bn.ok("DELETE", ALGO, {"clientAlgoId": "pk-sl"})
    bn.ok("POST", ALGO, take_profit)
    assert [row["client_id"] for row in bn.ledger(kind="futures_conditional")] == [
        "pk-sl",
        "pk-tp-q",
        "pk-tp",
    ]


def test_close_position_needs_a_position_and_expires_when_it_is_gone(
    bn: BinanceTestClient,
) -> None:
    assert refusal(bn, ALGO, close_all("STOP_MARKET", "60000")) == NO_POSITION
    buy(bn)
    # BUY closes a short; this account is long.
    assert refusal(bn, ALGO, close_all("STOP_MARKET", "70000", side="BUY")) == NO_POSITION
    bn.ok("POST", ALGO, close_all("STOP_MARKET", "60000", clientAlgoId="pk-sl-1"))
    bn.ok(
        "POST",
        ORDER,
        {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.1"},
    )
    assert position(bn)["positionAmt"] == "0.000"
    assert algo(bn, "pk-sl-1")["algoStatus"] == "EXPIRED"
    assert bn.ok("GET", "/fapi/v1/openAlgoOrders") == []
    buy(bn)  # a new position takes a new stop: the old one no longer blocks it
    bn.ok("POST", ALGO, close_all("STOP_MARKET", "60000", clientAlgoId="pk-sl-2"))
    bn.control("POST", "/positions", {"symbol": "BTCUSDT", "positionAmt": "-0.1"})
    assert algo(bn, "pk-sl-2")["algoStatus"] == "EXPIRED"  # flipped: nothing long to close


def test_close_position_closes_every_share_when_it_fires(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    buy(bn)
    stop = bn.ok("POST", ALGO, close_all("STOP_MARKET", "60000", clientAlgoId="pk-sl"))
    buy(bn, "0.25")  # added after the stop was placed
    bn.set_price("BTCUSDT", "59990")
    clock.advance(1)
    done = bn.ok("GET", ALGO, {"algoId": stop["algoId"]})
    assert done["algoStatus"] == "FINISHED"
    actual = bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "orderId": int(done["actualOrderId"])})
    assert actual["executedQty"] == "0.350" and actual["status"] == "FILLED"
    assert position(bn)["positionAmt"] == "0.000"


def test_reduce_only_orders_each_close_at_most_their_quantity(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    buy(bn, "0.3")
    reduce = {"reduceOnly": "true"}
    assert refusal(
        bn, ALGO, conditional("STOP_MARKET", "70000", side="BUY", quantity="0.1", **reduce)
    ) == {
        "code": -2022,
        "msg": "ReduceOnly Order is rejected.",
    }  # a BUY would add to this long
    bn.ok(
        "POST",
        ALGO,
        conditional("TAKE_PROFIT_MARKET", "66000", quantity="0.1", clientAlgoId="tp1", **reduce),
    )
    bn.ok(
        "POST",
        ALGO,
        conditional("TAKE_PROFIT_MARKET", "67000", quantity="0.1", clientAlgoId="tp2", **reduce),
    )
    bn.ok(
        "POST",
        ALGO,
        conditional("STOP_MARKET", "60000", quantity="0.3", clientAlgoId="sl", **reduce),
    )
    for price, left in (("66500", "0.200"), ("67500", "0.100")):
        bn.set_price("BTCUSDT", price)
        clock.advance(1)
        assert position(bn)["positionAmt"] == left
    assert algo(bn, "tp1")["algoStatus"] == algo(bn, "tp2")["algoStatus"] == "FINISHED"
    bn.set_price("BTCUSDT", "59000")
    clock.advance(1)
    stop = algo(bn, "sl")
    assert stop["algoStatus"] == "FINISHED"
    actual = bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "orderId": int(stop["actualOrderId"])})
    assert actual["executedQty"] == "0.100"  # 0.3 asked, only 0.1 left: never flips short
    assert position(bn)["positionAmt"] == "0.000"


def test_a_reduce_only_order_whose_position_flipped_expires_at_trigger(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    buy(bn)
    bn.ok(
        "POST",
        ALGO,
        conditional("STOP_MARKET", "60000", quantity="0.1", reduceOnly="true", clientAlgoId="sl"),
    )
    bn.control("POST", "/positions", {"symbol": "BTCUSDT", "positionAmt": "-0.2"})
    bn.set_price("BTCUSDT", "59000")
    clock.advance(1)
    assert algo(bn, "sl")["algoStatus"] == "EXPIRED"
    assert position(bn)["positionAmt"] == "-0.200"  # a SELL would have grown the short


def test_conditionals_already_crossed_would_immediately_trigger(bn: BinanceTestClient) -> None:
    crossed = [  # the price is 65000
        ("STOP_MARKET", "SELL", "65000"),
        ("STOP_MARKET", "SELL", "66000"),
        ("STOP_MARKET", "BUY", "64000"),
        ("TAKE_PROFIT_MARKET", "SELL", "64000"),
        ("TAKE_PROFIT_MARKET", "BUY", "66000"),
        ("STOP", "SELL", "65500"),
        ("TAKE_PROFIT", "BUY", "65500"),
    ]
    for order_type, side, trigger in crossed:
        extra = {"quantity": "0.1", "workingType": "MARK_PRICE"}
        if order_type in ("STOP", "TAKE_PROFIT"):
            extra["price"] = trigger
        params = conditional(order_type, trigger, side=side, **extra)
        assert refusal(bn, ALGO, params) == WOULD_TRIGGER, (order_type, side, trigger)
    buy(bn)
    assert refusal(bn, ALGO, close_all("TAKE_PROFIT_MARKET", "64990")) == WOULD_TRIGGER
    assert bn.ledger(kind="futures_conditional") == []


def test_conditional_orders_are_capped_at_200_per_account(bn: BinanceTestClient) -> None:
    buy(bn, "1")
    stop = conditional("STOP_MARKET", "60000", quantity="0.001", reduceOnly="true")
    for n in range(200):
        bn.ok("POST", ALGO, {**stop, "clientAlgoId": f"sl-{n}"})
    bn.control("POST", "/positions", {"symbol": "ETHUSDT", "positionAmt": "1"})
    other = {**stop, "symbol": "ETHUSDT", "triggerPrice": "3000", "quantity": "0.1"}
    assert refusal(bn, ALGO, other) == {"code": -4045, "msg": "Reach max stop order limit."}
    bn.ok("DELETE", ALGO, {"clientAlgoId": "sl-0"})
    bn.ok("POST", ALGO, other)


def test_limit_orders_outside_percent_price_and_beyond_200_open(bn: BinanceTestClient) -> None:
    limit = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002"}
    assert refusal(bn, ORDER, {**limit, "side": "BUY", "price": "68250.1"}) == {
        "code": -4016,
        "msg": "Limit price can't be higher than 68250.",
    }
    assert refusal(bn, ORDER, {**limit, "side": "SELL", "price": "61749.9"}) == {
        "code": -4024,
        "msg": "Limit price can't be lower than 61750.",
    }
    resting = {**limit, "side": "BUY", "price": "61750", "newOrderRespType": "ACK"}
    for _ in range(200):
        bn.ok("POST", ORDER, resting)
    assert refusal(bn, ORDER, resting) == {"code": -2025, "msg": "Reach max open order limit."}
    assert len(bn.ok("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"})) == 200
