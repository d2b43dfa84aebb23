"""The same signal twice is one signal: sequential, concurrent, and after the window."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.db import make_engine
from app.errors import Conflict
from app.models import utcnow
from app.signals import service
from tests.signals.conftest import Receiver, entry
from tests.support import wait_until

COPIES = 50


def query(db_url: str, sql: str, **params: Any) -> list[Any]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def test_a_repeat_answers_200_with_the_first_signal_and_a_changed_body_409(
    receiver: Receiver, http: httpx.Client, settings: Settings, db_url: str, job_keys: Any
) -> None:
    _, url = receiver(settings)
    first = http.post(f"{url}/webhook", json=entry(id="tv-1"))
    again = http.post(f"{url}/webhook", json=entry(id="tv-1"))
    changed = http.post(f"{url}/webhook", json=entry(id="tv-1", quantity="0.6"))
    assert (first.status_code, again.status_code, changed.status_code) == (202, 200, 409)
    signal_id = first.json()["signal_id"]
    assert again.json()["signal_id"] == signal_id and again.json()["duplicate"] is True
    assert again.json()["status"] in ("received", "queued")
    assert changed.json()["signal_id"] == signal_id
    assert [r.id for r in query(db_url, "SELECT id FROM signals")] == [signal_id]
    wait_until(lambda: job_keys())
    assert len(job_keys()) == 1


def test_without_an_id_the_canonical_body_is_the_key(
    receiver: Receiver, http: httpx.Client, settings: Settings, db_url: str, job_keys: Any
) -> None:
    _, url = receiver(settings)
    body = entry()
    reordered = dict(reversed(list(body.items())))
    first = http.post(f"{url}/webhook", json=body)
    again = http.post(f"{url}/webhook", json=reordered)  # key order does not matter
    other = http.post(f"{url}/webhook", json=entry(quantity="0.7"))  # a different signal
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
    assert again.json()["signal_id"] == first.json()["signal_id"]
    keys = [r.idempotency_key for r in query(db_url, "SELECT idempotency_key FROM signals")]
    assert len(keys) == 2 and all(k.startswith("digest:") for k in keys)


@pytest.mark.parametrize("with_id", [True, False], ids=["sender-id", "digest"])
def test_fifty_concurrent_copies_make_exactly_one_signal(
    receiver: Receiver,
    http: httpx.Client,
    settings: Settings,
    db_url: str,
    job_keys: Any,
    with_id: bool,
) -> None:
    _, url = receiver(settings)
    body = entry(id="tv-storm" if with_id else None)
    start = threading.Barrier(COPIES)

    def send(_: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            start.wait()
            return client.post(f"{url}/webhook", json=body)

    with ThreadPoolExecutor(COPIES) as pool:
        responses = list(pool.map(send, range(COPIES)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (COPIES - 1) + [202]
    assert len({r.json()["signal_id"] for r in responses}) == 1
    assert sum(r.json()["duplicate"] is False for r in responses) == 1
    (row,) = query(db_url, "SELECT id FROM signals")
    received = query(
        db_url, "SELECT id FROM events WHERE signal_id = :s AND message = 'received'", s=row.id
    )
    assert len(received) == 1
    wait_until(lambda: job_keys())
    assert len(job_keys()) == 1


def _prepared(now: Any, window: int = 60, **overrides: Any) -> service.Prepared:
    return service.prepare(
        entry(**overrides),
        now=now,
        dedupe_window=window,
        twap_min_duration=10,
        twap_max_duration=86_400,
    )


def test_a_digest_counts_as_a_repeat_only_within_the_window(db_url: str) -> None:
    engine = make_engine(db_url)
    t0 = utcnow()
    try:
        first = service.record(engine, _prepared(t0), now=t0)
        inside = t0 + timedelta(seconds=59)
        repeat = service.record(engine, _prepared(inside), now=inside)
        assert repeat == service.Intake(first.signal_id, "received", duplicate=True)

        after = t0 + timedelta(seconds=61)
        fresh = service.record(engine, _prepared(after), now=after)
        assert not fresh.duplicate and fresh.signal_id != first.signal_id
        # The old row keeps its history under a retired key; the key now names the new one.
        keys = dict(
            (r.id, r.idempotency_key)
            for r in query(db_url, "SELECT id, idempotency_key FROM signals")
        )
        assert keys[fresh.signal_id].startswith("digest:")
        assert keys[first.signal_id] == f"{keys[fresh.signal_id]}:{first.signal_id}"
        later = after + timedelta(seconds=1)
        assert service.record(engine, _prepared(later), now=later).duplicate
    finally:
        engine.dispose()


def test_sender_ids_never_expire(db_url: str) -> None:
    engine = make_engine(db_url)
    t0 = utcnow()
    try:
        first = service.record(engine, _prepared(t0, id="tv-9"), now=t0)
        much_later = t0 + timedelta(days=30)
        repeat = service.record(engine, _prepared(t0, id="tv-9"), now=much_later)
        assert repeat.duplicate and repeat.signal_id == first.signal_id
        with pytest.raises(Conflict):
            service.record(engine, _prepared(t0, id="tv-9", quantity="2"), now=much_later)
    finally:
        engine.dispose()


def test_a_batch_stores_new_signals_once_and_answers_repeats_and_conflicts_alone(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    t0 = utcnow()
    try:
        earlier = service.record(engine, _prepared(t0, id="tv-0"), now=t0)
        expired = service.record(engine, _prepared(t0), now=t0)  # a digest key
        now = t0 + timedelta(seconds=61)  # past the digest's window
        batch = [
            _prepared(now, id="tv-1"),
            _prepared(now, id="tv-0"),  # a repeat of a stored signal
            _prepared(now, id="tv-1"),  # a repeat within the batch
            _prepared(now, id="tv-2"),
            _prepared(now, id="tv-2", quantity="2"),  # the same id, another body
            _prepared(now),  # the same body as the expired digest: a new signal
        ]
        with engine.begin() as conn:
            answers = service.store_batch(conn, [(p, now, "127.0.0.1") for p in batch])
    finally:
        engine.dispose()
    new1, old, again, new2, conflict, renewed = answers
    assert isinstance(new1, service.Intake) and isinstance(new2, service.Intake)
    assert isinstance(renewed, service.Intake)
    assert not new1.duplicate and not new2.duplicate and not renewed.duplicate
    assert old == service.Intake(earlier.signal_id, "received", duplicate=True)
    assert again == service.Intake(new1.signal_id, "received", duplicate=True)
    assert isinstance(conflict, Conflict)
    assert renewed.signal_id != expired.signal_id
    rows = {r.id: r.source_id for r in query(db_url, "SELECT id, source_id FROM signals")}
    assert rows == {
        earlier.signal_id: "tv-0",
        expired.signal_id: None,
        new1.signal_id: "tv-1",
        new2.signal_id: "tv-2",
        renewed.signal_id: None,
    }
    events = query(db_url, "SELECT signal_id FROM events WHERE message = 'received'")
    assert sorted(e.signal_id for e in events) == sorted(rows)  # one first event each


@pytest.mark.parametrize(
    "secret",
    ["plain-s3cret", 'with "quotes"', "back\\slash", "tab\there", "ünïcødé-sëcret"],
)
def test_a_secret_pasted_anywhere_is_redacted_before_the_digest(secret: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    raw = {
        "secret": secret, "action": "entry", "symbol": "BTCUSDT", "side": "buy",
        "quantity": "0.5", "meta": {"note": f"my secret is {secret}", "tags": [secret, 1]},
    }  # fmt: skip
    prepared = service.prepare(
        raw, now=now, dedupe_window=60, twap_min_duration=300, twap_max_duration=86400,
        secrets=[secret],
    )  # fmt: skip
    stored = json.dumps(prepared.payload, default=str, ensure_ascii=False)
    assert secret not in stored and service.REDACTED in stored
    assert json.dumps(secret, ensure_ascii=False)[1:-1] not in stored  # nor its JSON form
    clean = {**raw, "meta": {"note": service.REDACTED, "tags": [service.REDACTED, 1]}}
    expected = service.canonical_digest(service.without_secret(clean))
    assert prepared.digest == expected  # the digest is of the redacted body
    # A body that holds no secret keeps every string, and the same digest as without secrets.
    plain = {**raw, "meta": {"note": "nothing to hide"}}
    kept = service.prepare(
        plain, now=now, dedupe_window=60, twap_min_duration=300, twap_max_duration=86400,
        secrets=[secret],
    )  # fmt: skip
    assert kept.payload.get("meta") == {"note": "nothing to hide"}
    assert kept.digest == service.canonical_digest(service.without_secret(plain))
