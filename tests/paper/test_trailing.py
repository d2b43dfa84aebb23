"""Trailing stops as Binance documents them. Spot (the Trailing Stop FAQ): ``trailingDelta``
in BIPS within the TRAILING_DELTA filter, on stop and take-profit types and on an OCO's
stop leg; without a stopPrice it tracks from the latest price, with one from the first
price meeting it; a SELL fires after a fall of the delta from the highest price since.
USD-M: TRAILING_STOP_MARKET through /fapi/v1/algoOrder with ``callbackRate`` 0.1-10 % and
an optional ``activatePrice``."""

from __future__ import annotations

from typing import Any

import pytest

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient
from tests.paper.test_futures import ALGO, ORDER, buy, position
from tests.paper.test_futures_protection import algo, refusal
from tests.paper.test_oco import OCO, leg, sell_bracket

ORDER_SPOT = "/api/v3/order"


def trailing_stop(client_id: str, **overrides: str) -> dict[str, Any]:
    params = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "STOP_LOSS",
        "quantity": "0.01",
        "trailingDelta": "100",
        "newClientOrderId": client_id,
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v}


def move(bn: BinanceTestClient, clock: ManualClock, *prices: str) -> None:
    for price in prices:
        bn.set_price("BTCUSDT", price)
        clock.advance(1)


def test_spot_exchange_info_allows_trailing_stops_within_its_filter(
    bn: BinanceTestClient,
) -> None:
    info = bn.ok("GET", "/api/v3/exchangeInfo", {"symbol": "BTCUSDT"})
    (symbol,) = info["symbols"]
    assert symbol["allowTrailingStop"] is True
    (rule,) = [f for f in symbol["filters"] if f["filterType"] == "TRAILING_DELTA"]
    assert (rule["minTrailingBelowDelta"], rule["maxTrailingBelowDelta"]) == (10, 2000)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"trailingDelta": "9"}, -1013),  # below the TRAILING_DELTA filter
        ({"trailingDelta": "2001"}, -1013),
        ({"type": "LIMIT", "price": "60000", "timeInForce": "GTC"}, -1106),  # not a stop
        ({"trailingDelta": ""}, -1102),  # a STOP_LOSS needs a stopPrice or a trailingDelta
    ],
)
def test_spot_trailing_stops_outside_the_rules_are_refused(
    bn: BinanceTestClient, overrides: dict[str, str], code: int
) -> None:
    bn.set_price("BTCUSDT", "65000")
    assert bn.error("POST", ORDER_SPOT, trailing_stop("pk-bad", **overrides))[1] == code


