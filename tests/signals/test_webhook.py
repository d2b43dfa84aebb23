"""POST /webhook over real HTTP: answers, authentication, limits and secret hygiene."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from app.signals.security import sign
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.signals.conftest import Receiver, configured, entry, job_texts
from tests.support import wait_until

PREVIOUS_SECRET = "previous-webhook-secret-0123456789"


def rows(db_url: str, sql: str, **params: Any) -> list[Any]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def signed_headers(
    body: bytes, secret: str = TEST_WEBHOOK_SECRET, at: int | None = None
) -> dict[str, str]:
    sent_at = int(time.time()) if at is None else at
    return {
        "content-type": "application/json",
        "x-pacekeeper-timestamp": str(sent_at),
        "x-pacekeeper-signature": sign(secret, sent_at, body),
    }


def test_accepted_signal_is_stored_before_the_answer_and_queued_after(
    receiver: Receiver, http: httpx.Client, settings: Settings, db_url: str, job_keys: Any
) -> None:
    _, url = receiver(settings)
    response = http.post(f"{url}/webhook", json=entry(id="tv-42-BTCUSDT-entry"))
    assert response.status_code == 202
    answer = response.json()
    assert answer == {"signal_id": answer["signal_id"], "status": "received", "duplicate": False}

    # The row is there as soon as the answer is.
    (row,) = rows(db_url, "SELECT * FROM signals")
    assert row.id == answer["signal_id"] and row.idempotency_key == "tv-42-BTCUSDT-entry"
    payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
    assert payload["symbol"] == "BTCUSDT" and payload["market"] == "spot"
    assert payload["quantity"] == "0.5" and payload["execution"]["duration"] == 1800
    assert (row.action, row.market, row.symbol, row.side) == ("entry", "spot", "BTCUSDT", "buy")
    assert row.source_ip == "127.0.0.1" and row.expires_at is not None

    # Then the job is enqueued and the row marked, with an event for each state.
    wait_until(lambda: rows(db_url, "SELECT status FROM signals")[0].status == "queued")
    events = rows(db_url, "SELECT message FROM events WHERE signal_id = :s ORDER BY id", s=row.id)
    assert [e.message for e in events] == ["received", "received -> queued"]
    assert len(job_keys()) == 1


def test_text_plain_holding_json_is_accepted(
    receiver: Receiver, http: httpx.Client, settings: Settings, job_keys: Any
) -> None:
    _, url = receiver(settings)
    body = json.dumps(entry(symbol="BTCUSDT.P", quantity=0.01)).encode()
    response = http.post(
        f"{url}/webhook", content=body, headers={"content-type": "text/plain; charset=utf-8"}
    )
    assert response.status_code == 202


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/html", None])
def test_other_content_types_are_refused_with_415(
    receiver: Receiver,
    http: httpx.Client,
    sqlite_settings: Settings,
    content_type: str | None,
) -> None:
    _, url = receiver(sqlite_settings)
    headers = {"content-type": content_type} if content_type else {}
    response = http.post(f"{url}/webhook", content=json.dumps(entry()).encode(), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert rows(sqlite_settings.database_url, "SELECT id FROM signals") == []


def test_bodies_over_the_limit_are_refused_with_413_declared_or_streamed(
    receiver: Receiver, http: httpx.Client, sqlite_settings: Settings
) -> None:
    _, url = receiver(sqlite_settings)
    limit = sqlite_settings.webhook_max_body_bytes
    # Valid JSON with the right secret, padded past the limit: refused before parsing.
    big = json.dumps(entry(meta={"pad": "x" * limit})).encode()
    declared = http.post(
        f"{url}/webhook", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413

    def chunks() -> Any:  # no Content-Length: counted as the bytes arrive
        for start in range(0, len(big), 1024):
            yield big[start : start + 1024]

    streamed = http.post(f"{url}/webhook", content=chunks(), headers={"content-type": "text/plain"})
    assert streamed.status_code == 413
    assert streamed.json()["error"] == "payload_too_large"
    assert rows(sqlite_settings.database_url, "SELECT id FROM signals") == []


def test_a_signal_names_configured_accounts_and_an_unknown_one_is_422(
    receiver: Receiver,
    http: httpx.Client,
    settings: Settings,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_KEY", "alt-key")
    monkeypatch.setenv("PACEKEEPER_ACCOUNT_ALT_API_SECRET", "alt-secret")
    _, url = receiver(configured(settings, accounts="alt"))
    refused = http.post(f"{url}/webhook", json=entry(id="acc-1", account="ghost"))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "account"
    accepted = http.post(f"{url}/webhook", json=entry(id="acc-2", accounts="all"))
    assert accepted.status_code == 202
    stored = rows(db_url, "SELECT account FROM signals WHERE source_id = 'acc-2'")
    assert [r.account for r in stored] == ["*"]  # a parent: one child per account when it runs


def test_invalid_signal_lists_every_problem_as_field_value_message(
    receiver: Receiver, http: httpx.Client, settings: Settings, db_url: str
) -> None:
    _, url = receiver(settings)
    body = entry(
        side="long", quantity="-1", execution={"type": "twap", "duration": 5}, colour="red"
    )
    response = http.post(f"{url}/webhook", json=body)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {"side", "quantity", "execution.duration", "colour"}
    assert all(set(e) == {"field", "value", "message"} for e in errors)
    by_field = {e["field"]: e for e in errors}
    assert by_field["quantity"]["value"] == "-1"
    assert by_field["execution.duration"]["value"] == 5
    assert TEST_WEBHOOK_SECRET not in response.text
    assert rows(db_url, "SELECT id FROM signals") == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"secret": "s", "quantity": }', "not valid JSON"),  # an empty TradingView placeholder
        (b'["entry"]', "must be a JSON object"),
        (b'{"quantity": NaN}', "NaN is not a number"),
        (b'{"quantity": 1, "quantity": 2}', "appears twice"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "body"),
    ],
)
def test_unparseable_bodies_get_422_without_echoing_the_body(
    receiver: Receiver, http: httpx.Client, sqlite_settings: Settings, body: bytes, fragment: str
) -> None:
    _, url = receiver(configured(sqlite_settings, webhook_max_body_bytes=20_000))
    response = http.post(f"{url}/webhook", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "body" and error["value"] is None
    assert fragment in error["message"] or fragment == "body"


@pytest.fixture
def rotating(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_secret_previous": type(settings.webhook_secret)(PREVIOUS_SECRET)}
    )


def test_body_secret_current_and_previous_accepted_others_refused_alike(
    receiver: Receiver, http: httpx.Client, rotating: Settings, db_url: str, job_keys: Any
) -> None:
    _, url = receiver(rotating)
    assert http.post(f"{url}/webhook", json=entry(id="a")).status_code == 202
    assert (
        http.post(f"{url}/webhook", json=entry(id="b", secret=PREVIOUS_SECRET)).status_code == 202
    )

    refusals = [
        http.post(f"{url}/webhook", json=entry(id="c", secret="wrong-secret-0123456789abcdef")),
        http.post(f"{url}/webhook", json=entry(id="d", secret=None)),
        http.post(f"{url}/webhook", json=entry(id="e", secret=TEST_WEBHOOK_SECRET.upper())),
        # Unauthenticated callers learn nothing about their signal: 401, not 422.
        http.post(f"{url}/webhook", json={"secret": "nope", "action": "bogus"}),
    ]
    assert {r.status_code for r in refusals} == {401}
    assert len({r.content for r in refusals}) == 1
    assert sorted(
        r.idempotency_key for r in rows(db_url, "SELECT idempotency_key FROM signals")
    ) == ["a", "b"]


def test_header_signature_authenticates_a_body_without_secret(
    receiver: Receiver, http: httpx.Client, rotating: Settings, db_url: str, job_keys: Any
) -> None:
    _, url = receiver(rotating)
    now = int(time.time())

    def post(body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        raw = json.dumps(body).encode()
        return http.post(f"{url}/webhook", content=raw, headers=signed_headers(raw, **kwargs))

    assert post(entry(id="s1", secret=None)).status_code == 202
    assert post(entry(id="s2", secret=None), secret=PREVIOUS_SECRET).status_code == 202
    # A minute beyond the 300 s window: the receiver reads its own clock when the request
    # arrives, maybe seconds after `now` on a busy machine, and the exact boundary is the
    # unit test's (tests/signals/test_security.py, at a fixed time).
    stale = post(entry(id="s3", secret=None), at=now - 360)
    future = post(entry(id="s4", secret=None), at=now + 360)
    wrong = post(entry(id="s5", secret=None), secret="wrong-secret-0123456789abcdef")
    # A signed request must verify even if its body also holds the right secret.
    forged = post(entry(id="s6"), secret="wrong-secret-0123456789abcdef")
    tampered_raw = json.dumps(entry(id="s7", secret=None)).encode()
    tampered = http.post(
        f"{url}/webhook",
        content=tampered_raw.replace(b"0.5", b"5.0"),
        headers=signed_headers(tampered_raw),
    )
    refusals = [stale, future, wrong, forged, tampered]
    assert [r.status_code for r in refusals] == [401] * 5
    assert len({r.content for r in refusals}) == 1
    assert sorted(r.source_id for r in rows(db_url, "SELECT source_id FROM signals")) == [
        "s1",
        "s2",
    ]


def test_allow_list_uses_the_peer_and_ignores_forwarded_for_from_untrusted_peers(
    receiver: Receiver, http: httpx.Client, settings: Settings, db_url: str, job_keys: Any
) -> None:
    tradingview_only = configured(
        settings, webhook_allowed_ips="52.89.214.238", trusted_proxies="10.9.9.9"
    )
    # uvicorn's own proxy-header handling is off, as `pacekeeper api` leaves it without proxies.
    _, url = receiver(tradingview_only, proxy_headers=False)
    spoofed = http.post(
        f"{url}/webhook", json=entry(id="spoof"), headers={"x-forwarded-for": "52.89.214.238"}
    )
    plain = http.post(f"{url}/webhook", json=entry(id="plain"))
    assert (spoofed.status_code, plain.status_code) == (401, 401)
    assert spoofed.content == plain.content

    behind_proxy = configured(
        settings, webhook_allowed_ips="tradingview", trusted_proxies="127.0.0.1"
    )
    _, url = receiver(behind_proxy, proxy_headers=False)
    forwarded = http.post(
        f"{url}/webhook", json=entry(id="fwd"), headers={"x-forwarded-for": "52.89.214.238"}
    )
    outsider = http.post(
        f"{url}/webhook", json=entry(id="out"), headers={"x-forwarded-for": "198.51.100.7"}
    )
    assert (forwarded.status_code, outsider.status_code) == (202, 401)
    assert [
        (r.source_id, r.source_ip) for r in rows(db_url, "SELECT source_id, source_ip FROM signals")
    ] == [("fwd", "52.89.214.238")]


def test_secret_never_reaches_the_database_the_queue_or_the_logs(
    receiver: Receiver,
    http: httpx.Client,
    settings: Settings,
    db_url: str,
    redis_conn: redis.Redis,
    job_keys: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, url = receiver(settings)
    pasted = entry(id="leaky", meta={"note": f"my secret is {TEST_WEBHOOK_SECRET}"})
    assert http.post(f"{url}/webhook", json=pasted).status_code == 202
    assert http.post(f"{url}/webhook", json=pasted).status_code == 200
    assert http.post(f"{url}/webhook", json=entry(id="leaky", quantity="9")).status_code == 409
    assert http.post(f"{url}/webhook", json=entry(quantity="-1")).status_code == 422
    typo = http.post(f"{url}/webhook", json=entry(Secret=TEST_WEBHOOK_SECRET))
    assert typo.status_code == 422 and TEST_WEBHOOK_SECRET not in typo.text
    assert (
        http.post(f"{url}/webhook", json=entry(secret=TEST_WEBHOOK_SECRET[:-1])).status_code == 401
    )
    wait_until(lambda: job_keys())

    stored = rows(db_url, "SELECT * FROM signals") + rows(db_url, "SELECT * FROM events")
    assert stored and TEST_WEBHOOK_SECRET not in repr(stored)
    assert "[REDACTED]" in repr(stored)  # the copy pasted into meta was replaced
    jobs = job_texts(redis_conn, job_keys())
    assert jobs and not any(TEST_WEBHOOK_SECRET in value for value in jobs)
    assert caplog.records and TEST_WEBHOOK_SECRET not in caplog.text
    assert all(TEST_WEBHOOK_SECRET not in str(r.__dict__) for r in caplog.records)


@pytest.mark.parametrize(
    "overrides",
    [
        {"webhook_secret": ""},
        {"webhook_secret": "changeme"},
        {"webhook_secret": "short-secret"},
        {"webhook_secret_previous": "secret"},
    ],
)
def test_receiver_refuses_to_start_with_an_empty_or_placeholder_secret(
    settings: Settings, overrides: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="PACEKEEPER_WEBHOOK_SECRET"):
        create_app(configured(settings, **overrides))


def test_database_down_answers_503_so_the_sender_sends_again(
    receiver: Receiver, http: httpx.Client, sqlite_settings: Settings
) -> None:
    # A database that refuses connections: nothing can be stored, so nothing is accepted.
    down = configured(sqlite_settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    _, url = receiver(down)
    response = http.post(f"{url}/webhook", json=entry(id="while-down"))
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"


def test_receiver_keeps_serving_while_another_process_holds_the_sqlite_write_lock(
    receiver: Receiver, http: httpx.Client, sqlite_settings: Settings, job_keys: Any
) -> None:
    import sqlite3
    import threading

    _, url = receiver(sqlite_settings)
    path = sqlite_settings.database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as a worker's transaction would
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(httpx.post(f"{url}/webhook", json=entry(id="w"), timeout=30))
    )
    sender.start()
    try:
        # The signal waits for the lock; the event loop does not.
        wait_until(lambda: http.get(f"{url}/openapi.json").status_code == 200)
        assert answers == []
    finally:
        holder.execute("COMMIT")
        holder.close()
    sender.join(30)
    assert [a.status_code for a in answers] == [202]
