"""Secret canaries: run traffic with canary secrets and find them nowhere.

The webhook secrets, the admin token and the Binance key and secret are set to unique canary
strings; the paper exchange is given the same key and secret, so signed calls succeed. Traffic
goes through the receiver over real HTTP (good and bad webhooks, signed and unsigned, the admin
API with good and bad tokens, health and metrics), through the exchange client (good and
badly signed calls), and through an RQ worker placing the signals' orders on the paper
exchange. Then the captured logs, every row of every table, every
Redis key and value (RQ job payloads inflated) and every answer are searched: no canary may
appear anywhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import select

from app.config import Settings
from app.db import Base, make_engine
from app.exchange import BinanceClient, ExchangeError
from app.logging import configure_logging
from app.main import create_app
from app.metrics import exchange_observer
from app.sender import signed_headers
from paper.app import create_app as create_paper_app
from paper.clock import ManualClock
from paper.settings import PaperSettings
from tests.api.conftest import make_settings
from tests.ops.test_logging import (
    CANARIES,
    CANARY_ADMIN,
    CANARY_KEY,
    CANARY_PREVIOUS,
    CANARY_SECRET,
    CANARY_WEBHOOK,
    restored_logging,
)
from tests.support import ThreadedServer, serve
from worker import resources
from worker.main import build_worker

pytestmark = pytest.mark.slow


class Evidence:
    """Every answer the test received, as text."""

    def __init__(self) -> None:
        self.answers: list[str] = []

    def keep(self, response: httpx.Response) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.answers.append(f"{response.status_code}\n{headers}\n{response.text}")
        return response


def canary_settings(db_url: str, redis_url: str, exchange_url: str) -> Settings:
    settings = make_settings(
        db_url,
        redis_url,
        exchange_url,
        webhook_secret=CANARY_WEBHOOK,
        webhook_secret_previous=CANARY_PREVIOUS,
        admin_token=CANARY_ADMIN,
        binance_api_key=CANARY_KEY,
        binance_api_secret=CANARY_SECRET,
        log_level="DEBUG",
    )
    assert settings.binance_api_key.get_secret_value() == CANARY_KEY
    return settings


def canary_paper_settings(**changes: Any) -> PaperSettings:
    """A paper exchange's settings that accept the canary key and secret (and nothing else)."""
    values: dict[str, Any] = {
        "binance_api_key": CANARY_KEY,
        "binance_api_secret": CANARY_SECRET,
        "twap_min_duration": 10,
        "paper_volatility": Decimal(0),
    }
    values.update(changes)
    return PaperSettings(_env_file=None, **values)


@pytest.fixture
def canary_paper() -> Iterator[ThreadedServer]:
    """A paper exchange that accepts the canary key and secret (and nothing else)."""
    with serve(create_paper_app(canary_paper_settings(), clock=ManualClock())) as server:
        yield server


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    with restored_logging():
        yield stream


def found_in(text: str) -> list[str]:
    return [canary for canary in CANARIES if canary in text]


