"""One paper account per API key (``PACEKEEPER_PAPER_ACCOUNTS``): balances, orders, algos,
positions, order counts, key restrictions and ledger entries are the key's own."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from pydantic import SecretStr

from paper.accounts import configured_keys
from paper.app import create_app
from paper.clock import ManualClock
from paper.settings import PAPER_API_KEY
from tests.paper.binance import BinanceTestClient
from tests.paper.conftest import paper_settings
from tests.support import serve

D = Decimal
ORDER = "/api/v3/order"
ALT, ALT_SECRET = "alt-key", "alt-secret"
THIRD, THIRD_SECRET = "third-key", "third-secret"
LIMIT = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.001",
    "price": "30000",
    "newClientOrderId": "pk-same-id",
}


@pytest.fixture(scope="module")
def server(clock: ManualClock) -> Iterator[str]:
    accounts = SecretStr(f"{ALT}:{ALT_SECRET}, {THIRD}:{THIRD_SECRET}")
    with serve(create_app(paper_settings(paper_accounts=accounts), clock=clock)) as running:
        yield running.url


@pytest.fixture
def alt(server: str, bn: BinanceTestClient) -> Iterator[BinanceTestClient]:
    """The second account's client (``bn`` resets the exchange first)."""
    client = BinanceTestClient(server, key=ALT, secret=ALT_SECRET)
    yield client
    client.close()


def usdt(client: BinanceTestClient) -> D:
    balances = client.ok("GET", "/api/v3/account")["balances"]
    return next(D(b["free"]) for b in balances if b["asset"] == "USDT")


def test_each_key_trades_its_own_balances_and_orders(
    bn: BinanceTestClient, alt: BinanceTestClient
) -> None:
    before = usdt(bn)
    placed = alt.ok("POST", ORDER, LIMIT)
    assert usdt(alt) == before - D("30")  # the limit's quote is locked in alt's wallet
    assert usdt(bn) == before
    assert bn.ok("GET", "/api/v3/openOrders") == []
    assert [o["orderId"] for o in alt.ok("GET", "/api/v3/openOrders")] == [placed["orderId"]]
    assert bn.error("GET", ORDER, {"symbol": "BTCUSDT", "orderId": placed["orderId"]}) == (
        400,
        -2013,
    )
    # A client order id is unique per account, not across the exchange.
    assert bn.ok("POST", ORDER, LIMIT)["clientOrderId"] == "pk-same-id"
    assert bn.error("POST", ORDER, LIMIT) == (400, -2010)


def test_the_ledger_names_the_key_of_each_entry(
    bn: BinanceTestClient, alt: BinanceTestClient
) -> None:
    alt.ok("POST", ORDER, LIMIT)
    bn.ok("POST", ORDER, LIMIT)
    assert [e["key"] for e in bn.ledger()] == [ALT, PAPER_API_KEY]
    assert [e["key"] for e in bn.ledger(key=ALT)] == [ALT]
    assert bn.http.get("/paper/ledger?key=nobody").status_code == 404


def test_algo_slices_fill_in_the_account_that_placed_the_algo(
    bn: BinanceTestClient, alt: BinanceTestClient, clock: ManualClock
) -> None:
    spot_btc = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.3", "duration": 30}
    alt.ok("POST", "/sapi/v1/algo/spot/newOrderTwap", spot_btc)
    assert bn.ok("GET", "/sapi/v1/algo/spot/openOrders")["total"] == 0
    clock.advance(120)
    assert usdt(bn) == D("1000000")
    assert usdt(alt) < D("1000000")  # its slices filled in alt's wallet
    assert bn.ok("GET", "/sapi/v1/algo/spot/historicalOrders")["total"] == 0
    assert alt.ok("GET", "/sapi/v1/algo/spot/historicalOrders")["total"] == 1


def test_futures_positions_are_per_account(bn: BinanceTestClient, alt: BinanceTestClient) -> None:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    alt.ok("POST", "/fapi/v1/order", order)

    def amount(client: BinanceTestClient) -> D:
        rows = client.ok("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
        return sum((D(r["positionAmt"]) for r in rows), D(0))

    assert amount(alt) == D("0.01")
    assert amount(bn) == D(0)


def test_order_counts_are_per_account(bn: BinanceTestClient, alt: BinanceTestClient) -> None:
    bn.ok("POST", ORDER, {**LIMIT, "newClientOrderId": "a"})
    bn.ok("POST", ORDER, {**LIMIT, "newClientOrderId": "b"})
    counted = alt.call("POST", ORDER, LIMIT)
    # Same 10-second window or the next one: alt's own count starts at one either way.
    assert counted.headers["X-MBX-ORDER-COUNT-1D"] == "1"


def test_key_restrictions_are_per_key(bn: BinanceTestClient, alt: BinanceTestClient) -> None:
    bn.control("POST", f"/api-restrictions?key={ALT}", {"enableWithdrawals": True})
    path = "/sapi/v1/account/apiRestrictions"
    assert alt.ok("GET", path)["enableWithdrawals"] is True
    assert bn.ok("GET", path)["enableWithdrawals"] is False
    assert alt.ok("GET", "/api/v3/account")["canWithdraw"] is True


def test_unknown_keys_and_foreign_secrets_are_refused(server: str, bn: BinanceTestClient) -> None:
    clients = [
        BinanceTestClient(server, key=key, secret=secret)
        for key, secret in (("nobody", ALT_SECRET), (THIRD, ALT_SECRET), (THIRD, THIRD_SECRET))
    ]
    stranger, borrowed, third = clients
    try:
        assert stranger.error("GET", "/api/v3/account") == (401, -2015)
        assert borrowed.error("GET", "/api/v3/account") == (400, -1022)
        assert third.ok("GET", "/api/v3/account")["canTrade"] is True
    finally:
        for client in clients:
            client.close()


def test_a_fault_scoped_to_a_key_reaches_only_that_account(
    bn: BinanceTestClient, alt: BinanceTestClient
) -> None:
    bn.control("POST", "/faults", {"action": "fail_before", "path": ORDER, "key": ALT})
    assert alt.error("POST", ORDER, LIMIT)[1] == -1001
    assert bn.ok("POST", ORDER, LIMIT)["status"] == "NEW"
    assert [e["key"] for e in bn.ledger()] == [PAPER_API_KEY]


def test_paper_accounts_setting_is_key_secret_pairs() -> None:
    keys = configured_keys(paper_settings(paper_accounts=SecretStr("k1:s1,k2:s2")))
    assert keys == {PAPER_API_KEY: keys[PAPER_API_KEY], "k1": "s1", "k2": "s2"}
    with pytest.raises(ValueError, match="PACEKEEPER_PAPER_ACCOUNTS"):
        configured_keys(paper_settings(paper_accounts=SecretStr("k1")))
