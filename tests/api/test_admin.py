"""The admin API under /api: bearer token, reading, paging, algos with pace, cancel, halt."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import controls
from app.config import Settings
from app.exchange import BinanceClient
from app.exchange.filters import Market
from app.exchange.ids import client_algo_id
from app.exchange.models import AlgoStatus
from app.exchange.ratelimit import RateGovernor
from app.models import Event, Fill, Order, Position, utcnow
from app.monitoring import verdicts
from app.monitoring.pace import Cadence, PaceState, PaceVerdict
from tests.api.conftest import AUTH, add_order, add_signal, make_settings
from tests.support import ThreadedServer, free_port

D = Decimal


# ---- the token -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token-0123456789"},
        {"Authorization": AUTH["Authorization"].replace("Bearer", "Basic")},
        {"Authorization": AUTH["Authorization"] + "x"},
        {"Authorization": "Bearer"},
    ],
)
def test_every_route_needs_the_bearer_token(api: TestClient, headers: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/api/signals"),
        ("GET", "/api/signals/0123456789abcdef0123456789abcdef"),
        ("GET", "/api/orders"),
        ("GET", "/api/positions"),
        ("GET", "/api/algos"),
        ("POST", "/api/algos/1/cancel"),
        ("GET", "/api/halt"),
        ("POST", "/api/halt"),
        ("POST", "/api/resume"),
    ):
        response = api.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json() == {"error": "unauthorized", "message": "authentication failed"}
    assert api.get("/api/halt", headers=AUTH).status_code == 200


@pytest.mark.parametrize("token", ["", "changeme", "short-token"])
def test_an_unusable_configured_token_refuses_everyone(
    api_settings: Settings, open_app: Callable[[Settings], TestClient], token: str
) -> None:
    api = open_app(api_settings.model_copy(update={"admin_token": SecretStr(token)}))
    for given in ("", token, "anything-at-all-0123456789"):
        headers = {"Authorization": f"Bearer {given}"}
        assert api.get("/api/halt", headers=headers).status_code == 401


# ---- reading -------------------------------------------------------------------------------


@pytest.fixture
def five_signals(sessions: sessionmaker[Session]) -> list[str]:
    """Five signals, oldest first, one minute apart."""
    with sessions() as session:
        rows = [
            add_signal(session, ago=300, symbol="BTCUSDT", status="done", strategy="a"),
            add_signal(session, ago=240, symbol="ETHUSDT", status="refused", strategy="a",
                       status_reason="halted"),
            add_signal(session, ago=180, symbol="BTCUSDT", status="working", strategy="b"),
            add_signal(session, ago=120, symbol="BTCUSDT", status="done", action="exit",
                       strategy="b"),
            add_signal(session, ago=60, symbol="ETHUSDT", status="queued", strategy="a"),
        ]  # fmt: skip
        session.commit()
        return [row.id for row in rows]


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_signals_are_listed_newest_first_and_filtered(
    api: TestClient, five_signals: list[str]
) -> None:
    newest_first = five_signals[::-1]
    get = lambda query: api.get(f"/api/signals{query}", headers=AUTH)  # noqa: E731
    assert ids(get("")) == newest_first
    assert ids(get("?status=done")) == [five_signals[3], five_signals[0]]
    assert ids(get("?status=done&status=queued")) == [five_signals[i] for i in (4, 3, 0)]
    assert ids(get("?symbol=ethusdt")) == [five_signals[4], five_signals[1]]
    assert ids(get("?strategy=b")) == [five_signals[3], five_signals[2]]
    assert ids(get("?action=exit")) == [five_signals[3]]
    since = (utcnow() - timedelta(seconds=200)).isoformat()
    until = (utcnow() - timedelta(seconds=90)).isoformat()
    assert ids(api.get("/api/signals", params={"since": since, "until": until}, headers=AUTH)) == [
        five_signals[3],
        five_signals[2],
    ]
    item = get("?status=refused").json()["items"][0]
    assert item["status_reason"] == "halted" and item["symbol"] == "ETHUSDT"
    assert datetime.fromisoformat(item["received_at"]).utcoffset() == timedelta(0)


def test_signals_are_paged_with_a_cursor(api: TestClient, five_signals: list[str]) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/signals", params=params, headers=AUTH)
        seen += ids(response)
        pages += 1
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == five_signals[::-1]
    assert pages == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=nonsense", "query.status"),
        ("?limit=0", "query.limit"),
        ("?limit=10000", "query.limit"),
        ("?cursor=zzz", "query.cursor"),
        ("?since=yesterday", "query.since"),
    ],
)
def test_bad_filters_are_422_naming_the_parameter(api: TestClient, query: str, field: str) -> None:
    response = api.get(f"/api/signals{query}", headers=AUTH)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"].split(".")[0] == field.split(".", 1)[1]  # "status.0" for a list item


def test_one_signal_comes_with_its_orders_fills_and_events(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        signal = add_signal(session, status="working", payload={"action": "entry", "pace": {}})
        order = add_order(
            session,
            signal_id=signal.id,
            venue_id=2**62 + 1,
            quantity=D("0.50000000"),
            executed_qty=D("0.1"),
            limit_price=D("64000.5"),
        )
        session.add(
            Fill(order_id=order.id, venue_fill_id="7", price=D("64000"), qty=D("0.1"),
                 quote_qty=D("6400"), fee=D("0.0001"), fee_asset="BTC")
        )  # fmt: skip
        session.add(Event(signal_id=signal.id, kind="state", message="received"))
        session.add(Event(order_id=order.id, kind="fill", message="0.1 at 64000"))
        session.commit()
        signal_id, order_id = signal.id, order.id

    response = api.get(f"/api/signals/{signal_id}", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == signal_id and body["payload"] == {"action": "entry", "pace": {}}
    [order_out] = body["orders"]
    assert order_out["id"] == order_id
    assert order_out["venue_id"] == str(2**62 + 1)  # beyond a JavaScript number
    # Exact decimals as strings, never floats and never exponents ("6.4E+4").
    assert D(order_out["quantity"]) == D("0.5") and D(order_out["executed_qty"]) == D("0.1")
    assert D(order_out["limit_price"]) == D("64000.5")
    [fill] = order_out["fills"]
    assert fill["price"] == "64000" and D(fill["qty"]) == D("0.1") and fill["fee_asset"] == "BTC"
    assert [e["kind"] for e in body["events"]] == ["state", "fill"]


def test_an_unknown_signal_is_404(api: TestClient) -> None:
    response = api.get("/api/signals/0123456789abcdef0123456789abcdef", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_orders_are_listed_filtered_and_paged(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        signal = add_signal(session)
        made = [
            add_order(session, signal_id=signal.id, kind="twap", status="working"),
            add_order(session, kind="oco", status="filled", symbol="ETHUSDT", duration=None),
            add_order(session, kind="vp", market="usdm", status="cancelled"),
        ]
        session.commit()
        order_ids = [o.id for o in made]

    def listed(**params: str) -> list[int]:
        response = api.get("/api/orders", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed() == order_ids[::-1]
    assert listed(kind="oco") == [order_ids[1]]
    assert listed(status="working") == [order_ids[0]]
    assert listed(market="usdm") == [order_ids[2]]
    assert listed(symbol="ethusdt") == [order_ids[1]]
    assert listed(signal_id=signal.id) == [order_ids[0]]
    page = api.get("/api/orders", params={"limit": "2"}, headers=AUTH).json()
    assert page["next_cursor"] == str(order_ids[1])
    assert listed(limit="2", cursor=page["next_cursor"]) == [order_ids[0]]
    assert api.get("/api/orders?status=bogus", headers=AUTH).status_code == 422


def test_positions_show_leverage_and_margin_type(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        made = [
            Position(
                strategy="a", market="usdm", symbol="BTCUSDT", side="BUY", quantity=D("0.1"),
                leverage=7, margin_type="isolated",
            ),
            Position(strategy="b", market="spot", symbol="ETHUSDT", side="BUY", status="closed"),
        ]  # fmt: skip
        session.add_all(made)
        session.commit()
        ids = [p.id for p in made]

    def listed(**params: str) -> list[dict[str, object]]:
        response = api.get("/api/positions", params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        items: list[dict[str, object]] = response.json()["items"]
        return items

    assert [p["id"] for p in listed()] == ids[::-1]
    (usdm,) = listed(market="usdm")
    assert usdm["leverage"] == 7 and usdm["margin_type"] == "isolated"
    assert usdm["quantity"] == "0.1" and usdm["side"] == "BUY" and usdm["status"] == "open"
    (spot,) = listed(status="closed")
    assert spot["leverage"] is None and spot["margin_type"] is None
    assert [p["id"] for p in listed(symbol="btcusdt", strategy="a")] == [ids[0]]
    page = api.get("/api/positions", params={"limit": "1"}, headers=AUTH).json()
    assert page["next_cursor"] == str(ids[1])
    assert [p["id"] for p in listed(limit="1", cursor=page["next_cursor"])] == [ids[0]]
    bad = api.get("/api/positions?status=half", headers=AUTH)
    assert bad.status_code == 422 and "status" in bad.text


# ---- algos with pace -----------------------------------------------------------------------


def test_working_algos_show_schedule_against_fill_with_the_signals_overrides(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    # Not judged by the monitor yet: judged from the fills stored, with the same judge.
    started = utcnow() - timedelta(seconds=600)
    with sessions() as session:
        strict = add_signal(session, status="working", strategy="strict")
        lenient = add_signal(
            session,
            status="working",
            strategy="lenient",
            payload={"action": "entry", "pace": {"min_ratio": "0.1", "stall_seconds": "0"}},
        )
        for signal in (strict, lenient):
            order = add_order(session, signal_id=signal.id, quantity=D("1"), executed_qty=D("0.1"),
                              duration=1200, book_time=started, last_fill_at=utcnow())  # fmt: skip
            for n, after in enumerate((30, 90)):  # two children of a minute's worth each
                session.add(Fill(order_id=order.id, venue_fill_id=f"child-{n}", price=D(65000),
                                 qty=D("0.05"), quote_qty=D(3250),
                                 time=started + timedelta(seconds=after)))  # fmt: skip
        add_order(session, kind="twap", status="filled")  # not working: not listed
        session.commit()

    response = api.get("/api/algos", headers=AUTH)
    assert response.status_code == 200
    items = {item["strategy"]: item for item in response.json()["items"]}
    assert set(items) == {"strict", "lenient"}
    behind = items["strict"]["pace"]
    assert behind["state"] == "behind_schedule" and behind["behind"] is True
    assert behind["source"] == "database" and behind["children"] == 2
    assert D(behind["schedule"]) == pytest.approx(D("0.5"), abs=D("0.01"))
    # Half the schedule one child (60 s) earlier, less the slack: 0.5 x 0.45 - 0.02.
    assert D(behind["required"]) == pytest.approx(D("0.205"), abs=D("0.01"))
    assert D(behind["fill_fraction"]) == D("0.1") and behind["child_interval"] == "60"
    assert 600 <= behind["elapsed"] < 660
    assert items["strict"]["policy"]["min_ratio"] == "0.5"
    on_pace = items["lenient"]["pace"]
    assert on_pace["state"] == "on_schedule" and on_pace["behind"] is False
    assert items["lenient"]["policy"]["min_ratio"] == "0.1"
    assert items["lenient"]["policy"]["stall_seconds"] is None  # 0 turns the stall rule off


def test_algos_of_one_account_are_listed_alone(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        mine = add_order(session, kind="twap", status="working", account="alt")
        add_order(session, kind="vp", market="usdm", status="working")  # default's
        add_order(session, kind="twap", status="cancelled", account="alt", end_time=utcnow())
        session.commit()
    listed = api.get("/api/algos?account=alt", headers=AUTH).json()["items"]
    assert [item["order"]["id"] for item in listed] == [mine.id]
    assert listed[0]["order"]["account"] == "alt"
    ended = api.get("/api/algos?account=alt&recent_hours=24", headers=AUTH).json()["items"]
    assert len(ended) == 2 and {item["order"]["account"] for item in ended} == {"alt"}
    assert len(api.get("/api/algos", headers=AUTH).json()["items"]) == 2


def test_working_algos_show_the_monitors_own_verdict(
    api: TestClient, api_settings: Settings, sessions: sessionmaker[Session], rconn: redis.Redis
) -> None:
    # The database alone says behind (nothing filled after 600 s); the monitor, which read
    # the sub-orders 3 s ago, judged it on pace: that verdict, and its time, is what shows.
    with sessions() as session:
        order = add_order(session, book_time=utcnow() - timedelta(seconds=600))
        session.commit()
        order_id = order.id
    as_of = utcnow() - timedelta(seconds=3)
    seen = PaceVerdict(
        PaceState.ON_SCHEDULE, D("0.5"), D("0.45"), D(597), "on pace after 597 s",
        required=D("0.2"), cadence=Cadence(D(60), D("0.05"), True), children=9,
    )  # fmt: skip
    published = {order_id: verdicts.Published(seen, as_of)}
    verdicts.publish(rconn, api_settings.queue_name, published, expire=60)

    (item,) = api.get("/api/algos", headers=AUTH).json()["items"]

    pace = item["pace"]
    assert (pace["state"], pace["source"], pace["reason"]) == (
        "on_schedule",
        "monitor",
        "on pace after 597 s",
    )
    assert pace["fill_fraction"] == "0.45" and pace["children"] == 9 and pace["elapsed"] == 597
    assert datetime.fromisoformat(pace["as_of"]) == as_of


# ---- cancel --------------------------------------------------------------------------------


@pytest.fixture
def exchange(paper: ThreadedServer, paper_control: httpx.Client) -> Iterator[BinanceClient]:
    """A client on a freshly reset paper exchange (the test's own, like a worker's)."""
    settings = Settings(
        _env_file=None, binance_api_url=paper.url, binance_fapi_url=paper.url, twap_min_duration=10
    )
    http = httpx.Client(timeout=5)
    yield BinanceClient(http, settings, governor=RateGovernor())
    http.close()


def place_twap(
    exchange: BinanceClient, sessions: sessionmaker[Session], name: str, *, known_id: bool = True
) -> int:
    """A TWAP working on the paper exchange and its order row, as the worker leaves them."""
    client_id = client_algo_id(name, "entry")
    exchange.new_spot_twap(
        symbol="BTCUSDT", side="BUY", quantity=D("0.02"), duration=600, client_algo_id=client_id
    )
    algo = exchange.find_algo(Market.SPOT, client_id)
    assert algo is not None
    with sessions() as session:
        signal = add_signal(session, status="working")
        order = add_order(
            session,
            signal_id=signal.id,
            client_id=client_id,
            venue_id=algo.algoId if known_id else None,
            quantity=D("0.02"),
            duration=600,
        )
        session.commit()
        return order.id


def algo_status(exchange: BinanceClient, sessions: sessionmaker[Session], order_id: int) -> str:
    with sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
        client_id = order.client_id
    found = exchange.find_algo(Market.SPOT, client_id)
    assert found is not None
    return str(found.algoStatus)


def test_cancel_asks_the_exchange_and_records_the_decision_for_the_monitor(
    api: TestClient, exchange: BinanceClient, sessions: sessionmaker[Session]
) -> None:
    order_id = place_twap(exchange, sessions, "cancel-1")
    response = api.post(
        f"/api/algos/{order_id}/cancel", json={"reason": "wrong size"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "cancelled"
    assert algo_status(exchange, sessions, order_id) == str(AlgoStatus.CANCELLED)
    with sessions() as session:
        order = session.get(Order, order_id)
        assert order is not None
        assert order.status == "working"  # the monitor's next cycle ends it, with its fills
        assert order.extra is not None
        assert order.extra["monitor_cancel"]["cause"] == "operator"
        assert order.extra["monitor_cancel"]["reason"] == "wrong size"
        events = session.scalars(select(Event).where(Event.order_id == order_id)).all()
        assert [(e.kind, e.message) for e in events] == [("operator", "cancelling: wrong size")]

    again = api.post(f"/api/algos/{order_id}/cancel", headers=AUTH)
    assert again.status_code == 200
    assert again.json()["result"] == "already_done"
    with sessions() as session:  # one decision, however often it is clicked
        assert len(session.scalars(select(Event).where(Event.order_id == order_id)).all()) == 1


def test_cancel_finds_the_algo_id_by_client_id_when_it_is_not_stored(
    api: TestClient, exchange: BinanceClient, sessions: sessionmaker[Session]
) -> None:
    order_id = place_twap(exchange, sessions, "cancel-2", known_id=False)
    response = api.post(f"/api/algos/{order_id}/cancel", headers=AUTH)
    assert response.status_code == 200 and response.json()["result"] == "cancelled"
    assert algo_status(exchange, sessions, order_id) == str(AlgoStatus.CANCELLED)


def test_cancel_refuses_what_is_not_a_working_algo(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        oco = add_order(session, kind="oco", duration=None)
        done = add_order(session, kind="twap", status="filled")
        planned = add_order(session, kind="twap", status="planned")
        session.commit()
    assert api.post(f"/api/algos/{oco.id}/cancel", headers=AUTH).status_code == 409
    finished = api.post(f"/api/algos/{done.id}/cancel", headers=AUTH)
    assert finished.status_code == 200 and finished.json()["result"] == "already_done"
    assert api.post(f"/api/algos/{planned.id}/cancel", headers=AUTH).status_code == 409
    missing = api.post("/api/algos/999999/cancel", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    extra = api.post(f"/api/algos/{oco.id}/cancel", json={"why": "x"}, headers=AUTH)
    assert extra.status_code == 422


def test_an_exchange_failure_is_a_502_that_can_be_retried(
    db_url: str,
    private_redis_url: str,
    open_app: Callable[[Settings], TestClient],
    sessions: sessionmaker[Session],
) -> None:
    settings = make_settings(db_url, private_redis_url, f"http://127.0.0.1:{free_port()}")
    api = open_app(settings)
    with sessions() as session:
        order = add_order(session, venue_id=42)
        session.commit()
    response = api.post(f"/api/algos/{order.id}/cancel", headers=AUTH)
    assert response.status_code == 502
    assert response.json()["error"] == "exchange_error"


# ---- kill switch ---------------------------------------------------------------------------


def test_halt_and_resume(api: TestClient, sessions: sessionmaker[Session]) -> None:
    assert api.get("/api/halt", headers=AUTH).json()["halted"] is False
    response = api.post("/api/halt", json={"reason": "exchange incident"}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["halted"] is True and body["reason"] == "exchange incident"
    assert body["by"] == "admin-api" and body["cancels"] == []
    with sessions() as session:
        halt = controls.current_halt(session)
        assert halt is not None and halt.reason == "exchange incident"
    assert api.get("/api/halt", headers=AUTH).json()["halted"] is True

    resumed = api.post("/api/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json()["halted"] is False
    with sessions() as session:
        assert controls.current_halt(session) is None
    assert api.post("/api/halt", json={"reason": ""}, headers=AUTH).status_code == 422
    assert api.post("/api/halt", json={"cancel": True}, headers=AUTH).status_code == 422


def test_halt_can_cancel_every_working_algo(
    api: TestClient, exchange: BinanceClient, sessions: sessionmaker[Session]
) -> None:
    first = place_twap(exchange, sessions, "halt-1")
    second = place_twap(exchange, sessions, "halt-2")
    response = api.post(
        "/api/halt", json={"reason": "flash crash", "cancel_working": True}, headers=AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert body["halted"] is True and body["cancel_errors"] == []
    assert {(c["order_id"], c["result"]) for c in body["cancels"]} == {
        (first, "cancelled"),
        (second, "cancelled"),
    }
    for order_id in (first, second):
        assert algo_status(exchange, sessions, order_id) == str(AlgoStatus.CANCELLED)
    with sessions() as session:
        kinds = session.scalars(select(Event.kind).where(Event.order_id.in_([first, second])))
        assert list(kinds) == ["halt", "halt"]


def test_one_accounts_halt_leaves_the_others_trading(
    api_settings: Settings,
    open_app: Callable[[Settings], TestClient],
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_KEY", "alt-key")
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_SECRET", "alt-secret")
    api = open_app(api_settings.model_copy(update={"accounts": ["alt"]}))
    halted = api.post("/api/halt", json={"reason": "alt review", "account": "alt"}, headers=AUTH)
    assert halted.status_code == 200 and halted.json()["halted"] is True
    assert api.get("/api/halt", headers=AUTH).json()["halted"] is False
    assert api.get("/api/halt?account=alt", headers=AUTH).json()["reason"] == "alt review"
    with sessions() as session:
        assert controls.current_halt(session, "default") is None
        alt = controls.current_halt(session, "alt")
        assert alt is not None and alt.reason == "alt review"
    assert api.post("/api/halt", json={"account": "ghost"}, headers=AUTH).status_code == 404
    resumed = api.post("/api/resume?account=alt", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json()["halted"] is False
    with sessions() as session:
        assert controls.current_halt(session, "alt") is None
