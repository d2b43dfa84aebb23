"""The rate-limit governor: budgets, headers, Retry-After, bans; in memory and in Redis."""

from __future__ import annotations

import time as wall
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.exchange import Temporary
from app.exchange.filters import Market
from app.exchange.ratelimit import MemoryRateStore, RateGovernor, RedisRateStore, cost_of
from tests.exchange import samples
from tests.exchange.fake import FakeBinance, FakeTime, make_client, reply

OPEN = "/sapi/v1/algo/spot/openOrders"


def governor(time: FakeTime, **kw: object) -> RateGovernor:
    return RateGovernor(MemoryRateStore(time), clock=time, sleep=time.sleep, **kw)  # type: ignore[arg-type]


def test_costs_follow_the_documented_weights_and_buckets() -> None:
    assert cost_of("GET", "/api/v3/exchangeInfo").weight == 20
    assert cost_of("GET", "/api/v3/ticker/price", {"symbol": "BTCUSDT"}).weight == 2
    assert cost_of("GET", "/api/v3/ticker/price").weight == 4
    assert cost_of("GET", "/fapi/v1/openAlgoOrders").weight == 40
    twap = cost_of("POST", "/sapi/v1/algo/spot/newOrderTwap")
    assert (twap.kind, twap.weight) == ("sapi-uid", 3000)
    assert cost_of("GET", OPEN).bucket == f"sapi-ip:{OPEN}"  # one budget per sapi endpoint
    assert cost_of("GET", "/fapi/v2/positionRisk").bucket == "fapi"
    assert cost_of("GET", "/api/v3/unlisted").weight == 1


def test_waits_for_the_next_window_instead_of_crossing_the_budget() -> None:
    time = FakeTime(start=1_000_040.0)  # 20 s into a minute window
    gov = governor(time, margin=0.1)
    gov.record(cost_of("GET", "/api/v3/account"), 200, {"x-mbx-used-weight-1m": "5390"})

    gov.acquire("GET", "/api/v3/time")  # 5391 <= 5400 fits
    assert time.sleeps == []
    gov.acquire("GET", "/api/v3/exchangeInfo")  # 5411 > 5400: wait for the next minute

    assert time.sleeps == [pytest.approx(40.05)]
    assert gov.snapshot()["buckets"]["api"] == {"used": 20, "limit": 6000}


def test_sapi_endpoints_have_separate_budgets_read_from_sapi_headers() -> None:
    time = FakeTime(start=1_000_000.0)
    gov = governor(time, margin=0.0)
    twap = cost_of("POST", "/sapi/v1/algo/spot/newOrderTwap")
    gov.record(twap, 200, {"x-sapi-used-uid-weight-1m": "180000"})
    gov.acquire("GET", OPEN)  # another endpoint, other budget: no wait
    assert time.sleeps == []
    gov.acquire("POST", "/sapi/v1/algo/spot/newOrderTwap")
    assert len(time.sleeps) == 1


def test_accounts_keep_their_own_order_counts_and_uid_weight_but_share_the_ip() -> None:
    time = FakeTime(start=1_000_000.0)
    store = MemoryRateStore(time)

    def account(name: str) -> RateGovernor:
        return RateGovernor(store, margin=0.0, clock=time, sleep=time.sleep, account=name)

    main, alt = account(""), account("alt")
    order = cost_of("POST", "/api/v3/order")
    main.record(order, 200, {"x-mbx-order-count-10s": "100"})  # main's count is at its limit
    twap = cost_of("POST", "/sapi/v1/algo/spot/newOrderTwap")
    main.record(twap, 200, {"x-sapi-used-uid-weight-1m": "180000"})  # and its UID weight
    alt.acquire("POST", "/api/v3/order")
    alt.acquire("POST", "/sapi/v1/algo/spot/newOrderTwap")
    assert time.sleeps == []  # neither is alt's
    main.record(cost_of("GET", "/api/v3/account"), 200, {"x-mbx-used-weight-1m": "6000"})
    alt.acquire("GET", "/api/v3/time")  # the IP's weight is spent for every account
    assert time.sleeps == [pytest.approx(20.05)]  # to the next minute window


def test_retry_after_blocks_the_family_until_it_ends() -> None:
    time = FakeTime(start=1_000_000.0)
    gov = governor(time)
    gov.record(cost_of("GET", "/api/v3/order"), 429, {"retry-after": "7"})

    gov.acquire("GET", OPEN)  # /sapi is not blocked by an /api 429
    assert time.sleeps == []
    gov.acquire("GET", "/api/v3/time")
    assert sum(time.sleeps) == pytest.approx(7)


