"""Spot order placements carry X-MBX-ORDER-COUNT-10S / -1D and stop at 100 per 10 seconds;
the client's rate governor holds placements back when the count nears the limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from app.exchange import Temporary
from app.exchange.ratelimit import MemoryRateStore, RateGovernor, cost_of
from paper.app import create_app
from paper.clock import ManualClock
from tests.exchange import samples
from tests.exchange.fake import FakeBinance, FakeTime, make_client, reply
from tests.paper.binance import BinanceTestClient
from tests.paper.conftest import paper_settings
from tests.support import serve

ORDER = "/api/v3/order"
LIMIT = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.0001",
    "price": "60000",
    "newOrderRespType": "ACK",
}


@pytest.fixture
def fresh() -> Iterator[BinanceTestClient]:
    with serve(create_app(paper_settings(), clock=ManualClock())) as running:
        client = BinanceTestClient(running.url)
        yield client
        client.close()


def wait_for_fresh_ten_seconds() -> None:
    """Start at the beginning of a 10-second window so a burst stays inside one."""
    left = 10 - time.time() % 10
    if left < 8:
        time.sleep(left + 0.05)


@pytest.mark.slow  # waits for wall-clock 10-second windows (up to ~20 s)
def test_spot_orders_report_and_enforce_the_order_count(fresh: BinanceTestClient) -> None:
    wait_for_fresh_ten_seconds()
    first = fresh.call("POST", ORDER, LIMIT)
    assert first.status_code == 200
    assert first.headers["X-MBX-ORDER-COUNT-10S"] == "1"
    assert first.headers["X-MBX-ORDER-COUNT-1D"] == "1"
    assert "X-MBX-ORDER-COUNT-10S" not in fresh.call("GET", "/api/v3/openOrders").headers
    for _ in range(2, 101):
        answer = fresh.call("POST", ORDER, LIMIT)
        assert answer.status_code == 200, answer.text
    assert answer.headers["X-MBX-ORDER-COUNT-10S"] == "100"
    refused = fresh.call("POST", ORDER, LIMIT)
    assert refused.status_code == 429
    assert refused.json() == {
        "code": -1015,
        "msg": "Too many new orders; current limit is 100 orders per 10 SECOND.",
    }
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert refused.headers["X-MBX-ORDER-COUNT-10S"] == "100"
    opened = fresh.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert len(opened) == 100  # the refused one was not placed
    time.sleep(10 - time.time() % 10 + 0.05)
    again = fresh.call("POST", ORDER, LIMIT)
    assert again.status_code == 200 and again.headers["X-MBX-ORDER-COUNT-10S"] == "1"
    assert again.headers["X-MBX-ORDER-COUNT-1D"] == "101"


def test_governor_holds_placements_while_the_count_is_near_the_limit() -> None:
    clock = FakeTime(start=1_000_003.0)  # 3 s into a 10-second window
    gov = RateGovernor(MemoryRateStore(clock), clock=clock, sleep=clock.sleep, margin=0.1)
    placed = cost_of("POST", ORDER)
    gov.record(placed, 200, httpx.Headers({"X-MBX-ORDER-COUNT-10S": "89"}))
    gov.acquire("POST", ORDER)
    assert clock.sleeps == []  # 89 of 100 is below the 90 the margin allows
    gov.record(placed, 200, httpx.Headers({"X-MBX-ORDER-COUNT-10S": "90"}))
    gov.acquire("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})  # reads go on
    assert clock.sleeps == []
    gov.acquire("POST", ORDER)  # a placement waits for the next 10-second window
    assert clock.sleeps == [pytest.approx(7.0)]
    gov.record(placed, 200, httpx.Headers({"X-MBX-ORDER-COUNT-1D": "199000"}))
    with pytest.raises(Temporary):  # the rest of the day is longer than max_wait
        gov.acquire("POST", "/api/v3/orderList/oco")


def test_client_waits_out_the_order_count_before_placing() -> None:
    fake = FakeBinance()
    near = reply(raw=samples.ORDER_FULL, headers={"X-MBX-ORDER-COUNT-10S": "95"})
    fake.add("POST", ORDER, near, reply(raw=samples.ORDER_FULL))
    client = make_client(fake)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": Decimal(1)}
    client.new_order(**order, new_client_order_id="a")  # type: ignore[arg-type]
    first = fake.sent_at[-1]
    client.new_order(**order, new_client_order_id="b")  # type: ignore[arg-type]
    second = fake.sent_at[-1]
    assert second > first and second // 10 > first // 10  # sent in the next window
    assert len(fake.calls("POST", ORDER)) == 2


def test_futures_orders_report_their_order_count(fresh: BinanceTestClient) -> None:
    fresh.set_price("BTCUSDT", "64000")
    placed = fresh.call(
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
    )
    assert placed.status_code == 200
    assert placed.headers["X-MBX-ORDER-COUNT-10S"] == "1"
    assert placed.headers["X-MBX-ORDER-COUNT-1M"] == "1"
    assert "X-MBX-ORDER-COUNT-1D" not in placed.headers  # spot's daily count is its own
    spot = fresh.call("POST", ORDER, LIMIT)
    assert spot.headers["X-MBX-ORDER-COUNT-10S"] == "1"  # counted apart from USD-M's


def test_a_governor_without_order_limits_never_holds_placements() -> None:
    clock = FakeTime(start=1_000_003.0)
    gov = RateGovernor(MemoryRateStore(clock), clock=clock, sleep=clock.sleep, order_limits={})
    gov.record(cost_of("POST", ORDER), 200, httpx.Headers({"X-MBX-ORDER-COUNT-10S": "100"}))
    gov.acquire("POST", ORDER)
    assert clock.sleeps == []
