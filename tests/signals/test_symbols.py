"""The receiver refuses (422, naming `symbol`) a symbol the exchange does not list, judged
against exchangeInfo fetched in the background; without a recent listing it accepts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.signals.symbols import MAX_AGE, RECHECK_AFTER, SymbolDirectory
from paper.app import create_app as create_paper_app
from paper.clock import ManualClock
from paper.settings import PaperSettings
from tests.signals.conftest import Receiver, configured, entry
from tests.support import ThreadedServer, free_port, serve, wait_until

SPOT = {"symbols": [{"symbol": "BTCUSDT"}, {"symbol": "ETHUSDT"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_listing_judges_symbols_only_while_it_is_recent() -> None:
    clock = Clock()
    directory = SymbolDirectory(lambda market: SPOT, clock=clock)
    assert directory.listed("spot", "NOPEUSDT") is None  # nothing fetched yet: accept
    directory.load("spot", SPOT)
    assert directory.listed("spot", "BTCUSDT") is True
    assert directory.listed("spot", "NOPEUSDT") is False
    assert directory.listed("usdm", "BTCUSDT") is None  # no USD-M listing yet
    clock.now += MAX_AGE + 1
    assert directory.listed("spot", "NOPEUSDT") is None  # too old to refuse anything


def test_an_unlisted_symbol_asks_for_an_early_refresh_of_an_old_listing() -> None:
    fetched: list[str] = []
    clock = Clock()

    def fetch(market: str) -> dict[str, Any]:
        fetched.append(market)
        if len(fetched) > 2:  # listed since the first fetch
            return {"symbols": [*SPOT["symbols"], {"symbol": "NEWUSDT"}]}
        return SPOT

    async def scenario() -> None:
        directory = SymbolDirectory(fetch, ttl=3600, clock=clock).start()
        try:
            while len(fetched) < 2:
                await asyncio.sleep(0.01)
            assert directory.listed("spot", "NEWUSDT") is False  # fresh: no recheck
            clock.now += RECHECK_AFTER + 1
            assert directory.listed("spot", "NEWUSDT") is False  # old: recheck asked
            for _ in range(500):
                if directory.listed("spot", "NEWUSDT"):
                    break
                await asyncio.sleep(0.01)
            assert directory.listed("spot", "NEWUSDT") is True
        finally:
            await directory.close()

    asyncio.run(scenario())
    assert fetched[:2] == ["spot", "usdm"]


@pytest.fixture(scope="module")
def paper() -> Iterator[ThreadedServer]:
    settings = PaperSettings(_env_file=None, paper_volatility=Decimal(0))
    with serve(create_paper_app(settings, clock=ManualClock())) as server:
        yield server


def test_the_webhook_refuses_a_symbol_the_exchange_does_not_list(
    receiver: Receiver, http: httpx.Client, settings: Settings, paper: ThreadedServer
) -> None:
    checked = configured(
        settings, webhook_check_symbols=True, binance_api_url=paper.url, binance_fapi_url=paper.url
    )
    app, url = receiver(checked)
    wait_until(lambda: app.state.symbols.listed("usdm", "BTCUSDT"), timeout=30)

    refused = http.post(f"{url}/webhook", json=entry(id="nope", symbol="BINANCE:NOPEUSDT"))
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert error["field"] == "symbol" and error["value"] == "BINANCE:NOPEUSDT"
    assert "not listed" in error["message"]
    futures = http.post(
        f"{url}/webhook", json=entry(id="nope-p", symbol="NOPEUSDT.P", execution=None)
    )
    assert futures.status_code == 422 and "USD-M" in futures.json()["errors"][0]["message"]
    assert http.post(f"{url}/webhook", json=entry(id="btc")).status_code == 202


def test_with_the_exchange_unreachable_every_symbol_is_accepted(
    receiver: Receiver, http: httpx.Client, settings: Settings
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    checked = configured(
        settings, webhook_check_symbols=True, binance_api_url=dead, binance_fapi_url=dead
    )
    _, url = receiver(checked)
    accepted = http.post(f"{url}/webhook", json=entry(id="maybe", symbol="NOPEUSDT"))
    assert accepted.status_code == 202


def test_closing_waits_for_a_fetch_under_way_before_closing_its_client() -> None:
    """The receiver's client is closed only once no request of it is in flight: a request
    still running on a closed client would leave its connection open."""
    started, release = threading.Event(), threading.Event()
    log: list[str] = []

    def fetch(market: str) -> dict[str, Any]:
        started.set()
        release.wait(10)
        log.append(f"fetched {market}")
        return SPOT

    async def scenario() -> None:
        directory = SymbolDirectory(fetch, on_close=lambda: log.append("closed")).start()
        while not started.is_set():
            await asyncio.sleep(0.01)
        closing = asyncio.create_task(directory.close())
        await asyncio.sleep(0.2)
        assert log == [] and not closing.done()  # the fetch is still under way
        release.set()
        await asyncio.wait_for(closing, 10)

    asyncio.run(scenario())
    assert log == ["fetched spot", "closed"]