def test_a_spot_trailing_stop_without_stop_price_follows_the_highest_price(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    move(bn, clock, "65000")
    placed = bn.ok("POST", ORDER_SPOT, trailing_stop("pk-trail"))
    assert placed["clientOrderId"] == "pk-trail"

    # From 65,000 a 1 % fall would fire at 64,350; the price rises to 70,000 first.
    move(bn, clock, "64400", "70000", "69400")
    order = leg(bn, "pk-trail")
    assert order["status"] == "NEW" and order["trailingDelta"] == 100
    assert order["trailingTime"] > 0  # tracking since it was placed

    move(bn, clock, "69300")  # 70,000 less 1 %
    order = leg(bn, "pk-trail")
    assert order["status"] == "FILLED" and order["executedQty"] == "0.01000000"


def test_a_spot_trailing_stop_with_stop_price_tracks_only_once_the_price_meets_it(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    move(bn, clock, "65000")
    bn.ok("POST", ORDER_SPOT, trailing_stop("pk-trail-stop", stopPrice="64000"))
    move(bn, clock, "70000", "64500")  # far more than 1 % down, but not tracking yet
    assert leg(bn, "pk-trail-stop")["trailingTime"] == -1
    move(bn, clock, "64000", "64500", "63900")  # tracking from 64,000; highest 64,500
    assert leg(bn, "pk-trail-stop")["status"] == "NEW"
    move(bn, clock, "63855")  # 64,500 less 1 %
    assert leg(bn, "pk-trail-stop")["status"] == "FILLED"


def test_an_oco_with_a_trailing_stop_leg_expires_its_take_profit_when_it_fires(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    move(bn, clock, "65000")
    params = sell_bracket("pk-oco-trail", belowType="STOP_LOSS", belowTrailingDelta="200")
    for name in ("belowStopPrice", "belowPrice", "belowTimeInForce"):
        del params[name]
    bn.ok("POST", OCO, params)
    move(bn, clock, "68000", "66700")  # 68,000 less 2 % is 66,640
    assert leg(bn, "pk-oco-trail-sl")["status"] == "NEW"
    move(bn, clock, "66640")
    assert leg(bn, "pk-oco-trail-sl")["status"] == "FILLED"
    assert leg(bn, "pk-oco-trail-tp")["status"] == "EXPIRED"
    (entry,) = bn.ledger(client_id="pk-oco-trail")
    assert entry["order_type"] == "LIMIT_MAKER/STOP_LOSS"


def test_an_oco_stop_leg_needs_a_stop_price_or_a_trailing_delta(bn: BinanceTestClient) -> None:
    bn.set_price("BTCUSDT", "65000")
    params = sell_bracket("pk-oco-none", belowType="STOP_LOSS")
    for name in ("belowStopPrice", "belowPrice", "belowTimeInForce"):
        del params[name]
    assert bn.error("POST", OCO, params)[1] == -1102
    params["belowTrailingDelta"] = "5000"
    assert bn.error("POST", OCO, params)[1] == -1013


# ---- USD-M ---------------------------------------------------------------------------------


def trailing(side: str = "SELL", **extra: str) -> dict[str, Any]:
    return {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": side,
        "type": "TRAILING_STOP_MARKET",
        "quantity": "0.1",
        "reduceOnly": "true",
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"callbackRate": "0.05"}, -1102),
        ({"callbackRate": "10.5"}, -1102),
        ({}, -1102),  # callbackRate is mandatory
        ({"callbackRate": "1", "triggerPrice": "70000"}, -1106),
        ({"callbackRate": "1", "priceProtect": "true"}, -1106),
        ({"callbackRate": "1", "activatePrice": "64000"}, -2021),  # a SELL's activates above
    ],
)
def test_usdm_trailing_stops_outside_the_rules_are_refused(
    bn: BinanceTestClient, extra: dict[str, str], code: int
) -> None:
    bn.set_price("BTCUSDT", "65000")
    buy(bn, "0.1")
    assert refusal(bn, ALGO, trailing(**extra))["code"] == code


def test_a_stop_market_refuses_a_callback_rate(bn: BinanceTestClient) -> None:
    bn.set_price("BTCUSDT", "65000")
    buy(bn, "0.1")
    params = {**trailing(callbackRate="1"), "type": "STOP_MARKET", "triggerPrice": "60000"}
    assert refusal(bn, ALGO, params)["code"] == -1106


def test_a_usdm_trailing_stop_activates_at_its_price_then_fires_on_the_callback(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    move(bn, clock, "65000")
    buy(bn, "0.1")
    placed = bn.ok(
        "POST", ALGO, trailing(callbackRate="1", activatePrice="68000", clientAlgoId="trail")
    )
    assert placed["orderType"] == "TRAILING_STOP_MARKET"
    assert (placed["activatePrice"], placed["callbackRate"]) == ("68000.0", "1")

    move(bn, clock, "66000", "65000")  # before activation a fall does nothing
    assert algo(bn, "trail")["algoStatus"] == "NEW"
    move(bn, clock, "68000", "71000", "70300")  # activated; highest 71,000; 70,290 fires
    assert algo(bn, "trail")["algoStatus"] == "NEW"
    move(bn, clock, "70200")
    fired = algo(bn, "trail")
    assert fired["algoStatus"] == "FINISHED"
    actual = bn.ok("GET", ORDER, {"symbol": "BTCUSDT", "orderId": int(fired["actualOrderId"])})
    assert (actual["type"], actual["executedQty"]) == ("MARKET", "0.100")
    assert position(bn)["positionAmt"] == "0.000"
    (entry,) = bn.ledger(client_id="trail")
    assert entry["prices"] == {"activate": "68000", "callback_rate": "1"}


def test_a_usdm_trailing_stop_without_activation_tracks_from_the_latest_price(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    move(bn, clock, "65000")
    buy(bn, "0.1")
    bn.ok("POST", ALGO, trailing(callbackRate="2", clientAlgoId="trail-now"))
    move(bn, clock, "63800")  # 65,000 less 2 % is 63,700
    assert algo(bn, "trail-now")["algoStatus"] == "NEW"
    move(bn, clock, "63700")
    assert algo(bn, "trail-now")["algoStatus"] == "FINISHED"
