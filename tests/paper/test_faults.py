"""Fault switches: latency, errors before and after executing, 429 then 418, read lag, clock
offset, and their scoping by path, method and count. No timing assertions."""

from __future__ import annotations

import time

import httpx
import pytest

from paper.faults import IN_FLIGHT_GRACE
from tests.paper.binance import BinanceTestClient
from tests.support import wait_until

MARKET = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}


def fault(bn: BinanceTestClient, **spec: object) -> dict[str, object]:
    result: dict[str, object] = bn.control("POST", "/faults", spec)
    return result


def test_latency_rule_is_applied_and_counted(bn: BinanceTestClient) -> None:
    rule = fault(bn, action="latency", path="/api/v3/time", delay_ms=50, count=2)
    for _ in range(3):
        bn.ok("GET", "/api/v3/time", signed=False)
    (view,) = bn.control("GET", "/faults")["faults"]
    assert view["id"] == rule["id"] and view["applied"] == 2


@pytest.mark.parametrize("in_body", [False, True])
def test_a_rule_scoped_to_a_symbol_holds_only_that_symbol_and_shows_it_holds(
    bn: BinanceTestClient, in_body: bool
) -> None:
    """A test's fault reaches the request it means (not a monitor's read of another symbol),
    and the paper says when it is holding one: the moment a request is in flight."""
    rule = fault(bn, action="latency", path="/api/v3/order", method="POST", symbol="ETHUSDT",
                 delay_ms=3000, count=1)  # fmt: skip
    bn.ok("POST", "/api/v3/order", {**MARKET, "newClientOrderId": "pk-other"}, in_body=in_body)
    (view,) = bn.control("GET", "/faults")["faults"]
    assert (view["applied"], view["holding"]) == (0, 0)  # BTCUSDT went by
    eth = {**MARKET, "symbol": "ETHUSDT", "newClientOrderId": "pk-eth"}
    with pytest.raises(httpx.ReadTimeout):
        bn.call("POST", "/api/v3/order", eth, in_body=in_body, timeout=0.2)
    (view,) = bn.control("GET", "/faults")["faults"]
    assert view["id"] == rule["id"] and (view["applied"], view["holding"]) == (1, 1)
    assert bn.ledger(client_id="pk-eth") == []  # held: not executed yet
    wait_until(lambda: len(bn.ledger(client_id="pk-eth")) == 1, timeout=10, interval=0.05)
    (view,) = bn.control("GET", "/faults")["faults"]
    assert view["holding"] == 0


def test_fail_before_executing_places_nothing(bn: BinanceTestClient) -> None:
    spec = {"path": "/api/v3/order", "method": "POST", "count": 1, "status": 503, "code": -1008}
    fault(bn, action="fail_before", **spec)
    response = bn.call("POST", "/api/v3/order", {**MARKET, "newClientOrderId": "pk-before"})
    assert response.status_code == 503 and response.json()["code"] == -1008
    assert bn.ledger(client_id="pk-before") == []
    bn.ok("POST", "/api/v3/order", {**MARKET, "newClientOrderId": "pk-before"})  # count spent
    assert len(bn.ledger(client_id="pk-before")) == 1


@pytest.mark.parametrize("in_body", [False, True])
def test_a_held_order_executes_even_when_its_client_gave_up(
    bn: BinanceTestClient, in_body: bool
) -> None:
    """As on Binance, a request the server received executes whether or not the caller
    still waits for the answer: the client's timeout leaves the order in doubt, not absent."""
    fault(bn, action="latency", path="/api/v3/order", method="POST", delay_ms=800, count=1)
    cid = f"pk-held-{int(in_body)}"
    with pytest.raises(httpx.ReadTimeout):
        bn.call("POST", "/api/v3/order", {**MARKET, "newClientOrderId": cid},
                in_body=in_body, timeout=0.2)  # fmt: skip
    wait_until(lambda: len(bn.ledger(client_id=cid)) == 1, timeout=10, interval=0.05)
    (entry,) = bn.ledger(client_id=cid)
    assert entry["status"] == "FILLED"


