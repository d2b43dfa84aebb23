"""The /paper control API: ledger, state, balances, reset, manual clock, price replay."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from paper.app import create_app
from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient
from tests.paper.conftest import paper_settings
from tests.support import serve


def test_ledger_records_every_accepted_order_with_its_client_ids(bn: BinanceTestClient) -> None:
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"}
    bn.ok("POST", "/api/v3/order", {**market, "quantity": "0.01", "newClientOrderId": "pk-led-1"})
    bn.call("POST", "/api/v3/order", {**market, "quantity": "1000", "newClientOrderId": "pk-led-2"})
    oco = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.01",
        "listClientOrderId": "pk-led-3",
        "aboveType": "LIMIT_MAKER",
        "abovePrice": "70000",
        "aboveClientOrderId": "pk-led-3a",
        "belowType": "STOP_LOSS",
        "belowStopPrice": "60000",
        "belowClientOrderId": "pk-led-3b",
    }
    bn.ok("POST", "/api/v3/orderList/oco", oco)
    entries = bn.ledger()
    assert [e["kind"] for e in entries] == ["spot_order", "oco"]  # the rejected one is absent
    first, listed = entries
    assert first["client_id"] == "pk-led-1" and first["status"] == "FILLED"
    assert {"seq", "time", "symbol", "side", "quantity", "id", "order_type"} <= set(first)
    assert listed["client_ids"] == {"list": "pk-led-3", "below": "pk-led-3b", "above": "pk-led-3a"}
    assert bn.ledger(client_id="pk-led-3a") == [listed]
    assert bn.ledger(kind="spot_twap") == []
    assert bn.http.get("/paper/ledger?kind=nope").status_code == 422


def test_balances_state_and_reset(bn: BinanceTestClient) -> None:
    bn.control("POST", "/balances", {"account": "usdm", "balances": {"USDT": "5"}})
    assert bn.control("GET", "/balances")["usdm"]["USDT"]["free"] == "5.00000000"
    state = bn.control("GET", "/state")
    assert state["prices"]["BTCUSDT"] == "65000.00000000" and state["manual_clock"] is True
    bn.control("POST", "/reset", {})
    assert bn.control("GET", "/balances")["usdm"]["USDT"]["free"] == "1000000.00000000"


def test_manual_clock_from_settings_is_stepped_over_http() -> None:
    with serve(create_app(paper_settings(paper_manual_clock=True))) as server:
        client = BinanceTestClient(server.url)
        start = client.control("GET", "/state")["time"]
        assert client.control("POST", "/clock", {"advance": 90})["time"] == start + 90_000
        client.close()
    with serve(create_app(paper_settings(), clock=ManualClock())) as server:
        client = BinanceTestClient(server.url)
        assert client.control("POST", "/clock", {"advance": 1})
        client.close()


def test_clock_endpoint_refuses_the_real_clock() -> None:
    with serve(create_app(paper_settings())) as server:
        client = BinanceTestClient(server.url)
        assert client.http.post("/paper/clock", json={"advance": 1}).status_code == 409
        client.close()


def test_random_walk_is_seeded_and_moves_with_the_clock() -> None:
    paths = []
    for _ in range(2):
        clock = ManualClock(start_ms=1_700_000_000_000)
        settings = paper_settings(paper_volatility=Decimal("0.001"))
        with serve(create_app(settings, clock=clock)) as server:
            client = BinanceTestClient(server.url)
            seen = []
            for _ in range(3):
                clock.advance(5)
                ticker = client.ok(
                    "GET", "/api/v3/ticker/price", {"symbol": "ETHUSDT"}, signed=False
                )
                seen.append(ticker["price"])
            paths.append(seen)
            client.close()
    assert paths[0] == paths[1] and len(set(paths[0])) == 3


def test_prices_replay_from_a_kline_csv(tmp_path: Path) -> None:
    csv = tmp_path / "SOLUSDT-1m-2024-01.csv"
    csv.write_text(
        "1704067200000,100.0,101.0,99.0,100.5,10,1704067259999\n"
        "1704067260000,100.5,102.0,100.0,101.25,10,1704067319999\n"
    )
    clock = ManualClock()
    with serve(create_app(paper_settings(paper_price_csv=str(csv)), clock=clock)) as server:
        client = BinanceTestClient(server.url)

        def price() -> str:
            ticker = client.ok("GET", "/api/v3/ticker/price", {"symbol": "SOLUSDT"}, signed=False)
            return str(ticker["price"])

        assert price() == "100.50000000"
        clock.advance(1)
        assert price() == "101.25000000"
        clock.advance(1)
        assert price() == "100.50000000"  # the replay loops
        client.close()