def test_client_sends_nothing_before_retry_after_ends() -> None:
    fake = FakeBinance()
    limited = reply(429, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "7"})
    fake.add("GET", OPEN, limited, reply(raw=samples.SPOT_ALGO_OPEN))
    client = make_client(fake)

    client.algo_open_orders(Market.SPOT)

    first, second = (fake.sent_at[i] for i, r in enumerate(fake.requests) if r.url.path == OPEN)
    assert second - first >= 7


def test_retry_after_holds_back_every_call_to_that_server_only() -> None:
    fake = FakeBinance()
    limited = reply(429, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "30"})
    fake.add("POST", "/api/v3/order", limited)
    fake.add("GET", OPEN, reply(raw=samples.SPOT_ALGO_OPEN))
    fake.add("GET", "/fapi/v1/premiumIndex", reply(body={"symbol": "X", "markPrice": "1"}))
    client = make_client(fake)
    with pytest.raises(Temporary):  # a write is not resent, even after a 429
        client.new_order(
            symbol="BTCUSDT", side="BUY", type="MARKET", quantity=Decimal(1),
            new_client_order_id="x",
        )  # fmt: skip
    start = fake.time()

    client.mark_price("X")  # fapi.test: another server, not held back
    assert fake.time() == start
    client.algo_open_orders(Market.SPOT)  # /sapi on the same server waits the 429 out
    assert fake.sent_at[-1] - start >= 30
    assert len(fake.calls("POST", "/api/v3/order")) == 1


def test_ban_stops_every_call_to_its_host_without_sending_anything() -> None:
    fake = FakeBinance()
    fake.add("GET", OPEN, reply(418, {"code": -1003, "msg": "IP banned"}, {"Retry-After": "600"}))
    fake.add("GET", "/fapi/v1/premiumIndex", reply(body={"symbol": "X", "markPrice": "1"}))
    client = make_client(fake)

    with pytest.raises(Temporary) as caught:
        client.algo_open_orders(Market.SPOT)
    sent = len(fake.requests)
    for call in (
        lambda: client.ticker_price("BTCUSDT"),
        lambda: client.cancel_algo(Market.SPOT, 1),
        lambda: client.cancel_algo(Market.USDM, 1),  # /sapi/v1/algo/futures is on the spot host
        lambda: client.new_order(
            symbol="BTCUSDT",
            side="BUY",
            type="MARKET",
            quantity=Decimal(1),
            new_client_order_id="x",
        ),
    ):
        with pytest.raises(Temporary) as later:
            call()
        assert later.value.retry_after == pytest.approx(600)
    assert caught.value.retry_after == 600
    assert len(fake.requests) == sent  # nothing went out during the ban
    assert client.governor.snapshot()["banned_for"] == pytest.approx(600)
    assert client.mark_price("X").markPrice == 1  # the USD-M host is not banned


def test_short_ban_is_waited_out() -> None:
    time = FakeTime(start=1_000_000.0)
    gov = governor(time, max_wait=60)
    gov.record(cost_of("GET", "/api/v3/time"), 418, {"retry-after": "30"})
    gov.acquire("GET", "/sapi/v1/algo/spot/openOrders")
    assert sum(time.sleeps) == pytest.approx(30)


def test_a_ban_holds_back_its_own_host_only() -> None:
    """api.binance.com and fapi.binance.com have their own limits and bans: a spot 418 must
    not stop a USD-M stop or close, nor a USD-M 418 the spot side."""
    time = FakeTime(start=1_000_000.0)
    gov = governor(time, max_wait=0)
    gov.record(cost_of("GET", "/api/v3/order", server="paper:1"), 418, {"retry-after": "300"})
    gov.acquire("POST", "/fapi/v1/algoOrder", server="paper:1")  # same port, other host
    gov.acquire("GET", "/fapi/v2/positionRisk", server="paper:1")
    for path in ("/api/v3/time", "/sapi/v1/algo/spot/openOrders"):
        with pytest.raises(Temporary, match="IP banned"):
            gov.acquire("GET", path, server="paper:1")
    assert gov.snapshot()["banned"] == {"spot": pytest.approx(300), "fapi": 0}
    gov.record(cost_of("GET", "/fapi/v1/time", server="paper:1"), 418, {"retry-after": "60"})
    with pytest.raises(Temporary, match="IP banned"):
        gov.acquire("POST", "/fapi/v1/order", server="paper:1")
    assert time.sleeps == []


