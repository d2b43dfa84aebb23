"""Fixtures: the paper exchange over real HTTP (its ledger judges exactly-once), a real
database (SQLite and PostgreSQL), real Redis, and an ``ExecContext`` pointing at all three."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope
from app.exchange.client import BinanceClient
from app.exchange.ratelimit import RateGovernor
from app.execution.context import ExecContext
from app.execution.service import Outcome, process_signal
from app.models import Event, Order, Position, utcnow
from app.models import Signal as SignalRow
from app.signals.service import prepare, record
from paper.app import create_app
from paper.clock import ManualClock
from paper.settings import PaperSettings
from tests.support import ThreadedServer, serve
from worker import resources as worker_resources
from worker.main import build_worker

D = Decimal
MakeContext = Callable[..., ExecContext]


class RequestLog:
    """ASGI wrapper noting when each request reached the paper exchange (wall time)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.entries: list[tuple[float, str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.entries.append((time.time(), scope["method"], scope["path"]))
        await self.app(scope, receive, send)


@dataclass
class Paper:
    server: ThreadedServer
    app: Any
    log: RequestLog
    clock: ManualClock
    faults_seen: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def paper() -> Iterator[Paper]:
    clock = ManualClock()
    settings = PaperSettings(
        _env_file=None,
        twap_min_duration=10,
        paper_volatility=D(0),
        paper_seed=11,
        paper_algo_cadence="fine",  # even slices: tests count them as the clock steps
    )
    app = create_app(settings, clock=clock)
    log = RequestLog(app)
    with serve(log) as server:
        yield Paper(server, app, log, clock)


@pytest.fixture
def control(paper: Paper) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{paper.url}/paper", timeout=10) as http:
        http.post("/reset").raise_for_status()
        paper.log.entries.clear()
        yield http
        http.delete("/faults")


@pytest.fixture
def exec_settings(settings: Settings, paper: Paper) -> Settings:
    return settings.model_copy(
        update={
            "binance_api_url": paper.url,
            "binance_fapi_url": paper.url,
            # A short in-flight horizon (2*2 + 3 + 3 + 1 = 11 s) keeps fault tests quick.
            "rate_limit_max_wait": 2.0,
            "http_timeout": 3.0,
            "recv_window": 3000,
            # Binance's read-after-write lag is 20-60 s; the faults here inject at most 2 s.
            "reconcile_lag_window": 2.5,
        }
    )


@pytest.fixture
def make_ctx(exec_settings: Settings, control: httpx.Client) -> Iterator[MakeContext]:
    """Contexts as separate worker processes would have: each its own client and engine."""
    made: list[tuple[httpx.Client, Any]] = []

    def make(**changes: Any) -> ExecContext:
        settings = exec_settings.model_copy(update=changes) if changes else exec_settings
        http = httpx.Client(timeout=settings.http_timeout)
        engine = make_engine(settings.database_url)
        made.append((http, engine))
        client = BinanceClient(
            http, settings, governor=RateGovernor(max_wait=settings.rate_limit_max_wait)
        )
        return ExecContext(settings, client, make_sessionmaker(engine))

    yield make
    for http, engine in made:
        http.close()
        engine.dispose()


@pytest.fixture
def ctx(make_ctx: MakeContext) -> ExecContext:
    return make_ctx()


def submit(ctx: ExecContext, **fields: Any) -> str:
    """Store a signal as the receiver would (status ``received``); returns its id."""
    raw = {"action": "entry", "symbol": "BTCUSDT", "side": "buy", "id": uuid.uuid4().hex, **fields}
    raw = {k: v for k, v in raw.items() if v is not None}
    prepared = prepare(
        raw,
        now=utcnow(),
        dedupe_window=60,
        twap_min_duration=ctx.settings.twap_min_duration,
        twap_max_duration=ctx.settings.twap_max_duration,
    )
    engine = ctx.sessions.kw["bind"]
    return record(engine, prepared, now=utcnow()).signal_id


def run(ctx: ExecContext, signal_id: str) -> Outcome:
    return process_signal(ctx, signal_id)


def ledger(control: httpx.Client, **query: str) -> list[dict[str, Any]]:
    response = control.get("/ledger", params=query)
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def fault(control: httpx.Client, **spec: Any) -> None:
    control.post("/faults", json=spec).raise_for_status()


def set_price(control: httpx.Client, symbol: str, price: str) -> None:
    control.post("/price", json={"symbol": symbol, "price": price}).raise_for_status()


def signal_row(ctx: ExecContext, signal_id: str) -> SignalRow:
    with session_scope(ctx.sessions) as session:
        row = session.get(SignalRow, signal_id)
        assert row is not None
        return row


def orders(ctx: ExecContext, signal_id: str | None = None) -> list[Order]:
    with session_scope(ctx.sessions) as session:
        query = select(Order).order_by(Order.id)
        if signal_id is not None:
            query = query.where(Order.signal_id == signal_id)
        return list(session.scalars(query))


def positions(ctx: ExecContext) -> list[Position]:
    with session_scope(ctx.sessions) as session:
        return list(session.scalars(select(Position).order_by(Position.id)))


def event_kinds(ctx: ExecContext, signal_id: str) -> list[str]:
    with session_scope(ctx.sessions) as session:
        return list(
            session.scalars(
                select(Event.kind).where(Event.signal_id == signal_id).order_by(Event.id)
            )
        )


def work_once(settings: Settings, redis_conn: redis.Redis) -> None:
    """A worker process's life, in this one: build its resources, drain the queue."""
    previous = worker_resources.install(worker_resources.build(settings))
    try:
        build_worker(settings, redis_conn).work(burst=True)
    finally:
        installed = worker_resources.install(previous)
        assert installed is not None
        installed.close()
