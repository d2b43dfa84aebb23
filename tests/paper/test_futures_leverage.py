"""USD-M leverage, margin type and leverage brackets, refused as Binance refuses them."""

from __future__ import annotations

from tests.paper.binance import BinanceTestClient
from tests.paper.test_futures import ORDER, buy, position

LEVERAGE = "/fapi/v1/leverage"
MARGIN_TYPE = "/fapi/v1/marginType"
BRACKETS = "/fapi/v1/leverageBracket"


def refusal(bn: BinanceTestClient, path: str, params: dict[str, str]) -> object:
    response = bn.call("POST", path, params)
    assert response.status_code == 400, response.text
    return response.json()


def test_leverage_brackets_in_binance_shape(bn: BinanceTestClient) -> None:
    one = bn.ok("GET", BRACKETS, {"symbol": "BTCUSDT"})
    assert one["symbol"] == "BTCUSDT"
    first, second = one["brackets"][:2]
    assert first == {
        "bracket": 1,
        "initialLeverage": 125,
        "notionalCap": 50000,
        "notionalFloor": 0,
        "maintMarginRatio": 0.004,
        "cum": 0.0,
    }
    assert second["notionalFloor"] == first["notionalCap"] and second["initialLeverage"] == 100
    every = bn.ok("GET", BRACKETS)
    assert {row["symbol"] for row in every} >= {"BTCUSDT", "SOLUSDT"}
    sol = next(row for row in every if row["symbol"] == "SOLUSDT")
    assert sol["brackets"][0]["initialLeverage"] == 75


def test_leverage_is_set_per_symbol_and_shown_on_position_risk(bn: BinanceTestClient) -> None:
    answer = bn.ok("POST", LEVERAGE, {"symbol": "BTCUSDT", "leverage": "7"})
    assert answer == {"leverage": 7, "maxNotionalValue": "70000000", "symbol": "BTCUSDT"}
    row = position(bn)
    assert row["leverage"] == "7" and row["maxNotionalValue"] == "70000000"
    assert position(bn, "ETHUSDT")["leverage"] == "20"  # the default, untouched


def test_leverage_above_the_symbols_maximum_is_refused(bn: BinanceTestClient) -> None:
    assert refusal(bn, LEVERAGE, {"symbol": "SOLUSDT", "leverage": "100"}) == {
        "code": -4028,
        "msg": "Leverage 100 is not valid",
    }
    assert refusal(bn, LEVERAGE, {"symbol": "BTCUSDT", "leverage": "0"})["code"] == -4028  # type: ignore[index]
    assert position(bn, "SOLUSDT")["leverage"] == "20"


def test_an_order_beyond_the_leverage_cap_is_refused(bn: BinanceTestClient) -> None:
    bn.ok("POST", LEVERAGE, {"symbol": "BTCUSDT", "leverage": "125"})
    # 1 BTC at 65,000 is above the 50,000 cap of 125x
    too_large = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}
    assert refusal(bn, ORDER, too_large) == {
        "code": -2027,
        "msg": "Exceeded the maximum allowable position at current leverage.",
    }
    buy(bn, "0.5")  # 32,500: within the cap
    # raising leverage past what the position allows is refused as well
    bn.ok("POST", LEVERAGE, {"symbol": "BTCUSDT", "leverage": "20"})
    bn.ok("POST", ORDER, {**too_large, "quantity": "0.5"})
    assert refusal(bn, LEVERAGE, {"symbol": "BTCUSDT", "leverage": "125"})["code"] == -2027  # type: ignore[index]
    assert position(bn)["leverage"] == "20"


def test_margin_type_changes_only_when_flat(bn: BinanceTestClient) -> None:
    isolated = {"symbol": "BTCUSDT", "marginType": "ISOLATED"}
    assert bn.ok("POST", MARGIN_TYPE, isolated) == {"code": 200, "msg": "success"}
    assert position(bn)["marginType"] == "isolated"
    assert refusal(bn, MARGIN_TYPE, isolated) == {
        "code": -4046,
        "msg": "No need to change margin type.",
    }
    buy(bn)
    crossed = {"symbol": "BTCUSDT", "marginType": "CROSSED"}
    assert refusal(bn, MARGIN_TYPE, crossed) == {
        "code": -4048,
        "msg": "Margin type cannot be changed if there exists position.",
    }
    limit = {
        "symbol": "ETHUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.1",
        "price": "3100",
    }
    bn.ok("POST", ORDER, limit)
    eth = {"symbol": "ETHUSDT", "marginType": "ISOLATED"}
    assert refusal(bn, MARGIN_TYPE, eth)["code"] == -4047  # type: ignore[index]
    assert position(bn)["marginType"] == "isolated"
    assert position(bn, "ETHUSDT")["marginType"] == "cross"


def test_symbol_config_shows_margin_type_and_leverage_in_binance_shape(
    bn: BinanceTestClient,
) -> None:
    bn.ok("POST", LEVERAGE, {"symbol": "BTCUSDT", "leverage": "7"})
    bn.ok("POST", MARGIN_TYPE, {"symbol": "BTCUSDT", "marginType": "ISOLATED"})
    (row,) = bn.ok("GET", "/fapi/v1/symbolConfig", {"symbol": "BTCUSDT"})
    assert row == {
        "symbol": "BTCUSDT",
        "marginType": "ISOLATED",
        "isAutoAddMargin": "false",
        "leverage": 7,
        "maxNotionalValue": "70000000",
    }
    every = bn.ok("GET", "/fapi/v1/symbolConfig")
    assert "ETHBTC" not in {r["symbol"] for r in every}  # spot only
    assert next(r for r in every if r["symbol"] == "SOLUSDT")["marginType"] == "CROSSED"
