"""Fixtures for the operator surface: a private Redis, the paper exchange, the receiver app.

Readiness and metrics read global Redis keys (RQ's worker registry, the monitor heartbeat),
so these tests run against their own redis-server, emptied before each test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.models import Order, Signal, new_id, utcnow
from paper.app import create_app as create_paper_app
from paper.clock import ManualClock
from paper.settings import PaperSettings
from tests.conftest import TEST_ADMIN_TOKEN, TEST_WEBHOOK_SECRET
from tests.support import ThreadedServer, serve

D = Decimal
AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


@pytest.fixture
def rconn(private_redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(private_redis_url)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def paper() -> Iterator[ThreadedServer]:
    """The paper exchange on a manual clock: algos only move when a test steps it."""
    settings = PaperSettings(
        _env_file=None,
        twap_min_duration=10,
        paper_manual_clock=True,
        paper_volatility=D(0),
    )
    with serve(create_paper_app(settings, clock=ManualClock())) as server:
        yield server


@pytest.fixture
def paper_control(paper: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{paper.url}/paper", timeout=10) as http:
        http.post("/reset").raise_for_status()
        yield http
        http.delete("/faults")  # a Retry-After window left open would ban the next test


def make_settings(
    db_url: str, redis_url: str | None, exchange_url: str, **changes: Any
) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "database_url": db_url,
        "redis_url": redis_url,
        "queue_name": f"pk-api-{uuid.uuid4().hex[:10]}",
        "webhook_secret": TEST_WEBHOOK_SECRET,
        "admin_token": TEST_ADMIN_TOKEN,
        "binance_api_url": exchange_url,
        "binance_fapi_url": exchange_url,
        "twap_min_duration": 10,
        "monitor_interval": 5,
    }
    values.update(changes)
    return Settings(_env_file=None, **values)


@pytest.fixture
def api_settings(
    db_url: str, private_redis_url: str, rconn: redis.Redis, paper: ThreadedServer
) -> Settings:
    return make_settings(db_url, private_redis_url, paper.url)


def build_app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def open_app() -> Iterator[Callable[[Settings], TestClient]]:
    """Build the receiver for some settings and run its lifespan; closed after the test."""
    clients: list[TestClient] = []

    def start(settings: Settings) -> TestClient:
        client = TestClient(build_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(api_settings: Settings, open_app: Callable[[Settings], TestClient]) -> TestClient:
    return open_app(api_settings)


@pytest.fixture
def sessions(api_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(api_settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def add_signal(session: Session, **values: Any) -> Signal:
    """A stored signal row; ``received_at`` and the id follow ``ago`` seconds in the past."""
    ago = values.pop("ago", 0)
    received = values.pop("received_at", utcnow() - timedelta(seconds=ago))
    signal_id = values.pop("id", _id_at(received))
    payload = values.pop("payload", {"action": values.get("action", "entry")})
    row = Signal(
        id=signal_id,
        idempotency_key=values.pop("idempotency_key", f"test-{signal_id}"),
        body_digest="0" * 64,
        action=values.pop("action", "entry"),
        market=values.pop("market", "spot"),
        symbol=values.pop("symbol", "BTCUSDT"),
        side=values.pop("side", "buy"),
        strategy=values.pop("strategy", "breakout"),
        payload=payload,
        status=values.pop("status", "received"),
        received_at=received,
        updated_at=received,
        **values,
    )
    session.add(row)
    session.flush()
    return row


def _id_at(when: datetime) -> str:
    # The same shape as app.models.new_id, at a chosen time, so ids sort like the times.
    return f"{int(when.timestamp() * 1000):012x}{new_id()[12:]}"


def add_order(session: Session, **values: Any) -> Order:
    defaults: dict[str, Any] = {
        "leg": "entry",
        "kind": "twap",
        "market": "spot",
        "symbol": "BTCUSDT",
        "side": "BUY",
        "client_id": f"pk-test-{uuid.uuid4().hex[:16]}",
        "status": "working",
        "quantity": D("1"),
        "duration": 1200,
    }
    defaults.update(values)
    row = Order(**defaults)
    session.add(row)
    session.flush()
    return row
