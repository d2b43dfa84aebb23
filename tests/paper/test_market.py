"""Public market data, exchangeInfo shapes and request-weight headers."""

from __future__ import annotations

import time
from decimal import Decimal

from paper.faults import IN_FLIGHT_GRACE
from tests.paper.binance import BinanceTestClient

SYMBOLS = {"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"}  # USD-M
SPOT_SYMBOLS = SYMBOLS | {"ETHBTC"}


def test_server_time_on_both_bases(bn: BinanceTestClient) -> None:
    assert set(bn.ok("GET", "/api/v3/time", signed=False)) == {"serverTime"}
    assert set(bn.ok("GET", "/fapi/v1/time", signed=False)) == {"serverTime"}


def test_spot_exchange_info_has_realistic_filters(bn: BinanceTestClient) -> None:
    info = bn.ok("GET", "/api/v3/exchangeInfo", signed=False)
    assert {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"} <= set(info)
    assert {s["symbol"] for s in info["symbols"]} == SPOT_SYMBOLS
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["ocoAllowed"] is True and btc["quoteOrderQtyMarketAllowed"] is True
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert {
        "PRICE_FILTER",
        "LOT_SIZE",
        "MARKET_LOT_SIZE",
        "NOTIONAL",
        "PERCENT_PRICE_BY_SIDE",
        "MAX_NUM_ORDERS",
        "MAX_NUM_ALGO_ORDERS",
    } <= set(filters)
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    one = bn.ok("GET", "/api/v3/exchangeInfo", {"symbol": "ETHUSDT"}, signed=False)
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    two = bn.ok("GET", "/api/v3/exchangeInfo", {"symbols": '["ETHUSDT","SOLUSDT"]'}, signed=False)
    assert [s["symbol"] for s in two["symbols"]] == ["ETHUSDT", "SOLUSDT"]
    assert bn.error("GET", "/api/v3/exchangeInfo", {"symbol": "XYZ"}, signed=False) == (400, -1121)


def test_ethbtc_is_a_spot_symbol_quoted_in_btc(bn: BinanceTestClient) -> None:
    info = bn.ok("GET", "/api/v3/exchangeInfo", {"symbol": "ETHBTC"}, signed=False)
    (eth,) = info["symbols"]
    assert (eth["baseAsset"], eth["quoteAsset"]) == ("ETH", "BTC")
    filters = {f["filterType"]: f for f in eth["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.00001000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00010000"
    assert filters["NOTIONAL"]["minNotional"] == "0.00010000"  # in BTC
    price = bn.ok("GET", "/api/v3/ticker/price", {"symbol": "ETHBTC"}, signed=False)
    assert price == {"symbol": "ETHBTC", "price": "0.04900000"}
    # a market buy pays BTC and receives ETH net of the fee
    before = {b["asset"]: Decimal(b["free"]) for b in bn.ok("GET", "/api/v3/account")["balances"]}
    order = bn.ok(
        "POST",
        "/api/v3/order",
        {"symbol": "ETHBTC", "side": "BUY", "type": "MARKET", "quantity": "1"},
    )
    assert order["status"] == "FILLED" and order["cummulativeQuoteQty"] == "0.04900000"
    after = {b["asset"]: Decimal(b["free"]) for b in bn.ok("GET", "/api/v3/account")["balances"]}
    assert before["BTC"] - after["BTC"] == Decimal("0.049")
    assert after["ETH"] - before["ETH"] == Decimal("0.999")
    # not listed on USD-M
    futures = bn.ok("GET", "/fapi/v1/exchangeInfo", signed=False)
    assert {s["symbol"] for s in futures["symbols"]} == SYMBOLS
    assert bn.error("GET", "/fapi/v1/ticker/price", {"symbol": "ETHBTC"}, signed=False) == (
        400,
        -1121,
    )
    order_params = {"symbol": "ETHBTC", "side": "BUY", "type": "MARKET", "quantity": "1"}
    assert bn.error("POST", "/fapi/v1/order", order_params) == (400, -1121)


def test_futures_exchange_info_uses_futures_filter_shapes(bn: BinanceTestClient) -> None:
    info = bn.ok("GET", "/fapi/v1/exchangeInfo", signed=False)
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["contractType"] == "PERPETUAL" and btc["marginAsset"] == "USDT"
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["MIN_NOTIONAL"] == {"filterType": "MIN_NOTIONAL", "notional": "100"}
    assert filters["LOT_SIZE"]["stepSize"] == "0.001"
    assert filters["PRICE_FILTER"]["tickSize"] == "0.1"
    assert set(filters["PERCENT_PRICE"]) >= {"multiplierUp", "multiplierDown", "multiplierDecimal"}


def test_prices(bn: BinanceTestClient) -> None:
    bn.set_price("BTCUSDT", "64123.45")
    assert bn.ok("GET", "/api/v3/ticker/price", {"symbol": "BTCUSDT"}, signed=False) == {
        "symbol": "BTCUSDT",
        "price": "64123.45000000",
    }
    every = bn.ok("GET", "/api/v3/ticker/price", signed=False)
    assert {row["symbol"] for row in every} == SPOT_SYMBOLS
    avg = bn.ok("GET", "/api/v3/avgPrice", {"symbol": "BTCUSDT"}, signed=False)
    assert set(avg) == {"mins", "price", "closeTime"} and avg["mins"] == 5
    fut = bn.ok("GET", "/fapi/v1/ticker/price", {"symbol": "BTCUSDT"}, signed=False)
    assert set(fut) == {"symbol", "price", "time"} and fut["price"] == "64123.45"
    mark = bn.ok("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, signed=False)
    assert Decimal(mark["markPrice"]) == Decimal("64123.45")
    assert {"indexPrice", "lastFundingRate", "nextFundingTime", "time"} <= set(mark)


def test_weight_headers_count_documented_weights(bn: BinanceTestClient) -> None:
    first = bn.call("GET", "/api/v3/exchangeInfo", signed=False)
    assert first.headers["X-MBX-USED-WEIGHT-1M"] == "20"  # a fresh window after the reset
    second = bn.call("GET", "/api/v3/account")
    # 20 + 20, unless a wall-clock minute ended between the two calls
    assert second.headers["X-MBX-USED-WEIGHT-1M"] in ("40", "20")
    fapi = bn.call("GET", "/fapi/v2/positionRisk")
    assert fapi.headers["X-MBX-USED-WEIGHT-1M"] == "5"
    sapi = bn.call("GET", "/sapi/v1/algo/spot/openOrders")
    assert sapi.headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"
    twap = bn.call(
        "POST",
        "/sapi/v1/algo/spot/newOrderTwap",
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1", "duration": 60},
    )
    assert twap.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "3000"


def test_sapi_uid_budget_answers_429_when_spent(bn: BinanceTestClient) -> None:
    """60 TWAP placements (3,000 UID weight each) fill the 180,000 budget; the next is 429."""
    # The budget is a wall-clock minute: start where the rest of the minute holds the whole test
    # (60 placements, the in-flight grace and the banned call), or a reset in between turns the
    # ban into an accepted order (CI saw a 400 once).
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.05)
    statuses = []
    for _ in range(61):
        response = bn.call(
            "POST",
            "/sapi/v1/algo/spot/newOrderTwap",
            {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1", "duration": 60},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["code"] == -1003
            assert int(response.headers["Retry-After"]) >= 1
            break
    assert statuses[-1] == 429
    # Ignoring Retry-After on that endpoint gets the IP banned.
    time.sleep(IN_FLIGHT_GRACE)
    banned = bn.call(
        "POST",
        "/sapi/v1/algo/spot/newOrderTwap",
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1", "duration": 60},
    )
    assert banned.status_code == 418
    assert banned.json()["code"] == -1003 and int(banned.headers["Retry-After"]) >= 1
    # Other endpoints have their own budgets and are not affected.
    assert bn.call("GET", "/sapi/v1/algo/spot/openOrders").status_code == 200


def test_api_restrictions(bn: BinanceTestClient) -> None:
    restrictions = bn.ok("GET", "/sapi/v1/account/apiRestrictions")
    assert restrictions["ipRestrict"] is True and restrictions["enableWithdrawals"] is False
    assert restrictions["enableSpotAndMarginTrading"] is True
    bn.control("POST", "/api-restrictions", {"enableWithdrawals": True})
    assert bn.ok("GET", "/sapi/v1/account/apiRestrictions")["enableWithdrawals"] is True
