"""Fixtures for the intake tests: a receiver served over real HTTP, and signal bodies."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from app.config import Settings
from app.main import create_app
from tests.conftest import TEST_WEBHOOK_SECRET
from tests.support import ThreadedServer

Receiver = Callable[..., tuple[Any, str]]


def entry(**overrides: Any) -> dict[str, Any]:
    """A valid entry signal with the test secret; ``None`` values drop a field."""
    body: dict[str, Any] = {
        "secret": TEST_WEBHOOK_SECRET,
        "action": "entry",
        "symbol": "BINANCE:BTCUSDT",
        "side": "buy",
        "quantity": "0.5",
        "execution": {"type": "twap", "duration": "1800", "limit_price": "64000"},
        "take_profit": {"price": "70000"},
        "stop_loss": {"stop_price": "60000", "limit_price": "59900"},
        "ttl": 3600,
        "strategy": "breakout-v2",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Start ``create_app(settings)`` under uvicorn on 127.0.0.1; returns (app, base url)."""
    servers: list[ThreadedServer] = []

    def start(settings: Settings, **uvicorn_config: Any) -> tuple[Any, str]:
        app = create_app(settings)
        server = ThreadedServer(app, **uvicorn_config).start()
        servers.append(server)
        return app, server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def job_keys(redis_conn: redis.Redis, queue_name: str) -> Iterator[Callable[[], list[bytes]]]:
    """Lists the job hashes made on this test's queue, and deletes them afterwards.

    Job keys (``rq:job:signal-<id>``) do not carry the queue name, so the shared
    ``queue_name`` fixture does not clean them.
    """

    def keys() -> list[bytes]:
        return [
            key
            for key in redis_conn.scan_iter(match="rq:job:signal-*", count=1000)
            if redis_conn.hget(key, "origin") == queue_name.encode()
        ]

    yield keys
    found = keys()
    if found:
        redis_conn.delete(*found)
    redis_conn.srem("rq:queues", f"rq:queue:{queue_name}")


def job_texts(redis_conn: redis.Redis, keys: list[bytes]) -> list[str]:
    """Every field of these job hashes as text, with the compressed job data inflated."""
    out = []
    for key in keys:
        for field, value in redis_conn.hgetall(key).items():
            assert isinstance(value, bytes)  # redis_conn does not decode responses
            if field == b"data":
                value = zlib.decompress(value)
            out.append(value.decode("utf-8", "replace"))
    return out


@pytest.fixture
def sqlite_settings(sqlite_only_url: str, redis_url: str, queue_name: str) -> Settings:
    """Like ``settings``, on SQLite only: for checks that do not depend on the database."""
    return Settings(
        _env_file=None,
        env="test",
        database_url=sqlite_only_url,
        redis_url=redis_url,
        queue_name=queue_name,
        webhook_secret=TEST_WEBHOOK_SECRET,
        twap_min_duration=10,
    )


def configured(settings: Settings, **changes: Any) -> Settings:
    """A validated copy of ``settings`` with ``changes`` (presets expanded, secrets wrapped)."""
    return Settings(_env_file=None, **{**settings.model_dump(), **changes})
