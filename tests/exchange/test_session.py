"""The request pipeline: encoding, signing, clock, error translation, retries, logging."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import httpx
import pytest

from app.exchange import (
    AlreadyDone,
    Duplicate,
    ExchangeError,
    IncompleteListing,
    Rejected,
    Temporary,
    UnknownOutcome,
)
from app.exchange import session as session_module
from app.exchange.client import BinanceClient
from app.exchange.errors import translate
from app.exchange.filters import Market
from app.exchange.models import AlgoAccepted
from tests.exchange import samples
from tests.exchange.fake import (
    API_KEY,
    API_SECRET,
    FakeBinance,
    make_client,
    params_of,
    reply,
    signature_ok,
)

ALGO_ID = "0123456789abcdef0123456789abcdef"
TWAP = "/sapi/v1/algo/spot/newOrderTwap"
ACCEPTED = {"clientAlgoId": ALGO_ID, "success": True, "code": 0, "msg": "OK"}


def _place_twap(client: BinanceClient) -> AlgoAccepted:
    return client.new_spot_twap(
        symbol="BTCUSDT",
        side="BUY",
        quantity=Decimal("0.00001000"),
        duration=300,
        client_algo_id=ALGO_ID,
        limit_price=Decimal("6.4E+4"),
    )


def test_post_sends_params_as_form_body_signed_over_exact_bytes() -> None:
    fake = FakeBinance()
    fake.add("POST", TWAP, reply(body=ACCEPTED))
    client = make_client(fake)

    accepted = _place_twap(client)

    (request,) = fake.calls("POST", TWAP)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["X-MBX-APIKEY"] == API_KEY
    assert request.url.query == b""
    assert signature_ok(request)
    body = request.content.decode()
    assert body.startswith(
        "symbol=BTCUSDT&side=BUY&quantity=0.00001&duration=300"
        f"&clientAlgoId={ALGO_ID}&limitPrice=64000&timestamp="
    )
    assert body.rsplit("&", 1)[1].startswith("signature=")
    assert accepted.clientAlgoId == ALGO_ID


def test_get_sends_params_in_query_with_recv_window_and_server_timestamp() -> None:
    fake = FakeBinance(server_offset_ms=-2500)  # the server runs 2.5 s behind us
    fake.add("GET", "/api/v3/order", reply(raw=samples.ORDER))
    client = make_client(fake, recv_window=7000)

    client.get_order("LTCBTC", orig_client_order_id="myOrder1")

    (request,) = fake.calls("GET", "/api/v3/order")
    params = params_of(request)
    assert request.content == b""
    assert params["symbol"] == "LTCBTC"
    assert params["origClientOrderId"] == "myOrder1"
    assert "orderId" not in params  # None values are not sent
    assert params["recvWindow"] == "7000"
    assert int(params["timestamp"]) == fake.server_ms()
    assert signature_ok(request)


def test_unsigned_market_data_carries_no_key_and_no_signature() -> None:
    fake = FakeBinance()
    fake.add("GET", "/api/v3/ticker/price", reply(body={"symbol": "BTCUSDT", "price": "1.5"}))
    client = make_client(fake)

    assert client.ticker_price("BTCUSDT") == Decimal("1.5")
    (request,) = fake.calls("GET", "/api/v3/ticker/price")
    assert "X-MBX-APIKEY" not in request.headers
    assert request.url.query == b"symbol=BTCUSDT"


def test_futures_calls_go_to_fapi_base_url_and_fapi_clock() -> None:
    fake = FakeBinance()
    fake.add("GET", "/fapi/v2/positionRisk", reply(raw=samples.POSITION_RISK))
    client = make_client(fake)

    (position,) = client.position_risk("BTCUSDT")

    assert position.positionAmt == Decimal("0")
    assert fake.requests[0].url.host == "fapi.test"
    assert [r.url.path for r in fake.requests] == ["/fapi/v1/time", "/fapi/v2/positionRisk"]


def test_invalid_timestamp_resyncs_clock_and_resends_same_client_id_once() -> None:
    fake = FakeBinance()
    client = make_client(fake)
    client.clocks["api"].sync()
    fake.server_offset_ms = 9000  # the server jumps ahead: our timestamps are now stale
    skew = reply(
        400, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
    )
    fake.add("POST", TWAP, skew, reply(body=ACCEPTED))

    _place_twap(client)

    first, second = fake.calls("POST", TWAP)
    assert params_of(first)["clientAlgoId"] == params_of(second)["clientAlgoId"] == ALGO_ID
    assert int(params_of(second)["timestamp"]) == fake.server_ms()
    assert len(fake.calls("GET", "/api/v3/time")) == 2


def test_invalid_timestamp_twice_is_temporary_without_third_send() -> None:
    fake = FakeBinance()
    skew = reply(400, {"code": -1021, "msg": "Timestamp for this request was 1000ms ahead."})
    fake.set("POST", TWAP, skew)
    client = make_client(fake)

    with pytest.raises(Temporary) as caught:
        _place_twap(client)
    assert caught.value.code == -1021
    assert len(fake.calls("POST", TWAP)) == 2


@pytest.mark.parametrize(
    ("status", "body", "headers", "method", "expected"),
    [
        (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}, {}, "POST", Rejected),
        (
            400,
            {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
            {},
            "GET",
            Rejected,
        ),
        (400, {"code": -2013, "msg": "Order does not exist."}, {}, "GET", Rejected),
        (429, {"code": -1003, "msg": "Too many requests."}, {"Retry-After": "7"}, "GET", Temporary),
        (
            418,
            {"code": -1003, "msg": "Way too many requests; IP banned."},
            {"Retry-After": "120"},
            "GET",
            Temporary,
        ),
        (400, {"code": -1003, "msg": "Too much request weight used."}, {}, "POST", Temporary),
        (500, None, {}, "POST", UnknownOutcome),
        (502, {"code": -1000, "msg": "An unknown error occurred."}, {}, "POST", UnknownOutcome),
        (
            503,
            {"code": -1000, "msg": "Unknown error, please check your request or try again later."},
            {},
            "POST",
            UnknownOutcome,
        ),
        (
            400,
            {"code": -1006, "msg": "An unexpected response was received."},
            {},
            "POST",
            UnknownOutcome,
        ),
        (
            400,
            {
                "code": -1007,
                "msg": "Timeout waiting for response from backend server. Send "
                "status unknown; execution status unknown.",
            },
            {},
            "POST",
            UnknownOutcome,
        ),
        (400, {"code": -20132, "msg": "The client algo id is duplicated."}, {}, "POST", Duplicate),
        (400, {"code": -2010, "msg": "Duplicate order sent."}, {}, "POST", Duplicate),
        (
            400,
            {"code": -2010, "msg": "Account has insufficient balance for requested action."},
            {},
            "POST",
            Rejected,
        ),
        (
            400,
            {"code": -20124, "msg": "Invalid algo id or it has been completed."},
            {},
            "DELETE",
            AlreadyDone,
        ),
        (400, {"code": -2011, "msg": "Unknown order sent."}, {}, "DELETE", AlreadyDone),
        (
            400,
            {"code": -2011, "msg": "Order was not canceled due to cancel restrictions."},
            {},
            "DELETE",
            Rejected,
        ),
        (
            400,
            {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
            {},
            "POST",
            Temporary,
        ),
    ],
)
def test_error_answers_translate_to_their_consequence(
    status: int, body: object, headers: dict[str, str], method: str, expected: type
) -> None:
    error = translate(status, body, httpx.Headers(headers), method=method, path="/x")
    assert type(error) is expected
    if isinstance(body, dict):
        assert error.code == body["code"] and error.msg == body["msg"]
    assert error.status == status


def test_retry_after_and_ban_are_carried_on_temporary() -> None:
    limited = translate(
        429,
        {"code": -1003, "msg": "x"},
        httpx.Headers({"Retry-After": "7"}),
        method="GET",
        path="/x",
    )
    banned = translate(418, {}, httpx.Headers(), method="GET", path="/x")
    assert isinstance(limited, Temporary) and limited.retry_after == 7
    assert isinstance(banned, Temporary) and banned.retry_after == 120


def test_error_tree_has_one_base() -> None:
    for cls in (Rejected, Duplicate, AlreadyDone, Temporary, UnknownOutcome):
        assert issubclass(cls, ExchangeError)
    assert not issubclass(Duplicate, Rejected)  # a duplicate is not a failure: it exists


def test_error_body_with_http_200_is_translated() -> None:
    fake = FakeBinance()
    fake.add("POST", TWAP, reply(200, {"code": -20132, "msg": "The client algo id is duplicated."}))
    with pytest.raises(Duplicate):
        _place_twap(make_client(fake))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), Temporary),
        (httpx.ConnectTimeout("timed out"), Temporary),
        (httpx.ReadTimeout("timed out"), UnknownOutcome),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            UnknownOutcome,
        ),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), UnknownOutcome),
    ],
)
def test_transport_failures_are_temporary_before_sending_unknown_after(
    exc: Exception, expected: type
) -> None:
    fake = FakeBinance()

    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    fake.set("POST", TWAP, fail)
    client = make_client(fake)
    with pytest.raises(expected):
        _place_twap(client)
    assert len(fake.calls("POST", TWAP)) == 1  # a write is never resent


def test_reads_are_retried_with_backoff_until_they_succeed() -> None:
    fake = FakeBinance()
    fake.add(
        "GET",
        "/sapi/v1/algo/spot/openOrders",
        reply(503, raw="<html>Service Unavailable</html>"),
        httpx.Response(200, content=b""),  # unreadable answer: also retried
        reply(raw=samples.SPOT_ALGO_OPEN),
    )
    client = make_client(fake)

    orders = client.algo_open_orders(Market.SPOT)

    assert [o.algoId for o in orders] == [14517]
    assert len(fake.calls("GET", "/sapi/v1/algo/spot/openOrders")) == 3
    assert fake.time.sleeps == [0.25, 0.5]


def test_reads_give_up_after_the_configured_retries() -> None:
    fake = FakeBinance()
    fake.set("GET", "/api/v3/openOrderList", reply(500, raw=""))
    client = make_client(fake, exchange_read_retries=2)
    with pytest.raises(UnknownOutcome):
        client.open_order_lists()
    assert len(fake.calls("GET", "/api/v3/openOrderList")) == 3


@pytest.mark.parametrize("status", [500, 503])
def test_writes_are_never_retried(status: int) -> None:
    fake = FakeBinance()
    fake.set("DELETE", "/sapi/v1/algo/spot/order", reply(status, raw=""))
    client = make_client(fake)
    with pytest.raises(UnknownOutcome):
        client.cancel_algo(Market.SPOT, 14511)
    assert len(fake.calls("DELETE", "/sapi/v1/algo/spot/order")) == 1


def test_unexpected_answer_shape_after_write_is_unknown_outcome() -> None:
    fake = FakeBinance()
    fake.add("POST", TWAP, reply(body={"hello": "world"}))
    with pytest.raises(UnknownOutcome, match="AlgoAccepted"):
        _place_twap(make_client(fake))


def test_logs_never_show_secret_key_signature_or_query(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeBinance()
    fake.add("POST", TWAP, reply(body=ACCEPTED))
    fake.add("GET", "/api/v3/order", reply(400, {"code": -2013, "msg": "Order does not exist."}))
    client = make_client(fake)

    _place_twap(client)
    assert client.find_order("LTCBTC", "myOrder1") is None

    text = caplog.text + repr([r.args for r in caplog.records])
    assert "/api/v3/order" in text  # the calls were logged ...
    for secret in (API_SECRET, API_KEY, "signature", "timestamp=", "myOrder1", ALGO_ID):
        assert secret not in text  # ... without what they carried


def test_pages_iterate_until_total_is_reached() -> None:
    fake = FakeBinance()
    client = make_client(fake)
    pages = {1: (list(range(100)), 230), 2: (list(range(100, 200)), 230), 3: ([200], 230)}
    pages[4] = ([], 230)  # fewer rows than announced: an empty page ends the listing
    assert list(client.pages(lambda p: pages[p], 100)) == [*range(201)]
    whole = {1: (list(range(100)), 150), 2: (list(range(100, 150)), 150)}
    assert list(client.pages(lambda p: whole[p], 100)) == [*range(150)]  # total reached


def test_pages_go_on_when_the_server_caps_the_page_size() -> None:
    """Asked for 100 a page, the server sends 40: a short page is not the last page."""
    fake = FakeBinance()
    path = "/sapi/v1/algo/spot/historicalOrders"
    template = json.loads(samples.SPOT_ALGO_HISTORY)["orders"][0]
    rows = [{**template, "algoId": n, "clientAlgoId": f"{n:032d}"} for n in range(1, 231)]
    cap = 40

    def listing(request: httpx.Request) -> httpx.Response:
        params = params_of(request)
        page, size = int(params["page"]), min(int(params["pageSize"]), cap)
        chosen = rows[(page - 1) * size : page * size]
        return reply(body={"total": len(rows), "orders": chosen})

    fake.set("GET", path, listing)
    fake.set("GET", "/sapi/v1/algo/spot/openOrders", reply(body={"total": 0, "orders": []}))
    client = make_client(fake)

    assert [o.algoId for o in client.iter_algo_historical_orders(Market.SPOT)] == [*range(1, 231)]
    assert len(fake.calls("GET", path)) == 6  # 230 rows, 40 a page
    last = client.find_algo(Market.SPOT, f"{230:032d}", since_ms=0)
    assert last is not None and last.algoId == 230
    assert all(params_of(r)["pageSize"] == "100" for r in fake.calls("GET", path))


def test_a_listing_that_never_ends_raises_instead_of_answering_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session_module, "MAX_PAGES", 3)
    fake = FakeBinance()
    path = "/sapi/v1/algo/spot/historicalOrders"
    page = json.loads(samples.SPOT_ALGO_HISTORY)
    fake.set("GET", path, reply(body={**page, "total": 10_000}))
    fake.set("GET", "/sapi/v1/algo/spot/openOrders", reply(body={"total": 0, "orders": []}))
    client = make_client(fake)

    with pytest.raises(IncompleteListing) as raised:
        client.find_algo(Market.SPOT, "0" * 32, since_ms=0)
    assert isinstance(raised.value, UnknownOutcome)  # "look again later", never "absent"
    assert raised.value.path == path
    assert len(fake.calls("GET", path)) == 3


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/fapi/v1/order", Temporary),
        ("/fapi/v1/algoOrder", Temporary),
        ("/api/v3/order", UnknownOutcome),
        ("/api/v3/orderList/oco", UnknownOutcome),
        ("/sapi/v1/algo/spot/newOrderTwap", UnknownOutcome),
        ("/sapi/v1/algo/futures/newOrderVp", UnknownOutcome),
    ],
)
def test_503_service_unavailable_is_a_failure_only_on_usd_m(path: str, expected: type) -> None:
    """Only the USD-M docs say "Service Unavailable." means failed; elsewhere 5XX = unknown."""
    for body in (
        {"code": -1008, "msg": "Service Unavailable."},
        {"code": -1001, "msg": "Service Unavailable."},
    ):
        error = translate(503, body, httpx.Headers(), method="POST", path=path)
        assert type(error) is expected, (path, body)
    other = translate(
        503,
        {"code": -1000, "msg": "Unknown error, please check your request or try again later."},
        httpx.Headers(),
        method="POST",
        path=path,
    )
    assert type(other) is UnknownOutcome


def test_usd_m_client_order_id_duplicated_is_duplicate() -> None:
    body = {"code": -4116, "msg": "ClientOrderId is duplicated."}
    for path in ("/fapi/v1/order", "/fapi/v1/algoOrder"):
        error = translate(400, body, httpx.Headers(), method="POST", path=path)
        assert type(error) is Duplicate and error.code == -4116


def test_algo_id_unknown_is_already_done_on_cancel_and_not_found_on_read() -> None:
    body = {"code": -20124, "msg": "Invalid algo id or it has been completed."}
    cancel = translate(400, body, httpx.Headers(), method="DELETE", path="/sapi/v1/algo/spot/order")
    assert type(cancel) is AlreadyDone
    read = translate(400, body, httpx.Headers(), method="GET", path="/sapi/v1/algo/spot/subOrders")
    assert type(read) is Rejected and read.is_not_found

    fake = FakeBinance()
    fake.add("GET", "/sapi/v1/algo/futures/subOrders", reply(400, body))
    with pytest.raises(Rejected) as raised:
        make_client(fake).algo_sub_orders(Market.USDM, 424242)
    assert raised.value.is_not_found


def test_unknown_outcome_carries_timestamp_and_recv_window_deadline() -> None:
    fake = FakeBinance()
    vp = "/sapi/v1/algo/futures/newOrderVp"
    fake.add("POST", vp, reply(500, raw=""))
    fake.add("POST", TWAP, reply(502, {"code": -1006, "msg": "An unexpected response."}))

    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    fake.set("POST", "/fapi/v1/order", reset)
    client = make_client(fake, recv_window=7000)

    with pytest.raises(UnknownOutcome) as with_window:
        client.new_futures_vp(
            symbol="BTCUSDT", side="BUY", quantity=Decimal(1), urgency="LOW",
            client_algo_id=ALGO_ID,
        )  # fmt: skip
    sent = int(params_of(fake.calls("POST", vp)[0])["timestamp"])
    assert with_window.value.sent_ms == sent
    assert with_window.value.deadline_ms == sent + 7000

    with pytest.raises(UnknownOutcome) as without_window:
        _place_twap(client)  # spot newOrderTwap sends no recvWindow: Binance's 5000 applies
    twap = params_of(fake.calls("POST", TWAP)[0])
    assert "recvWindow" not in twap
    assert without_window.value.sent_ms == int(twap["timestamp"])
    assert without_window.value.deadline_ms == int(twap["timestamp"]) + 5000

    with pytest.raises(UnknownOutcome) as no_answer:
        client.new_futures_order(
            symbol="BTCUSDT", side="BUY", type="MARKET", quantity=Decimal(1),
            new_client_order_id="pk-x",
        )  # fmt: skip
    order = params_of(fake.calls("POST", "/fapi/v1/order")[0])
    assert no_answer.value.sent_ms == int(order["timestamp"])
    assert no_answer.value.deadline_ms == int(order["timestamp"]) + 7000


def test_unknown_outcome_of_an_unsigned_call_has_no_deadline() -> None:
    fake = FakeBinance()
    fake.set("GET", "/api/v3/ticker/price", reply(500, raw=""))
    with pytest.raises(UnknownOutcome) as raised:
        make_client(fake, exchange_read_retries=0).ticker_price("BTCUSDT")
    assert raised.value.sent_ms is None and raised.value.deadline_ms is None
    plain = UnknownOutcome("x")  # the old constructor still works
    assert plain.sent_ms is None and plain.deadline_ms is None
