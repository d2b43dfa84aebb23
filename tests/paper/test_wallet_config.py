"""The endpoints a client library calls while loading markets: coin configuration, margin
pairs and COIN-M exchangeInfo, in Binance's documented shapes."""

from __future__ import annotations

from tests.paper.binance import BinanceTestClient

COIN_KEYS = {
    "coin",
    "depositAllEnable",
    "free",
    "freeze",
    "ipoable",
    "ipoing",
    "isLegalMoney",
    "locked",
    "name",
    "networkList",
    "storage",
    "trading",
    "withdrawAllEnable",
    "withdrawing",
}
NETWORK_KEYS = {
    "addressRegex",
    "coin",
    "depositDesc",
    "depositEnable",
    "isDefault",
    "memoRegex",
    "minConfirm",
    "name",
    "network",
    "specialTips",
    "unLockConfirm",
    "withdrawDesc",
    "withdrawEnable",
    "withdrawFee",
    "withdrawIntegerMultiple",
    "withdrawMax",
    "withdrawMin",
    "sameAddress",
}


def test_capital_config_lists_the_wallet_coins(bn: BinanceTestClient) -> None:
    bn.control("POST", "/balances", {"account": "spot", "balances": {"BTC": "1.5", "XRP": "7"}})
    coins = {c["coin"]: c for c in bn.ok("GET", "/sapi/v1/capital/config/getall")}
    assert {"BTC", "ETH", "BNB", "SOL", "USDT", "XRP"} <= set(coins)
    btc = coins["BTC"]
    assert set(btc) == COIN_KEYS and btc["free"] == "1.50000000" and btc["trading"] is True
    assert coins["XRP"]["free"] == "7.00000000"
    (network,) = btc["networkList"]
    assert set(network) >= NETWORK_KEYS and network["coin"] == "BTC"
    assert bn.error("GET", "/sapi/v1/capital/config/getall", signed=False)[0] == 400
    used = bn.call("GET", "/sapi/v1/capital/config/getall").headers["X-SAPI-USED-IP-WEIGHT-1M"]
    assert int(used) % 10 == 0  # weight 10


def test_margin_pairs_are_empty_and_need_a_key(bn: BinanceTestClient) -> None:
    assert bn.ok("GET", "/sapi/v1/margin/allPairs", signed=False) == []
    assert bn.ok("GET", "/sapi/v1/margin/isolated/allPairs") == []
    # MARKET_DATA: an API key, no signature; without the key -2014, a wrong one -2015
    keyless = bn.http.get("/sapi/v1/margin/allPairs")
    assert keyless.status_code == 401 and keyless.json()["code"] == -2014
    wrong = bn.http.get("/sapi/v1/margin/allPairs", headers={"X-MBX-APIKEY": "nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == -2015
    info = bn.ok("GET", "/api/v3/exchangeInfo", signed=False)
    assert not any(s["isMarginTradingAllowed"] for s in info["symbols"])


def test_coin_m_exchange_info_lists_nothing(bn: BinanceTestClient) -> None:
    info = bn.ok("GET", "/dapi/v1/exchangeInfo", signed=False)
    assert info["symbols"] == [] and info["timezone"] == "UTC"
    assert {"serverTime", "rateLimits", "exchangeFilters"} <= set(info)
