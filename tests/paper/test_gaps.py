"""Price gaps (POST /paper/gap): stops trigger at the gapped price; a stop-limit whose limit
the market jumped past rests unfilled while its OCO list still reads as working."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient
from tests.paper.test_oco import OCO, leg, sell_bracket

D = Decimal
ALGO = "/fapi/v1/algoOrder"


def gap(bn: BinanceTestClient, to: str, start: str | None = None, **kw: str) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": kw.get("symbol", "BTCUSDT"), "to": to}
    if start is not None:
        body["from"] = start
    result: dict[str, Any] = bn.control("POST", "/gap", body)
    return result


def order_list(bn: BinanceTestClient, list_id: str) -> dict[str, Any]:
    result: dict[str, Any] = bn.ok("GET", "/api/v3/orderList", {"origClientOrderId": list_id})
    return result


def test_gap_past_the_limit_leaves_the_stop_limit_resting_and_the_list_executing(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    bn.ok("POST", OCO, sell_bracket("pk-gap-1"))  # stop 60000, limit 59900
    answer = gap(bn, "58000", start="60500")
    assert answer["from"] == "60500.00000000" and answer["to"] == "58000.00000000"
    changed = {row["clientOrderId"]: row for row in answer["changed"]}
    assert set(changed) == {"pk-gap-1-sl", "pk-gap-1-tp"}
    assert changed["pk-gap-1-sl"]["status"] == "NEW" and changed["pk-gap-1-sl"]["isWorking"]
    assert changed["pk-gap-1-tp"]["status"] == "EXPIRED"
    clock.advance(1)
    stop = leg(bn, "pk-gap-1-sl")
    assert stop["status"] == "NEW" and stop["isWorking"] is True
    assert stop["type"] == "STOP_LOSS_LIMIT" and stop["executedQty"] == "0.00000000"
    assert stop["workingTime"] > 0
    take_profit = leg(bn, "pk-gap-1-tp")
    assert take_profit["status"] == "EXPIRED" and take_profit["expiryReason"] == "OCO_TRIGGER"
    listed = order_list(bn, "pk-gap-1")
    assert listed["listStatusType"] == "EXEC_STARTED"
    assert listed["listOrderStatus"] == "EXECUTING"
    assert [o["listClientOrderId"] for o in bn.ok("GET", "/api/v3/openOrderList")] == ["pk-gap-1"]
    (resting,) = bn.ok("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert resting["clientOrderId"] == "pk-gap-1-sl"
    btc = next(b for b in bn.ok("GET", "/api/v3/account")["balances"] if b["asset"] == "BTC")
    assert btc["locked"] == "0.01000000"  # still held for the resting limit
    # The market comes back to the limit: the resting order fills at its price.
    bn.set_price("BTCUSDT", "59900")
    clock.advance(1)
    filled = leg(bn, "pk-gap-1-sl")
    assert filled["status"] == "FILLED" and filled["cummulativeQuoteQty"] == "599.00000000"
    assert order_list(bn, "pk-gap-1")["listOrderStatus"] == "ALL_DONE"
    assert bn.ok("GET", "/api/v3/openOrderList") == []


def test_cancelling_the_list_after_the_gap_cancels_the_resting_stop_limit(
    bn: BinanceTestClient,
) -> None:
    bn.ok("POST", OCO, sell_bracket("pk-gap-2"))
    gap(bn, "58000")
    cancelled = bn.ok(
        "DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT", "listClientOrderId": "pk-gap-2"}
    )
    assert cancelled["listOrderStatus"] == "ALL_DONE"
    statuses = {r["clientOrderId"]: r["status"] for r in cancelled["orderReports"]}
    assert sorted(statuses.values()) == ["CANCELED", "EXPIRED"]
    btc = next(b for b in bn.ok("GET", "/api/v3/account")["balances"] if b["asset"] == "BTC")
    assert btc["locked"] == "0.00000000"


def test_a_stop_loss_leg_fills_at_the_gapped_price(bn: BinanceTestClient) -> None:
    market_stop = sell_bracket("pk-gap-3", belowType="STOP_LOSS")
    del market_stop["belowTimeInForce"]
    assert bn.error("POST", OCO, market_stop) == (400, -1106)  # belowPrice: a market stop
    del market_stop["belowPrice"]
    placed = bn.ok("POST", OCO, market_stop)
    assert {r["type"] for r in placed["orderReports"]} == {"STOP_LOSS", "LIMIT_MAKER"}
    answer = gap(bn, "58000", start="60500")
    changed = {row["clientOrderId"]: row["status"] for row in answer["changed"]}
    assert changed == {"pk-gap-3-sl": "FILLED", "pk-gap-3-tp": "EXPIRED"}
    stop = leg(bn, "pk-gap-3-sl")
    assert stop["status"] == "FILLED" and stop["cummulativeQuoteQty"] == "580.00000000"
    (trade,) = bn.ok("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "orderId": stop["orderId"]})
    assert trade["price"] == "58000.00000000"
    assert order_list(bn, "pk-gap-3")["listOrderStatus"] == "ALL_DONE"


def test_an_ioc_stop_limit_gapped_past_its_limit_expires(bn: BinanceTestClient) -> None:
    placed = bn.ok(
        "POST",
        "/api/v3/order",
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "STOP_LOSS_LIMIT",
            "timeInForce": "IOC",
            "quantity": "0.01",
            "price": "59900",
            "stopPrice": "60000",
        },
    )
    (row,) = gap(bn, "58000")["changed"]
    assert row["status"] == "EXPIRED"
    query = {"symbol": "BTCUSDT", "orderId": placed["orderId"]}
    order = bn.ok("GET", "/api/v3/order", query)
    assert order["expiryReason"] == "UNFILLED_IOC_QUANTITY_EXPIRED"


def test_a_gap_within_the_limit_fills_the_stop_limit_at_the_new_price(
    bn: BinanceTestClient,
) -> None:
    bn.ok("POST", OCO, sell_bracket("pk-gap-4"))
    changed = {r["clientOrderId"]: r["status"] for r in gap(bn, "59950")["changed"]}
    assert changed == {"pk-gap-4-sl": "FILLED", "pk-gap-4-tp": "EXPIRED"}
    assert leg(bn, "pk-gap-4-sl")["cummulativeQuoteQty"] == "599.50000000"


def test_usdm_gap_fills_stop_market_and_rests_a_stop_limit(bn: BinanceTestClient) -> None:
    bn.control("POST", "/positions", {"symbol": "BTCUSDT", "positionAmt": "0.2"})
    common = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL"}
    bn.ok(
        "POST",
        ALGO,
        {
            **common,
            "type": "STOP",
            "triggerPrice": "60000",
            "price": "59900",
            "quantity": "0.1",
            "reduceOnly": "true",
            "clientAlgoId": "pk-stop-limit",
        },
    )
    bn.ok(
        "POST",
        ALGO,
        {
            **common,
            "type": "STOP_MARKET",
            "triggerPrice": "59000",
            "quantity": "0.1",
            "reduceOnly": "true",
            "clientAlgoId": "pk-stop-market",
        },
    )
    answer = gap(bn, "58000")
    statuses = {r.get("clientAlgoId"): r for r in answer["changed"] if "algoId" in r}
    assert statuses["pk-stop-limit"]["algoStatus"] == "TRIGGERED"
    assert statuses["pk-stop-market"]["algoStatus"] == "FINISHED"
    limit = bn.ok("GET", ALGO, {"clientAlgoId": "pk-stop-limit"})
    actual = bn.ok(
        "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": int(limit["actualOrderId"])}
    )
    assert actual["status"] == "NEW" and actual["type"] == "LIMIT" and actual["price"] == "59900.0"
    market = bn.ok("GET", ALGO, {"clientAlgoId": "pk-stop-market"})
    assert D(market["actualPrice"]) == D("58000")
    (row,) = bn.ok("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
    assert row["positionAmt"] == "0.100"  # half closed at 58000, half waits at 59900


def test_usdm_triggered_limits_that_cannot_rest_expire(bn: BinanceTestClient) -> None:
    bn.control("POST", "/positions", {"symbol": "BTCUSDT", "positionAmt": "0.2"})
    common = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.1"}
    ioc_stop = {"type": "STOP", "triggerPrice": "60000", "price": "59900", "timeInForce": "IOC"}
    bn.ok("POST", ALGO, {**common, **ioc_stop, "reduceOnly": "true", "clientAlgoId": "ioc"})
    post_only = {"type": "TAKE_PROFIT", "triggerPrice": "66000", "price": "65900"}
    bn.ok("POST", ALGO, {**common, **post_only, "timeInForce": "GTX", "clientAlgoId": "gtx"})
    gap(bn, "58000")
    gap(bn, "66100")
    for client_algo_id in ("ioc", "gtx"):
        done = bn.ok("GET", ALGO, {"clientAlgoId": client_algo_id})
        assert done["algoStatus"] == "FINISHED", client_algo_id
        actual = bn.ok(
            "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": int(done["actualOrderId"])}
        )
        assert actual["status"] == "EXPIRED" and actual["executedQty"] == "0.000"
    (row,) = bn.ok("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"})
    assert row["positionAmt"] == "0.200"
