"""Fixtures: the paper exchange served over real HTTP on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from paper.app import create_app
from paper.clock import ManualClock
from paper.settings import PaperSettings
from tests.paper.binance import BinanceTestClient
from tests.support import serve


def paper_settings(**overrides: object) -> PaperSettings:
    values: dict[str, object] = {
        "paper_volatility": Decimal(0),
        "paper_seed": 11,
        "twap_min_duration": 10,
    }
    values.update(overrides)
    return PaperSettings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def server(clock: ManualClock) -> Iterator[str]:
    with serve(create_app(paper_settings(), clock=clock)) as running:
        yield running.url


@pytest.fixture
def bn(server: str) -> Iterator[BinanceTestClient]:
    """A signed client on a freshly reset exchange."""
    client = BinanceTestClient(server)
    client.control("POST", "/reset", {})
    yield client
    client.close()
