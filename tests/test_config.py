"""Settings that cannot lie: a TWAP shorter than Binance's 300 s only against the paper exchange."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings, is_paper_url


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8100", "http://localhost:9999", "http://[::1]:8100", "http://paper:8100"],
)
def test_short_twaps_are_allowed_against_the_paper_exchange(url: str) -> None:
    assert settings(twap_min_duration=10, binance_api_url=url, binance_fapi_url=url)
    assert is_paper_url(url)


@pytest.mark.parametrize(
    ("api", "fapi"),
    [
        ("https://live-exchange.example", "https://live-futures.example"),
        ("http://127.0.0.1:8100", "https://live-futures.example"),  # one real venue is enough
        ("http://10.0.0.7:8100", "http://10.0.0.7:8100"),  # a proxy elsewhere may be Binance
    ],
)
def test_short_twaps_are_refused_against_anything_else(api: str, fapi: str) -> None:
    with pytest.raises(ValidationError, match=r"twap_min_duration \(60\) must be at least 300 s"):
        settings(twap_min_duration=60, binance_api_url=api, binance_fapi_url=fapi)
    assert settings(twap_min_duration=300, binance_api_url=api, binance_fapi_url=fapi)


def test_the_configured_paper_host_counts_as_the_paper_exchange() -> None:
    url = "http://papers.internal:8100"
    assert settings(
        twap_min_duration=10,
        binance_api_url=url,
        binance_fapi_url=url,
        paper_host="papers.internal",
    )
