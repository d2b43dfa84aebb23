"""Spot orders that can never rest are refused as Binance refuses them: stops already
crossed, LIMIT_MAKERs that would take, prices outside PERCENT_PRICE_BY_SIDE (against the
5-minute average), and the per-symbol caps on orders, stop orders and order lists."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from paper.app import create_app
from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient
from tests.paper.conftest import paper_settings
from tests.paper.test_oco import OCO, sell_bracket
from tests.support import serve

D = Decimal
ORDER = "/api/v3/order"
WOULD_TRIGGER = {"code": -2010, "msg": "Order would trigger immediately."}
WOULD_TAKE = {"code": -2010, "msg": "Order would immediately match and take."}
BAD_PRICES = {"code": -2010, "msg": "The relationship of the prices for the orders is not correct."}


def stop_order(order_type: str, side: str, stop: str, **extra: str) -> dict[str, Any]:
    params = {
        "symbol": "BTCUSDT",
        "side": side,
        "type": order_type,
        "quantity": "0.01",
        "stopPrice": stop,
    }
    if order_type.endswith("_LIMIT"):
        params.update(price=stop, timeInForce="GTC")
    params.update(extra)
    return params


def refusal(bn: BinanceTestClient, path: str, params: dict[str, Any]) -> Any:
    response = bn.call("POST", path, params)
    assert response.status_code == 400, response.text
    return response.json()


def filter_failure(name: str) -> dict[str, object]:
    return {"code": -1013, "msg": f"Filter failure: {name}"}


def test_stops_already_crossed_would_trigger_immediately(bn: BinanceTestClient) -> None:
    crossed = [  # the last price is 65000
        ("STOP_LOSS", "SELL", "65000"),
        ("STOP_LOSS", "SELL", "66000"),
        ("STOP_LOSS_LIMIT", "SELL", "65500"),
        ("STOP_LOSS", "BUY", "64000"),
        ("STOP_LOSS_LIMIT", "BUY", "65000"),
        ("TAKE_PROFIT", "SELL", "64000"),
        ("TAKE_PROFIT_LIMIT", "SELL", "65000"),
        ("TAKE_PROFIT", "BUY", "66000"),
        ("TAKE_PROFIT_LIMIT", "BUY", "65500"),
    ]
    for order_type, side, stop in crossed:
        assert refusal(bn, ORDER, stop_order(order_type, side, stop)) == WOULD_TRIGGER, (
            order_type,
            side,
            stop,
        )
    assert bn.ledger(kind="spot_order") == []
    bn.ok("POST", ORDER, stop_order("STOP_LOSS", "SELL", "64990"))
    bn.ok("POST", ORDER, stop_order("TAKE_PROFIT_LIMIT", "SELL", "65010"))


def test_limit_makers_that_would_take_are_refused_alone_and_in_an_oco(
    bn: BinanceTestClient,
) -> None:
    maker = {"symbol": "BTCUSDT", "type": "LIMIT_MAKER", "quantity": "0.01"}
    assert refusal(bn, ORDER, {**maker, "side": "SELL", "price": "65000"}) == WOULD_TAKE
    assert refusal(bn, ORDER, {**maker, "side": "BUY", "price": "65000.01"}) == WOULD_TAKE
    # In an OCO the same prices break the documented relationship (-2010 as well).
    assert refusal(bn, OCO, sell_bracket("pk-take", abovePrice="65000")) == BAD_PRICES
    assert refusal(bn, OCO, sell_bracket("pk-crossed", belowStopPrice="65000")) == BAD_PRICES
    take_profit = sell_bracket("pk-tp-crossed", aboveType="TAKE_PROFIT", aboveStopPrice="64000")
    del take_profit["abovePrice"]
    assert refusal(bn, OCO, take_profit) == BAD_PRICES
    assert bn.ledger() == []


def test_percent_price_by_side_is_published_and_checked_on_every_limit_price(
    bn: BinanceTestClient,
) -> None:
    (symbol,) = bn.ok("GET", "/api/v3/exchangeInfo", {"symbol": "BTCUSDT"}, signed=False)["symbols"]
    (rule,) = [f for f in symbol["filters"] if f["filterType"] == "PERCENT_PRICE_BY_SIDE"]
    assert rule == {
        "filterType": "PERCENT_PRICE_BY_SIDE",
        "bidMultiplierUp": "5",
        "bidMultiplierDown": "0.2",
        "askMultiplierUp": "5",
        "askMultiplierDown": "0.2",
        "avgPriceMins": 5,
    }
    out_of_band = filter_failure("PERCENT_PRICE_BY_SIDE")
    limit = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01"}
    assert refusal(bn, ORDER, {**limit, "side": "BUY", "price": "12999.99"}) == out_of_band
    assert refusal(bn, ORDER, {**limit, "side": "SELL", "price": "325000.01"}) == out_of_band
    stop_limit = stop_order("STOP_LOSS_LIMIT", "SELL", "60000", price="12990")
    assert refusal(bn, ORDER, stop_limit) == out_of_band
    assert refusal(bn, OCO, sell_bracket("pk-far", abovePrice="330000")) == out_of_band
    assert refusal(bn, OCO, sell_bracket("pk-far", belowPrice="12000")) == out_of_band
    bn.ok("POST", ORDER, {**limit, "side": "BUY", "price": "13000"})
    bn.ok("POST", OCO, sell_bracket("pk-near", abovePrice="325000", belowPrice="13000"))


def test_percent_price_follows_the_five_minute_average_after_a_gap(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    clock.advance(300)  # five minutes at 65000
    bn.set_price("BTCUSDT", "12000")  # a gap: nothing trades in between
    avg = bn.ok("GET", "/api/v3/avgPrice", {"symbol": "BTCUSDT"}, signed=False)
    assert avg["mins"] == 5 and D(avg["price"]) == D("65000")
    maker = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT_MAKER", "quantity": "0.01"}
    # 12500 is within 0.2x-5x of the last price but below 0.2 x the average (13000).
    assert refusal(bn, ORDER, {**maker, "price": "12500"}) == filter_failure(
        "PERCENT_PRICE_BY_SIDE"
    )
    clock.advance(60)
    lagging = D(bn.ok("GET", "/api/v3/avgPrice", {"symbol": "BTCUSDT"}, signed=False)["price"])
    assert lagging == (D(65000) * 240 + D(12000) * 60) / 300
    clock.advance(240)
    assert bn.ok("GET", "/api/v3/avgPrice", {"symbol": "BTCUSDT"}, signed=False)["price"] == (
        "12000.00000000"
    )
    bn.ok("POST", ORDER, {**maker, "price": "12500"})


def test_stop_orders_and_stop_legs_count_against_max_num_algo_orders(
    bn: BinanceTestClient,
) -> None:
    too_many = filter_failure("MAX_NUM_ALGO_ORDERS")
    for stop in ("64000", "63000", "62000", "61000"):
        bn.ok("POST", ORDER, stop_order("STOP_LOSS", "SELL", stop))
    # A take-profit leg is a stop order too: this list would make six.
    two_stops = sell_bracket(
        "pk-two", aboveType="TAKE_PROFIT_LIMIT", aboveStopPrice="70000", aboveTimeInForce="GTC"
    )
    assert refusal(bn, OCO, two_stops) == too_many
    bn.ok("POST", OCO, sell_bracket("pk-one"))  # LIMIT_MAKER + STOP_LOSS_LIMIT: the fifth
    assert refusal(bn, ORDER, stop_order("TAKE_PROFIT", "SELL", "70000")) == too_many
    assert refusal(bn, OCO, sell_bracket("pk-more")) == too_many
    resting = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC"}
    bn.ok("POST", ORDER, {**resting, "quantity": "0.01", "price": "70000"})  # not a stop
    bn.ok("POST", ORDER, {**stop_order("STOP_LOSS", "SELL", "3000"), "symbol": "ETHUSDT"})


def test_max_num_orders_is_200_per_symbol_counting_both_oco_legs() -> None:
    # 200 orders in a burst cross the 100-per-10-seconds order limit too: without 429s here
    settings = paper_settings(paper_rate_limits=False)
    with serve(create_app(settings, clock=ManualClock())) as running:
        bn = BinanceTestClient(running.url)
        try:
            _fill_a_symbol(bn)
        finally:
            bn.close()


def _fill_a_symbol(bn: BinanceTestClient) -> None:
    limit = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.0001",
        "price": "60000",
        "newOrderRespType": "ACK",
    }
    for _ in range(199):
        bn.ok("POST", ORDER, limit)
    assert refusal(bn, OCO, sell_bracket("pk-full")) == filter_failure("MAX_NUM_ORDERS")
    bn.ok("POST", ORDER, limit)
    assert refusal(bn, ORDER, limit) == filter_failure("MAX_NUM_ORDERS")
    bn.ok("POST", ORDER, {**limit, "symbol": "ETHUSDT", "quantity": "0.01", "price": "3000"})


def test_max_num_order_lists_is_20_per_symbol() -> None:
    settings = paper_settings(paper_max_num_algo_orders=50)
    with serve(create_app(settings, clock=ManualClock())) as running:
        bn = BinanceTestClient(running.url)
        try:
            (symbol,) = bn.ok("GET", "/api/v3/exchangeInfo", {"symbol": "BTCUSDT"}, signed=False)[
                "symbols"
            ]
            assert {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": 20} in symbol[
                "filters"
            ]
            for n in range(20):
                bn.ok("POST", OCO, sell_bracket(f"pk-list-{n}"))
            assert refusal(bn, OCO, sell_bracket("pk-list-20")) == filter_failure(
                "MAX_NUM_ORDER_LISTS"
            )
            bn.ok(
                "DELETE",
                "/api/v3/orderList",
                {"symbol": "BTCUSDT", "listClientOrderId": "pk-list-0"},
            )
            bn.ok("POST", OCO, sell_bracket("pk-list-20"))
        finally:
            bn.close()