def test_fail_after_executing_hides_a_placed_order(bn: BinanceTestClient) -> None:
    fault(bn, action="fail_after", path="/api/v3/order", method="POST", count=1, code=-1007)
    response = bn.call("POST", "/api/v3/order", {**MARKET, "newClientOrderId": "pk-after"})
    assert response.status_code == 500
    assert response.json() == {
        "code": -1007,
        "msg": "Timeout waiting for response from backend server. "
        "Send status unknown; execution status unknown.",
    }
    (entry,) = bn.ledger(client_id="pk-after")
    assert entry["status"] == "FILLED"
    found = bn.ok("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "pk-after"})
    assert found["orderId"] == entry["id"]


def test_fail_after_with_a_bare_502_and_on_a_twap(bn: BinanceTestClient) -> None:
    spec = {"status": 502, "code": None, "raw_body": "Bad Gateway", "count": 1}
    fault(bn, action="fail_after", path="/sapi/v1/algo/spot/newOrderTwap", **spec)
    response = bn.call(
        "POST",
        "/sapi/v1/algo/spot/newOrderTwap",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": "0.1",
            "duration": 60,
            "clientAlgoId": "pk-t",
        },
    )
    assert (response.status_code, response.text) == (502, "Bad Gateway")
    assert [e["status"] for e in bn.ledger(client_id="pk-t")] == ["WORKING"]


def test_429_then_418_for_a_caller_that_ignores_retry_after(bn: BinanceTestClient) -> None:
    fault(bn, action="rate_limit", path="/api/", count=1, retry_after=3, ban_seconds=2)
    first = bn.call("GET", "/api/v3/ticker/price", {"symbol": "BTCUSDT"}, signed=False)
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    assert first.json()["code"] == -1003
    time.sleep(IN_FLIGHT_GRACE)  # no longer in flight: a caller that does not back off
    ignored = bn.call("GET", "/api/v3/ticker/price", {"symbol": "BTCUSDT"}, signed=False)
    assert ignored.status_code == 418 and ignored.json()["code"] == -1003
    # The ban is an IP ban of the spot host: /api and /sapi, not only the rule's prefix.
    for path in ("/sapi/v1/algo/spot/openOrders", "/api/v3/time"):
        banned = bn.call("GET", path, signed=path.startswith("/sapi"))
        assert banned.status_code == 418 and int(banned.headers["Retry-After"]) >= 1, path
    # fapi.binance.com is another host with its own limits: its IP is not banned.
    assert bn.call("GET", "/fapi/v1/time", signed=False).status_code == 200
    assert bn.control("GET", "/faults")  # the control API is not Binance's: never banned
    wait_until(lambda: bn.call("GET", "/api/v3/time", signed=False).status_code == 200, timeout=10)
    assert bn.call("GET", "/fapi/v1/time", signed=False).status_code == 200


def test_a_request_in_flight_when_the_429_was_answered_is_not_a_ban(
    bn: BinanceTestClient,
) -> None:
    """Binance bans repeated violations; a request sent before its caller could read the
    429 (another thread's, arriving a moment later) gets a 429 too. After that, a ban."""
    fault(bn, action="rate_limit", path="/api/", count=1, retry_after=3, ban_seconds=2)
    assert bn.call("GET", "/api/v3/time", signed=False).status_code == 429
    in_flight = bn.call("GET", "/api/v3/time", signed=False)
    assert in_flight.status_code == 429 and int(in_flight.headers["Retry-After"]) >= 1
    time.sleep(IN_FLIGHT_GRACE)
    assert bn.call("GET", "/api/v3/time", signed=False).status_code == 418
    assert bn.control("GET", "/faults")["served"] == {"429": 2, "418": 1}
    bn.control("DELETE", "/faults")