def database_text(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            chunks = []
            for table in Base.metadata.sorted_tables:
                for row in conn.execute(select(table)).mappings():
                    chunks.append(f"{table.name} {json.dumps(dict(row), default=str)}")
        return "\n".join(chunks)
    finally:
        engine.dispose()


def redis_text(conn: redis.Redis) -> str:
    """Every key and value in the (private, test-only) Redis; RQ's job data inflated."""
    chunks = []
    for key in conn.scan_iter(count=1000):
        kind = conn.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        values: list[Any]
        if kind == "string":
            values = [conn.get(key)]
        elif kind == "hash":
            values = [item for pair in conn.hgetall(key).items() for item in pair]
        elif kind == "list":
            values = conn.lrange(key, 0, -1)
        elif kind == "set":
            values = list(conn.smembers(key))
        elif kind == "zset":
            # redis-py types zrange alike with and without withscores: these are pairs.
            values = [member for member, _ in conn.zrange(key, 0, -1, withscores=True)]  # type: ignore[str-unpack]
        else:
            values = []
        for value in [key, *values]:
            if isinstance(value, bytes):
                with contextlib.suppress(zlib.error):
                    value = zlib.decompress(value)
                value = value.decode("utf-8", "replace")
            chunks.append(str(value))
    return "\n".join(chunks)


def entry(secret: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "secret": secret,
        "action": "entry",
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": "0.02",
        "execution": {"type": "market"},
    }
    body.update(changes)
    return body


def webhook_traffic(http: httpx.Client, evidence: Evidence) -> None:
    post = lambda **kw: evidence.keep(http.post("/webhook", **kw))  # noqa: E731
    # Accepted: body secret, the previous secret, a secret pasted into meta, text/plain, HMAC.
    assert post(json=entry(CANARY_WEBHOOK, id="c-1")).status_code == 202
    assert post(json=entry(CANARY_PREVIOUS, id="c-2", side="sell")).status_code == 202
    pasted = entry(CANARY_WEBHOOK, id="c-3", meta={"note": f"secret is {CANARY_WEBHOOK}"})
    assert post(json=pasted).status_code == 202
    text = json.dumps(entry(CANARY_WEBHOOK, id="c-4", quantity="0.01"))
    assert post(content=text, headers={"Content-Type": "text/plain"}).status_code == 202
    twap = entry(
        CANARY_WEBHOOK, id="c-5", execution={"type": "twap", "duration": 600}, quantity="0.03"
    )
    assert post(json=twap).status_code == 202
    signed = json.dumps({k: v for k, v in entry("", id="c-6").items() if k != "secret"}).encode()
    assert post(content=signed, headers=signed_headers(signed, CANARY_WEBHOOK)).status_code == 202
    # A repeat, and refusals that must not echo what they were sent.
    assert post(json=entry(CANARY_WEBHOOK, id="c-1")).status_code == 200
    assert post(json=entry(CANARY_WEBHOOK + "x", id="c-7")).status_code == 401
    assert post(json=entry(CANARY_ADMIN, id="c-8")).status_code == 401
    assert post(json={"secret": CANARY_KEY, "action": "entry"}).status_code == 401
    broken = f'{{"secret": "{CANARY_WEBHOOK}", "action": "entry", '
    assert post(content=broken, headers={"Content-Type": "application/json"}).status_code == 422
    wrong = entry(CANARY_WEBHOOK, id="c-9", symbol=CANARY_WEBHOOK, strategy=CANARY_WEBHOOK)
    assert post(json=wrong).status_code == 422
    # Other configured secrets pasted into a signal: refused or stored, never echoed or kept.
    assert post(json=entry(CANARY_WEBHOOK, extra_field=CANARY_SECRET)).status_code == 422
    assert post(json=entry(CANARY_WEBHOOK, symbol=CANARY_KEY)).status_code == 422
    keys = entry(CANARY_WEBHOOK, id="c-10", meta={"keys": [CANARY_KEY, CANARY_ADMIN]})
    assert post(json=keys).status_code == 202
    huge = entry(CANARY_WEBHOOK, meta={"pad": "x" * 20_000})
    assert post(json=huge).status_code == 413
    bad_signature = signed_headers(signed, CANARY_PREVIOUS + "x")
    assert post(content=signed, headers=bad_signature).status_code == 401


def admin_traffic(http: httpx.Client, evidence: Evidence) -> None:
    good = {"Authorization": f"Bearer {CANARY_ADMIN}"}
    get = lambda path, **kw: evidence.keep(http.get(path, **kw))  # noqa: E731
    signals = get("/api/signals", headers=good)
    assert signals.status_code == 200 and len(signals.json()["items"]) == 7
    for item in signals.json()["items"]:
        assert get(f"/api/signals/{item['id']}", headers=good).status_code == 200
    assert get("/api/orders", headers=good).status_code == 200
    assert get("/api/algos", headers=good).status_code == 200
    for bad in (CANARY_ADMIN + "x", CANARY_WEBHOOK, CANARY_KEY, CANARY_SECRET):
        assert get("/api/signals", headers={"Authorization": f"Bearer {bad}"}).status_code == 401
    # A token misplaced in a URL reaches the access log; the log must not keep it.
    assert get("/health", params={"token": CANARY_ADMIN}).status_code == 200
    halt = http.post("/api/halt", json={"reason": "canary drill"}, headers=good)
    assert evidence.keep(halt).status_code == 200
    assert evidence.keep(http.post("/api/resume", headers=good)).status_code == 200
    get("/health/ready")
    assert get("/metrics").status_code == 200
    assert get("/").status_code == 200


def exchange_traffic(settings: Settings, conn: redis.Redis, evidence: Evidence) -> None:
    client = BinanceClient.from_settings(settings, conn, observer=exchange_observer(conn, settings))
    try:
        assert client.account().canTrade is not None
        evidence.answers.append(repr(client.api_restrictions()))
    finally:
        client.close()
    # Signed with a wrong secret: the exchange refuses, and the error is logged.
    wrong = settings.model_copy(update={"binance_api_secret": SecretStr(CANARY_SECRET[::-1])})
    client = BinanceClient.from_settings(wrong, conn, observer=exchange_observer(conn, wrong))
    try:
        with pytest.raises(ExchangeError) as refused:
            client.account()
        evidence.answers.append(str(refused.value))
    finally:
        client.close()


def run_worker(settings: Settings, conn: redis.Redis) -> None:
    """Execute the queued signals with an RQ worker, as `pacekeeper worker` does."""
    previous = resources.install(resources.build(settings))
    try:
        build_worker(settings, conn).work(burst=True)
    finally:
        built = resources.install(previous)
        if built is not None:
            built.close()


def run_traffic(
    settings: Settings, conn: redis.Redis, paper_url: str, *, with_worker: bool
) -> tuple[str, str, str, str, list[Any]]:
    """Logs, database, Redis and answers as text after the traffic; and the paper's ledger."""
    evidence = Evidence()
    app = create_app(settings)
    with (
        serve(app, log_config=None, log_level="debug", access_log=True) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        webhook_traffic(http, evidence)
        if with_worker:
            run_worker(settings, conn)
        admin_traffic(http, evidence)
        exchange_traffic(settings, conn, evidence)
    ledger = httpx.get(f"{paper_url}/paper/ledger", timeout=10).json()["entries"]
    database = database_text(settings.database_url)
    assert database.count("signals ") >= 7
    return database, redis_text(conn), "\n".join(evidence.answers), "", ledger


def assert_no_canary(
    logs: str, database: str, stored: str, answers: str, *, jobs_ran: bool = False
) -> None:
    # The traffic left traces where canaries could hide: the queued jobs, or once a worker
    # has run them (which deletes them, app/queue.py), its exchange calls' figures.
    assert ("pacekeeper:metrics:" in stored) if jobs_ran else ("rq:job:" in stored)
    assert "webhook refused" in logs and "-1022" in logs
    assert found_in(logs) == [], "canary in the logs"
    assert found_in(database) == [], "canary in the database"
    assert found_in(stored) == [], "canary in Redis"
    assert found_in(answers) == [], "canary in an answer"


def test_canary_secrets_appear_in_no_log_row_key_or_answer(
    db_url: str,
    private_redis_url: str,
    rconn: redis.Redis,
    canary_paper: ThreadedServer,
    logs: io.StringIO,
) -> None:
    settings = canary_settings(db_url, private_redis_url, canary_paper.url)
    configure_logging(settings, stream=logs)
    database, stored, answers, _, _ = run_traffic(
        settings, rconn, canary_paper.url, with_worker=False
    )
    assert_no_canary(logs.getvalue(), database, stored, answers)


def test_canary_secrets_stay_hidden_when_a_worker_trades_with_them(
    sqlite_only_url: str,
    private_redis_url: str,
    rconn: redis.Redis,
    canary_paper: ThreadedServer,
    logs: io.StringIO,
) -> None:
    settings = canary_settings(sqlite_only_url, private_redis_url, canary_paper.url)
    configure_logging(settings, stream=logs)
    database, stored, answers, _, ledger = run_traffic(
        settings, rconn, canary_paper.url, with_worker=True
    )
    assert_no_canary(logs.getvalue(), database, stored, answers, jobs_ran=True)
    # The canary key traded: otherwise the worker's share of the search proved nothing.
    failed = [line for line in logs.getvalue().splitlines() if '"level": "ERROR"' in line]
    assert ledger, f"the worker placed no order: {failed[0][:300] if failed else 'no error'}"


ALT_KEY = "canary-alt-key-5f0c1e9a7b3d"
ALT_SECRET = "canary-alt-secret-8e2d4a6c1f9b"


def test_a_named_accounts_key_and_secret_stay_hidden_when_it_trades(
    sqlite_only_url: str,
    private_redis_url: str,
    rconn: redis.Redis,
    logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_KEY", ALT_KEY)
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_SECRET", ALT_SECRET)
    paper_settings = canary_paper_settings(paper_accounts=SecretStr(f"{ALT_KEY}:{ALT_SECRET}"))
    with serve(create_paper_app(paper_settings, clock=ManualClock())) as paper:
        settings = canary_settings(sqlite_only_url, private_redis_url, paper.url)
        settings = settings.model_copy(update={"accounts": ["alt"]})
        configure_logging(settings, stream=logs)
        evidence = Evidence()
        with (
            serve(create_app(settings), log_config=None, log_level="debug") as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            bodies = (
                entry(CANARY_WEBHOOK, id="a-1", account="alt", strategy="one"),
                entry(CANARY_WEBHOOK, id="a-2", accounts="all", strategy="two"),
            )
            for body in bodies:
                assert evidence.keep(http.post("/webhook", json=body)).status_code == 202
            run_worker(settings, rconn)
            good = {"Authorization": f"Bearer {CANARY_ADMIN}"}
            for item in evidence.keep(http.get("/api/signals", headers=good)).json()["items"]:
                evidence.keep(http.get(f"/api/signals/{item['id']}", headers=good))
        ledger = httpx.get(f"{paper.url}/paper/ledger", timeout=10).json()["entries"]
    assert sorted(e["key"] for e in ledger) == sorted([ALT_KEY, ALT_KEY, CANARY_KEY])
    texts = {
        "logs": logs.getvalue(),
        "database": database_text(settings.database_url),
        "redis": redis_text(rconn),
        "answers": "\n".join(evidence.answers),
    }
    assert "pacekeeper:metrics:" in texts["redis"]  # the jobs ran, their figures are there
    for where, text in texts.items():
        assert ALT_SECRET not in text and ALT_KEY not in text, f"alt's key or secret in {where}"
