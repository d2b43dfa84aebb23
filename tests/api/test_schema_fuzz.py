"""Schema fuzzing: schemathesis drives the receiver's OpenAPI (the webhook, health, metrics and
the admin API) in-process, on the real app factory, a real database (SQLite and PostgreSQL) and
a real Redis, with valid and invalid input, and checks every answer:

- no 5xx (``/health/ready`` gives its documented 503 here: no worker and no monitor run);
- it conforms to the document: a documented status code, content type, headers and body;
  invalid input is refused (``negative_data_rejection``); ``ignored_auth`` sends admin requests
  again without the token and with a wrong one and expects 401; a method a path does not take
  gets 405 with an ``Allow`` header naming those it does;
- an answer of 400 or more changed no row: no signal, order or event comes from bad input.

Checks left out, and why: ``positive_data_acceptance`` on the webhook, whose body schema is
only "a JSON object" (the receiver checks the signal field by field, app/signals/schemas.py),
so a "schema-valid" body is nearly never a valid signal; the second test below fuzzes the
webhook with the secret and signal-shaped bodies instead. ``max_response_time`` (off by
default) would measure this shared machine, not the code. The stateful checks
(``use_after_free``, ``ensure_resource_availability``) stay on but find no links to follow.

Deterministic: a fixed schemathesis seed, ``derandomize=True`` and no example database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.models import Event, Order, Signal
from tests.api.conftest import make_settings
from tests.conftest import TEST_ADMIN_TOKEN, TEST_WEBHOOK_SECRET
from tests.signals.conftest import entry
from tests.support import ThreadedServer


def _document() -> dict[str, Any]:
    """The OpenAPI document ``create_app`` serves (the same with any test settings)."""
    placeholder = Settings(
        _env_file=None,
        env="test",
        database_url="sqlite://",
        redis_url=None,
        webhook_secret=TEST_WEBHOOK_SECRET,
        admin_token=TEST_ADMIN_TOKEN,
    )
    return create_app(placeholder).openapi()


class RunningApp:
    """The ASGI app schemathesis calls: the app of the test that runs now.

    Schemathesis builds its tests when the module is collected, before any database exists;
    each test's app (its own settings, database and queue) is plugged in by ``running_app``.
    Schemathesis runs the app's lifespan on its own event loop (where the requests run too)
    and ends it when the test ends.
    """

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no app: the test must use the running_app fixture"
        await self.app(scope, receive, send)


DOCUMENT = _document()
RUNNING = RunningApp()
CONFIG = {
    "seed": 11,
    "generation": {"mode": "all"},  # valid input and invalid input
    "auth": {"openapi": {"adminToken": {"bearer": TEST_ADMIN_TOKEN}}},
    "operations": [
        {
            # Unready without a worker and a monitor: 503 is its documented answer here.
            "include-path": "/health/ready",
            "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx", 503]}},
        },
        {
            # Any JSON object is "schema-valid", and nearly none is a signal.
            "include-path": "/webhook",
            "checks": {"positive_data_acceptance": {"enabled": False}},
        },
    ],
}
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(CONFIG))
schema.app = RUNNING

# Bounded: the module runs in well under a minute on both databases.
FUZZ = settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    # One app and database for all the examples of a test, on purpose: rows and repeats build
    # up between them. Each request goes through the app and the database: not "too slow".
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def fuzz_settings(
    db_url: str, private_redis_url: str, rconn: redis.Redis, paper: ThreadedServer
) -> Settings:
    # Every request comes from one sender: its rate limit would answer 429 after a burst
    # (tests/signals/test_hostile_input.py tests the limit).
    return make_settings(db_url, private_redis_url, paper.url, webhook_rate_limit=0)


@pytest.fixture
def running_app(fuzz_settings: Settings) -> Iterator[FastAPI]:
    app = create_app(fuzz_settings)
    RUNNING.app = app
    try:
        yield app
    finally:
        shutdown_lifespans()  # the app's lifespan, while its database and Redis still exist
        RUNNING.app = None


@pytest.fixture
def sessions(fuzz_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fuzz_settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def row_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Signals, orders, and events other than a signal's state changes (an accepted signal's
    ``received -> queued`` is written after its answer, by the enqueuer)."""
    with sessions() as session:

        def count(model: type[Signal | Order | Event], *where: Any) -> int:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

        return {
            "signals": count(Signal),
            "orders": count(Order),
            "events": count(Event, Event.kind != "state"),
        }


