"""Fixtures: the paper exchange over real HTTP on a manual clock, a real database (SQLite and
PostgreSQL), real Redis, and an ``ExecContext`` pointing at all three."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import pytest
import redis

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.exchange.client import BinanceClient
from app.exchange.ratelimit import RateGovernor
from app.execution.context import ExecContext
from app.monitoring.service import monitor_lock
from app.paper.app import create_app
from app.paper.clock import ManualClock
from tests.monitoring.desk import Desk
from tests.support import ThreadedServer, serve

MakeContext = Callable[[], ExecContext]


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def paper(clock: ManualClock) -> Iterator[ThreadedServer]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        twap_min_duration=10,
        paper_volatility=Decimal(0),
        paper_seed=11,
    )
    with serve(create_app(settings, clock=clock)) as server:
        yield server


@pytest.fixture
def control(paper: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{paper.url}/paper", timeout=10) as http:
        http.post("/reset").raise_for_status()
        yield http
        http.delete("/faults")


@pytest.fixture
def monitor_settings(settings: Settings, paper: ThreadedServer) -> Settings:
    return settings.model_copy(
        update={
            "binance_api_url": paper.url,
            "binance_fapi_url": paper.url,
            "monitor_interval": 5.0,
            "monitor_concurrency": 4,
        }
    )


@pytest.fixture
def make_ctx(
    monitor_settings: Settings, redis_conn: redis.Redis, control: httpx.Client
) -> Iterator[MakeContext]:
    """Builds contexts as separate monitor processes would: each its own client and engine."""
    made: list[tuple[httpx.Client, object]] = []

    def make() -> ExecContext:
        http = httpx.Client(timeout=10)
        engine = make_engine(monitor_settings.database_url)
        made.append((http, engine))
        client = BinanceClient(http, monitor_settings, governor=RateGovernor())
        return ExecContext(monitor_settings, client, make_sessionmaker(engine), redis_conn)

    yield make
    for http, engine in made:
        http.close()
        engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def ctx(make_ctx: MakeContext, redis_conn: redis.Redis) -> Iterator[ExecContext]:
    context = make_ctx()
    yield context
    redis_conn.delete(monitor_lock(context).key)


@pytest.fixture
def desk(ctx: ExecContext, clock: ManualClock, control: httpx.Client) -> Desk:
    return Desk(ctx, clock, control)
