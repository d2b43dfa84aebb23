"""GET /metrics: figures from this process, from the database and from Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session, sessionmaker

from app import controls
from app.config import Settings
from app.exchange import BinanceClient, Rejected, Temporary
from app.exchange.ratelimit import RateGovernor, RedisRateStore
from app.healthcheck import record_monitor_cycle
from app.metrics import MetricsRecorder, exchange_observer, reason_label
from app.models import Event
from tests.api.conftest import add_order, add_signal, make_settings
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.support import ThreadedServer, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: TestClient) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def signal_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "secret": TEST_WEBHOOK_SECRET,
        "id": "metrics-1",
        "action": "entry",
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": "0.5",
        "execution": {"type": "market"},
    }
    body.update(changes)
    return body


def test_every_metric_name_starts_with_pacekeeper(api: TestClient) -> None:
    names = {name for name, _ in scrape(api)}
    assert names
    assert all(name.startswith("pacekeeper_") for name in names), names


def test_webhook_answers_are_counted_by_outcome_with_their_ack_latency(api: TestClient) -> None:
    assert api.post("/webhook", json=signal_body()).status_code == 202
    assert api.post("/webhook", json=signal_body()).status_code == 200
    assert api.post("/webhook", json=signal_body(secret="wrong-secret-000000")).status_code == 401
    assert api.post("/webhook", json=signal_body(id="m-2", side="up")).status_code == 422
    api.get("/health")  # other paths are not counted

    samples = scrape(api)
    counted = "pacekeeper_webhook_requests_total"
    assert value(samples, counted, outcome="accepted", reason="") == 1
    assert value(samples, counted, outcome="duplicate", reason="") == 1
    assert value(samples, counted, outcome="rejected", reason="unauthorized") == 1
    assert value(samples, counted, outcome="rejected", reason="invalid") == 1
    assert value(samples, "pacekeeper_webhook_ack_seconds_count") == 4
    assert value(samples, "pacekeeper_webhook_ack_seconds_bucket", le="+Inf") == 4
    assert (value(samples, "pacekeeper_webhook_ack_seconds_sum") or 0) > 0


def test_database_counts_signals_orders_working_algos_cancels_and_the_halt(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        add_signal(session, status="done")
        add_signal(session, status="done")
        add_signal(session, status="refused", status_reason="halted: new entries are stopped")
        add_signal(session, status="refused", status_reason="notional (5) must be at least 1000")
        add_signal(session, status="failed", status_reason="Rejected: insufficient balance")
        working = add_signal(session, status="working")
        twap = add_order(session, signal_id=working.id, kind="twap", status="working")
        add_order(session, signal_id=working.id, kind="vp", market="usdm", status="working")
        add_order(session, kind="twap", status="cancelled")
        add_order(session, kind="oco", leg="bracket", status="working", duration=None)
        session.add(Event(order_id=twap.id, kind="pace", data={"state": "behind_schedule"}))
        session.add(Event(order_id=twap.id, kind="pace", data={"state": "stalled"}))
        session.add(Event(order_id=twap.id, kind="expiry", data={"cause": "expiry"}))
        session.add(Event(order_id=twap.id, kind="operator", data={"cause": "operator"}))
        session.add(Event(order_id=twap.id, kind="fill", data={}))
        controls.halt(session, reason="test", by="test")
        session.commit()

    samples = scrape(api)
    signals = "pacekeeper_signals"
    assert value(samples, signals, status="done", reason="") == 2
    assert value(samples, signals, status="working", reason="") == 1
    assert value(samples, signals, status="refused", reason="halted") == 1
    assert value(samples, signals, status="refused", reason="notional_5_must_be_at_least_1000") == 1
    assert value(samples, signals, status="failed", reason="rejected") == 1
    one = {"account": "default"}  # a deployment with one key: every figure is its
    assert value(samples, "pacekeeper_orders", kind="twap", status="working", **one) == 1
    assert value(samples, "pacekeeper_orders", kind="twap", status="cancelled", **one) == 1
    assert value(samples, "pacekeeper_orders", kind="oco", status="working", **one) == 1
    assert value(samples, "pacekeeper_working_algos", market="spot", kind="twap", **one) == 1
    assert value(samples, "pacekeeper_working_algos", market="usdm", kind="vp", **one) == 1
    assert value(samples, "pacekeeper_working_algos", market="spot", kind="oco", **one) is None
    cancels = "pacekeeper_algo_cancels_total"
    for reason in ("behind_schedule", "stalled", "expiry", "operator"):
        assert value(samples, cancels, reason=reason, **one) == 1, reason
    # The kill switch's own event cancels no algo: only a cancel of an order counts.
    assert value(samples, cancels, reason="halt", **one) is None
    assert value(samples, "pacekeeper_halted", **one) == 1
    assert value(samples, "pacekeeper_metrics_source_up", source="database") == 1


def test_exchange_calls_from_any_process_are_counted_by_endpoint_and_code(
    api: TestClient, api_settings: Settings, rconn: redis.Redis, paper: ThreadedServer
) -> None:
    # A client in another "process" (this test), built as workers build theirs.
    observer = exchange_observer(rconn, api_settings)
    client = BinanceClient.from_settings(api_settings, rconn, observer=observer)
    alt = BinanceClient.from_settings(  # a named account
        api_settings, rconn, account="alt", observer=exchange_observer(rconn, api_settings, "alt")
    )
    try:
        client.server_time()
        client.server_time()
        alt.server_time()
        with pytest.raises(Rejected):
            client.ticker_price("NOSUCHPAIR")
    finally:
        client.close()
        alt.close()
    unreachable = make_settings(api_settings.database_url, None, f"http://127.0.0.1:{free_port()}")
    unreachable = unreachable.model_copy(
        update={"queue_name": api_settings.queue_name, "exchange_read_retries": 0}
    )
    dead = BinanceClient.from_settings(unreachable, rconn, observer=observer)
    try:
        with pytest.raises(Temporary):
            dead.server_time()
    finally:
        dead.close()

    samples = scrape(api)
    calls = "pacekeeper_exchange_requests_total"
    time_ok = {"endpoint": "GET /api/v3/time", "code": "ok"}
    assert value(samples, calls, **time_ok, account="default") == 2
    assert value(samples, calls, **time_ok, account="alt") == 1
    price = "GET /api/v3/ticker/price"
    assert value(samples, calls, endpoint=price, code="-1121", account="default") == 1
    assert (
        value(samples, calls, endpoint="GET /api/v3/time", code="not_sent", account="default") == 1
    )
    latency = "pacekeeper_exchange_request_seconds"
    assert value(samples, f"{latency}_count", endpoint="GET /api/v3/time") == 4
    assert value(samples, f"{latency}_bucket", endpoint="GET /api/v3/time", le="+Inf") == 4
    shared = {"bucket": "api", "account": ""}  # the IP's weight: every account's calls
    assert value(samples, "pacekeeper_exchange_used_weight", **shared) >= 4  # type: ignore[operator]
    assert value(samples, "pacekeeper_exchange_weight_limit", **shared) == 6000
    assert value(samples, "pacekeeper_exchange_banned_seconds") == 0


def test_orders_algos_cancels_and_the_kill_switch_are_counted_per_account(
    api_settings: Settings,
    open_app: Callable[[Settings], TestClient],
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ALT", "THIRD"):
        monkeypatch.setenv(f"PACEKEEPER_ACCOUNT_{name}_API_KEY", f"{name.lower()}-key")
        monkeypatch.setenv(f"PACEKEEPER_ACCOUNT_{name}_API_SECRET", f"{name.lower()}-secret")
    api = open_app(api_settings.model_copy(update={"accounts": ["alt", "third"]}))
    with sessions() as session:
        add_order(session, kind="twap", status="working")
        alt_twap = add_order(session, kind="twap", status="working", account="alt")
        add_order(session, kind="vp", market="usdm", status="working", account="alt")
        add_order(session, kind="market", status="filled", duration=None, account="third")
        session.add(Event(order_id=alt_twap.id, kind="pace", data={"state": "stalled"}))
        session.add(Event(order_id=alt_twap.id, kind="halt", data={"cause": "halt"}))
        controls.halt(session, reason="alt under review", by="test", account="alt")
        session.commit()

    samples = scrape(api)
    orders, working = "pacekeeper_orders", "pacekeeper_working_algos"
    assert value(samples, orders, kind="twap", status="working", account="default") == 1
    assert value(samples, orders, kind="twap", status="working", account="alt") == 1
    assert value(samples, orders, kind="market", status="filled", account="third") == 1
    assert value(samples, working, market="spot", kind="twap", account="default") == 1
    assert value(samples, working, market="spot", kind="twap", account="alt") == 1
    assert value(samples, working, market="usdm", kind="vp", account="alt") == 1
    assert value(samples, working, market="usdm", kind="vp", account="default") is None
    cancels = "pacekeeper_algo_cancels_total"
    assert value(samples, cancels, reason="stalled", account="alt") == 1
    assert value(samples, cancels, reason="halt", account="alt") == 1
    assert value(samples, cancels, reason="stalled", account="default") is None
    halted = "pacekeeper_halted"
    assert [value(samples, halted, account=a) for a in ("default", "alt", "third")] == [0, 1, 0]

    with sessions() as session:
        controls.halt(session, reason="everything", by="test")  # every account's entries
        session.commit()
    samples = scrape(api)
    assert [value(samples, halted, account=a) for a in ("default", "alt", "third")] == [1, 1, 1]


def test_uid_weight_is_shown_per_account_and_ip_weight_once(
    api_settings: Settings,
    open_app: Callable[[Settings], TestClient],
    rconn: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_KEY", "alt-key")
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_SECRET", "alt-secret")
    settings = api_settings.model_copy(update={"accounts": ["alt"]})
    api = open_app(settings)
    store = RedisRateStore(rconn, settings.rate_limit_prefix)
    twap = "/sapi/v1/algo/spot/newOrderTwap"
    # Weight is counted per wall-clock minute: the reservations and the scrape are taken
    # again if a minute ended between them (at most once).
    for _ in range(2):
        minute = int(time.time() // 60)
        RateGovernor(store, account="alt").acquire("POST", twap)  # as alt's worker client
        RateGovernor(store).acquire("GET", "/api/v3/time")  # the IP's, whichever key
        samples = scrape(api)
        if int(time.time() // 60) == minute:
            break

    used, limit = "pacekeeper_exchange_used_weight", "pacekeeper_exchange_weight_limit"
    bucket = f"sapi-uid:{twap}"
    assert value(samples, used, bucket=bucket, account="alt") == 3000
    assert value(samples, used, bucket=bucket, account="default") == 0
    assert value(samples, limit, bucket=bucket, account="alt") == 180_000
    futures = "sapi-uid:/sapi/v1/algo/futures/newOrderTwap"
    assert value(samples, used, bucket=futures, account="alt") == 0
    assert value(samples, used, bucket="api", account="") >= 1  # type: ignore[operator]
    assert value(samples, used, bucket="api", account="alt") is None


def test_monitor_cycles_queue_and_workers_come_from_redis(
    api: TestClient, api_settings: Settings, rconn: redis.Redis
) -> None:
    recorder = MetricsRecorder.for_settings(rconn, api_settings)
    recorder.monitor_cycle(0.3)
    recorder.monitor_cycle(7.0)
    record_monitor_cycle(rconn, api_settings.queue_name, now=1_700_000_000.5)
    Queue(api_settings.queue_name, connection=rconn, serializer=JSONSerializer).enqueue_call(
        "worker.jobs.sweep_intake"
    )

    samples = scrape(api)
    cycle = "pacekeeper_monitor_cycle_seconds"
    assert value(samples, f"{cycle}_bucket", le="0.25") == 0
    assert value(samples, f"{cycle}_bucket", le="0.5") == 1
    assert value(samples, f"{cycle}_bucket", le="10.0") == 2
    assert value(samples, f"{cycle}_count") == 2
    assert value(samples, f"{cycle}_sum") == pytest.approx(7.3)
    assert value(samples, "pacekeeper_monitor_last_cycle_timestamp_seconds") == 1_700_000_000.5
    assert value(samples, "pacekeeper_queue_jobs") == 1
    assert value(samples, "pacekeeper_workers") == 0
    assert value(samples, "pacekeeper_metrics_source_up", source="redis") == 1


def test_outages_that_workers_and_the_monitor_waited_out_are_counted(
    api: TestClient, api_settings: Settings, rconn: redis.Redis
) -> None:
    recorder = MetricsRecorder.for_settings(rconn, api_settings)
    recorder.outage("worker", "redis", 2.5)
    recorder.outage("worker", "redis", 1.0)
    recorder.outage("monitor", "redis", 3.0)
    recorder.outage("worker", "database", 10.0)

    samples = scrape(api)
    outages, seconds = "pacekeeper_outages_total", "pacekeeper_outage_seconds_total"
    assert value(samples, outages, process="worker", component="redis") == 2
    assert value(samples, seconds, process="worker", component="redis") == pytest.approx(3.5)
    assert value(samples, outages, process="monitor", component="redis") == 1
    assert value(samples, outages, process="worker", component="database") == 1


def test_a_redis_outage_neither_breaks_the_scrape_nor_the_caller(
    db_url: str, paper: ThreadedServer, open_app: Callable[[Settings], TestClient]
) -> None:
    settings = make_settings(db_url, f"redis://127.0.0.1:{free_port()}/0", paper.url)
    samples = scrape(open_app(settings))
    assert value(samples, "pacekeeper_metrics_source_up", source="redis") == 0
    assert value(samples, "pacekeeper_metrics_source_up", source="database") == 1

    down = redis.Redis.from_url(settings.redis_url or "", socket_connect_timeout=0.5)
    recorder = MetricsRecorder.for_settings(down, settings)
    recorder.exchange_call("GET", "/api/v3/time", "ok", 0.01)  # no exception
    recorder.monitor_cycle(1.0)
    client = BinanceClient(httpx.Client(timeout=5), settings)
    client.observer = recorder.exchange_call
    try:
        assert client.server_time() > 0
    finally:
        client.close()


def test_reason_labels_are_short_and_stable() -> None:
    assert reason_label(None) == ""
    assert reason_label("Halted: new entries are stopped since 10:00") == "halted"
    assert reason_label("x" * 300) == "x" * 40
    assert reason_label("???") == "other"


def test_unknown_reasons_beyond_the_label_budget_fold_into_other(
    api: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        for index in range(35):
            add_signal(session, status="refused", status_reason=f"reason number {index}")
        session.commit()
    samples = scrape(api)
    refused = {
        dict(labels)["reason"]: count
        for (name, labels), count in samples.items()
        if name == "pacekeeper_signals" and dict(labels)["status"] == "refused"
    }
    assert len(refused) == 31
    assert refused["other"] == 5
    assert sum(refused.values()) == 35