def test_a_429_from_the_spot_side_does_not_hold_back_fapi_on_the_same_port() -> None:
    time = FakeTime(start=1_000_000.0)
    gov = governor(time, max_wait=0)
    gov.record(cost_of("POST", "/api/v3/order", server="paper:1"), 429, {"retry-after": "30"})
    gov.acquire("POST", "/fapi/v1/order", server="paper:1")
    with pytest.raises(Temporary, match="Retry-After"):
        gov.acquire("GET", "/sapi/v1/algo/spot/openOrders", server="paper:1")


def test_418_without_retry_after_bans_for_two_minutes() -> None:
    time = FakeTime()
    gov = governor(time, max_wait=0)
    gov.record(cost_of("GET", "/api/v3/time"), 418, {})
    with pytest.raises(Temporary) as caught:
        gov.acquire("GET", "/api/v3/time")
    assert caught.value.retry_after == pytest.approx(120)


@pytest.fixture
def prefix(redis_conn: redis.Redis) -> Iterator[str]:
    name = f"pk:test:rl:{uuid.uuid4().hex[:8]}:"
    yield name
    keys = list(redis_conn.scan_iter(match=f"{name}*"))
    if keys:
        redis_conn.delete(*keys)


def test_processes_share_weight_and_bans_through_redis(
    redis_conn: redis.Redis, prefix: str
) -> None:
    time = FakeTime(start=float(int(wall.time())))
    worker = RateGovernor(RedisRateStore(redis_conn, prefix), clock=time, sleep=time.sleep)
    monitor = RateGovernor(RedisRateStore(redis_conn, prefix), clock=time, sleep=time.sleep)

    worker.acquire("GET", "/api/v3/exchangeInfo")
    worker.record(cost_of("GET", "/fapi/v1/time"), 200, {"x-mbx-used-weight-1m": "77"})
    assert monitor.snapshot()["buckets"]["api"]["used"] == 20
    monitor.acquire("GET", "/fapi/v1/time")
    assert worker.snapshot()["buckets"]["fapi"]["used"] == 78

    monitor.record(cost_of("GET", "/sapi/v1/algo/spot/openOrders"), 429, {"retry-after": "90"})
    with pytest.raises(Temporary, match="Retry-After from sapi"):
        worker.acquire("GET", "/sapi/v1/algo/futures/openOrders")
    worker.acquire("GET", "/api/v3/time")  # /api is not held back by a /sapi 429

    monitor.record(cost_of("GET", "/api/v3/time"), 418, {"retry-after": "300"})
    with pytest.raises(Temporary):
        worker.acquire("GET", "/api/v3/time")
    assert 299 < worker.snapshot()["banned_for"] <= 300
    assert redis_conn.pttl(f"{prefix}ban:spot") > 0
    monitor.acquire("GET", "/fapi/v1/time")  # fapi.binance.com is not banned by the spot host


def test_redis_budget_makes_the_second_process_wait(redis_conn: redis.Redis, prefix: str) -> None:
    time = FakeTime(start=60.0 * int(wall.time() // 60) + 10)
    one = RateGovernor(RedisRateStore(redis_conn, prefix), clock=time, sleep=time.sleep)
    two = RateGovernor(RedisRateStore(redis_conn, prefix), clock=time, sleep=time.sleep)
    one.record(cost_of("GET", "/fapi/v1/time"), 200, {"x-mbx-used-weight-1m": "2159"})
    two.acquire("GET", "/fapi/v1/time")  # 2160 fits the 90% budget
    assert time.sleeps == []
    two.acquire("GET", "/fapi/v1/time")
    assert time.sleeps == [pytest.approx(50.05)]


def test_redis_outage_falls_back_to_memory() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    time = FakeTime()
    store = RedisRateStore(dead, "pk:rl:", clock=time)
    gov = RateGovernor(store, clock=time, sleep=time.sleep)
    gov.acquire("GET", "/api/v3/time")
    gov.record(cost_of("GET", "/api/v3/time"), 429, {"retry-after": "3"})
    gov.acquire("GET", "/api/v3/time")  # the back-off still holds, from memory
    assert time.sleeps == [pytest.approx(3)]
