"""Order book, klines and 24-hour tickers, spot and USD-M, in Binance's documented shapes."""

from __future__ import annotations

from decimal import Decimal

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient

SPOT_24HR_KEYS = [
    "symbol",
    "priceChange",
    "priceChangePercent",
    "weightedAvgPrice",
    "prevClosePrice",
    "lastPrice",
    "lastQty",
    "bidPrice",
    "bidQty",
    "askPrice",
    "askQty",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
]
FUTURES_24HR_KEYS = [
    "symbol",
    "priceChange",
    "priceChangePercent",
    "weightedAvgPrice",
    "lastPrice",
    "lastQty",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
]


def to_next_five_minutes(bn: BinanceTestClient, clock: ManualClock) -> int:
    now = int(bn.control("GET", "/state")["time"])
    clock.advance((300_000 - now % 300_000) / 1000)
    return now + 300_000 - now % 300_000


def test_spot_depth_sits_around_the_price(bn: BinanceTestClient) -> None:
    bn.set_price("BTCUSDT", "64000")
    book = bn.ok("GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5}, signed=False)
    assert set(book) == {"lastUpdateId", "bids", "asks"}
    assert [b[0] for b in book["bids"]] == [
        "63999.99000000",
        "63999.98000000",
        "63999.97000000",
        "63999.96000000",
        "63999.95000000",
    ]
    assert book["asks"][0][0] == "64000.01000000" and len(book["asks"]) == 5
    assert all(Decimal(qty) > 0 for _, qty in book["bids"] + book["asks"])
    default = bn.ok("GET", "/api/v3/depth", {"symbol": "ETHBTC"}, signed=False)
    assert len(default["bids"]) == 100 and default["asks"][0][0] == "0.04901000"
    assert bn.error("GET", "/api/v3/depth", {"symbol": "NOPE"}, signed=False) == (400, -1121)
    assert bn.error("GET", "/api/v3/depth", {}, signed=False)[1] == -1102


def test_futures_depth_takes_only_documented_limits(bn: BinanceTestClient) -> None:
    bn.set_price("ETHUSDT", "3200")
    book = bn.ok("GET", "/fapi/v1/depth", {"symbol": "ETHUSDT", "limit": 10}, signed=False)
    assert set(book) == {"lastUpdateId", "E", "T", "bids", "asks"}
    assert book["bids"][0] == ["3199.99", book["bids"][0][1]] and len(book["bids"]) == 10
    assert book["asks"][0][0] == "3200.01"
    assert (
        bn.error("GET", "/fapi/v1/depth", {"symbol": "ETHUSDT", "limit": 7}, signed=False)[1]
        == -1130
    )
    assert bn.error("GET", "/fapi/v1/depth", {"symbol": "ETHBTC"}, signed=False)[1] == -1121


def test_klines_follow_the_price_path(bn: BinanceTestClient, clock: ManualClock) -> None:
    start = to_next_five_minutes(bn, clock)
    bn.set_price("SOLUSDT", "100")
    clock.advance(20)
    bn.set_price("SOLUSDT", "110")
    clock.advance(20)
    bn.set_price("SOLUSDT", "95")
    clock.advance(30)  # into the second minute
    bn.set_price("SOLUSDT", "101")
    clock.advance(5)
    params = {"symbol": "SOLUSDT", "interval": "1m", "startTime": start}
    rows = bn.ok("GET", "/api/v3/klines", params, signed=False)
    assert len(rows) == 2
    first, second = rows
    assert len(first) == 12
    assert first[0] == start and first[6] == start + 59_999
    assert first[1:5] == ["100.00000000", "110.00000000", "95.00000000", "95.00000000"]
    assert second[0] == start + 60_000
    assert second[1:5] == ["95.00000000", "101.00000000", "95.00000000", "101.00000000"]
    # volume: SOL's 130 a second over the minute, and over the 15 s of the one running
    assert Decimal(first[5]) == 130 * 60 and Decimal(second[5]) == 130 * 15
    five = bn.ok(
        "GET",
        "/fapi/v1/klines",
        {"symbol": "SOLUSDT", "interval": "5m", "limit": 1},
        signed=False,
    )
    assert len(five) == 1 and five[0][0] % 300_000 == 0
    assert five[0][2] == "110.00" and five[0][3] == "95.00" and five[0][4] == "101.00"
    last = bn.ok(
        "GET", "/api/v3/klines", {"symbol": "SOLUSDT", "interval": "1m", "limit": 1}, signed=False
    )
    assert last == [second]
    bad = {"symbol": "SOLUSDT", "interval": "7m"}
    assert bn.error("GET", "/api/v3/klines", bad, signed=False) == (400, -1120)


def test_24hr_tickers(bn: BinanceTestClient, clock: ManualClock) -> None:
    bn.set_price("BNBUSDT", "600")
    clock.advance(61)
    bn.set_price("BNBUSDT", "660")
    clock.advance(61)
    bn.set_price("BNBUSDT", "630")
    spot = bn.ok("GET", "/api/v3/ticker/24hr", {"symbol": "BNBUSDT"}, signed=False)
    assert list(spot) == SPOT_24HR_KEYS
    assert spot["openPrice"] == "600.00000000" and spot["lastPrice"] == "630.00000000"
    assert spot["highPrice"] == "660.00000000" and spot["lowPrice"] == "600.00000000"
    assert spot["priceChange"] == "30.00000000" and spot["priceChangePercent"] == "5.000"
    assert Decimal(spot["bidPrice"]) < Decimal(spot["lastPrice"]) < Decimal(spot["askPrice"])
    assert Decimal(spot["volume"]) > 0
    assert 600 <= Decimal(spot["weightedAvgPrice"]) <= 660
    mini = bn.ok(
        "GET",
        "/api/v3/ticker/24hr",
        {"symbols": '["BNBUSDT","ETHBTC"]', "type": "MINI"},
        signed=False,
    )
    assert [m["symbol"] for m in mini] == ["BNBUSDT", "ETHBTC"] and "priceChange" not in mini[0]
    every = bn.ok("GET", "/api/v3/ticker/24hr", signed=False)
    assert "ETHBTC" in {row["symbol"] for row in every}
    fut = bn.ok("GET", "/fapi/v1/ticker/24hr", {"symbol": "BNBUSDT"}, signed=False)
    assert list(fut) == FUTURES_24HR_KEYS
    assert fut["openPrice"] == "600.00" and fut["lastPrice"] == "630.00"
    assert "ETHBTC" not in {r["symbol"] for r in bn.ok("GET", "/fapi/v1/ticker/24hr", signed=False)}


def test_market_data_weights_follow_the_docs(bn: BinanceTestClient) -> None:
    def used(path: str, params: dict[str, object]) -> int:
        while True:  # again if a wall-clock minute (a new window) began between the calls
            time = bn.call("GET", "/api/v3/time", signed=False)
            before = int(time.headers["X-MBX-USED-WEIGHT-1M"])
            after = int(bn.call("GET", path, params, signed=False).headers["X-MBX-USED-WEIGHT-1M"])
            if after > before:
                return after - before

    assert used("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 1000}) == 50
    assert used("/api/v3/depth", {"symbol": "BTCUSDT"}) == 5
    assert used("/api/v3/ticker/24hr", {}) == 80
