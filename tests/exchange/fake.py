"""A scripted stand-in for Binance behind ``httpx.MockTransport``, plus a fake clock.

It fakes the exchange only: the client under test builds, signs and sends real httpx
requests, and reads real httpx responses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from pydantic import SecretStr

from app.config import Settings
from app.exchange.client import BinanceClient
from app.exchange.ratelimit import RateGovernor

API_KEY = "test-key-0123456789"
API_SECRET = "test-secret-0123456789abcdef"
SERVER_TIME = 1_700_000_000_000
BASE = "http://binance.test"
FBASE = "http://fapi.test"

Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = SERVER_TIME / 1000) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def reply(
    status: int = 200,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: str | None = None,
) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body if body is not None else {})
    return httpx.Response(status, content=content.encode(), headers=headers or {})


class FakeBinance:
    """Answers queued per (method, path); time endpoints answer from ``server_ms``."""

    def __init__(self, time: FakeTime | None = None, server_offset_ms: int = 0) -> None:
        self.time = time or FakeTime()
        self.server_offset_ms = server_offset_ms
        self.queues: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self.always: dict[tuple[str, str], Reply] = {}
        self.requests: list[httpx.Request] = []
        self.sent_at: list[float] = []

    def server_ms(self) -> int:
        return int(self.time() * 1000) + self.server_offset_ms

    def add(self, method: str, path: str, *replies: Reply) -> None:
        self.queues[(method, path)].extend(replies)

    def set(self, method: str, path: str, answer: Reply) -> None:
        self.always[(method, path)] = answer

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.sent_at.append(self.time())
        key = (request.method, request.url.path)
        if key in (("GET", "/api/v3/time"), ("GET", "/fapi/v1/time")) and not self.queues[key]:
            return reply(body={"serverTime": self.server_ms()})
        queue = self.queues[key]
        answer = queue.popleft() if queue else self.always.get(key)
        if answer is None:
            return reply(404, {"code": -1, "msg": f"no fake answer for {key}"})
        return answer(request) if callable(answer) else answer

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if (r.method, r.url.path) == (method, path)]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def params_of(request: httpx.Request) -> dict[str, str]:
    """Every parameter as sent: query string and form body together."""
    pairs = parse_qsl(request.url.query.decode()) + parse_qsl(request.content.decode())
    return dict(pairs)


def signature_ok(request: httpx.Request, secret: str = API_SECRET) -> bool:
    """Check the signature the way Binance does: HMAC over query + body minus ``signature``."""
    query, body = request.url.query.decode(), request.content.decode()
    if body:
        payload, _, sig = body.rpartition("&signature=")
        signed = query + payload
    else:
        signed, _, sig = query.rpartition("&signature=")
    expected = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "binance_api_url": BASE,
        "binance_fapi_url": FBASE,
        "binance_api_key": SecretStr(API_KEY),
        "binance_api_secret": SecretStr(API_SECRET),
        "recv_window": 5000,
        "exchange_read_retries": 3,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def make_client(
    fake: FakeBinance, governor: RateGovernor | None = None, **overrides: Any
) -> BinanceClient:
    http = httpx.Client(transport=fake.transport())
    governor = governor or RateGovernor(clock=fake.time, sleep=fake.time.sleep)
    return BinanceClient(
        http,
        make_settings(**overrides),
        governor=governor,
        clock=fake.time,
        sleep=fake.time.sleep,
    )
