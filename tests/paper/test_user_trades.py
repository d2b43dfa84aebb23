"""GET /fapi/v1/userTrades: every USD-M fill, in Binance's documented shape."""

from __future__ import annotations

from decimal import Decimal

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient

KEYS = {
    "buyer",
    "commission",
    "commissionAsset",
    "id",
    "maker",
    "orderId",
    "price",
    "qty",
    "quoteQty",
    "realizedPnl",
    "side",
    "positionSide",
    "symbol",
    "time",
}


def test_user_trades_record_fills_with_realized_pnl(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    bn.set_price("ETHUSDT", "3000")
    opened = bn.ok(
        "POST",
        "/fapi/v1/order",
        {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "2"},
    )
    resting = bn.ok(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "ETHUSDT",
            "side": "SELL",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.5",
            "price": "3100",
            "reduceOnly": "true",
        },
    )
    clock.advance(5)
    bn.set_price("ETHUSDT", "3100")  # the limit fills as maker
    trades = bn.ok("GET", "/fapi/v1/userTrades", {"symbol": "ETHUSDT"})
    assert len(trades) == 2
    buy, sell = trades
    assert set(buy) == KEYS
    assert buy["orderId"] == opened["orderId"] and buy["buyer"] is True and buy["maker"] is False
    assert (buy["price"], buy["qty"], buy["quoteQty"]) == ("3000.00", "2.000", "6000.00000")
    assert buy["commission"] == "2.40000000" and buy["commissionAsset"] == "USDT"  # 0.04 %
    assert buy["realizedPnl"] == "0.00000000" and buy["positionSide"] == "BOTH"
    assert sell["orderId"] == resting["orderId"] and sell["side"] == "SELL"
    assert sell["maker"] is True and sell["realizedPnl"] == "50.00000000"
    assert sell["id"] > buy["id"] and sell["time"] > buy["time"]
    one = bn.ok("GET", "/fapi/v1/userTrades", {"symbol": "ETHUSDT", "orderId": resting["orderId"]})
    assert one == [sell]
    assert bn.ok("GET", "/fapi/v1/userTrades", {"symbol": "ETHUSDT", "fromId": sell["id"]}) == [
        sell
    ]
    since = bn.ok("GET", "/fapi/v1/userTrades", {"symbol": "ETHUSDT", "startTime": sell["time"]})
    assert since == [sell]
    assert bn.ok("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}) == []
    position = bn.ok("GET", "/fapi/v2/positionRisk", {"symbol": "ETHUSDT"})[0]
    assert Decimal(position["positionAmt"]) == Decimal("1.5")


def test_user_trades_refuse_what_binance_refuses(bn: BinanceTestClient) -> None:
    assert bn.error("GET", "/fapi/v1/userTrades", {})[1] == -1102
    assert bn.error("GET", "/fapi/v1/userTrades", {"symbol": "ETHBTC"})[1] == -1121
    both = {"symbol": "ETHUSDT", "fromId": 1, "startTime": 1}
    assert bn.error("GET", "/fapi/v1/userTrades", both)[1] == -4133
    assert bn.error("GET", "/fapi/v1/userTrades", {"symbol": "ETHUSDT", "limit": 1001})[1] == -1130
    unsigned = bn.error("GET", "/fapi/v1/userTrades", {"symbol": "ETHUSDT"}, signed=False)
    assert unsigned[0] == 400  # a USER_DATA endpoint: no signature, no trades
