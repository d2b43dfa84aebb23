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
from paper.app import create_app
from paper.clock import ManualClock
from paper.settings import PaperSettings
from tests.monitoring.desk import Desk
from tests.support import ThreadedServer, serve

MakeContext = Callable[[], ExecContext]


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


# The cadences a test module's paper exchange slices algos with (``paper/cadence.py``):
# most monitor tests script exact paces on the fine one (even slices, current executedQty);
# a module sets ``PAPER_CADENCE = BINANCE`` to run on Binance's own.
FINE: dict[str, object] = {"paper_algo_cadence": "fine", "paper_spot_algo_lag": False}
BINANCE: dict[str, object] = {"paper_algo_cadence": "binance", "paper_spot_algo_lag": True}


@pytest.fixture(scope="module")
def paper(clock: ManualClock, request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    cadence = getattr(request.module, "PAPER_CADENCE", FINE)
    settings = PaperSettings(
        _env_file=None,
        twap_min_duration=10,
        paper_volatility=Decimal(0),
        paper_seed=11,
        **cadence,
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