def test_the_429_and_418_answers_are_counted_until_a_clear(bn: BinanceTestClient) -> None:
    fault(bn, action="rate_limit", path="/api/", count=1, retry_after=3, ban_seconds=1)
    assert bn.control("GET", "/faults")["served"] == {"429": 0, "418": 0}
    assert bn.call("GET", "/api/v3/time", signed=False).status_code == 429
    time.sleep(IN_FLIGHT_GRACE)
    assert bn.call("GET", "/api/v3/time", signed=False).status_code == 418
    assert bn.call("GET", "/fapi/v1/time", signed=False).status_code == 200  # the other host
    assert bn.control("GET", "/faults")["served"] == {"429": 1, "418": 1}
    assert bn.control("DELETE", "/faults") == {"faults": []}
    assert bn.control("GET", "/faults")["served"] == {"429": 0, "418": 0}


def test_a_fapi_ban_leaves_the_spot_host_answering(bn: BinanceTestClient) -> None:
    fault(bn, action="rate_limit", path="", count=1, retry_after=5, ban_seconds=5)
    assert bn.call("GET", "/fapi/v1/time", signed=False).status_code == 429
    assert bn.call("GET", "/api/v3/time", signed=False).status_code == 200  # other host
    time.sleep(IN_FLIGHT_GRACE)
    assert bn.call("GET", "/fapi/v1/ticker/price", signed=False).status_code == 418
    assert bn.call("GET", "/fapi/v2/positionRisk").status_code == 418
    assert bn.call("GET", "/api/v3/time", signed=False).status_code == 200
    bn.control("DELETE", "/faults")


def test_a_429_outside_the_rules_prefix_is_not_a_ban(bn: BinanceTestClient) -> None:
    """Before a ban, only requests under the 429's prefix during Retry-After earn one."""
    fault(bn, action="rate_limit", path="/fapi/", count=1, retry_after=3, ban_seconds=2)
    assert bn.call("GET", "/fapi/v1/time", signed=False).status_code == 429
    assert bn.call("GET", "/api/v3/time", signed=False).status_code == 200
    time.sleep(IN_FLIGHT_GRACE)
    assert bn.call("GET", "/fapi/v1/time", signed=False).status_code == 418
    assert bn.call("GET", "/api/v3/time", signed=False).status_code == 200  # another host
    bn.control("DELETE", "/faults")  # clears the ban too


def test_waiting_out_retry_after_is_not_punished(bn: BinanceTestClient) -> None:
    fault(bn, action="rate_limit", path="/fapi/", count=1, retry_after=1)
    assert bn.call("GET", "/fapi/v1/time", signed=False).status_code == 429
    time.sleep(1.05)
    assert bn.call("GET", "/fapi/v1/time", signed=False).status_code == 200


def test_read_after_write_lag_hides_new_orders_for_a_while(bn: BinanceTestClient) -> None:
    fault(bn, action="read_lag", path="/api/v3/order", seconds=0.5)
    bn.ok("POST", "/api/v3/order", {**MARKET, "newClientOrderId": "pk-lag"})
    query = {"symbol": "BTCUSDT", "origClientOrderId": "pk-lag"}
    assert bn.error("GET", "/api/v3/order", query) == (400, -2013)
    wait_until(lambda: bn.call("GET", "/api/v3/order", query).status_code == 200, timeout=10)


def test_clock_offset_moves_server_time_and_the_recv_window(bn: BinanceTestClient) -> None:
    before = bn.ok("GET", "/api/v3/time", signed=False)["serverTime"]
    fault(bn, action="clock_offset", offset_ms=-20_000)
    after = bn.ok("GET", "/api/v3/time", signed=False)["serverTime"]
    assert after < before
    assert bn.error("GET", "/api/v3/account") == (400, -1021)  # 20 s ahead of the server
    assert bn.ok("GET", "/api/v3/account", timestamp=after)
    bn.control("DELETE", "/faults")
    assert bn.ok("GET", "/api/v3/account")


def test_rules_are_scoped_by_method_and_removable(bn: BinanceTestClient) -> None:
    rule = fault(bn, action="fail_before", path="/api/v3/order", method="DELETE")
    bn.ok("POST", "/api/v3/order", MARKET)  # POST is not affected
    assert (
        bn.call("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 1}).status_code == 500
    )
    bn.control("DELETE", f"/faults/{rule['id']}")
    assert bn.error("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 1}) == (400, -2011)
    bad = bn.http.post("/paper/faults", json={"action": "explode"})
    assert bad.status_code == 422
