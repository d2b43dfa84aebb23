"""OCO order lists: placement rules, both triggers, the expired leg, cancels and queries."""

from __future__ import annotations

from typing import Any

from paper.clock import ManualClock
from tests.paper.binance import BinanceTestClient

OCO = "/api/v3/orderList/oco"
LIST_FIELDS = {
    "orderListId",
    "contingencyType",
    "listStatusType",
    "listOrderStatus",
    "listClientOrderId",
    "transactionTime",
    "symbol",
    "orders",
}


def sell_bracket(list_id: str, **overrides: str) -> dict[str, Any]:
    params = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "quantity": "0.01",
        "listClientOrderId": list_id,
        "aboveType": "LIMIT_MAKER",
        "abovePrice": "70000",
        "aboveClientOrderId": f"{list_id}-tp",
        "belowType": "STOP_LOSS_LIMIT",
        "belowStopPrice": "60000",
        "belowPrice": "59900",
        "belowTimeInForce": "GTC",
        "belowClientOrderId": f"{list_id}-sl",
    }
    params.update(overrides)
    return params


def leg(bn: BinanceTestClient, client_id: str) -> dict[str, Any]:
    result: dict[str, Any] = bn.ok(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": client_id}
    )
    return result


def test_sell_oco_take_profit_fills_and_the_stop_expires(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    placed = bn.ok("POST", OCO, sell_bracket("pk-oco-1"))
    assert set(placed) == LIST_FIELDS | {"orderReports"}
    assert placed["contingencyType"] == "OCO" and placed["listOrderStatus"] == "EXECUTING"
    reports = {r["type"]: r for r in placed["orderReports"]}
    assert reports["STOP_LOSS_LIMIT"]["workingTime"] == -1
    assert reports["STOP_LOSS_LIMIT"]["stopPrice"] == "60000.00000000"
    assert reports["LIMIT_MAKER"]["status"] == "NEW"
    (listed,) = bn.ok("GET", "/api/v3/openOrderList")
    assert set(listed) == LIST_FIELDS
    bn.set_price("BTCUSDT", "70100")
    clock.advance(1)
    assert leg(bn, "pk-oco-1-tp")["status"] == "FILLED"
    stop = leg(bn, "pk-oco-1-sl")
    assert stop["status"] == "EXPIRED" and stop["expiryReason"] == "OCO_TRIGGER"
    done = bn.ok("GET", "/api/v3/orderList", {"origClientOrderId": "pk-oco-1"})
    assert done["listStatusType"] == "ALL_DONE" and done["listOrderStatus"] == "ALL_DONE"
    assert bn.ok("GET", "/api/v3/openOrderList") == []


def test_sell_oco_stop_triggers_and_the_take_profit_expires(
    bn: BinanceTestClient, clock: ManualClock
) -> None:
    bn.ok("POST", OCO, sell_bracket("pk-oco-2"))
    bn.set_price("BTCUSDT", "59950")
    clock.advance(1)
    stop = leg(bn, "pk-oco-2-sl")
    assert stop["status"] == "FILLED" and stop["workingTime"] > 0
    assert leg(bn, "pk-oco-2-tp")["status"] == "EXPIRED"
    balances = {b["asset"]: b for b in bn.ok("GET", "/api/v3/account")["balances"]}
    assert balances["BTC"]["locked"] == "0.00000000"


def test_buy_oco_mirrors_the_prices(bn: BinanceTestClient, clock: ManualClock) -> None:
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "quantity": "0.01",
        "listClientOrderId": "pk-oco-buy",
        "aboveType": "STOP_LOSS",
        "aboveStopPrice": "68000",
        "aboveClientOrderId": "pk-oco-buy-stop",
        "belowType": "LIMIT_MAKER",
        "belowPrice": "62000",
        "belowClientOrderId": "pk-oco-buy-limit",
    }
    bn.ok("POST", OCO, params)
    bn.set_price("BTCUSDT", "68500")
    clock.advance(1)
    assert leg(bn, "pk-oco-buy-stop")["status"] == "FILLED"
    assert leg(bn, "pk-oco-buy-limit")["status"] == "EXPIRED"


def test_price_relationship_and_type_rules(bn: BinanceTestClient) -> None:
    wrong = bn.call("POST", OCO, sell_bracket("pk-bad", abovePrice="64000"))
    assert wrong.json() == {
        "code": -2010,
        "msg": "The relationship of the prices for the orders is not correct.",
    }
    assert bn.error("POST", OCO, sell_bracket("pk-bad", belowStopPrice="66000")) == (400, -2010)
    both_limits = sell_bracket("pk-bad", belowType="LIMIT_MAKER", belowPrice="60000")
    del both_limits["belowStopPrice"], both_limits["belowTimeInForce"]
    assert bn.error("POST", OCO, both_limits) == (400, -1168)
    missing = sell_bracket("pk-bad")
    del missing["belowTimeInForce"]
    assert bn.error("POST", OCO, missing) == (400, -1102)
    assert bn.ledger(kind="oco") == []


def test_list_client_id_is_unique_while_open(bn: BinanceTestClient) -> None:
    bn.ok("POST", OCO, sell_bracket("pk-oco-3"))
    again = sell_bracket("pk-oco-3", aboveClientOrderId="x1", belowClientOrderId="x2")
    assert bn.call("POST", OCO, again).json()["msg"] == "Duplicate order sent."
    cancelled = bn.ok(
        "DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT", "listClientOrderId": "pk-oco-3"}
    )
    assert cancelled["listOrderStatus"] == "ALL_DONE"
    assert {r["status"] for r in cancelled["orderReports"]} == {"CANCELED"}
    bn.ok("POST", OCO, again)  # the first list is done, so the id may be used again
    assert len(bn.ledger(kind="oco", client_id="pk-oco-3")) == 2


def test_cancelling_one_leg_cancels_the_list(bn: BinanceTestClient) -> None:
    placed = bn.ok("POST", OCO, sell_bracket("pk-oco-4"))
    bn.ok("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "pk-oco-4-tp"})
    assert leg(bn, "pk-oco-4-sl")["status"] == "CANCELED"
    done = bn.ok("GET", "/api/v3/orderList", {"orderListId": placed["orderListId"]})
    assert done["listOrderStatus"] == "ALL_DONE"


def test_unknown_lists(bn: BinanceTestClient) -> None:
    assert bn.call("GET", "/api/v3/orderList", {"orderListId": 9}).json() == {
        "code": -2013,
        "msg": "Order list does not exist.",
    }
    gone = bn.call("DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT", "listClientOrderId": "x"})
    assert gone.json() == {"code": -2011, "msg": "Unknown order list sent."}
