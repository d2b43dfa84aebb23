"""GET /fapi/v2/account and /fapi/v3/account: their documented shapes, and margins that agree
with positionRisk v3."""

from __future__ import annotations

from decimal import Decimal

from tests.paper.binance import BinanceTestClient

V2_TOP = [
    "feeTier",
    "feeBurn",
    "canTrade",
    "canDeposit",
    "canWithdraw",
    "updateTime",
    "multiAssetsMargin",
    "tradeGroupId",
]
TOTALS = [
    "totalInitialMargin",
    "totalMaintMargin",
    "totalWalletBalance",
    "totalUnrealizedProfit",
    "totalMarginBalance",
    "totalPositionInitialMargin",
    "totalOpenOrderInitialMargin",
    "totalCrossWalletBalance",
    "totalCrossUnPnl",
    "availableBalance",
    "maxWithdrawAmount",
]
V3_ASSET = {
    "asset",
    "walletBalance",
    "unrealizedProfit",
    "marginBalance",
    "maintMargin",
    "initialMargin",
    "positionInitialMargin",
    "openOrderInitialMargin",
    "crossWalletBalance",
    "crossUnPnl",
    "availableBalance",
    "maxWithdrawAmount",
    "updateTime",
}
V2_POSITION = {
    "symbol",
    "initialMargin",
    "maintMargin",
    "unrealizedProfit",
    "positionInitialMargin",
    "openOrderInitialMargin",
    "leverage",
    "isolated",
    "entryPrice",
    "breakEvenPrice",
    "maxNotional",
    "bidNotional",
    "askNotional",
    "positionSide",
    "positionAmt",
    "updateTime",
}
V3_POSITION = {
    "symbol",
    "positionSide",
    "positionAmt",
    "unrealizedProfit",
    "isolatedMargin",
    "notional",
    "isolatedWallet",
    "initialMargin",
    "maintMargin",
    "updateTime",
}


def test_account_versions_and_margins(bn: BinanceTestClient) -> None:
    bn.set_price("BTCUSDT", "60000")
    bn.control(
        "POST", "/positions", {"symbol": "BTCUSDT", "positionAmt": "0.5", "entryPrice": "58000"}
    )
    v2 = bn.ok("GET", "/fapi/v2/account")
    v3 = bn.ok("GET", "/fapi/v3/account")
    assert list(v2)[: len(V2_TOP)] == V2_TOP and list(v2)[len(V2_TOP) :] == [
        *TOTALS,
        "assets",
        "positions",
    ]
    assert list(v3) == [*TOTALS, "assets", "positions"]
    assert set(v3["assets"][0]) == V3_ASSET
    assert set(v2["assets"][0]) == V3_ASSET | {"marginAvailable"}
    # v2 lists every USD-M symbol, v3 only what is held
    assert {p["symbol"] for p in v2["positions"]} == {"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"}
    assert all(set(p) == V2_POSITION for p in v2["positions"])
    (held,) = v3["positions"]
    assert set(held) == V3_POSITION
    risk = bn.ok("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"})[0]
    # 0.5 BTC at 60,000 = 30,000 notional; 20x leverage; 0.4 % maintenance
    assert held["initialMargin"] == risk["initialMargin"] == "1500.00000000"
    assert held["maintMargin"] == risk["maintMargin"] == "120.00000000"
    btc_v2 = next(p for p in v2["positions"] if p["symbol"] == "BTCUSDT")
    assert btc_v2["initialMargin"] == "1500.00000000" and btc_v2["leverage"] == "20"
    for account in (v2, v3):
        assert account["totalInitialMargin"] == "1500.00000000"
        assert account["totalPositionInitialMargin"] == "1500.00000000"
        assert account["totalMaintMargin"] == "120.00000000"
        assert account["totalUnrealizedProfit"] == "1000.00000000" == risk["unRealizedProfit"]
        margin_balance = Decimal(account["totalMarginBalance"])
        assert margin_balance == Decimal(account["totalWalletBalance"]) + 1000
        assert Decimal(account["availableBalance"]) == margin_balance - 1500
        usdt = next(a for a in account["assets"] if a["asset"] == "USDT")
        assert usdt["initialMargin"] == "1500.00000000"
        assert Decimal(usdt["marginBalance"]) == margin_balance


def test_commission_rate_answers_the_paper_fee_for_one_symbol(bn: BinanceTestClient) -> None:
    """GET /fapi/v1/commissionRate: what risk sizing reads as the taker fee."""
    assert bn.ok("GET", "/fapi/v1/commissionRate", {"symbol": "BTCUSDT"}) == {
        "symbol": "BTCUSDT",
        "makerCommissionRate": "0.00040000",
        "takerCommissionRate": "0.00040000",
    }