def test_the_fuzzed_document_is_the_one_served(running_app: FastAPI) -> None:
    assert running_app.openapi() == DOCUMENT
    admin = [
        operation
        for path, operations in DOCUMENT["paths"].items()
        if path.startswith("/api/")
        for operation in operations.values()
    ]
    assert admin and all(op["security"] == [{"adminToken": []}] for op in admin)


@schema.parametrize()
@FUZZ
def test_no_input_gets_a_server_error_or_an_answer_off_the_schema(
    case: schemathesis.Case, running_app: FastAPI, sessions: sessionmaker[Session]
) -> None:
    before = row_counts(sessions)
    response = case.call_and_validate()
    event(f"status {response.status_code}")  # shown by --hypothesis-show-statistics
    if response.status_code >= 400:
        assert row_counts(sessions) == before, (response.status_code, response.text)
    if response.status_code == 422:
        assert all(error["field"] for error in response.json()["errors"])


# ---- the webhook, authenticated -----------------------------------------------------------

FIELDS = [
    "id",
    "action",
    "symbol",
    "market",
    "side",
    "quantity",
    "quote_quantity",
    "execution",
    "take_profit",
    "stop_loss",
    "ttl",
    "expires_at",
    "pace",
    "strategy",
    "target_id",
    "meta",
]
NESTED = {
    "execution": ["type", "duration", "limit_price", "remainder", "max_slippage_bps", "urgency"],
    "take_profit": ["price"],
    "stop_loss": ["stop_price", "limit_price", "type", "if_crossed"],
    "pace": ["grace", "min_ratio", "slack", "stall_seconds"],
}
# What used to break a database or a parser: 64-bit and larger integers, NUL characters,
# numbers too long or too precise for Numeric(38, 18), non-finite spellings, odd times.
HOSTILE: list[Any] = [
    None,
    True,
    0,
    -1,
    2**31,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    "9" * 400,
    Decimal("1e-30"),
    Decimal("1E+400"),
    "NaN",
    "Infinity",
    "-0",
    "",
    " ",
    "\x00",
    "BTC\x00USDT",
    "x" * 5000,
    "2026-13-45T99:99:99Z",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-12:00",
    [],
    {},
    {"type": "twap"},
    ["entry"],
]
values = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.text(max_size=40),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: abs(d.adjusted()) < 1000
    ),
)
top_level = st.dictionaries(st.sampled_from(FIELDS), values, max_size=3)
nested = st.sampled_from(sorted(NESTED)).flatmap(
    lambda name: st.tuples(
        st.just(name), st.dictionaries(st.sampled_from(NESTED[name]), values, max_size=2)
    )
)


def signal_body(changes: dict[str, Any], inner: tuple[str, dict[str, Any]] | None) -> bytes:
    body = entry()
    if inner is not None:
        name, fields = inner
        current = body.get(name)
        body[name] = {**(current if isinstance(current, dict) else {}), **fields}
    body.update(changes)
    body["secret"] = TEST_WEBHOOK_SECRET
    return json.dumps(body, default=str).encode()


@given(changes=top_level, inner=st.none() | nested)
@example(changes={"ttl": None, "expires_at": None}, inner=None)  # once a 500
@example(changes={"id": "x" * 129, "symbol": "BTC\x00USDT"}, inner=None)
@example(changes={}, inner=("execution", {"duration": 2**63}))
@example(changes={"meta": {"k\x00": "v\x00"}}, inner=None)
@settings(FUZZ, max_examples=120)
def test_an_authenticated_sender_gets_no_server_error_and_bad_input_stores_nothing(
    running_app: FastAPI,
    sessions: sessionmaker[Session],
    changes: dict[str, Any],
    inner: tuple[str, dict[str, Any]] | None,
) -> None:
    case = schema["/webhook"]["POST"].Case(
        body=signal_body(changes, inner), media_type="application/json"
    )
    before = row_counts(sessions)
    response = case.call_and_validate()
    after = row_counts(sessions)
    event(f"status {response.status_code}")
    assert response.status_code in (200, 202, 409, 422), response.text
    if response.status_code == 202:
        assert after["signals"] == before["signals"] + 1
    else:
        assert after == before, response.text
    if response.status_code == 422:
        assert all(error["field"] for error in response.json()["errors"])
