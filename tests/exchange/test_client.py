"""Each endpoint: the request it sends and the typed answer it returns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.exchange import AlreadyDone, Duplicate, Rejected
from app.exchange.filters import Market
from app.exchange.models import AlgoStatus, ConditionalStatus, OrderStatus
from app.exchange.orders import OcoLeg
from tests.exchange import samples
from tests.exchange.fake import FakeBinance, make_client, params_of, reply, signature_ok

NOT_FOUND = reply(400, {"code": -2013, "msg": "Order does not exist."})


def test_sub_order_ids_beyond_2_pow_53_stay_exact() -> None:
    fake = FakeBinance()
    fake.add("GET", "/sapi/v1/algo/futures/subOrders", reply(raw=samples.SUB_ORDERS))
    page = make_client(fake).algo_sub_orders(Market.USDM, 13723)

    (sub,) = page.subOrders
    assert sub.orderId == 8389765519993908929
    assert sub.orderId > 2**53
    assert sub.feeAmt == Decimal("-1.61471999") and isinstance(sub.executedQty, Decimal)
    assert page.executedAmt == Decimal("3229.44")
    assert params_of(fake.calls("GET", "/sapi/v1/algo/futures/subOrders")[0])["algoId"] == "13723"


def test_algo_cancelled_and_order_canceled_spellings_and_unknown_status() -> None:
    fake = FakeBinance()
    fake.add("GET", "/sapi/v1/algo/spot/historicalOrders", reply(raw=samples.SPOT_ALGO_HISTORY))
    fake.add("DELETE", "/api/v3/order", reply(raw=samples.CANCELED_ORDER))
    odd = samples.SPOT_ALGO_OPEN.replace('"WORKING"', '"PAUSED_BY_RISK"')
    fake.add("GET", "/sapi/v1/algo/spot/openOrders", reply(raw=odd))
    client = make_client(fake)

    (finished,) = client.algo_historical_orders(Market.SPOT).orders
    canceled = client.cancel_order("LTCBTC", orig_client_order_id="myOrder1")
    (odd_one,) = client.algo_open_orders(Market.SPOT)

    assert finished.algoStatus is AlgoStatus.CANCELLED and not finished.is_working
    assert canceled.status is OrderStatus.CANCELED
    assert canceled.client_order_id == "myOrder1"
    assert odd_one.algoStatus == "PAUSED_BY_RISK"  # kept, not crashed on


def test_spot_twap_omits_recv_window_futures_twap_and_vp_send_it() -> None:
    fake = FakeBinance()
    ok = reply(body={"clientAlgoId": "a" * 32, "success": True, "code": 0, "msg": "OK"})
    for path in ("newOrderTwap", "newOrderVp"):
        fake.set("POST", f"/sapi/v1/algo/futures/{path}", ok)
    fake.set("POST", "/sapi/v1/algo/spot/newOrderTwap", ok)
    client = make_client(fake)

    client.new_spot_twap(
        symbol="BTCUSDT", side="SELL", quantity=Decimal("1"), duration=600, client_algo_id="a" * 32
    )
    client.new_futures_twap(
        symbol="BTCUSDT",
        side="BUY",
        quantity=Decimal("2.5"),
        duration=900,
        client_algo_id="a" * 32,
        reduce_only=True,
        position_side="BOTH",
    )
    client.new_futures_vp(
        symbol="BTCUSDT",
        side="BUY",
        quantity=Decimal("3"),
        urgency="HIGH",
        client_algo_id="a" * 32,
        limit_price=Decimal("65000.10"),
    )

    spot, twap, vp = (params_of(r) for r in fake.requests if r.method == "POST")
    assert "recvWindow" not in spot
    assert twap["reduceOnly"] == "true" and twap["positionSide"] == "BOTH"
    assert twap["recvWindow"] == "5000"
    assert vp["urgency"] == "HIGH" and vp["limitPrice"] == "65000.1" and "duration" not in vp


def test_find_algo_looks_in_open_orders_then_every_history_page() -> None:
    fake = FakeBinance()
    wanted = "acacab56b3c44bef9f6a8f8ebd2a8408"
    filler = samples.SPOT_ALGO_HISTORY.replace(wanted, "f" * 32).replace(
        '"total": 1', '"total": 101'
    )
    page_one = filler.replace('"orders": [', '"orders": [' + _row(filler) * 99)
    page_two = samples.SPOT_ALGO_HISTORY.replace('"total": 1', '"total": 101')
    fake.add("GET", "/sapi/v1/algo/spot/openOrders", reply(raw=samples.SPOT_ALGO_OPEN))
    fake.add("GET", "/sapi/v1/algo/spot/historicalOrders", reply(raw=page_one), reply(raw=page_two))
    client = make_client(fake)

    found = client.find_algo(Market.SPOT, wanted, symbol="BNBUSDT", since_ms=1649757000000)

    assert found is not None and found.algoId == 14518
    first, second = (params_of(r) for r in fake.calls("GET", "/sapi/v1/algo/spot/historicalOrders"))
    assert (first["page"], second["page"]) == ("1", "2")
    assert first["symbol"] == "BNBUSDT" and first["startTime"] == "1649757000000"
    assert "endTime" not in first


def _row(page: str) -> str:
    start = page.index('"orders": [') + len('"orders": [')
    return page[start : page.rindex("]")] + ","


def test_find_algo_returns_open_order_and_none_when_absent() -> None:
    fake = FakeBinance()
    fake.set("GET", "/sapi/v1/algo/futures/openOrders", reply(raw=samples.SPOT_ALGO_OPEN))
    fake.set(
        "GET", "/sapi/v1/algo/futures/historicalOrders", reply(body={"total": 0, "orders": []})
    )
    client = make_client(fake)

    assert client.find_algo(Market.USDM, "d7096549481642f8a0bb69e9e2e31f2e").algoId == 14517  # type: ignore[union-attr]
    assert client.find_algo(Market.USDM, "0" * 32) is None


@pytest.mark.parametrize(("overrides", "days"), [({}, 7), ({"algo_lookup_days": 10}, 10)])
def test_find_algo_looks_back_a_week_by_default(overrides: dict[str, Any], days: int) -> None:
    """A TWAP may run 24 h and an outage last longer: without since_ms, search 7 days."""
    fake = FakeBinance()
    fake.set("GET", "/sapi/v1/algo/spot/openOrders", reply(body={"total": 0, "orders": []}))
    fake.set("GET", "/sapi/v1/algo/spot/historicalOrders", reply(body={"total": 0, "orders": []}))
    client = make_client(fake, **overrides)

    assert client.find_algo(Market.SPOT, "0" * 32) is None

    (request,) = fake.calls("GET", "/sapi/v1/algo/spot/historicalOrders")
    start = int(params_of(request)["startTime"])
    assert start == fake.server_ms() - days * 24 * 3600 * 1000


def test_algo_placement_errors_map_to_duplicate_and_cancel_of_finished_to_already_done() -> None:
    fake = FakeBinance()
    fake.add(
        "POST",
        "/sapi/v1/algo/spot/newOrderTwap",
        reply(400, {"code": -20132, "msg": "The client algo id is duplicated."}),
    )
    fake.add(
        "DELETE",
        "/sapi/v1/algo/spot/order",
        reply(400, {"code": -20124, "msg": "Invalid algo id or it has been completed."}),
    )
    client = make_client(fake)
    with pytest.raises(Duplicate):
        client.new_spot_twap(
            symbol="X", side="BUY", quantity=Decimal(1), duration=300, client_algo_id="a" * 32
        )
    with pytest.raises(AlreadyDone):
        client.cancel_algo(Market.SPOT, 1)


def test_spot_order_new_query_cancel_and_find() -> None:
    fake = FakeBinance()
    fake.add("POST", "/api/v3/order", reply(raw=samples.ORDER_FULL))
    fake.add("GET", "/api/v3/order", reply(raw=samples.ORDER), NOT_FOUND)
    fake.add("DELETE", "/api/v3/order", reply(400, {"code": -2011, "msg": "Unknown order sent."}))
    client = make_client(fake)

    placed = client.new_order(
        symbol="BTCUSDT",
        side="SELL",
        type="MARKET",
        quantity=Decimal("10"),
        new_client_order_id="pk-entry-0123",
    )
    assert placed.status is OrderStatus.FILLED and not placed.is_open
    assert placed.fills[0].commission == Decimal("4") and placed.fills[0].commissionAsset == "USDT"
    sent = params_of(fake.calls("POST", "/api/v3/order")[0])
    assert sent["newClientOrderId"] == "pk-entry-0123" and sent["newOrderRespType"] == "FULL"
    assert "price" not in sent and "timeInForce" not in sent

    assert client.find_order("LTCBTC", "myOrder1").is_open  # type: ignore[union-attr]
    assert client.find_order("LTCBTC", "nope") is None
    with pytest.raises(AlreadyDone):
        client.cancel_order("LTCBTC", order_id=1)
    with pytest.raises(ValueError, match="exactly one"):
        client.get_order("LTCBTC")


def test_find_order_does_not_swallow_other_rejections() -> None:
    fake = FakeBinance()
    fake.add("GET", "/api/v3/order", reply(400, {"code": -1121, "msg": "Invalid symbol."}))
    with pytest.raises(Rejected):
        make_client(fake).find_order("NOPE", "x")


def test_oco_bracket_params_and_order_list_endpoints() -> None:
    fake = FakeBinance()
    fake.add("POST", "/api/v3/orderList/oco", reply(raw=samples.OCO))
    fake.add("GET", "/api/v3/orderList", reply(raw=samples.ORDER_LIST), NOT_FOUND)
    fake.add("GET", "/api/v3/openOrderList", reply(raw=f"[{samples.ORDER_LIST}]"))
    done = samples.OCO.replace("EXEC_STARTED", "ALL_DONE").replace("EXECUTING", "ALL_DONE")
    fake.add("DELETE", "/api/v3/orderList", reply(raw=done))
    client = make_client(fake)

    oco = client.new_oco(
        symbol="LTCBTC",
        side="SELL",
        quantity=Decimal("5"),
        above=OcoLeg("LIMIT_MAKER", price=Decimal("3"), client_order_id="pk-tp-1"),
        below=OcoLeg(
            "STOP_LOSS_LIMIT",
            price=Decimal("0.99"),
            stop_price=Decimal("1"),
            time_in_force="GTC",
            client_order_id="pk-sl-1",
        ),
        list_client_order_id="pk-oco-1",
    )
    assert [r.type for r in oco.orderReports] == ["STOP_LOSS_LIMIT", "LIMIT_MAKER"]
    sent = params_of(fake.calls("POST", "/api/v3/orderList/oco")[0])
    assert sent == sent | {
        "listClientOrderId": "pk-oco-1",
        "aboveType": "LIMIT_MAKER",
        "abovePrice": "3",
        "aboveClientOrderId": "pk-tp-1",
        "belowType": "STOP_LOSS_LIMIT",
        "belowPrice": "0.99",
        "belowStopPrice": "1",
        "belowTimeInForce": "GTC",
        "belowClientOrderId": "pk-sl-1",
    }
    assert "aboveStopPrice" not in sent

    assert client.find_order_list("h2USkA5YQpaXHPIrkd96xE").orderListId == 27  # type: ignore[union-attr]
    query = params_of(fake.calls("GET", "/api/v3/orderList")[0])
    assert query["origClientOrderId"] == "h2USkA5YQpaXHPIrkd96xE"
    assert client.find_order_list("absent") is None
    assert [o.orderListId for o in client.open_order_lists()] == [27]
    cancelled = client.cancel_order_list("LTCBTC", list_client_order_id="pk-oco-1")
    assert cancelled.is_done


def test_market_data_account_and_key_restrictions() -> None:
    fake = FakeBinance()
    fake.add(
        "GET",
        "/api/v3/avgPrice",
        reply(body={"mins": 5, "price": "9.35751834", "closeTime": 1694061154503}),
    )
    fake.add(
        "GET",
        "/fapi/v1/ticker/price",
        reply(body={"symbol": "BTCUSDT", "price": "6000.01", "time": 1589437530011}),
    )
    fake.add(
        "GET",
        "/fapi/v1/premiumIndex",
        reply(body={"symbol": "BTCUSDT", "markPrice": "11793.63104562"}),
    )
    fake.add(
        "GET",
        "/api/v3/account",
        reply(
            body={
                "canTrade": True,
                "accountType": "SPOT",
                "permissions": ["SPOT"],
                "balances": [{"asset": "BTC", "free": "4723846.89208129", "locked": "0.00000000"}],
            }
        ),
    )
    fake.add(
        "GET",
        "/sapi/v1/account/apiRestrictions",
        reply(
            body={
                "ipRestrict": False,
                "createTime": 1698645219000,
                "enableReading": True,
                "enableWithdrawals": False,
                "enableSpotAndMarginTrading": True,
                "enableFutures": False,
            }
        ),
    )
    client = make_client(fake)

    assert client.avg_price("BTCUSDT").price == Decimal("9.35751834")
    assert client.futures_ticker_price("BTCUSDT") == Decimal("6000.01")
    assert client.mark_price("BTCUSDT").markPrice == Decimal("11793.63104562")
    account = client.account()
    assert account.free("BTC") == Decimal("4723846.89208129") and account.free("ETH") == 0
    assert account.permissions == ["SPOT"]
    restrictions = client.api_restrictions()
    assert restrictions.enableSpotAndMarginTrading and not restrictions.enableWithdrawals
    assert signature_ok(fake.calls("GET", "/sapi/v1/account/apiRestrictions")[0])
    assert client.server_time(Market.USDM) == fake.server_ms()


def test_exchange_info_is_cached_until_its_ttl_expires() -> None:
    fake = FakeBinance()
    fake.set("GET", "/api/v3/exchangeInfo", reply(raw=samples.SPOT_EXCHANGE_INFO))
    fake.set("GET", "/fapi/v1/exchangeInfo", reply(raw=samples.FUTURES_EXCHANGE_INFO))
    client = make_client(fake, exchange_info_ttl=300)

    rules = client.symbol_rules("BTCUSDT")
    assert client.symbol_rules("BTCUSDT") is rules
    assert len(fake.calls("GET", "/api/v3/exchangeInfo")) == 1
    assert params_of(fake.calls("GET", "/api/v3/exchangeInfo")[0]) == {"symbol": "BTCUSDT"}
    fake.time.sleep(301)
    client.symbol_rules("BTCUSDT")
    assert len(fake.calls("GET", "/api/v3/exchangeInfo")) == 2

    futures = client.symbol_rules("BTCUSDT", Market.USDM)
    assert futures.market == "usdm" and futures.notional.min_notional == 100  # type: ignore[union-attr]
    with pytest.raises(Rejected, match="NOPE") as rejected:
        client.symbol_rules("NOPE", Market.USDM)
    assert rejected.value.code == -1121


def test_futures_orders_conditional_orders_and_lookups() -> None:
    fake = FakeBinance()
    fake.add("POST", "/fapi/v1/order", reply(raw=samples.FUTURES_ORDER))
    fake.add("GET", "/fapi/v1/order", reply(raw=samples.FUTURES_ORDER), NOT_FOUND)
    fake.add("DELETE", "/fapi/v1/order", reply(400, {"code": -2011, "msg": "Unknown order sent."}))
    fake.add("POST", "/fapi/v1/algoOrder", reply(raw=samples.CONDITIONAL))
    fake.add("GET", "/fapi/v1/algoOrder", reply(raw=samples.CONDITIONAL), NOT_FOUND)
    fake.add("GET", "/fapi/v1/openAlgoOrders", reply(raw=f"[{samples.CONDITIONAL}]"))
    fake.add(
        "DELETE",
        "/fapi/v1/algoOrder",
        reply(
            body={
                "algoId": 2146760,
                "clientAlgoId": "6B2I9XVcJpCjqPAJ4YoFX7",
                "code": "200",
                "msg": "success",
            }
        ),
    )
    client = make_client(fake)

    order = client.new_futures_order(
        symbol="BTCUSDT",
        side="SELL",
        type="LIMIT",
        quantity=Decimal("0.010"),
        price=Decimal("70000.0"),
        time_in_force="GTC",
        reduce_only=True,
        new_client_order_id="pk-tp-1",
    )
    assert order.orderId == 22542179 and order.status is OrderStatus.NEW
    sent = params_of(fake.calls("POST", "/fapi/v1/order")[0])
    assert sent["reduceOnly"] == "true" and sent["quantity"] == "0.01" and sent["price"] == "70000"
    assert client.find_futures_order("BTCUSDT", "testOrder") is not None
    assert client.find_futures_order("BTCUSDT", "absent") is None
    with pytest.raises(AlreadyDone):
        client.cancel_futures_order("BTCUSDT", orig_client_order_id="pk-tp-1")

    stop = client.new_conditional_order(
        symbol="BNBUSDT",
        side="SELL",
        type="STOP_MARKET",
        trigger_price=Decimal("600"),
        close_position=True,
        working_type="MARK_PRICE",
        client_algo_id="pk-sl-1",
    )
    assert stop.algoStatus is ConditionalStatus.NEW and stop.is_open
    assert stop.triggerPrice == Decimal("750") and (stop.model_extra or {})["activatePrice"] == ""
    sent = params_of(fake.calls("POST", "/fapi/v1/algoOrder")[0])
    assert sent["algoType"] == "CONDITIONAL" and sent["closePosition"] == "true"
    assert sent["triggerPrice"] == "600" and "quantity" not in sent
    assert client.find_conditional_order("6B2I9XVcJpCjqPAJ4YoFX7").algoId == 2146760  # type: ignore[union-attr]
    assert client.find_conditional_order("absent") is None
    assert [o.algoId for o in client.open_conditional_orders("BNBUSDT")] == [2146760]
    assert (
        client.cancel_conditional_order(client_algo_id="6B2I9XVcJpCjqPAJ4YoFX7").algoId == 2146760
    )
