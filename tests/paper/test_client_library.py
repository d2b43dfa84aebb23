"""Proof that the paper exchange speaks Binance well enough for a third-party client library:
ccxt's ``binance`` class, unchanged and on its default options, runs a bot's cycle against the
paper exchange served over HTTP (only its base URLs point at the paper).

Every call is tried and counted; the figure is printed (``ccxt: N/M calls worked``), and
every one must work: leverage, margin mode and position mode included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt
import pytest

from paper.app import create_app
from paper.clock import ManualClock
from paper.settings import PAPER_API_KEY, PAPER_API_SECRET
from tests.paper.binance import BinanceTestClient
from tests.paper.conftest import paper_settings
from tests.support import serve


@dataclass
class Call:
    name: str
    run: Callable[[], Any]
    check: Callable[[Any], object] = lambda _: True


def connect(url: str) -> Any:
    exchange = ccxt.binance({"apiKey": PAPER_API_KEY, "secret": PAPER_API_SECRET})
    api = exchange.urls["api"]
    for name, value in list(api.items()):
        if isinstance(value, str) and value.startswith("http"):
            # Whatever host ccxt ships with, every endpoint goes to the paper exchange.
            api[name] = url + urlsplit(value).path
    assert all(v.startswith(url) for v in api.values() if isinstance(v, str) and "://" in v)
    return exchange


@pytest.fixture
def world() -> Iterator[tuple[Any, BinanceTestClient, ManualClock]]:
    clock = ManualClock()
    with serve(create_app(paper_settings(), clock=clock)) as running:
        control = BinanceTestClient(running.url)
        control.set_price("BTCUSDT", "64000")
        control.set_price("ETHBTC", "0.05")
        clock.advance(61)
        control.set_price("BTCUSDT", "64100")
        yield connect(running.url.rstrip("/")), control, clock
        control.close()


def cycle(ex: Any, state: dict[str, Any]) -> list[Call]:
    """A bot's cycle: markets, account, market data, spot and futures orders, positions."""

    def place_spot_limit() -> Any:
        order = ex.create_order("BTC/USDT", "limit", "buy", 0.001, 60000)
        state["spot_limit"] = order["id"]
        return order

    def place_swap_limit() -> Any:
        order = ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 63000)
        state["swap_limit"] = order["id"]
        return order

    def place_spot_market() -> Any:
        order = ex.create_order("ETH/BTC", "market", "buy", 1)
        state["spot_market"] = order["id"]
        return order

    def place_swap_market() -> Any:
        order = ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
        state["swap_market"] = order["id"]
        return order

    def stop_loss() -> Any:
        return ex.create_order(
            "BTC/USDT:USDT", "market", "sell", 0.01, None,
            {"stopLossPrice": 60000, "reduceOnly": True},
        )  # fmt: skip

    return [
        Call("load_markets", ex.load_markets, lambda m: {"BTC/USDT", "ETH/BTC"} <= set(m)),
        Call(
            "currencies (capital/config/getall)",
            lambda: ex.currencies,
            lambda c: {"BTC", "USDT"} <= set(c),
        ),
        Call("fetch_time", ex.fetch_time, lambda t: t > 1_700_000_000_000),
        Call("fetch_balance spot", ex.fetch_balance, lambda b: b["total"]["BTC"] == 10),
        Call(
            "fetch_balance future",
            lambda: ex.fetch_balance({"type": "future"}),
            lambda b: b["total"]["USDT"] == 1_000_000,
        ),
        Call(
            "fetch_ticker spot",
            lambda: ex.fetch_ticker("BTC/USDT"),
            # opened at the paper's starting 65,000, then 64,000 and now 64,100
            lambda t: (
                (t["open"], t["low"], t["last"]) == (65000, 64000, 64100) and t["bid"] < t["ask"]
            ),
        ),
        Call("fetch_tickers spot", ex.fetch_tickers, lambda t: "ETH/BTC" in t),
        Call(
            "fetch_ticker swap",
            lambda: ex.fetch_ticker("BTC/USDT:USDT"),
            lambda t: t["last"] == 64100,
        ),
        Call(
            "fetch_tickers swap",
            lambda: ex.fetch_tickers(["BTC/USDT:USDT", "ETH/USDT:USDT"]),
            lambda t: set(t) == {"BTC/USDT:USDT", "ETH/USDT:USDT"},
        ),
        Call(
            "fetch_order_book spot",
            lambda: ex.fetch_order_book("BTC/USDT", 5),
            lambda b: b["bids"][0][0] < 64100 < b["asks"][0][0] and len(b["bids"]) == 5,
        ),
        Call(
            "fetch_order_book swap",
            lambda: ex.fetch_order_book("BTC/USDT:USDT", 5),
            lambda b: b["bids"][0][0] < 64100 < b["asks"][0][0],
        ),
        Call(
            "fetch_ohlcv spot",
            lambda: ex.fetch_ohlcv("BTC/USDT", "1m", limit=2),
            lambda rows: [r[4] for r in rows] == [64000, 64100],
        ),
        Call(
            "fetch_ohlcv swap",
            lambda: ex.fetch_ohlcv("BTC/USDT:USDT", "1m", limit=2),
            lambda rows: rows[-1][4] == 64100,
        ),
        Call("fetch_mark_price", lambda: ex.fetch_mark_price("BTC/USDT:USDT")),
        Call(
            "fetch_funding_rate",
            lambda: ex.fetch_funding_rate("BTC/USDT:USDT"),
            lambda f: f["fundingRate"] == 0.0001,
        ),
        Call("create_order spot limit", place_spot_limit, lambda o: o["status"] == "open"),
        Call(
            "fetch_order spot",
            lambda: ex.fetch_order(state["spot_limit"], "BTC/USDT"),
            lambda o: o["price"] == 60000 and o["amount"] == 0.001,
        ),
        Call(
            "fetch_open_orders spot",
            lambda: ex.fetch_open_orders("BTC/USDT"),
            lambda os: [o["id"] for o in os] == [state["spot_limit"]],
        ),
        Call(
            "cancel_order spot",
            lambda: ex.cancel_order(state["spot_limit"], "BTC/USDT"),
            lambda o: o["status"] == "canceled",
        ),
        Call(
            "create_order spot market (ETH/BTC)",
            place_spot_market,
            lambda o: o["status"] == "closed" and o["cost"] == 0.05,
        ),
        Call(
            "fetch_my_trades spot",
            lambda: ex.fetch_my_trades("ETH/BTC"),
            lambda ts: [t["order"] for t in ts] == [state["spot_market"]],
        ),
        Call("create_order swap limit", place_swap_limit, lambda o: o["status"] == "open"),
        Call(
            "fetch_open_orders swap",
            lambda: ex.fetch_open_orders("BTC/USDT:USDT"),
            lambda os: [o["id"] for o in os] == [state["swap_limit"]],
        ),
        Call(
            "cancel_order swap",
            lambda: ex.cancel_order(state["swap_limit"], "BTC/USDT:USDT"),
            lambda o: o["status"] == "canceled",
        ),
        Call("create_order swap market", place_swap_market),
        Call(
            "fetch_order swap",
            lambda: ex.fetch_order(state["swap_market"], "BTC/USDT:USDT"),
            lambda o: o["status"] == "closed" and o["filled"] == 0.01,
        ),
        Call(
            "fetch_my_trades swap",
            lambda: ex.fetch_my_trades("BTC/USDT:USDT"),
            lambda ts: [t["order"] for t in ts] == [state["swap_market"]],
        ),
        Call(
            "create_order swap stop-loss (algoOrder)",
            stop_loss,
            lambda o: o["info"]["algoType"] == "CONDITIONAL" and o["info"]["algoStatus"] == "NEW",
        ),
        Call(
            "fetch_balance future after the trade",
            lambda: ex.fetch_balance({"type": "future"}),
            lambda b: b["used"]["USDT"] > 0,
        ),
        Call(
            "positionRisk v3 (implicit API)",
            lambda: ex.fapiPrivateV3GetPositionRisk({"symbol": "BTCUSDT"}),
            lambda rows: Decimal(rows[0]["positionAmt"]) == Decimal("0.010"),
        ),
        Call(
            "fetch_positions",
            lambda: ex.fetch_positions(["BTC/USDT:USDT"]),
            lambda ps: ps[0]["contracts"] == 0.01,
        ),
        Call("fetch_leverages", lambda: ex.fetch_leverages(["BTC/USDT:USDT"])),
        Call("set_leverage", lambda: ex.set_leverage(10, "BTC/USDT:USDT")),
        Call("set_margin_mode", lambda: ex.set_margin_mode("cross", "BTC/USDT:USDT")),
        Call("fetch_position_mode", lambda: ex.fetch_position_mode("BTC/USDT:USDT")),
    ]


def test_ccxt_runs_a_bots_cycle_against_the_paper_exchange(
    world: tuple[Any, BinanceTestClient, ManualClock],
) -> None:
    ex, _, _ = world
    results: dict[str, str] = {}
    calls = cycle(ex, {})
    for call in calls:
        try:
            value = call.run()
        except Exception as exc:  # a library error of any kind counts as not working
            results[call.name] = f"{type(exc).__name__}: {str(exc)[:300]}"
            continue
        try:
            good = bool(call.check(value))
        except Exception as exc:
            good, value = False, f"{type(exc).__name__}: {exc}"
        results[call.name] = "ok" if good else f"unexpected: {str(value)[:300]}"
    worked = sum(1 for r in results.values() if r == "ok")
    print(f"\nccxt {ccxt.__version__}: {worked}/{len(calls)} calls worked")
    for name, result in results.items():
        print(f"  ok  {name}" if result == "ok" else f"  NO  {name}: {result}")
    assert {n: r for n, r in results.items() if r != "ok"} == {}
